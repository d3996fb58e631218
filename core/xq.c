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
