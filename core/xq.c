#include "xq.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Reads the eventfd before taking the list: an item put after the take
 * writes it again (the list was empty), so no wake-up is lost; one put
 * before the read is taken now, and its write only wakes the loop once
 * more for nothing. */
static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  sl_xq_t *q = (sl_xq_t *)((char *)p - offsetof(sl_xq_t, poll));
  uint64_t n;
  while (read(q->efd, &n, sizeof n) < 0 && errno == EINTR) {}
  q->cb(p->data);
}

void sl_xq_init(sl_xq_t *q, uv_loop_t *loop, sl_xq_cb cb, void *data) {
  uv_mutex_init(&q->mu);
  q->head = NULL;
  q->tail = &q->head;
  q->cb = cb;
  q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->efd < 0 || uv_poll_init(loop, &q->poll, q->efd) != 0) {
    /* As out of memory (core/xalloc.c): a queue between threads is not optional. */
    fprintf(stderr, "sluice: no eventfd for a queue between threads: %s\n", strerror(errno));
    abort();
  }
  q->poll.data = data;
  uv_poll_start(&q->poll, UV_READABLE, on_poll);
}

static void wake(sl_xq_t *q) {
  uint64_t one = 1;
  while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR) {}
}

void sl_xq_put(sl_xq_t *q, sl_xq_node_t *n) {
  n->next = NULL;
  uv_mutex_lock(&q->mu);
  int was_empty = !q->head;
  *q->tail = n;
  q->tail = &n->next;
  uv_mutex_unlock(&q->mu);
  if (was_empty) wake(q);
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
  int was_empty = !q->head;
  *q->tail = b->head;
  q->tail = b->tail;
  uv_mutex_unlock(&q->mu);
  if (was_empty) wake(q);
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

void sl_xq_close_handle(sl_xq_t *q, uv_close_cb cb) { uv_close((uv_handle_t *)&q->poll, cb); }

/* After close_handle: uv_close stopped polling at once, so efd may go. */
void sl_xq_destroy(sl_xq_t *q) {
  close(q->efd);
  uv_mutex_destroy(&q->mu);
}

void sl_xq_close(sl_xq_t *q, uv_close_cb cb) {
  sl_xq_close_handle(q, cb);
  sl_xq_destroy(q);
}
