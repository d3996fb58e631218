/* Single flight of `cached` (cached_flight.h). Flights are a process-wide
 * hash table under one mutex: a miss takes it once, a landing once. A
 * leader's message carries a proxy transaction of the flight's through the
 * processors, so the flight learns of its end however it ends: back in
 * results_push, or dropped (the proxy's last ref goes). */
#include "cached_flight.h"
#include "core/txn.h"
#include "core/xalloc.h"
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct waiter {
  sl_xq_node_t node;
  struct waiter *next;
  sl_flights_t *f;
  sl_msg_t *m;
  char *got;                 /* the leader's result (malloc'd), or NULL */
  size_t len;
} waiter_t;

typedef struct flight {
  struct flight *next;       /* in its bucket */
  uint64_t hash;
  char *id;                  /* group bytes, then key bytes */
  size_t idlen;
  sl_txn_t *target;          /* the leader's own transaction (a ref), or NULL */
  char *result;              /* the one cacheable part that came back (malloc'd) */
  size_t rlen;
  unsigned parts;            /* parts that came back */
  waiter_t *waiters;
} flight_t;

#define BUCKETS 1024
static flight_t *g_table[BUCKETS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv(const char *a, size_t alen, const char *b, size_t blen) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < alen; i++) h = (h ^ (unsigned char)a[i]) * 1099511628211ull;
  for (size_t i = 0; i < blen; i++) h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
  return h;
}

static void arrived(void *data) {
  sl_flights_t *f = data;
  sl_batch_t *got = NULL, *own = NULL;
  for (sl_xq_node_t *n = sl_xq_take(&f->q), *next; n; n = next) {
    next = n->next;
    waiter_t *w = (waiter_t *)((char *)n - offsetof(waiter_t, node));
    sl_batch_t **into = w->got ? &got : &own;
    if (!*into) *into = sl_batch_new(8);
    if (w->got) sl_msg_set_content(w->m, w->got, w->len);
    free(w->got);
    sl_batch_push(*into, w->m);
    free(w);
  }
  if (got || own) f->cb(f->arg, got, own);
}

void sl_flights_init(sl_flights_t *f, uv_loop_t *loop, const char *group, size_t glen, sl_flights_cb cb, void *arg) {
  *f = (sl_flights_t){.glen = glen, .cb = cb, .arg = arg};
  f->group = sl_xmalloc(glen + 1);
  memcpy(f->group, group, glen);
  sl_xq_init(&f->q, loop, arrived, f);
  uv_unref((uv_handle_t *)&f->q.poll);
}

static void closed(uv_handle_t *h) {
  sl_flights_t *f = h->data;
  free(f->group);
  f->done(f);
}

void sl_flights_close(sl_flights_t *f, void (*done)(sl_flights_t *f)) {
  f->done = done;
  sl_xq_close(&f->q, closed);
}

/* The leader's proxy let go of its last part: the waiters go home. */
static void landed(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  flight_t *fl = arg;
  if (fl->target) {
    if (status != 0) sl_txn_fail(fl->target, err);
    sl_txn_unref(fl->target);
  }
  pthread_mutex_lock(&g_mu);
  flight_t **p = &g_table[fl->hash % BUCKETS];
  while (*p != fl) p = &(*p)->next;
  *p = fl->next;
  pthread_mutex_unlock(&g_mu);
  for (waiter_t *w = fl->waiters, *next; w; w = next) {
    next = w->next;
    /* A copy each, set on the waiter's thread: bytes' refs are not atomic. */
    if (fl->result) {
      w->got = sl_xmalloc(fl->rlen + 1);
      memcpy(w->got, fl->result, fl->rlen);
      w->len = fl->rlen;
    }
    sl_xq_put(&w->f->q, &w->node);
  }
  free(fl->result);
  free(fl->id);
  free(fl);
}

int sl_flights_join(sl_flights_t *f, sl_msg_t *m, const char *key, size_t klen) {
  uint64_t hash = fnv(f->group, f->glen, key, klen);
  size_t idlen = f->glen + klen;
  pthread_mutex_lock(&g_mu);
  flight_t **head = &g_table[hash % BUCKETS];
  for (flight_t *fl = *head; fl; fl = fl->next) {
    if (fl->hash != hash || fl->idlen != idlen || memcmp(fl->id, f->group, f->glen) ||
        memcmp(fl->id + f->glen, key, klen))
      continue;
    waiter_t *w = sl_xcalloc(1, sizeof(*w));
    *w = (waiter_t){.f = f, .m = m, .next = fl->waiters};
    fl->waiters = w;
    pthread_mutex_unlock(&g_mu);
    return 0;
  }
  flight_t *fl = sl_xcalloc(1, sizeof(*fl));
  fl->hash = hash;
  fl->idlen = idlen;
  fl->id = sl_xmalloc(idlen + 1);
  memcpy(fl->id, f->group, f->glen);
  memcpy(fl->id + f->glen, key, klen);
  fl->next = *head;
  *head = fl;
  pthread_mutex_unlock(&g_mu);
  /* Nobody lands fl before its proxy exists: only the proxy's end does. */
  fl->target = m->txn ? sl_txn_ref(m->txn) : NULL;
  sl_txn_t *p = sl_txn_proxy(m->txn, 0, landed, fl);
  sl_msg_set_txn(m, p);
  sl_txn_unref(p);   /* the message holds it, and what a processor clones from it */
  return 1;
}

int sl_flights_back(sl_msg_t *m, int cacheable) {
  flight_t *fl = m->txn ? sl_txn_arg_of(m->txn, landed) : NULL;
  if (!fl) return 0;
  /* Only a lone cacheable part is the flight's result (as for the cache). */
  if (fl->parts++ == 0 && cacheable) {
    fl->rlen = m->content->len;
    fl->result = sl_xmalloc(fl->rlen + 1);
    memcpy(fl->result, m->content->data, fl->rlen);
  } else {
    free(fl->result);
    fl->result = NULL;
  }
  sl_msg_set_txn(m, fl->target);   /* may land fl */
  return 1;
}
