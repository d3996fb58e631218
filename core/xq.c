#include "xq.h"

void sl_xq_init(sl_xq_t *q, uv_loop_t *loop, uv_async_cb cb, void *data) {
  uv_mutex_init(&q->mu);
  q->head = NULL;
  q->tail = &q->head;
  uv_async_init(loop, &q->async, cb);
  q->async.data = data;
}

void sl_xq_put(sl_xq_t *q, sl_xq_node_t *n) {
  n->next = NULL;
  uv_mutex_lock(&q->mu);
  *q->tail = n;
  q->tail = &n->next;
  uv_mutex_unlock(&q->mu);
  uv_async_send(&q->async);
}

void sl_xq_batch_add(sl_xq_batch_t *b, sl_xq_node_t *n) {
  n->next = NULL;
  if (!b->head) b->tail = &b->head;
  *b->tail = n;
  b->tail = &n->next;
}

void sl_xq_put_batch(sl_xq_t *q, sl_xq_batch_t *b) {
  if (!b->head) return;
  uv_mutex_lock(&q->mu);
  *q->tail = b->head;
  q->tail = b->tail;
  uv_mutex_unlock(&q->mu);
  uv_async_send(&q->async);
  b->head = NULL;
}

sl_xq_node_t *sl_xq_take(sl_xq_t *q) {
  uv_mutex_lock(&q->mu);
  sl_xq_node_t *h = q->head;
  q->head = NULL;
  q->tail = &q->head;
  uv_mutex_unlock(&q->mu);
  return h;
}

void sl_xq_close(sl_xq_t *q, uv_close_cb cb) {
  uv_close((uv_handle_t *)&q->async, cb);
  uv_mutex_destroy(&q->mu);
}
