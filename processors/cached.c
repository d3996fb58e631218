/* `cached` processor (Benthos' fields): the content its processors make for a
 * message is cached under the message's key; a message whose key is in the
 * cache takes the cached content instead of going through them. */
#include "cache_run.h"
#include "cached_flight.h"
#include "fwd.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A miss carries through the child processors to its results a metadata
 * key of this processor's own (`sl_cached_<n>`: a cached inside another
 * keeps the outer one's): 16 hex digits that tell one miss of the batch from
 * another, then the miss's key. */
#define ID_LEN 16

static const sl_field_t fields[] = {
  {"cache", SL_F_STRING, NULL, SL_REQUIRED, "The `label` of a resource of `cache_resources:`.", NULL, NULL},
  {"key", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP,
   "The key of a message's result, evaluated per message before the processors run.", NULL, NULL},
  {"ttl", SL_F_STRING, NULL, SL_INTERP,
   "How long a result is kept (a duration such as `60s`, evaluated on the result; `0`: until evicted); without "
   "it, the resource's `default_ttl`.", NULL, NULL},
  {"skip_on", SL_F_STRING, NULL, 0,
   "A Lua check on a result (`this.status ~= \"ok\"`): when true, the result is passed on but not cached. "
   "(Benthos writes a Bloblang query here.) Results flagged as failed are never cached.", NULL, NULL},
  {"processors", SL_F_PROCESSORS, NULL, SL_REQUIRED,
   "What makes a result: run on the messages whose key is not in the cache.", NULL, NULL},
  {0}};

typedef struct cached {
  sl_processor_t base;
  sl_cache_t *cache;
  sl_interp_t *key, *ttl;
  sl_lcheck_t *skip_on;
  char *meta;                 /* the metadata key of its misses */
  uint64_t misses;            /* numbers them */
  sl_chain_t *chain;
  sl_sink_t results;          /* the chain's output */
  sl_flights_t flights;       /* when built to run */
  int flying;
} cached_t;

static int prep(sl_processor_t *p, sl_msg_t *m, uint32_t i, sl_cache_req_t *rq, char *keep[2]) {
  cached_t *c = (cached_t *)p;
  if (!(keep[0] = sl_cache_run_eval(c->key, m, i, &rq->klen, "cached: key"))) return -1;
  rq->op = SL_CACHE_GET;
  rq->key = keep[0];
  /* The key is bytes (NUL included), so it is copied after the number. */
  char *tag = sl_xmalloc(ID_LEN + rq->klen + 1);
  snprintf(tag, ID_LEN + 1, "%016llx", (unsigned long long)c->misses++);
  memcpy(tag + ID_LEN, keep[0], rq->klen);
  sl_kv_set(&m->meta, c->meta, tag, ID_LEN + rq->klen);
  free(tag);
  return 0;
}

static int result(sl_processor_t *p, sl_msg_t *m, const sl_cache_res_t *r) {
  /* A hit (or a cache that failed: the processors make the result then). */
  if (r->status == SL_CACHE_OK) {
    sl_msg_set_content(m, r->val, r->len);
    sl_kv_del(&m->meta, ((cached_t *)p)->meta);
  }
  return 0;
}

/* Hits (and messages whose key failed) go on now, misses through the
 * processors but for those whose key is already being made: they wait for
 * that result (cached_flight.h). */
static void done(sl_processor_t *p, sl_batch_t *b) {
  cached_t *c = (cached_t *)p;
  sl_batch_t *miss = NULL, *now = sl_batch_new(b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    const sl_kv_t *kv = sl_kv_find(&m->meta, c->meta);
    if (kv) {
      if (c->flying && !sl_flights_join(&c->flights, m, kv->val + ID_LEN, kv->vlen - ID_LEN)) continue;
      if (!miss) miss = sl_batch_new(b->n);
      sl_batch_push(miss, m);
    } else {
      sl_batch_push(now, m);
    }
  }
  sl_batch_free_shell(b);
  sl_proc_emit_nonempty(p, now);
  if (miss) c->chain->sink.push(&c->chain->sink, miss);
}

