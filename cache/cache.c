/* The registry of cache resources and the one entry every operation goes
 * through (sl_cache_exec), which counts it in Benthos' cache metrics. */
#include "cache_int.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

/* Resources, in the order they were declared. A reload appends on the
 * engine's loop while pool workers look names up: appends are published
 * with release stores, read with acquire loads; nothing is ever removed. */
static sl_cache_t *g_caches;

/* The loop of the worker this thread runs (sl_cache_loop). */
static _Thread_local uv_loop_t *t_loop;

static const char *const op_names[SL_CACHE_NOPS] = {"get", "set", "add", "delete", "incr"};
const char *sl_cache_op_name(sl_cache_op_t op) { return op < SL_CACHE_NOPS ? op_names[op] : "?"; }

sl_cache_t *sl_cache_find(const char *name, size_t len) {
  for (sl_cache_t *c = __atomic_load_n(&g_caches, __ATOMIC_ACQUIRE); c; c = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE))
    if (c->nlen == len && !memcmp(c->name, name, len)) return c;
  return NULL;
}

const char *sl_cache_name(const sl_cache_t *c) { return c->name; }
int sl_cache_is_sync(const sl_cache_t *c) { return c->be->sync; }
const char *sl_cache_backend_name(const sl_cache_t *c) { return c->be->name; }
void *sl_cache_self(const sl_cache_t *c) { return c->self; }

uv_loop_t *sl_cache_loop(void) { return t_loop; }

static void detach_all(void *worker) {
  uv_loop_t *loop = ((sl_worker_t *)worker)->loop;
  /* An answer given while detaching may start another operation: it must
   * not make this loop a new link (it fails: no connection). */
  if (t_loop == loop) t_loop = NULL;
  for (sl_cache_t *c = g_caches; c; c = c->next)
    if (c->be->detach) c->be->detach(c->self, loop);
}

void sl_cache_attach_worker(sl_worker_t *w) {
  if (!w) return;
  t_loop = w->loop;
  w->slot[SL_SLOT_CACHE] = w;
  w->slot_free[SL_SLOT_CACHE] = detach_all;
  for (sl_cache_t *c = g_caches; c; c = c->next)
    if (c->be->attach) c->be->attach(c->self, w->loop);
}

/* A pool worker's thread: its operations run on its own loop. A network
 * backend connects there on first use, not now (a stream's every pool worker
 * would connect to every resource, used or not); detach_all lets go. */
static void on_pool_thread(sl_worker_t *w) {
  t_loop = w->loop;
  w->slot[SL_SLOT_CACHE] = w;
  w->slot_free[SL_SLOT_CACHE] = detach_all;
}

static void __attribute__((constructor)) register_thread_hook(void) { sl_worker_on_thread(on_pool_thread); }

static void collect(void *arg);
static int64_t *series(sl_cache_t *c, sl_cache_op_t op, int r);

static void free_all(void) {
  sl_metrics_collector_remove(collect, NULL);
  while (g_caches) {
    sl_cache_t *c = g_caches;
    g_caches = c->next;
    c->be->destroy(c->self);
    free(c->name);
    free(c);
  }
}

/* The gauges of what each resource holds, before every scrape or push. */
static void collect(void *arg) {
  (void)arg;
  for (sl_cache_t *c = g_caches; c; c = c->next)
    if (c->be->stats) c->be->stats(c->self, c->entries, c->bytes);
}

sl_cache_t *sl_cache_add_resource(const char *name, const sl_cache_backend_t *be, void *self) {
  if (!g_caches) {
    atexit(free_all);
    sl_metrics_collector_add(collect, NULL);
  }
  sl_cache_t *c = sl_xcalloc(1, sizeof(*c)), **tail = &g_caches;
  c->name = sl_xstrdup(name);
  c->nlen = strlen(name);
  c->be = be;
  c->self = self;
  if (be->stats) {
    c->entries = sl_metric(SL_GAUGE, "sluice_cache_entries", "Keys a cache resource holds (expired ones not yet "
                           "swept out included).", "label", name, NULL);
    c->bytes = sl_metric(SL_GAUGE, "sluice_cache_bytes", "Bytes a cache resource holds, as its max_bytes counts "
                         "them.", "label", name, NULL);
  }
  /* Every series now, on the engine's loop: pool workers count into them
   * but cannot add series to the registry. */
  for (int op = 0; op < SL_CACHE_NOPS; op++)
    for (int r = 0; r < 3; r++) series(c, (sl_cache_op_t)op, r);
  while (*tail) tail = &(*tail)->next;
  __atomic_store_n(tail, c, __ATOMIC_RELEASE);
  return c;
}

/* Benthos' series: cache_success (found, stored, deleted), cache_not_found
 * (a get, delete or incr of a missing key, an add of a present one), and
 * cache_error, labelled {label, operation}. Threads count into them side by
 * side: atomic adds. */
enum { R_SUCCESS, R_NOT_FOUND, R_ERROR };
static int64_t *series(sl_cache_t *c, sl_cache_op_t op, int r) {
  int64_t **m = &c->m[op][r];
  if (!*m) {
    static const char *const names[] = {"cache_success", "cache_not_found", "cache_error"};
    static const char *const help[] = {
      "Cache operations that did what they were asked (a get that found its key, a set, an add of a new key...).",
      "Cache operations that met no key (get, delete, incr) or a key already there (add).",
      "Cache operations that failed (the message that asked is flagged, or the script gets nil, err)."};
    *m = sl_metric(SL_COUNTER, names[r], help[r], "label", c->name, "operation", op_names[op], NULL);
  }
  return *m;
}

typedef struct counted {
  sl_cache_t *c;
  sl_cache_op_t op;
  sl_cache_cb cb;
  void *arg;
  int heap;
} counted_t;

static void count_done(void *arg, const sl_cache_res_t *r) {
  counted_t *k = arg;
  int which = r->status == SL_CACHE_ERROR ? R_ERROR
              : (r->status == SL_CACHE_MISS && k->op != SL_CACHE_INCR) || r->status == SL_CACHE_EXISTS ? R_NOT_FOUND
                                                                                                      : R_SUCCESS;
  __atomic_add_fetch(k->c->m[k->op][which], 1, __ATOMIC_RELAXED);
  k->cb(k->arg, r);
  if (k->heap) free(k);
}

void sl_cache_exec(sl_cache_t *c, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg) {
  if (c->be->sync) {
    counted_t k = {c, rq->op, cb, arg, 0};
    c->be->exec(c->self, rq, count_done, &k);
    return;
  }
  counted_t *k = sl_xmalloc(sizeof(*k));
  *k = (counted_t){c, rq->op, cb, arg, 1};
  c->be->exec(c->self, rq, count_done, k);
}
