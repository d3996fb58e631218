/* The registry of cache resources and the one entry every operation goes
 * through (sl_cache_exec), which counts it in Benthos' cache metrics. */
#include "cache_int.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static sl_cache_t *g_caches;       /* resources, in the order they were declared */

static const char *const op_names[SL_CACHE_NOPS] = {"get", "set", "add", "delete", "incr"};
const char *sl_cache_op_name(sl_cache_op_t op) { return op < SL_CACHE_NOPS ? op_names[op] : "?"; }

sl_cache_t *sl_cache_find(const char *name, size_t len) {
  for (sl_cache_t *c = g_caches; c; c = c->next)
    if (c->nlen == len && !memcmp(c->name, name, len)) return c;
  return NULL;
}

const char *sl_cache_name(const sl_cache_t *c) { return c->name; }
int sl_cache_is_sync(const sl_cache_t *c) { return c->be->sync; }
const char *sl_cache_backend_name(const sl_cache_t *c) { return c->be->name; }
void *sl_cache_self(const sl_cache_t *c) { return c->self; }

static void detach_all(void *worker) {
  (void)worker;
  for (sl_cache_t *c = g_caches; c; c = c->next)
    if (c->be->detach) c->be->detach(c->self);
}

void sl_cache_attach_worker(sl_worker_t *w) {
  if (!w) return;
  w->slot[SL_SLOT_CACHE] = w;
  w->slot_free[SL_SLOT_CACHE] = detach_all;
  for (sl_cache_t *c = g_caches; c; c = c->next)
    if (c->be->attach) c->be->attach(c->self, w->loop);
}

static void collect(void *arg);

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
  while (*tail) tail = &(*tail)->next;
  *tail = c;
  return c;
}

/* Benthos' series: cache_success (found, stored, deleted), cache_not_found
 * (a get, delete or incr of a missing key, an add of a present one), and
 * cache_error, labelled {label, operation}; made on first use. */
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
  (*series(k->c, k->op, which))++;
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