static const sl_cache_run_vt run_vt = {prep, result, done};

static void cached_process(sl_processor_t *p, sl_batch_t *b) { sl_cache_run(p, ((cached_t *)p)->cache, &run_vt, b); }

static void stored(void *arg, const sl_cache_res_t *r) {
  if (r->status == SL_CACHE_ERROR) sl_warn("cached: cache %s: a result was not stored: %s", (const char *)arg, r->err);
}

/* Whether a result may be cached: not failed, not skipped, and the only
 * result of its message in this batch (a processor that split the message
 * made more than one, and none of them is the message's result). */
static int cacheable(cached_t *c, sl_batch_t *b, uint32_t i, const sl_kv_t *kv) {
  sl_msg_t *m = b->msgs[i];
  if (m->error) return 0;
  for (uint32_t k = 0; k < b->n; k++) {
    const sl_kv_t *o = k == i ? NULL : sl_kv_find(&b->msgs[k]->meta, c->meta);
    if (o && o->vlen >= ID_LEN && !memcmp(o->val, kv->val, ID_LEN)) return 0;
  }
  if (!c->skip_on) return 1;
  char *err = NULL;
  int skip = sl_lcheck_eval(c->skip_on, m, i, &err);
  if (skip < 0) {
    sl_msg_set_error(m, err);
    free(err);
  }
  return skip == 0;
}

static void results_push(sl_sink_t *s, sl_batch_t *b) {
  cached_t *c = (cached_t *)((char *)s - offsetof(cached_t, results));
  char **keys = sl_xcalloc(b->n ? b->n : 1, sizeof(*keys));
  size_t *lens = sl_xcalloc(b->n ? b->n : 1, sizeof(*lens));
  for (uint32_t i = 0; i < b->n; i++) {
    const sl_kv_t *kv = sl_kv_find(&b->msgs[i]->meta, c->meta);
    if (kv && kv->vlen >= ID_LEN && cacheable(c, b, i, kv)) {
      lens[i] = kv->vlen - ID_LEN;
      keys[i] = sl_xmalloc(lens[i] + 1);
      memcpy(keys[i], kv->val + ID_LEN, lens[i]);
    }
  }
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    sl_flights_back(m, keys[i] != NULL);
    sl_kv_del(&m->meta, c->meta);
    if (!keys[i]) continue;
    sl_cache_req_t rq = {SL_CACHE_SET, keys[i], lens[i], m->content->data, m->content->len, SL_CACHE_TTL_DEFAULT, 0};
    if (!c->ttl || sl_cache_run_ttl(c->ttl, m, i, "cached: ttl", &rq.ttl_ms) == 0)
      sl_cache_exec(c->cache, &rq, stored, (void *)sl_cache_name(c->cache));
    free(keys[i]);
  }
  free(keys);
  free(lens);
  sl_proc_emit_nonempty(&c->base, b);
}

/* Waiters whose leader landed: with its result they go on as hits, without
 * one through the processors. */
static void waited(void *arg, sl_batch_t *got, sl_batch_t *own) {
  cached_t *c = arg;
  if (got) {
    for (uint32_t i = 0; i < got->n; i++) sl_kv_del(&got->msgs[i]->meta, c->meta);
    sl_scope_save_t scope = sl_processor_scope(&c->base, got);
    sl_processor_emit(&c->base, got);
    sl_processor_scope_end(scope);
  }
  if (own) {
    sl_scope_save_t scope = sl_processor_scope(&c->base, own);
    c->chain->sink.push(&c->chain->sink, own);
    sl_processor_scope_end(scope);
  }
}

static void cached_flush(sl_processor_t *p) { sl_chain_flush(((cached_t *)p)->chain); }

static void cached_free(sl_flights_t *f) { free((char *)f - offsetof(cached_t, flights)); }

