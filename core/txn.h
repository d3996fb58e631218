/* Transactions: at-least-once bookkeeping for what an input produced.
 * Ownership: created by an input with one ref; every message carrying it holds a
 * ref. When the last ref is released the callback runs once, on the loop thread,
 * with status 0 (all delivered or deliberately dropped) or -1 (some part failed). */
#ifndef SL_TXN_H
#define SL_TXN_H

typedef struct sl_txn sl_txn_t;
typedef void (*sl_txn_cb)(sl_txn_t *t, int status, const char *err, void *arg);

sl_txn_t *sl_txn_new(sl_txn_cb cb, void *arg);
sl_txn_t *sl_txn_ref(sl_txn_t *t);
void sl_txn_unref(sl_txn_t *t);
void sl_txn_fail(sl_txn_t *t, const char *err);  /* marks failed; first error text is kept */
int sl_txn_failed(const sl_txn_t *t);

#endif
