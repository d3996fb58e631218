/* Transactions: at-least-once bookkeeping for what an input produced.
 * Ownership: created by an input with one ref; every message carrying it holds a
 * ref. When the last ref is released the callback runs once, on the loop thread,
 * with status 0 (all delivered or deliberately dropped) or -1 (some part failed). */
#ifndef SL_TXN_H
#define SL_TXN_H
#include <stdint.h>

typedef struct sl_txn sl_txn_t;
typedef void (*sl_txn_cb)(sl_txn_t *t, int status, const char *err, void *arg);

sl_txn_t *sl_txn_new(sl_txn_cb cb, void *arg);
sl_txn_t *sl_txn_ref(sl_txn_t *t);
void sl_txn_unref(sl_txn_t *t);
void sl_txn_fail(sl_txn_t *t, const char *err);  /* marks failed; first error text is kept */
int sl_txn_failed(const sl_txn_t *t);

/* A proxy stands for target while its messages run on a pool worker
 * (core/pool.c): its refs are atomic, so the worker (drops, clones) and the
 * stream's loop (messages coming back) may release it side by side, and cb
 * runs on whichever thread lets go of the last ref. It holds no ref on
 * target: the pool does. tag is the pool's sequence number of the batch. */
sl_txn_t *sl_txn_proxy(sl_txn_t *target, uint64_t tag, sl_txn_cb cb, void *arg);
sl_txn_t *sl_txn_target(const sl_txn_t *t);   /* a proxy's target; NULL for a plain txn */
void *sl_txn_arg_of(const sl_txn_t *t, sl_txn_cb cb);   /* a proxy's arg if cb is its callback, else NULL */
uint64_t sl_txn_tag(const sl_txn_t *t);

#endif
