/* The partition log: append and read back, segment rolls, index lookups at
 * random offsets, reopen, torn and corrupt tails, retention, CRC-32C. */
#include "core/crc32c.h"
#include "core/seglog.h"
#include "core/xalloc.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void test_torn_and_corrupt_tail(void) {
  char *d = tmpdir();
  char *err = NULL, *rep = NULL;
  sl_seglog_opts_t big = {.segment_bytes = 1 << 20, .index_interval = 256};
  sl_seglog_t *l = sl_seglog_open(d, &big, &err, &rep);
  append_n(l, 0, 100, 1);
  sl_seglog_close(l);
  char *f = last_log(d);
  struct stat st;
  stat(f, &st);
  /* cut the last record in half */
  CHECK(truncate(f, st.st_size - 7) == 0, "truncate");
  l = sl_seglog_open(d, &big, &err, &rep);
  CHECK(l && rep, "torn tail repaired");
  free(rep);
  CHECK(sl_seglog_end(l) == 99, "99 records left, end %llu", (unsigned long long)sl_seglog_end(l));
  got_t g = read_from(l, 0, 1000);
  CHECK(g.n == 99 && !g.bad, "the rest is served");
  append_n(l, 99, 5, 2);
  sl_seglog_close(l);
  /* flip a byte inside record 50's value: everything from it on is cut */
  stat(f, &st);
  int fd = open(f, O_RDWR);
  char c;
  off_t at = st.st_size / 2;
  CHECK(pread(fd, &c, 1, at) == 1, "pread");
  c ^= 0x55;
  CHECK(pwrite(fd, &c, 1, at) == 1, "pwrite");
  close(fd);
  l = sl_seglog_open(d, &big, &err, &rep);
  CHECK(l && rep, "corrupt record cut");
  free(rep);
  uint64_t end = sl_seglog_end(l);
  CHECK(end > 40 && end < 60, "kept the records before the damage: %llu", (unsigned long long)end);
  g = read_from(l, 0, 1000);
  CHECK((uint64_t)g.n == end && !g.bad, "served %d", g.n);
  sl_seglog_close(l);
  free(f);
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
  RUN(test_torn_and_corrupt_tail);
  RUN(test_retention);
  RUN(test_segment_age);
  return check_report("test_seglog");
}
