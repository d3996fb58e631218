/* Benthos' `lru` and `ttlru` cache kinds, taken as written onto the memory
 * cache's engine (memory.c): an LRU bounded by `cap` keys and, for ttlru, a
 * TTL from each write. Only their fields and the limits read from them are
 * here. Differences from Benthos, on purpose: a TTL an operation gives is
 * honoured (Benthos' two ignore it), and `algorithm` other than `standard`
 * is refused, since an adaptive (arc) or two-queue policy evicts other keys
 * than the LRU this engine keeps. */
#include "memory_int.h"
#include <string.h>

static const char *const algorithms[] = {"standard", "arc", "two_queues", NULL};

#define CAP_FIELD(def) \
  {"cap", SL_F_INT, def, 0, "Keys held at most; beyond it the least recently used go first.", SL_BOUNDS("1", ""), NULL}
#define INIT_FIELD \
  {"init_values", SL_F_MAP, "{}", 0, \
   "Keys and values set when the resource is created (not again when a reload keeps it).", NULL, NULL}
#define OPTIMISTIC_FIELD \
  {"optimistic", SL_F_BOOL, "false", SL_ADVANCED, \
   "Taken for Benthos' configs, and has no effect: every operation holds the resource's lock for tens of " \
   "nanoseconds, so `add` is always atomic.", NULL, NULL}

static const sl_field_t lru_fields[] = {
  CAP_FIELD("1000"),
  INIT_FIELD,
  {"algorithm", SL_F_ENUM, "standard", SL_ADVANCED,
   "Only `standard` (least recently used goes first) runs; `arc` and `two_queues` are refused by lint, as they "
   "would keep other keys than asked.", algorithms, NULL},
  {"two_queues_recent_ratio", SL_F_FLOAT, "0.25", SL_ADVANCED,
   "Taken for Benthos' configs: only used by `two_queues`, which sluice refuses.", NULL, NULL},
  {"two_queues_ghost_ratio", SL_F_FLOAT, "0.5", SL_ADVANCED,
   "Taken for Benthos' configs: only used by `two_queues`, which sluice refuses.", NULL, NULL},
  OPTIMISTIC_FIELD,
  {0}};

static const sl_field_t ttlru_fields[] = {
  CAP_FIELD("1024"),
  {"default_ttl", SL_F_DURATION, "5m", 0,
   "How long a key lives after it is written (and an `init_values` key after the start) when its operation "
   "gives no TTL. A read does not extend it.", SL_BOUNDS("1ms", ""), NULL},
  {"ttl", SL_F_DURATION, NULL, SL_ADVANCED, "Benthos' old name of `default_ttl`, which it replaces when given.",
   SL_BOUNDS("1ms", ""), NULL},
  INIT_FIELD,
  OPTIMISTIC_FIELD,
  {0}};

static int lru_check(const sl_cnode_t *body, sl_diags_t *d) {
  const char *alg = sl_conf_str(body, "algorithm", "standard");
  if (strcmp(alg, "standard") == 0) return 0;
  sl_diag_add(d, sl_cnode_get(body, "algorithm"), "algorithm",
              "`%s` is not built: sluice's lru evicts the least recently used key (write `standard`, or drop the "
              "field)",
              alg);
  return 1;
}

static void lru_update(void *self, const sl_cnode_t *body) {
  sl_memcache_limits(self, 0, sl_conf_int(body, "cap", 1000), INT64_MAX, 0);
}

static void *lru_create(const sl_cnode_t *body) {
  void *c = sl_memcache_create(body, 0);
  lru_update(c, body);
  return c;
}

static int64_t ttlru_ttl(const sl_cnode_t *body) {
  return sl_cnode_get(body, "ttl") ? sl_conf_duration_ms(body, "ttl", 300000)
                                   : sl_conf_duration_ms(body, "default_ttl", 300000);
}

/* Expired keys are swept once per TTL: they cost memory only within cap. */
static void ttlru_update(void *self, const sl_cnode_t *body) {
  int64_t ttl = ttlru_ttl(body);
  sl_memcache_limits(self, ttl, sl_conf_int(body, "cap", 1024), INT64_MAX, ttl);
}

static void *ttlru_create(const sl_cnode_t *body) {
  void *c = sl_memcache_create(body, ttlru_ttl(body));
  ttlru_update(c, body);
  return c;
}

static const sl_cache_backend_t lru_backend = {
  .name = "lru",
  .desc = "Benthos' `lru`: the `memory` cache's engine bounded by `cap` keys, without a default TTL (an operation's "
          "own TTL is honoured; Benthos ignores it). Shared by every stream and script, kept across reloads "
          "(docs/caches.md).",
  .fields = lru_fields,
  SL_MEMCACHE_ENGINE,
  .check = lru_check,
  .create = lru_create,
  .update = lru_update,
};
SL_REGISTER_CACHE_BACKEND(lru_backend)

static const sl_cache_backend_t ttlru_backend = {
  .name = "ttlru",
  .desc = "Benthos' `ttlru`: the `memory` cache's engine bounded by `cap` keys, each expiring `default_ttl` after "
          "it was written (an operation's own TTL is honoured; Benthos ignores it). Shared by every stream and "
          "script, kept across reloads (docs/caches.md).",
  .fields = ttlru_fields,
  SL_MEMCACHE_ENGINE,
  .create = ttlru_create,
  .update = ttlru_update,
};
SL_REGISTER_CACHE_BACKEND(ttlru_backend)
