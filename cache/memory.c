/* The `memory` cache backend: a hash table of entries kept in LRU order,
 * each with an optional expiry, bounded by entries and bytes. Expired entries
 * are dropped when an operation meets them, when the least recently used end
 * is evicted, and by a sweep every compaction_interval that the operations
 * of that time carry out a slice at a time (a sweep of a large table in one
 * go would stall the loop). An operation costs O(1) (a table resize aside).
 * Keys hash with a per-resource random seed, so that keys chosen to collide
 * cannot turn lookups into list walks. Completes every operation at once.
 *
 * Threads: pipeline.threads workers share a resource with the stream's loop,
 * so each operation holds the resource's mutex while it touches the table
 * (tens of nanoseconds, against the hundreds a call from Lua costs), and
 * calls back after letting go of it: the callback may start another
 * operation (a chain of cache processors runs inside a sync callback). A
 * get's value stays readable in the callback although another thread may
 * replace or evict the key meanwhile: the callback holds a ref on the entry
 * (the table holds one), and the entry's bytes never change. */
#include "memory_int.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

typedef struct entry {
  struct entry *hnext;        /* bucket chain */
  struct entry *prev, *next;  /* LRU list: head is the most recent */
  uint64_t h;
  int64_t expires;            /* monotonic ms, 0: never */
  uint32_t klen, vlen;
  int refs;                   /* the table's, and a get's until its callback returned */
  char kv[];                  /* key, then value; right after refs, not at sizeof: no padding */
} entry_t;

/* What an entry costs beyond its key and value: the record, malloc's header
 * and its share of the bucket array (at most two slots per entry). */
#define OVERHEAD (sizeof(entry_t) + 32)

typedef struct mcache {
  uv_mutex_t mu;              /* everything below */
  entry_t **buckets;
  size_t nbuckets;            /* a power of two */
  entry_t *head, *tail;
  size_t n, bytes;
  int64_t max_entries, max_bytes, default_ttl_ms;
  uint64_t seed;
  int64_t compaction_ms;      /* 0: no sweeps */
  int64_t next_sweep;         /* when the next sweep starts (monotonic ms) */
  size_t sweep_at;            /* the next bucket of the sweep under way */
  int sweeping;
} mcache_t;

/* Buckets a sweep looks at per operation. */
#define SWEEP_SLICE 256

static const sl_field_t fields[] = {
  {"default_ttl", SL_F_DURATION, "5m", 0,
   "How long a key lives when its operation gives no TTL (`0`: until evicted).", NULL, NULL},
  {"max_entries", SL_F_INT, "1000000", 0,
   "Keys held at most; beyond it the least recently used go first. (sluice's: Benthos' memory cache is "
   "unbounded.)", SL_BOUNDS("1", ""), NULL},
  {"max_bytes", SL_F_SIZE, "64MiB", 0,
   "Bytes held at most, counting keys, values and 80 bytes of bookkeeping per key; beyond it the least "
   "recently used go first. A single key and value larger than this are refused (the operation fails). "
   "(sluice's: Benthos' memory cache is unbounded.)", SL_BOUNDS("1KiB", ""), NULL},
  {"compaction_interval", SL_F_DURATION, "60s", 0,
   "How often expired keys are swept out (`0`: never; they still go when met or evicted). A sweep is done a "
   "few hundred buckets per operation, so an idle resource keeps its expired keys (within the caps) until it "
   "is used again.", NULL, NULL},
  {"shards", SL_F_INT, "1", SL_ADVANCED,
   "Taken for Benthos' configs, and has no effect: a resource has one lock, held for tens of nanoseconds "
   "per operation (pipeline.threads workers share it).", SL_BOUNDS("1", ""), NULL},
  {"init_values", SL_F_MAP, "{}", 0,
   "Keys and values set when the resource is created (not again when a reload keeps it), without a TTL.", NULL,
   NULL},
  {0}};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t mix(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* wyhash's mixing: a 64x64->128 multiply folded, per 8 bytes. */
static uint64_t hash(const char *p, size_t n, uint64_t seed) {
  const uint64_t k1 = 0xa0761d6478bd642full, k2 = 0xe7037ed1a0b428dbull;
  uint64_t h = seed ^ mix(n, k1);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h = mix(h ^ v, k2);
  }
  uint64_t v = 0;
  memcpy(&v, p, n);
  return mix(h ^ v ^ k1, k2 ^ seed);
}

