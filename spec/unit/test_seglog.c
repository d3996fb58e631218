/* The partition log: append and read back, segment rolls, index lookups at
 * random offsets, reopen, torn tails cut and copied aside, corruption that
 * stops the log, failed appends that keep nothing, the power-loss hook,
 * retention, CRC-32C. */
#include "core/xalloc.h"
#include "store/embedded/crc32c.h"
#include "store/embedded/seglog.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static const sl_seglog_opts_t small = {.segment_bytes = 4096, .index_interval = 256};

static void append_n(sl_seglog_t *l, int from, int n, int64_t ts) {
  for (int i = from; i < from + n; i++) {
    char v[64], k[16];
    int vl = snprintf(v, sizeof v, "value-%d", i), kl = snprintf(k, sizeof k, "k%d", i % 7);
    sl_record_t r = {0, ts, k, (uint32_t)kl, "ev", 2, "{}", 2, v, (uint32_t)vl};
    char *err = NULL;
    int64_t off = sl_seglog_append(l, &r, 1, &err);
    CHECK(off == i, "append %d gave %lld (%s)", i, (long long)off, err ? err : "");
    free(err);
  }
}

typedef struct got { int n; uint64_t first, last; int bad; } got_t;

static int collect(const sl_record_t *r, void *arg) {
  got_t *g = arg;
  char v[64];
  int vl = snprintf(v, sizeof v, "value-%llu", (unsigned long long)r->offset);
  if (r->value_len != (uint32_t)vl || memcmp(r->value, v, (size_t)vl) != 0 || r->event_len != 2) g->bad++;
  if (g->n == 0) g->first = r->offset;
  else if (r->offset != g->last + 1) g->bad++;
  g->last = r->offset;
  g->n++;
  return 0;
}

static got_t read_from(sl_seglog_t *l, uint64_t from, size_t max) {
  got_t g = {0};
  char *err = NULL;
  int64_t n = sl_seglog_read(l, from, max, SIZE_MAX, collect, &g, &err);
  CHECK(n == g.n, "read count %lld vs %d (%s)", (long long)n, g.n, err ? err : "");
  free(err);
  return g;
}

static char *tmpdir(void) {
  char t[] = "/tmp/sl-seglog-XXXXXX";
  return sl_xstrdup(mkdtemp(t));
}

static void rmrf(const char *d) {
  char *cmd = sl_xasprintf("rm -rf '%s'", d);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", d);
  free(cmd);
}

static void test_roundtrip_and_rolls(void) {
  char *d = tmpdir();
  char *err = NULL, *rep = NULL;
  sl_seglog_t *l = sl_seglog_open(d, &small, &err, &rep);
  CHECK(l && !rep, "open");
  append_n(l, 0, 1000, 1000);
  CHECK(sl_seglog_segments(l) > 5, "rolled into %d segments", sl_seglog_segments(l));
  got_t g = read_from(l, 0, 5000);
  CHECK(g.n == 1000 && !g.bad && g.last == 999, "read all: %d bad %d", g.n, g.bad);
  srand(7);
  for (int i = 0; i < 200; i++) {
    uint64_t at = (uint64_t)(rand() % 1000);
    got_t one = read_from(l, at, 3);
    CHECK(one.n == (at + 3 <= 1000 ? 3 : (int)(1000 - at)) && one.first == at && !one.bad, "lookup at %llu",
          (unsigned long long)at);
  }
  CHECK(read_from(l, 1000, 10).n == 0, "reading at the end gives nothing");
  /* a batch append spanning segments */
  sl_record_t batch[50];
  char vals[50][32];
  for (int i = 0; i < 50; i++) {
    int vl = snprintf(vals[i], sizeof vals[i], "value-%d", 1000 + i);
    batch[i] = (sl_record_t){0, 2000, NULL, 0, "ev", 2, NULL, 0, vals[i], (uint32_t)vl};
  }
  CHECK(sl_seglog_append(l, batch, 50, &err) == 1000, "batch append");
  CHECK(batch[49].offset == 1049, "offsets assigned");
  sl_seglog_close(l);

  l = sl_seglog_open(d, &small, &err, &rep);
  CHECK(l && !rep, "reopen clean");
  CHECK(sl_seglog_end(l) == 1050, "end after reopen %llu", (unsigned long long)sl_seglog_end(l));
  g = read_from(l, 0, 5000);
  CHECK(g.n == 1050 && !g.bad, "read all after reopen: %d", g.n);
  CHECK(sl_seglog_offset_for_time(l, 1500) == 1000, "time lookup");
  append_n(l, 1050, 10, 3000);
  sl_seglog_close(l);
  rmrf(d);
  free(d);
}

