#include "txn.h"
#include "blocks.h"
#include "xalloc.h"
#include <stdlib.h>

struct sl_txn {
  int refs;
  int atomic;                /* a proxy: refs change on two threads */
  int failed;
  char *err;
  sl_txn_cb cb;
  void *arg;
  sl_txn_t *target;
  uint64_t tag;
};

sl_txn_t *sl_txn_new(sl_txn_cb cb, void *arg) {
  sl_txn_t *t = sl_blocks_zero(sizeof(*t));   /* one a message or batch: malloc's bins were a tenth of a request */
  t->refs = 1;
  t->cb = cb;
  t->arg = arg;
  return t;
}

sl_txn_t *sl_txn_proxy(sl_txn_t *target, uint64_t tag, sl_txn_cb cb, void *arg) {
  sl_txn_t *t = sl_txn_new(cb, arg);
  t->atomic = 1;
  t->target = target;
  t->tag = tag;
  return t;
}

sl_txn_t *sl_txn_target(const sl_txn_t *t) { return t->target; }
uint64_t sl_txn_tag(const sl_txn_t *t) { return t->tag; }
void *sl_txn_arg_of(const sl_txn_t *t, sl_txn_cb cb) { return t->cb == cb ? t->arg : NULL; }

sl_txn_t *sl_txn_ref(sl_txn_t *t) {
  if (t->atomic) __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
  else t->refs++;
  return t;
}

void sl_txn_unref(sl_txn_t *t) {
  if (t->atomic ? __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0 : --t->refs > 0) return;
  if (t->cb) t->cb(t, t->failed ? -1 : 0, t->err, t->arg);
  free(t->err);
  sl_blocks_put(t, sizeof(*t));
}

void sl_txn_fail(sl_txn_t *t, const char *err) {
  if (!t->failed) t->err = sl_xstrdup(err ? err : "delivery failed");
  t->failed = 1;
}

int sl_txn_failed(const sl_txn_t *t) { return t->failed; }
