/* A queue from any thread to one loop: a mutex-guarded list woken by a
 * uv_async (the pool's batches, the HTTP workers' requests and answers).
 * Ownership: the caller embeds the nodes in its items and owns them; put
 * hands an item over, take hands back every item queued so far (in order).
 * The async callback runs on the loop given to init. */
#ifndef SL_XQ_H
#define SL_XQ_H
#include <uv.h>

typedef struct sl_xq_node { struct sl_xq_node *next; } sl_xq_node_t;

typedef struct sl_xq {
  uv_mutex_t mu;
  sl_xq_node_t *head, **tail;
  uv_async_t async;          /* async.data is the init's data */
} sl_xq_t;

void sl_xq_init(sl_xq_t *q, uv_loop_t *loop, uv_async_cb cb, void *data);
/* One lock, one wake-up (libuv coalesces wake-ups until the loop runs cb). */
void sl_xq_put(sl_xq_t *q, sl_xq_node_t *n);
/* Hands over a batch gathered in *b (from sl_xq_batch_add) with one lock and
 * one wake-up; *b is empty after. */
typedef struct sl_xq_batch { sl_xq_node_t *head, **tail; } sl_xq_batch_t;
void sl_xq_batch_add(sl_xq_batch_t *b, sl_xq_node_t *n);
void sl_xq_put_batch(sl_xq_t *q, sl_xq_batch_t *b);
sl_xq_node_t *sl_xq_take(sl_xq_t *q);
/* Closes the async handle (on its loop) and the mutex; items left are the caller's to take first. */
void sl_xq_close(sl_xq_t *q, uv_close_cb cb);

#endif