static size_t cost(const entry_t *e) { return OVERHEAD + e->klen + e->vlen; }

static void lru_unlink(mcache_t *c, entry_t *e) {
  if (e->prev) e->prev->next = e->next;
  else c->head = e->next;
  if (e->next) e->next->prev = e->prev;
  else c->tail = e->prev;
}

static void lru_front(mcache_t *c, entry_t *e) {
  e->prev = NULL;
  e->next = c->head;
  if (c->head) c->head->prev = e;
  c->head = e;
  if (!c->tail) c->tail = e;
}

static entry_t **slot_of(mcache_t *c, uint64_t h, const char *k, size_t klen) {
  entry_t **s = &c->buckets[h & (c->nbuckets - 1)];
  for (; *s; s = &(*s)->hnext)
    if ((*s)->h == h && (*s)->klen == klen && !memcmp((*s)->kv, k, klen)) return s;
  return s;
}

static void unref(entry_t *e) {
  if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) free(e);
}

/* Removes e, which *s points to. */
static void unlink_free(mcache_t *c, entry_t **s, entry_t *e) {
  *s = e->hnext;
  lru_unlink(c, e);
  c->n--;
  c->bytes -= cost(e);
  unref(e);
}

static void drop(mcache_t *c, entry_t *e) { unlink_free(c, slot_of(c, e->h, e->kv, e->klen), e); }

/* One slice of the sweep, when one is due or under way. A resize during a
 * sweep moves entries behind or ahead of it: the next sweep gets those. */
static void sweep(mcache_t *c) {
  if (!c->compaction_ms) return;
  int64_t now = now_ms();
  if (!c->sweeping) {
    if (now < c->next_sweep) return;
    c->sweeping = 1;
    c->sweep_at = 0;
  }
  size_t end = c->sweep_at + SWEEP_SLICE < c->nbuckets ? c->sweep_at + SWEEP_SLICE : c->nbuckets;
  for (; c->sweep_at < end; c->sweep_at++) {
    for (entry_t **s = &c->buckets[c->sweep_at]; *s;) {
      if ((*s)->expires && (*s)->expires <= now) unlink_free(c, s, *s);
      else s = &(*s)->hnext;
    }
  }
  if (c->sweep_at >= c->nbuckets) {
    c->sweeping = 0;
    c->next_sweep = now + c->compaction_ms;
  }
}

/* The live entry of key, or NULL (an expired one is dropped). */
static entry_t *lookup(mcache_t *c, uint64_t h, const char *k, size_t klen) {
  entry_t *e = *slot_of(c, h, k, klen);
  if (e && e->expires && e->expires <= now_ms()) {
    drop(c, e);
    return NULL;
  }
  return e;
}

static void grow(mcache_t *c) {
  size_t nb = c->nbuckets * 2;
  entry_t **b = sl_xcalloc(nb, sizeof(*b));
  for (size_t i = 0; i < c->nbuckets; i++) {
    for (entry_t *e = c->buckets[i], *nx; e; e = nx) {
      nx = e->hnext;
      e->hnext = b[e->h & (nb - 1)];
      b[e->h & (nb - 1)] = e;
    }
  }
  free(c->buckets);
  c->buckets = b;
  c->nbuckets = nb;
}

/* Evicts from the least recently used end until `extra` more bytes and one
 * more entry fit. */
static void make_room(mcache_t *c, size_t extra, int one_more) {
  while (c->tail && ((int64_t)(c->n + (size_t)one_more) > c->max_entries || (int64_t)(c->bytes + extra) > c->max_bytes))
    drop(c, c->tail);
}

static int64_t expiry(const mcache_t *c, int64_t ttl_ms) {
  if (ttl_ms == SL_CACHE_TTL_DEFAULT) ttl_ms = c->default_ttl_ms;
  return ttl_ms > 0 ? now_ms() + ttl_ms : 0;
}

