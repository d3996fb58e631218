/* Batch order across child chains (order.h). A proxy's tag is its job's id
 * (high 32 bits, never 0) and the message's place. */
#include "order.h"
#include "core/txn.h"
#include "core/xalloc.h"
#include <stdlib.h>

struct sl_ojob {
  sl_order_t *o;             /* NULL once the parent is gone */
  sl_ojob_t *after;
  uint32_t id, n;
  sl_batch_t **slot;         /* per place: what goes on there */
  sl_txn_t **target;         /* per place sent: its message's own transaction (a ref) */
  uint32_t open;             /* proxies alive, + 1 until sl_order_end */
};

void sl_order_init(sl_order_t *o, sl_processor_t *parent) {
  *o = (sl_order_t){.parent = parent};
  o->tail = &o->head;
}

static void slots_free(sl_ojob_t *j) {
  for (uint32_t i = 0; i < j->n; i++)
    if (j->slot[i]) sl_batch_free(j->slot[i]);
  free(j->slot);
  j->slot = NULL;
}

static void job_free(sl_ojob_t *j) {
  if (j->slot) slots_free(j);
  free(j->target);
  free(j);
}

static void emit_ready(sl_order_t *o) {
  while (o->head && !o->head->open) {
    sl_ojob_t *j = o->head;
    o->head = j->after;
    if (!o->head) o->tail = &o->head;
    uint32_t n = 0;
    for (uint32_t i = 0; i < j->n; i++) n += j->slot[i] ? j->slot[i]->n : 0;
    sl_batch_t *b = sl_batch_new(n);
    for (uint32_t i = 0; i < j->n; i++) {
      sl_batch_t *s = j->slot[i];
      if (!s) continue;
      for (uint32_t k = 0; k < s->n; k++) sl_batch_push(b, s->msgs[k]);
      sl_batch_free_shell(s);
      j->slot[i] = NULL;
    }
    job_free(j);
    if (b->n) sl_processor_emit(o->parent, b);
    else sl_batch_free(b);
  }
}

static void settle(sl_ojob_t *j) {
  if (--j->open) return;
  if (j->o) emit_ready(j->o);
  else job_free(j);
}

/* The last message under a proxy came back (its own transaction restored)
 * or was dropped. */
static void proxy_done(sl_txn_t *t, int status, const char *err, void *arg) {
  sl_ojob_t *j = arg;
  uint32_t i = (uint32_t)sl_txn_tag(t);
  if (j->target[i]) {
    if (status != 0) sl_txn_fail(j->target[i], err);
    sl_txn_unref(j->target[i]);
    j->target[i] = NULL;
  }
  settle(j);
}

void sl_order_destroy(sl_order_t *o) {
  o->destroying = 1;
  for (sl_ojob_t *j = o->head, *next; j; j = next) {
    next = j->after;
    slots_free(j);
    j->o = NULL;
    if (!j->open) job_free(j);   /* else its last proxy frees it */
  }
  o->head = NULL;
  o->tail = &o->head;
}

sl_ojob_t *sl_order_begin(sl_order_t *o, uint32_t n) {
  sl_ojob_t *j = sl_xcalloc(1, sizeof(*j));
  j->o = o;
  j->id = ++o->last_id ? o->last_id : ++o->last_id;
  j->n = n;
  j->slot = sl_xcalloc(n ? n : 1, sizeof(*j->slot));
  j->target = sl_xcalloc(n ? n : 1, sizeof(*j->target));
  j->open = 1;
  *o->tail = j;
  o->tail = &j->after;
  return j;
}

static void put(sl_ojob_t *j, uint32_t i, sl_msg_t *m) {
  if (!j->slot[i]) j->slot[i] = sl_batch_new(1);
  sl_batch_push(j->slot[i], m);
}

void sl_order_pass(sl_ojob_t *j, uint32_t i, sl_msg_t *m) { put(j, i, m); }

void sl_order_send(sl_ojob_t *j, uint32_t i, sl_msg_t *m) {
  j->target[i] = m->txn ? sl_txn_ref(m->txn) : NULL;
  sl_txn_t *p = sl_txn_proxy(m->txn, (uint64_t)j->id << 32 | i, proxy_done, j);
  j->open++;
  sl_msg_set_txn(m, p);
  sl_txn_unref(p);   /* the message holds it, and what a child clones from it */
}

void sl_order_end(sl_ojob_t *j) { settle(j); }

static sl_ojob_t *job_of(sl_order_t *o, const sl_txn_t *t, uint32_t *i) {
  if (!t) return NULL;
  uint64_t tag = sl_txn_tag(t);
  uint32_t id = (uint32_t)(tag >> 32);
  if (!id) return NULL;
  for (sl_ojob_t *j = o->head; j; j = j->after)
    if (j->id == id) {
      *i = (uint32_t)tag;
      return *i < j->n && sl_txn_target(t) == j->target[*i] ? j : NULL;
    }
  return NULL;
}

void sl_order_back(sl_order_t *o, sl_batch_t *b) {
  if (o->destroying) {
    sl_batch_free(b);
    return;
  }
  sl_batch_t *stray = NULL;
  for (uint32_t k = 0; k < b->n; k++) {
    sl_msg_t *m = b->msgs[k];
    uint32_t i;
    sl_ojob_t *j = job_of(o, m->txn, &i);
    if (!j) {
      if (!stray) stray = sl_batch_new(b->n);
      sl_batch_push(stray, m);
      continue;
    }
    put(j, i, m);
    sl_msg_set_txn(m, j->target[i]);   /* may release the proxy, and the job */
  }
  sl_batch_free_shell(b);
  if (stray) sl_processor_emit(o->parent, stray);
}
