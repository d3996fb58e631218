/* libFuzzer target: a partition log whose active segment was damaged in an
 * arbitrary way (bytes flipped where the input says, the file cut short).
 * Opening must never crash, leak or read out of bounds, and must either cut
 * a torn tail (after copying exactly those bytes to its .corrupt file) or
 * stop the log with the file untouched; every kept record must read back;
 * a log that was not stopped takes appends after the repair, a stopped one
 * refuses them. */
#include "store/embedded/seglog.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count(const sl_record_t *r, void *arg) {
  (void)r;
  ++*(int64_t *)arg;
  return 0;
}

static void rm_segment(const char *dir) {
  const char *ext[] = {"log", "index", "timeindex"};
  for (int i = 0; i < 3; i++) {
    char p[160];
    snprintf(p, sizeof p, "%s/00000000000000000000.%s", dir, ext[i]);
    unlink(p);
  }
}

static size_t slurp(const char *path, unsigned char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char dir[64];
  /* tmpfs: the fsync of each run's copy aside costs nothing there */
  if (!dir[0]) snprintf(dir, sizeof dir, "/dev/shm/sl-fuzz-seglog-%d", (int)getpid());
  const sl_seglog_opts_t o = {.segment_bytes = 1 << 20, .index_interval = 64};
  char *err = NULL, *rep = NULL;
  rm_segment(dir);
  sl_seglog_t *l = sl_seglog_open(dir, &o, &err, &rep);
  if (!l) abort();
  for (int i = 0; i < 20; i++) {
    char v[32];
    int n = snprintf(v, sizeof v, "value %d", i);
    sl_record_t r = {0, 1000 + i, "key", 3, "ev", 2, "{}", 2, v, (uint32_t)n};
    if (sl_seglog_append(l, &r, 1, &err) != i) abort();
  }
  sl_seglog_close(l);

  char path[160];
  snprintf(path, sizeof path, "%s/00000000000000000000.log", dir);
  static unsigned char buf[4096], after[4096], aside[4096];
  size_t len = slurp(path, buf, sizeof buf);
  if (size >= 4 && len) {
    size_t at = ((size_t)data[0] << 8 | data[1]) % len;
    for (size_t i = 4; i < size; i++) buf[(at + i - 4) % len] ^= data[i];
    if (data[2] & 0x80) len = ((size_t)(data[2] & 0x7f) << 8 | data[3]) % (len + 1);
  }
  FILE *f = fopen(path, "wb");
  fwrite(buf, 1, len, f);
  fclose(f);

  l = sl_seglog_open(dir, &o, &err, &rep);
  if (!l) abort();   /* damage is reported by the log, not a failed open */
  size_t kept = slurp(path, after, sizeof after);
  if (kept > len || memcmp(after, buf, kept) != 0) abort();   /* a prefix, never rewritten */
  if (sl_seglog_stopped(l) && (kept != len || rep)) abort();  /* stopped: nothing cut */
  if (kept < len) {
    char ap[200];
    snprintf(ap, sizeof ap, "%s.%zu.corrupt", path, kept);
    size_t n = slurp(ap, aside, sizeof aside);
    if (!rep || n != len - kept || memcmp(aside, buf + kept, n) != 0) abort();   /* copied aside first */
    unlink(ap);
  }
  int64_t n = 0;
  char *rerr = NULL;
  int64_t got = sl_seglog_read(l, 0, (size_t)-1, (size_t)-1, count, &n, &rerr);
  if (got != (int64_t)sl_seglog_end(l) || got != n) abort();   /* the kept prefix reads back whole */
  sl_record_t r = {0, 1, "k", 1, "e", 1, NULL, 0, "v", 1};
  int64_t off = sl_seglog_append(l, &r, 1, &rerr);
  if (sl_seglog_stopped(l) ? off != -1 : off != got) abort();
  free(rerr);
  sl_seglog_close(l);
  free(err);
  free(rep);
  return 0;
}
