/* The Lua VMs' small-block allocator (lua/lalloc.h): contents survive every
 * kind of resize (within a class, across classes, small to large and back),
 * a freed block is handed out again for its class, at most SL_LALLOC_KEEP
 * bytes are kept, and drain frees what is kept (LSan sees any slip). */
#include "lua/lalloc.h"
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int filled(const unsigned char *p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v) return 0;
  return 1;
}

static void resizes(void) {
  sl_lalloc_t a = {0};
  static const size_t sizes[] = {1, 16, 17, 100, 256, 257, 4000, 255, 8, 70000, 3};
  unsigned char *p = sl_lalloc(&a, NULL, 0, sizes[0]);
  memset(p, 0xab, sizes[0]);
  for (size_t i = 1; i < sizeof sizes / sizeof *sizes; i++) {
    size_t o = sizes[i - 1], n = sizes[i];
    p = sl_lalloc(&a, p, o, n);
    CHECK(p != NULL, "resize %zu -> %zu", o, n);
    CHECK(filled(p, o < n ? o : n, 0xab), "contents kept %zu -> %zu", o, n);
    memset(p, 0xab, n);
  }
  CHECK(sl_lalloc(&a, p, 3, 0) == NULL, "a free gives NULL");
  sl_lalloc_drain(&a);
  CHECK(a.kept == 0, "drained");
}

static void reuse(void) {
  sl_lalloc_t a = {0};
  void *p = sl_lalloc(&a, NULL, 0, 40);
  sl_lalloc(&a, p, 40, 0);
  CHECK(a.kept == 48, "a 40-byte block is kept as its class, 48 bytes: %zu", a.kept);
  void *q = sl_lalloc(&a, NULL, 0, 33);
  CHECK(q == p, "the kept block comes back for the same class");
  CHECK(a.kept == 0, "taken");
  void *r = sl_lalloc(&a, q, 33, 48);
  CHECK(r == q, "growing within the class keeps the block");
  sl_lalloc(&a, r, 48, 0);
  sl_lalloc_drain(&a);
}

static void bounded(void) {
  sl_lalloc_t a = {0};
  size_t n = SL_LALLOC_KEEP / 256 + 100;
  void **v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = sl_lalloc(&a, NULL, 0, 256);
  for (size_t i = 0; i < n; i++) sl_lalloc(&a, v[i], 256, 0);
  CHECK(a.kept == SL_LALLOC_KEEP, "kept %zu of at most %u", a.kept, SL_LALLOC_KEEP);
  sl_lalloc_drain(&a);
  CHECK(a.kept == 0, "drained");
  free(v);
}

int main(void) {
  RUN(resizes);
  RUN(reuse);
  RUN(bounded);
  return check_report("lalloc");
}