static void cached_destroy(sl_processor_t *p) {
  cached_t *c = (cached_t *)p;
  sl_chain_free(c->chain);
  sl_interp_free(c->key);
  sl_interp_free(c->ttl);
  sl_lcheck_free(c->skip_on);
  free(c->meta);
  if (c->flying) sl_flights_close(&c->flights, cached_free);
  else free(c);
}

static const sl_processor_vt vt = {cached_process, cached_flush, cached_destroy};
static const sl_spec_t spec;

static void *cached_create(sl_build_t *b, const sl_cnode_t *conf) {
  cached_t *c = sl_xcalloc(1, sizeof(*c));
  sl_component_init_processor(&c->base, &vt, &spec, b);
  static unsigned instances;
  c->meta = sl_xasprintf("sl_cached_%u", ++instances);
  int bad = sl_cache_run_resource(b, conf, "cache", &c->cache) != 0;
  if (!(c->key = sl_lua_interp_field(b->worker, conf, b->diags, "key"))) bad = 1;
  if (sl_cnode_get(conf, "ttl") && !(c->ttl = sl_lua_interp_field(b->worker, conf, b->diags, "ttl"))) bad = 1;
  if (sl_cnode_get(conf, "skip_on") && !(c->skip_on = sl_lua_check_field(b->worker, conf, b->diags, "skip_on")))
    bad = 1;
  unsigned holders = b->holders;
  if (!(c->chain = sl_proc_child_chain(b, conf, "processors", "cached"))) bad = 1;
  if (bad) {
    cached_destroy(&c->base);
    return NULL;
  }
  c->results.push = results_push;
  sl_chain_connect(c->chain, &c->results, NULL);
  /* A miss waiting for a message its processors keep until later ones come
   * would wait for the messages waiting behind it. */
  if (c->cache && b->holders == holders) {
    /* Copies of this processor on other pool workers share its flights. */
    char *group = sl_xasprintf("%s\n%s\n%s", sl_cache_name(c->cache), b->stream_name ? b->stream_name : "",
                               b->path ? b->path : "");
    sl_flights_init(&c->flights, b->worker->loop, group, strlen(group), waited, c);
    free(group);
    c->flying = 1;
  }
  return c;
}

static const sl_spec_t spec = {
  .name = "cached",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Caches what its processors make of a message under the message's key.",
  .desc = "For each message the key is looked up in the cache resource: on a hit the message's content becomes "
          "the cached result and the processors are skipped; the misses of a batch go through the processors "
          "together, and each result's content is stored under its message's key (with `ttl`). Only the "
          "content is cached: metadata the processors set is not, so a hit carries the message's own. A result "
          "that failed, that `skip_on` skips, or that shares its key with another result of the batch (a "
          "processor that split the message) is passed on without being stored. Single flight: a miss whose key "
          "is being made already (by another message of the batch, or of another batch on any pool worker) does "
          "not run the processors but waits for that result and goes on with it as its content, as a hit would; "
          "when that run makes no result to store (failed, skipped, split, or dropped), each waiter runs the "
          "processors itself. There is no single flight when the processors may keep a message until later ones "
          "come (a `batch` with `count` above 1, `byte_size` or `check`, at any depth): a miss waiting there would "
          "wait for the messages behind it. Within a batch, hits leave before the results of the misses, and waiters after "
          "the result they waited for. Hits and misses are counted by the resource's `cache_success` and "
          "`cache_not_found` series (`operation=\"get\"`); docs/caches.md.",
  .fields = fields,
  .example = "cache_resources:\n"
             "  - label: geo\n"
             "    memory: {default_ttl: 1h}\n"
             "pipeline:\n"
             "  processors:\n"
             "    - cached:\n"
             "        cache: geo\n"
             "        key: '${! this.ip }'\n"
             "        processors:\n"
             "          - lua: 'return {ip = this.ip, country = lookup(this.ip)}'\n",
  .create = cached_create,
};
SL_REGISTER(spec)
