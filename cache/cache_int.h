/* Internals of cache/: the registry's resource record, shared by the
 * registry (cache.c) and the `cache_resources:` section (cache_conf.c). */
#ifndef SL_CACHE_INT_H
#define SL_CACHE_INT_H
#include "cache.h"

struct sl_cache {
  char *name;
  size_t nlen;
  const sl_cache_backend_t *be;
  void *self;
  int64_t *m[SL_CACHE_NOPS][3];   /* cache.c's metric series, made on first use */
  int64_t *entries, *bytes;       /* gauges of be->stats, NULL without it */
  struct sl_cache *next;
};

/* Adds a running resource (the registry owns it from here). */
sl_cache_t *sl_cache_add_resource(const char *name, const sl_cache_backend_t *be, void *self);

/* Attaches every resource to w's loop (sl_cache_backend_t.attach), and has
 * them detached when w ends (its SL_SLOT_CACHE). Runs on w's thread. */
struct sl_worker;
void sl_cache_attach_worker(struct sl_worker *w);

#endif