/* Stores key = val as the most recent entry, replacing old (may be NULL).
 * Returns NULL with *err when it can never fit. */
static entry_t *store(mcache_t *c, entry_t *old, uint64_t h, const char *k, size_t klen, const char *v, size_t vlen,
                      int64_t expires, const char **err) {
  if (klen > UINT32_MAX || vlen > UINT32_MAX || (int64_t)(OVERHEAD + klen + vlen) > c->max_bytes) {
    *err = "key and value are larger than the cache's max_bytes";
    return NULL;
  }
  if (old) drop(c, old);
  make_room(c, OVERHEAD + klen + vlen, 1);
  entry_t *e = sl_xmalloc(offsetof(entry_t, kv) + klen + vlen);
  e->refs = 1;
  e->h = h;
  e->expires = expires;
  e->klen = (uint32_t)klen;
  e->vlen = (uint32_t)vlen;
  memcpy(e->kv, k, klen);
  if (vlen) memcpy(e->kv + klen, v, vlen);
  if (c->n >= c->nbuckets) grow(c);
  entry_t **s = &c->buckets[h & (c->nbuckets - 1)];
  e->hnext = *s;
  *s = e;
  lru_front(c, e);
  c->n++;
  c->bytes += cost(e);
  return e;
}

/* A decimal int64 with nothing else, as Redis' INCRBY reads it. */
static int parse_int(const char *p, size_t n, int64_t *out) {
  if (n == 0 || n > 20) return -1;
  char buf[24];
  memcpy(buf, p, n);
  buf[n] = 0;
  char *end;
  errno = 0;
  long long v = strtoll(buf, &end, 10);
  if (*end || errno || buf[0] == ' ' || buf[0] == '+' || (buf[0] == '-' && n == 1)) return -1;
  *out = v;
  return 0;
}

static sl_cache_res_t incr(mcache_t *c, const sl_cache_req_t *rq, uint64_t h) {
  entry_t *e = lookup(c, h, rq->key, rq->klen);
  int64_t cur = 0;
  if (e && parse_int(e->kv + e->klen, e->vlen, &cur) != 0)
    return (sl_cache_res_t){.status = SL_CACHE_ERROR, .err = "the value is not an integer"};
  if ((rq->by > 0 && cur > INT64_MAX - rq->by) || (rq->by < 0 && cur < INT64_MIN - rq->by))
    return (sl_cache_res_t){.status = SL_CACHE_ERROR, .err = "increment would overflow"};
  char text[24];
  int len = snprintf(text, sizeof text, "%" PRId64, cur + rq->by);
  const char *err = NULL;
  if (!store(c, e, h, rq->key, rq->klen, text, (size_t)len, e ? e->expires : expiry(c, rq->ttl_ms), &err))
    return (sl_cache_res_t){.status = SL_CACHE_ERROR, .err = err};
  return (sl_cache_res_t){.status = SL_CACHE_OK, .n = cur + rq->by};
}

/* The operation's answer, under the lock; a get's entry gets a ref in *held. */
static sl_cache_res_t run(mcache_t *c, const sl_cache_req_t *rq, entry_t **held) {
  sweep(c);
  uint64_t h = hash(rq->key, rq->klen, c->seed);
  entry_t *e;
  const char *err = NULL;
  switch (rq->op) {
  case SL_CACHE_GET:
    if (!(e = lookup(c, h, rq->key, rq->klen))) break;
    lru_unlink(c, e);
    lru_front(c, e);
    __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
    *held = e;
    return (sl_cache_res_t){.status = SL_CACHE_OK, .val = e->kv + e->klen, .len = e->vlen};
  case SL_CACHE_ADD:
    if (lookup(c, h, rq->key, rq->klen)) return (sl_cache_res_t){.status = SL_CACHE_EXISTS};
    /* fall through */
  case SL_CACHE_SET:
    e = *slot_of(c, h, rq->key, rq->klen);
    if (!store(c, e, h, rq->key, rq->klen, rq->val, rq->vlen, expiry(c, rq->ttl_ms), &err))
      return (sl_cache_res_t){.status = SL_CACHE_ERROR, .err = err};
    return (sl_cache_res_t){.status = SL_CACHE_OK};
  case SL_CACHE_DELETE:
    if (!(e = lookup(c, h, rq->key, rq->klen))) break;
    drop(c, e);
    return (sl_cache_res_t){.status = SL_CACHE_OK};
  case SL_CACHE_INCR:
    return incr(c, rq, h);
  default:
    return (sl_cache_res_t){.status = SL_CACHE_ERROR, .err = "unknown operation"};
  }
  return (sl_cache_res_t){.status = SL_CACHE_MISS};
}

