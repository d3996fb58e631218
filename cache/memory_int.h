/* The memory cache's engine, shared by the kinds built on it: `memory`
 * (memory.c) and Benthos' `lru` and `ttlru` (lru.c), which differ only in
 * their fields and in the limits they read from them.
 * Ownership: sl_memcache_create's resource belongs to the registry, which
 * frees it with sl_memcache_destroy; the body is only read during the call. */
#ifndef SL_MEMORY_INT_H
#define SL_MEMORY_INT_H
#include "cache.h"

/* A resource holding the body's init_values (expiring after init_ttl_ms, 0:
 * never) and no limits: the kind's create sets them with sl_memcache_limits
 * before first use. */
void *sl_memcache_create(const sl_cnode_t *body, int64_t init_ttl_ms);
/* New caps (INT64_MAX: none), default TTL (0: none) and sweep interval (0:
 * none); what no longer fits goes, least recently used first. */
void sl_memcache_limits(void *self, int64_t ttl_ms, int64_t max_entries, int64_t max_bytes, int64_t compaction_ms);
void sl_memcache_exec(void *self, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg);
void sl_memcache_stats(void *self, int64_t *entries, int64_t *bytes);
void sl_memcache_destroy(void *self);
/* The members of an sl_cache_backend_t the kinds share. */
#define SL_MEMCACHE_ENGINE \
  .sync = 1, .exec = sl_memcache_exec, .stats = sl_memcache_stats, .destroy = sl_memcache_destroy

#endif