static char *last_log(const char *d) {
  char *cmd = sl_xasprintf("ls %s/*.log | tail -1", d);
  FILE *p = popen(cmd, "r");
  char buf[512] = "";
  if (!fgets(buf, sizeof buf, p)) buf[0] = 0;
  pclose(p);
  free(cmd);
  buf[strcspn(buf, "\n")] = 0;
  return sl_xstrdup(buf);
}

static int64_t file_size(const char *f) {
  struct stat st;
  return stat(f, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void flip(const char *f, off_t at) {
  int fd = open(f, O_RDWR);
  char c = 0;
  CHECK(pread(fd, &c, 1, at) == 1, "pread");
  c ^= 0x55;
  CHECK(pwrite(fd, &c, 1, at) == 1, "pwrite");
  close(fd);
}

/* The .corrupt copy of what was cut at byte `at` of f holds exactly want. */
static void check_aside(const char *f, int64_t at, const unsigned char *want, size_t n) {
  char *aside = sl_xasprintf("%s.%lld.corrupt", f, (long long)at);
  FILE *c = fopen(aside, "rb");
  CHECK(c, "%s exists", aside);
  if (c) {
    unsigned char *got = sl_xmalloc(n + 1);
    size_t r = fread(got, 1, n + 1, c);
    CHECK(r == n && memcmp(got, want, n) == 0, "%s holds the %zu bytes cut (%zu)", aside, n, r);
    free(got);
    fclose(c);
  }
  free(aside);
}

static unsigned char *slurp(const char *f, size_t *n) {
  FILE *c = fopen(f, "rb");
  fseek(c, 0, SEEK_END);
  *n = (size_t)ftell(c);
  rewind(c);
  unsigned char *b = sl_xmalloc(*n + 1);
  if (fread(b, 1, *n, c) != *n) *n = 0;
  fclose(c);
  return b;
}

static void test_torn_tail(void) {
  char *d = tmpdir();
  char *err = NULL, *rep = NULL;
  sl_seglog_opts_t big = {.segment_bytes = 1 << 20, .index_interval = 256};
  sl_seglog_t *l = sl_seglog_open(d, &big, &err, &rep);
  append_n(l, 0, 100, 1);
  sl_seglog_close(l);
  char *f = last_log(d);
  size_t n;
  unsigned char *orig = slurp(f, &n);
  /* cut the last record in half: the end of an interrupted write */
  CHECK(truncate(f, (off_t)n - 7) == 0, "truncate");
  l = sl_seglog_open(d, &big, &err, &rep);
  CHECK(l && rep && strstr(rep, "torn tail") && strstr(rep, ".corrupt"), "torn tail cut: %s", rep ? rep : "");
  free(rep);
  CHECK(!sl_seglog_stopped(l), "not stopped");
  CHECK(sl_seglog_end(l) == 99, "99 records left, end %llu", (unsigned long long)sl_seglog_end(l));
  int64_t kept = file_size(f);
  check_aside(f, kept, orig + kept, n - 7 - (size_t)kept);
  got_t g = read_from(l, 0, 1000);
  CHECK(g.n == 99 && !g.bad, "the rest is served");
  append_n(l, 99, 5, 2);
  sl_seglog_close(l);
  free(orig);
  /* zeros after the last good record (a file extended, never written) */
  int64_t before = file_size(f);
  CHECK(truncate(f, before + 4096) == 0, "extend");
  l = sl_seglog_open(d, &big, &err, &rep);
  CHECK(l && rep && sl_seglog_end(l) == 104 && !sl_seglog_stopped(l), "zeros cut: %s", rep ? rep : "");
  free(rep);
  CHECK(file_size(f) == before, "back to %lld bytes", (long long)before);
  unsigned char zeros[4096] = {0};
  check_aside(f, before, zeros, sizeof zeros);
  sl_seglog_close(l);
  /* a flipped byte in the last record only: nothing valid after it, a torn tail */
  flip(f, (off_t)before - 3);
  l = sl_seglog_open(d, &big, &err, &rep);
  CHECK(l && rep && sl_seglog_end(l) == 103 && !sl_seglog_stopped(l), "last record cut: %s", rep ? rep : "");
  free(rep);
  sl_seglog_close(l);
  free(f);
  rmrf(d);
  free(d);
}

static void test_corruption_stops(void) {
  char *d = tmpdir();
  char *err = NULL, *rep = NULL;
  sl_seglog_opts_t big = {.segment_bytes = 1 << 20, .index_interval = 256};
  sl_seglog_t *l = sl_seglog_open(d, &big, &err, &rep);
  append_n(l, 0, 100, 1);
  sl_seglog_close(l);
  char *f = last_log(d);
  /* a flipped byte inside record ~50 with valid records after it: served
   * up to the damage, no appends, nothing cut or copied */
  int64_t size = file_size(f);
  flip(f, (off_t)(size / 2));
  l = sl_seglog_open(d, &big, &err, &rep);
  CHECK(l && !rep, "opened, nothing cut");
  const char *why = l ? sl_seglog_stopped(l) : NULL;
  CHECK(why && strstr(why, "corrupt record at byte") && strstr(why, "valid records"), "stopped: %s", why ? why : "");
  uint64_t end = sl_seglog_end(l);
  CHECK(end > 40 && end < 60, "served up to the damage: %llu", (unsigned long long)end);
  got_t g = read_from(l, 0, 1000);
  CHECK((uint64_t)g.n == end && !g.bad, "served %d", g.n);
  sl_record_t r = {0, 1, NULL, 0, NULL, 0, NULL, 0, "v", 1};
  CHECK(sl_seglog_append(l, &r, 1, &err) < 0 && err && strstr(err, "corrupt"), "appends refused: %s", err ? err : "");
  free(err);
  err = NULL;
  sl_seglog_close(l);
  CHECK(file_size(f) == size, "the segment is as it was");
  char *cmd = sl_xasprintf("ls %s | grep -c corrupt", d);
  FILE *p = popen(cmd, "r");
  char buf[16] = "";
  CHECK(fgets(buf, sizeof buf, p) && atoi(buf) == 0, "no .corrupt file");
  pclose(p);
  free(cmd);
  free(f);
  rmrf(d);
  free(d);
  /* damage in a closed segment: served up to it, later segments kept */
  d = tmpdir();
  l = sl_seglog_open(d, &small, &err, &rep);
  append_n(l, 0, 300, 1);
  int segs = sl_seglog_segments(l);
  sl_seglog_close(l);
  char *first = sl_xasprintf("%s/00000000000000000000.log", d);
  /* past its last index entry, the part of a closed segment an open reads */
  flip(first, (off_t)file_size(first) - 10);
  l = sl_seglog_open(d, &small, &err, &rep);
  end = l ? sl_seglog_end(l) : 0;
  CHECK(l && sl_seglog_stopped(l) && sl_seglog_segments(l) == 1 && end > 50 && end < 100,
        "stopped in the first of %d segments, end %llu", segs, (unsigned long long)end);
  sl_seglog_close(l);
  l = sl_seglog_open(d, &small, &err, &rep);
  CHECK(l && sl_seglog_stopped(l) && sl_seglog_end(l) == end, "still stopped at the next open (nothing was cut)");
  sl_seglog_close(l);
  /* before it: found by the read that meets it, which stops the log too */
  flip(first, (off_t)file_size(first) - 10);
  flip(first, 200);
  l = sl_seglog_open(d, &small, &err, &rep);
  CHECK(l && !sl_seglog_stopped(l), "not seen at open");
  got_t g0 = {0};
  CHECK(sl_seglog_read(l, 0, 1000, SIZE_MAX, collect, &g0, &err) < 0 && err && strstr(err, "corrupt"), "read error");
  free(err);
  err = NULL;
  CHECK(sl_seglog_stopped(l) && sl_seglog_append(l, &r, 1, &err) < 0, "stopped by the read");
  free(err);
  err = NULL;
  sl_seglog_close(l);
  free(first);
  rmrf(d);
  free(d);
}

/* A write that fails part-way (here the file size limit, as a full disk
 * would) keeps nothing of the append, also across a segment roll. */
static void test_failed_append_keeps_nothing(void) {
  char *d = tmpdir();
  char *err = NULL;
  sl_seglog_t *l = sl_seglog_open(d, &small, &err, NULL);
  append_n(l, 0, 50, 1);
  uint64_t end = sl_seglog_end(l);
  int segs = sl_seglog_segments(l);
  char *f = last_log(d);
  int64_t size = file_size(f);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = (rlim_t)size + 100;   /* room for 2 of these records, not for 60 */
  setrlimit(RLIMIT_FSIZE, &lim);
  sl_record_t batch[60];
  char vals[60][32];
  for (int i = 0; i < 60; i++) {
    int vl = snprintf(vals[i], sizeof vals[i], "value-%d", 50 + i);
    batch[i] = (sl_record_t){0, 5, NULL, 0, "ev", 2, NULL, 0, vals[i], (uint32_t)vl};
  }
  CHECK(sl_seglog_append(l, batch, 60, &err) < 0 && err && strstr(err, "too large"), "append fails: %s", err ? err : "");
  CHECK(sl_seglog_errno(l) == EFBIG, "errno %d", sl_seglog_errno(l));
  free(err);
  err = NULL;
  CHECK(sl_seglog_end(l) == end && file_size(f) == size && sl_seglog_segments(l) == segs, "nothing kept");
  setrlimit(RLIMIT_FSIZE, &old);
  /* a batch that rolls into new segments, then undone */
  sl_seglog_mark_t m;
  sl_seglog_mark(l, &m);
  CHECK(sl_seglog_append(l, batch, 60, &err) == (int64_t)end && sl_seglog_segments(l) > segs, "rolled");
  CHECK(sl_seglog_rollback(l, &m, &err) == 0, "rollback");
  CHECK(sl_seglog_end(l) == end && sl_seglog_segments(l) == segs && file_size(f) == size, "rolled back");
  append_n(l, (int)end, 100, 6);   /* and appends go on as before */
  sl_seglog_close(l);
  l = sl_seglog_open(d, &small, &err, NULL);
  got_t g = read_from(l, 0, 1000);
  CHECK(l && !sl_seglog_stopped(l) && g.n == (int)end + 100 && !g.bad, "reopened: %d records", g.n);
  sl_seglog_close(l);
  free(f);
  rmrf(d);
  free(d);
}

/* SLUICE_TEST_POWER_LOSS: an open loses what no fsync covered. */
static void test_power_loss_hook(void) {
  char *d = tmpdir();
  char *err = NULL;
  setenv("SLUICE_TEST_POWER_LOSS", "1", 1);
  sl_seglog_t *l = sl_seglog_open(d, &small, &err, NULL);
  append_n(l, 0, 30, 1);
  sl_seglog_sync_t at = sl_seglog_sync_point(l);
  CHECK(fdatasync(at.fd) == 0, "fdatasync");
  sl_seglog_synced(l, &at);
  append_n(l, 30, 200, 1);   /* rolls: the closed segments are synced, not the newest */
  sl_seglog_close(l);
  l = sl_seglog_open(d, &small, &err, NULL);
  uint64_t end = sl_seglog_end(l);
  CHECK(end >= 30 && end < 230, "kept what was synced: end %llu", (unsigned long long)end);
  got_t g = read_from(l, 0, 1000);
  CHECK(g.n == (int)end && !g.bad, "reads back");
  sl_seglog_close(l);
  unsetenv("SLUICE_TEST_POWER_LOSS");
  rmrf(d);
  free(d);
}

static void test_retention(void) {
  char *d = tmpdir();
  char *err = NULL;
  sl_seglog_t *l = sl_seglog_open(d, &small, &err, NULL);
  append_n(l, 0, 300, 1000);
  append_n(l, 300, 300, 50000);
  int before = sl_seglog_segments(l);
  int removed = sl_seglog_retain(l, 10000, 0, 55000);
  CHECK(removed > 0 && sl_seglog_segments(l) == before - removed, "age retention removed %d", removed);
  CHECK(sl_seglog_start(l) > 0 && sl_seglog_start(l) <= 300, "start %llu", (unsigned long long)sl_seglog_start(l));
  CHECK(read_from(l, 0, 10).n == 0, "evicted offsets read nothing");
  sl_seglog_retain(l, 0, 8192, 55000);
  CHECK(sl_seglog_bytes(l) <= 8192 + 4096, "byte retention: %lld", (long long)sl_seglog_bytes(l));
  got_t g = read_from(l, sl_seglog_start(l), 10000);
  CHECK(g.last == 599 && !g.bad, "the newest stay");
  sl_seglog_close(l);
  l = sl_seglog_open(d, &small, &err, NULL);
  CHECK(l && sl_seglog_end(l) == 600, "reopen after retention");
  sl_seglog_close(l);
  rmrf(d);
  free(d);
}

static void test_segment_age(void) {
  char *d = tmpdir();
  char *err = NULL;
  sl_seglog_opts_t aged = {.segment_bytes = 1 << 20, .segment_age_ms = 1000, .index_interval = 256};
  sl_seglog_t *l = sl_seglog_open(d, &aged, &err, NULL);
  append_n(l, 0, 10, 5000);      /* one segment: its first record at 5 s */
  append_n(l, 10, 10, 5900);     /* younger than 1 s after it: same segment */
  CHECK(sl_seglog_segments(l) == 1, "no roll before segment_age: %d", sl_seglog_segments(l));
  append_n(l, 20, 10, 6000);     /* 1 s after the first record: a new segment */
  CHECK(sl_seglog_segments(l) == 2, "rolled by age: %d", sl_seglog_segments(l));
  got_t g = read_from(l, 0, 100);
  CHECK(g.n == 30 && !g.bad, "all 30 read across the roll");
  sl_seglog_close(l);
  rmrf(d);
  free(d);
}

static void test_crc32c(void) {
  /* RFC 3720 test vector: 32 bytes of zeros */
  unsigned char z[32] = {0};
  CHECK(sl_crc32c(0, z, 32) == 0x8A9136AAu, "crc32c zeros %08x", sl_crc32c(0, z, 32));
  CHECK(sl_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value");
  CHECK(sl_crc32c(sl_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "crc32c continued");
}

int main(void) {
  RUN(test_crc32c);
  RUN(test_roundtrip_and_rolls);
  RUN(test_torn_tail);
  RUN(test_corruption_stops);
  RUN(test_failed_append_keeps_nothing);
  RUN(test_power_loss_hook);
  RUN(test_retention);
  RUN(test_segment_age);
  return check_report("test_seglog");
}
