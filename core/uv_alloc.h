/* The read buffer of libuv readers that keep or free what they read
 * themselves: `suggested` bytes, malloc'd (never NULL, as sl_xmalloc).
 * Ownership: the read callback owns buf->base and frees it (or keeps it). */
#ifndef SL_UV_ALLOC_H
#define SL_UV_ALLOC_H
#include <uv.h>

void sl_uv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

#endif
