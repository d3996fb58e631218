/* `cache` processor (Benthos' fields): one operation per message on a cache
 * resource, with an interpolated key (and value, and TTL). */
#include "cache_run.h"
#include "fwd.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static const char *const operators[] = {"set", "add", "get", "delete", NULL};

static const sl_field_t fields[] = {
  {"resource", SL_F_STRING, NULL, SL_REQUIRED, "The `label` of a resource of `cache_resources:`.", NULL, NULL},
  {"operator", SL_F_ENUM, NULL, SL_REQUIRED,
   "`set` stores `value` under `key`; `add` does so only when `key` is absent (the message fails with \"key "
   "already exists\" otherwise); `get` replaces the content with the value (the message fails with \"key does "
   "not exist\" when it is absent); `delete` removes `key` (absent is no failure).", operators, NULL},
  {"key", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP, "The key, evaluated per message.", NULL, NULL},
  {"value", SL_F_STRING, NULL, SL_INTERP, "What `set` and `add` store, evaluated per message (required for them).",
   NULL, NULL},
  {"ttl", SL_F_STRING, NULL, SL_INTERP | SL_ADVANCED,
   "How long `set` and `add` keep the key (a duration such as `60s`, evaluated per message; `0`: until evicted); "
   "without it, the resource's `default_ttl`.", NULL, NULL},
  {0}};

typedef struct cache_proc {
  sl_processor_t base;
  sl_cache_t *cache;
  sl_cache_op_t op;
  sl_interp_t *key, *value, *ttl;
} cache_proc_t;

static int prep(sl_processor_t *p, sl_msg_t *m, uint32_t i, sl_cache_req_t *rq, char *keep[2]) {
  cache_proc_t *cp = (cache_proc_t *)p;
  rq->op = cp->op;
  if (!(keep[0] = sl_cache_run_eval(cp->key, m, i, &rq->klen, "cache: key"))) return -1;
  rq->key = keep[0];
  if (cp->value && !(keep[1] = sl_cache_run_eval(cp->value, m, i, &rq->vlen, "cache: value"))) return -1;
  rq->val = keep[1];
  if (cp->ttl && sl_cache_run_ttl(cp->ttl, m, i, "cache: ttl", &rq->ttl_ms) != 0) return -1;
  return 0;
}

static int result(sl_processor_t *p, sl_msg_t *m, const sl_cache_res_t *r) {
  cache_proc_t *cp = (cache_proc_t *)p;
  const char *fail = NULL;
  if (r->status == SL_CACHE_ERROR) fail = r->err;
  else if (r->status == SL_CACHE_EXISTS) fail = "key already exists";
  else if (r->status == SL_CACHE_MISS && cp->op == SL_CACHE_GET) fail = "key does not exist";
  else if (cp->op == SL_CACHE_GET) sl_msg_set_content(m, r->val, r->len);
  if (fail) {
    char *e = sl_xasprintf("cache %s: %s", sl_cache_name(cp->cache), fail);
    sl_msg_set_error(m, e);
    free(e);
  }
  return 0;
}

static void done(sl_processor_t *p, sl_batch_t *b) { sl_proc_emit_nonempty(p, b); }

static const sl_cache_run_vt run_vt = {prep, result, done};

static void cache_process(sl_processor_t *p, sl_batch_t *b) {
  sl_cache_run(p, ((cache_proc_t *)p)->cache, &run_vt, b);
}

static void cache_destroy(sl_processor_t *p) {
  cache_proc_t *cp = (cache_proc_t *)p;
  sl_interp_free(cp->key);
  sl_interp_free(cp->value);
  sl_interp_free(cp->ttl);
  free(cp);
}

static const sl_processor_vt vt = {cache_process, NULL, cache_destroy};
static const sl_spec_t spec;

static void *cache_create(sl_build_t *b, const sl_cnode_t *conf) {
  cache_proc_t *cp = sl_xcalloc(1, sizeof(*cp));
  sl_component_init_processor(&cp->base, &vt, &spec, b);
  const char *op = sl_conf_str(conf, "operator", "get");
  for (int k = 0; operators[k]; k++)
    if (!strcmp(operators[k], op)) cp->op = (sl_cache_op_t[]){SL_CACHE_SET, SL_CACHE_ADD, SL_CACHE_GET, SL_CACHE_DELETE}[k];
  int bad = sl_cache_run_resource(b, conf, "resource", &cp->cache) != 0;
  if (!(cp->key = sl_lua_interp_field(b->worker, conf, b->diags, "key"))) bad = 1;
  int stores = cp->op == SL_CACHE_SET || cp->op == SL_CACHE_ADD;
  if (stores && !sl_cnode_get(conf, "value")) {
    sl_diag_add(b->diags, conf, "value", "operator %s needs a value", op);
    bad = 1;
  }
  if (stores && sl_cnode_get(conf, "value") && !(cp->value = sl_lua_interp_field(b->worker, conf, b->diags, "value")))
    bad = 1;
  if (stores && sl_cnode_get(conf, "ttl") && !(cp->ttl = sl_lua_interp_field(b->worker, conf, b->diags, "ttl")))
    bad = 1;
  if (bad) {
    cache_destroy(&cp->base);
    return NULL;
  }
  return cp;
}

static const sl_spec_t spec = {
  .name = "cache",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Gets, sets, adds or deletes a key of a cache resource per message.",
  .desc = "The key (and value, and TTL) are interpolated per message (`${! this.id }`); the messages of a batch "
          "keep their order whatever the backend. A failed operation flags its message (for `catch`), never "
          "the batch. Scripts reach the same resources with `cache.get(name, key)` and friends (`sluice doc "
          "lua`); resources, and how they outlive reloads: docs/caches.md.",
  .fields = fields,
  .example = "cache_resources:\n"
             "  - label: users\n"
             "    memory: {default_ttl: 10m}\n"
             "pipeline:\n"
             "  processors:\n"
             "    - cache:\n"
             "        resource: users\n"
             "        operator: set\n"
             "        key: '${! this.id }'\n"
             "        value: '${! content() }'\n",
  .create = cache_create,
};
SL_REGISTER(spec)