void sl_memcache_exec(void *self, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg) {
  mcache_t *c = self;
  entry_t *held = NULL;
  uv_mutex_lock(&c->mu);
  sl_cache_res_t res = run(c, rq, &held);
  uv_mutex_unlock(&c->mu);
  cb(arg, &res);
  if (held) unref(held);
}

void sl_memcache_limits(void *self, int64_t ttl_ms, int64_t max_entries, int64_t max_bytes, int64_t compaction_ms) {
  mcache_t *c = self;
  uv_mutex_lock(&c->mu);
  c->default_ttl_ms = ttl_ms;
  c->max_entries = max_entries;
  c->max_bytes = max_bytes;
  c->compaction_ms = compaction_ms;
  c->next_sweep = now_ms() + c->compaction_ms;
  make_room(c, 0, 0);
  uv_mutex_unlock(&c->mu);
}

static void mc_update(void *self, const sl_cnode_t *body) {
  sl_memcache_limits(self, sl_conf_duration_ms(body, "default_ttl", 300000), sl_conf_int(body, "max_entries", 1000000),
             sl_conf_size(body, "max_bytes", 64 << 20), sl_conf_duration_ms(body, "compaction_interval", 60000));
}

void sl_memcache_stats(void *self, int64_t *entries, int64_t *bytes) {
  mcache_t *c = self;
  uv_mutex_lock(&c->mu);
  *entries = (int64_t)c->n;
  *bytes = (int64_t)c->bytes;
  uv_mutex_unlock(&c->mu);
}

void *sl_memcache_create(const sl_cnode_t *body, int64_t init_ttl_ms) {
  mcache_t *c = sl_xcalloc(1, sizeof(*c));
  c->nbuckets = 16;
  c->buckets = sl_xcalloc(c->nbuckets, sizeof(*c->buckets));
  c->seed = sl_rand64();
  c->max_entries = c->max_bytes = INT64_MAX;
  uv_mutex_init(&c->mu);
  int64_t expires = init_ttl_ms > 0 ? now_ms() + init_ttl_ms : 0;
  const sl_cnode_t *init = sl_cnode_get(body, "init_values");
  for (uint32_t i = 0; init && init->type == SL_CN_MAP && i < init->n; i++) {
    const char *k = init->keys[i], *v = init->items[i]->str ? init->items[i]->str : "", *err;
    uint64_t h = hash(k, strlen(k), c->seed);
    store(c, *slot_of(c, h, k, strlen(k)), h, k, strlen(k), v, strlen(v), expires, &err);
  }
  return c;
}

static void *mc_create(const sl_cnode_t *body) {
  mcache_t *c = sl_memcache_create(body, 0);
  mc_update(c, body);
  return c;
}

void sl_memcache_destroy(void *self) {
  mcache_t *c = self;
  while (c->head) drop(c, c->head);
  free(c->buckets);
  uv_mutex_destroy(&c->mu);
  free(c);
}

static const sl_cache_backend_t memory_backend = {
  .name = "memory",
  .desc = "An LRU cache in this process's memory, with a TTL per key and caps on keys and bytes; shared by every "
          "stream and script, kept across reloads (docs/caches.md).",
  .fields = fields,
  SL_MEMCACHE_ENGINE,
  .create = mc_create,
  .update = mc_update,
};
SL_REGISTER_CACHE_BACKEND(memory_backend)
