/* A queue from any thread to one loop: a mutex-guarded list woken by an
 * eventfd the loop polls (the pool's batches, the HTTP workers' requests
 * and answers, cached flights' waiters). Not a uv_async: the loop that
 * wakes up from one spins (997 rounds, then sched_yield) while its sender
 * is between marking it pending and returning from the eventfd write,
 * which happens on a busy 2-core machine (up to 1,605 sched_yield in 4 s of
 * HTTP at http.workers 2, bench/RESULTS.md).
 * Ownership: the caller embeds the nodes in its items and owns them; put
 * hands an item over, take hands back every item queued so far (in order).
 * The callback runs on the loop given to init, with init's data. */
#ifndef SL_XQ_H
#define SL_XQ_H
#include <uv.h>

typedef struct sl_xq_node { struct sl_xq_node *next; } sl_xq_node_t;

typedef void (*sl_xq_cb)(void *data);

typedef struct sl_xq {
  uv_mutex_t mu;
  sl_xq_node_t *head, **tail;
  int efd;                   /* written when the list stops being empty */
  uv_poll_t poll;            /* polls efd on the loop; poll.data is init's data */
  sl_xq_cb cb;
} sl_xq_t;

void sl_xq_init(sl_xq_t *q, uv_loop_t *loop, sl_xq_cb cb, void *data);
/* One lock; a wake-up only when the list was empty (the loop has not taken
 * it since the last one). */
void sl_xq_put(sl_xq_t *q, sl_xq_node_t *n);
/* Hands over a batch gathered in *b (from sl_xq_batch_add) with one lock and
 * at most one wake-up; *b is empty after. */
typedef struct sl_xq_batch { sl_xq_node_t *head, **tail; } sl_xq_batch_t;
void sl_xq_batch_add(sl_xq_batch_t *b, sl_xq_node_t *n);
void sl_xq_put_batch(sl_xq_t *q, sl_xq_batch_t *b);
sl_xq_node_t *sl_xq_take(sl_xq_t *q);
/* Closes the poll handle (on its loop; cb gets it), the eventfd and the
 * mutex; items left are the caller's to take first. In two steps for a
 * queue taken from after its handle closed: close_handle on its loop,
 * destroy once nothing puts or takes. */
void sl_xq_close(sl_xq_t *q, uv_close_cb cb);
void sl_xq_close_handle(sl_xq_t *q, uv_close_cb cb);
void sl_xq_destroy(sl_xq_t *q);

#endif
