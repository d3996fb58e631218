#include "uv_alloc.h"
#include "xalloc.h"

void sl_uv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  buf->base = sl_xmalloc(suggested);
  buf->len = suggested;
}
