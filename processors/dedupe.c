/* `dedupe` processor (Benthos' fields): drops a message whose key is already
 * in a cache resource, by adding every key (so a key counts for the
 * resource's default_ttl from its first message). */
#include "cache_run.h"
#include "fwd.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"cache", SL_F_STRING, NULL, SL_REQUIRED,
   "The `label` of a resource of `cache_resources:`; its `default_ttl` is how long a key counts as seen.", NULL,
   NULL},
  {"key", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP,
   "What makes two messages the same, evaluated per message (`${! this.id }`, `${! meta.kafka_key }`). A message "
   "whose key cannot be evaluated is flagged as failed and kept.", NULL, NULL},
  {"drop_on_err", SL_F_BOOL, "true", 0,
   "Whether a message is dropped when the cache fails (a network error of a remote backend, a key larger than the "
   "resource's `max_bytes`); otherwise it is kept, flagged as failed.", NULL, NULL},
  {0}};

typedef struct dedupe {
  sl_processor_t base;
  sl_cache_t *cache;
  sl_interp_t *key;
  int drop_on_err;
} dedupe_t;

static int prep(sl_processor_t *p, sl_msg_t *m, uint32_t i, sl_cache_req_t *rq, char *keep[2]) {
  dedupe_t *d = (dedupe_t *)p;
  if (!(keep[0] = sl_cache_run_eval(d->key, m, i, &rq->klen, "dedupe: key"))) return -1;
  *rq = (sl_cache_req_t){SL_CACHE_ADD, keep[0], rq->klen, "t", 1, SL_CACHE_TTL_DEFAULT, 0};
  return 0;
}

static int result(sl_processor_t *p, sl_msg_t *m, const sl_cache_res_t *r) {
  dedupe_t *d = (dedupe_t *)p;
  if (r->status == SL_CACHE_EXISTS) return 1;
  if (r->status != SL_CACHE_ERROR) return 0;
  if (d->drop_on_err) return 1;
  char *e = sl_xasprintf("dedupe: cache %s: %s", sl_cache_name(d->cache), r->err);
  sl_msg_set_error(m, e);
  free(e);
  return 0;
}

static void done(sl_processor_t *p, sl_batch_t *b) { sl_proc_emit_nonempty(p, b); }

static const sl_cache_run_vt run_vt = {prep, result, done};

static void dedupe_process(sl_processor_t *p, sl_batch_t *b) { sl_cache_run(p, ((dedupe_t *)p)->cache, &run_vt, b); }

static void dedupe_destroy(sl_processor_t *p) {
  sl_interp_free(((dedupe_t *)p)->key);
  free(p);
}

static const sl_processor_vt vt = {dedupe_process, NULL, dedupe_destroy};
static const sl_spec_t spec;

static void *dedupe_create(sl_build_t *b, const sl_cnode_t *conf) {
  dedupe_t *d = sl_xcalloc(1, sizeof(*d));
  sl_component_init_processor(&d->base, &vt, &spec, b);
  d->drop_on_err = sl_conf_bool(conf, "drop_on_err", 1);
  int bad = sl_cache_run_resource(b, conf, "cache", &d->cache) != 0;
  if (!(d->key = sl_lua_interp_field(b->worker, conf, b->diags, "key"))) bad = 1;
  if (bad) {
    dedupe_destroy(&d->base);
    return NULL;
  }
  return d;
}

static const sl_spec_t spec = {
  .name = "dedupe",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Drops messages whose key was seen within the cache resource's TTL.",
  .desc = "Each message's key is added to the cache resource; a message whose key is already there is dropped "
          "(and acknowledged), within a batch as across batches, and the first message of a key keeps its place. "
          "A key counts as seen for the resource's `default_ttl` from its first message, and as long as the "
          "resource holds it: a `memory` resource evicts its least recently used keys beyond `max_entries` or "
          "`max_bytes`, after which a repeat passes again. The resource outlives reloads of the stream "
          "(docs/caches.md).",
  .fields = fields,
  .example = "cache_resources:\n"
             "  - label: seen\n"
             "    memory: {default_ttl: 1h, max_entries: 1000000}\n"
             "pipeline:\n"
             "  processors:\n"
             "    - dedupe:\n"
             "        cache: seen\n"
             "        key: '${! this.event_id }'\n",
  .create = dedupe_create,
};
SL_REGISTER(spec)
