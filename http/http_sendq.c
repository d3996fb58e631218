/* A connection's send queue: what broadcasts put there between two loop
 * turns, as references to bytes formatted once for every client, so that a
 * flush writes it with one writev instead of a copy and a write per event. */
#include "http_int.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

void sl_sendq_push(sl_sendq_t *q, sl_bytes_t *b, const void *inl, size_t len) {
  if (!len) return;
  sl_sendq_item_t *last = q->n > q->head ? &q->v[q->n - 1] : NULL;
  if (!b && last && !last->ref && last->off + last->len + len <= sizeof last->inl) {
    /* One chunk's end and the next one's head: one buffer, not two. */
    memcpy(last->inl + last->off + last->len, inl, len);
    last->len += (uint32_t)len;
    q->bytes += len;
    return;
  }
  if (q->n == q->cap) {
    if (q->head) {   /* room was freed at the front: use it before growing */
      memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof(*q->v));
      q->n -= q->head;
      q->head = 0;
    }
    if (q->n == q->cap) {
      q->cap = q->cap ? q->cap * 2 : 8;
      q->v = sl_xrealloc(q->v, q->cap * sizeof(*q->v));
    }
  }
  sl_sendq_item_t *it = &q->v[q->n++];
  it->ref = b ? sl_bytes_ref(b) : NULL;
  it->off = 0;
  it->len = (uint32_t)len;
  if (!b) memcpy(it->inl, inl, len);
  q->bytes += len;
}

static const char *item_data(const sl_sendq_item_t *it) { return (it->ref ? it->ref->data : it->inl) + it->off; }

int sl_sendq_gather(const sl_sendq_t *q, uv_buf_t *bufs, int max) {
  int k = 0;
  for (uint32_t i = q->head; i < q->n && k < max; i++)
    bufs[k++] = uv_buf_init((char *)item_data(&q->v[i]), q->v[i].len);
  return k;
}

void sl_sendq_consume(sl_sendq_t *q, size_t n) {
  q->bytes -= n;
  while (n && q->head < q->n) {
    sl_sendq_item_t *it = &q->v[q->head];
    if (n < it->len) {
      it->off += (uint32_t)n;
      it->len -= (uint32_t)n;
      return;
    }
    n -= it->len;
    sl_bytes_unref(it->ref);
    q->head++;
  }
  if (q->head == q->n) q->head = q->n = 0;
}

void sl_sendq_clear(sl_sendq_t *q) {
  for (uint32_t i = q->head; i < q->n; i++) sl_bytes_unref(q->v[i].ref);
  free(q->v);
  *q = (sl_sendq_t){0};
}

void sl_sendq_take(sl_sendq_t *q, sl_sendq_t *out) {
  *out = *q;
  *q = (sl_sendq_t){0};
}
