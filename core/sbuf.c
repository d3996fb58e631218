#include "sbuf.h"
#include "xalloc.h"
#include <string.h>

void sl_sbuf_put(sl_sbuf_t *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->v = sl_xrealloc(b->v, b->cap);
  }
  if (n) memcpy(b->v + b->len, p, n);
  b->len += n;
  b->v[b->len] = 0;
}
