/* `branch` processor (Benthos's): each message is mapped to a request
 * (request_map), the copies go through processors, and each result is
 * mapped (result_map) and merged into the message it came from, which
 * otherwise passes unchanged. */
#include "fwd.h"
#include "core/txn.h"
#include "core/xalloc.h"
#include "lua/faillog.h"
#include "lua/lhost.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tags a copy with its place: "job:index". Removed before result_map. */
#define TAG "__sl_branch"

static const sl_field_t fields[] = {
  {"request_map", SL_F_CODE, NULL, 0,
   "Lua run on a copy of each message (as in a `lua` processor: `this`, `meta`, returning a table or "
   "string for new content, `deleted()` to leave the message out of the branch); the copy is what the "
   "processors get. Empty: the copy as it is. It may call `http.request` (up to 64 calls of a batch at "
   "once, 30 s per message, as a `lua` processor's defaults).", NULL, NULL},
  {"processors", SL_F_PROCESSORS, NULL, SL_REQUIRED,
   "Run on the mapped copies (an `http` processor, say). A copy they drop brings nothing back.", NULL, NULL},
  {"result_map", SL_F_CODE, NULL, 0,
   "Lua run on each result (`this` is the result, `meta` its metadata): the JSON object it leaves "
   "(returned or in `this`) is merged into the original message's top level, and the metadata it sets, "
   "changes or removes (`meta.k = v`, `meta.k = nil`) is set on or removed from the original, as in "
   "Benthos. Empty: results are discarded (a branch for its side effects).", NULL, NULL},
  {0}};

typedef struct branch branch_t;

typedef struct bjob {
  branch_t *br;
  unsigned id;
  sl_batch_t *orig;
  sl_msg_t **res;            /* per original message: its result, or NULL */
  sl_kvlist_t *before;       /* per original message: its result's metadata before result_map, or NULL */
  sl_txn_t *txn;             /* held by the copies in flight */
  sl_ljob_t *job;            /* request_map's or result_map's run */
  int done;
  struct bjob *after;
} bjob_t;

struct branch {
  sl_processor_t base;
  sl_lscript_t *req_map, *res_map;
  sl_chain_t *chain;
  sl_sink_t results;         /* the chain's output */
  sl_lfaillog_t *log;
  int destroying;            /* copies freed by the chain bring nothing back */
  unsigned last_id;
  bjob_t *head, **tail;
};

static void emit_ready(branch_t *br) {
  while (br->head && br->head->done) {
    bjob_t *j = br->head;
    br->head = j->after;
    if (!br->head) br->tail = &br->head;
    sl_processor_emit(&br->base, j->orig);
    free(j->res);
    free(j);
  }
}

static bjob_t *find_job(branch_t *br, unsigned id) {
  for (bjob_t *j = br->head; j; j = j->after)
    if (j->id == id) return j;
  return NULL;
}

/* The result's object goes into the original's top level. */
static void merge(sl_msg_t *orig, const sl_msg_t *res) {
  if (res->error) {
    sl_msg_set_error(orig, res->error);
    return;
  }
  json_error_t e;
  json_t *o = json_loadb((const char *)orig->content->data, orig->content->len, JSON_DECODE_ANY, &e);
  json_t *r = json_loadb((const char *)res->content->data, res->content->len, JSON_DECODE_ANY, &e);
  if (!json_is_object(o) || !json_is_object(r)) {
    sl_msg_set_error(orig, json_is_object(o) ? "branch: result_map must leave a JSON object"
                                             : "branch: the message is not a JSON object to merge a result into");
  } else {
    json_object_update(o, r);
    char *s = json_dumps(o, JSON_COMPACT);
    sl_msg_set_content(orig, s, strlen(s));
    free(s);
  }
  json_decref(o);
  json_decref(r);
}

/* What result_map did to the result's metadata (set, changed or removed
 * keys) is done to the original's, as Benthos' branch does; what the
 * branch's processors set stays there. */
static void copy_meta_back(sl_msg_t *orig, sl_kvlist_t *before, sl_kvlist_t *after) {
  sl_kv_load(before);
  sl_kv_load(after);
  for (uint32_t i = 0; i < after->n; i++) {
    const sl_kv_t *was = sl_kv_find(before, after->v[i].key), *now = &after->v[i];
    if (!was || was->vlen != now->vlen || memcmp(was->val, now->val, now->vlen))
      sl_kv_set(&orig->meta, now->key, now->val, now->vlen);
  }
  for (uint32_t i = 0; i < before->n; i++)
    if (!sl_kv_find(after, before->v[i].key)) sl_kv_del(&orig->meta, before->v[i].key);
}

static void free_before(bjob_t *j) {
  if (!j->before) return;
  for (uint32_t i = 0; i < j->orig->n; i++) sl_kv_clear(&j->before[i]);
  free(j->before);
  j->before = NULL;
}

static void mapped_back(sl_batch_t *b, void *arg) {
  bjob_t *j = arg;
  j->job = NULL;
  for (uint32_t i = 0, k = 0; i < j->orig->n; i++) {
    if (!j->res[i]) continue;
    if (k < b->n && j->res[i] == b->msgs[k]) {
      merge(j->orig->msgs[i], b->msgs[k]);
      if (j->before && !b->msgs[k]->error) copy_meta_back(j->orig->msgs[i], &j->before[i], &b->msgs[k]->meta);
      k++;
    }
    j->res[i] = NULL;   /* freed below, or by result_map when it deleted it */
  }
  free_before(j);
  sl_batch_free(b);
  j->done = 1;
  emit_ready(j->br);
}

/* Every copy came back or was dropped: map the results, merge them. */
static void on_copies_done(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  (void)status;
  (void)err;
  bjob_t *j = arg;
  branch_t *br = j->br;
  j->txn = NULL;
  if (br->destroying) return;
  sl_batch_t *b = sl_batch_new(j->orig->n);
  if (br->res_map) j->before = sl_xcalloc(j->orig->n ? j->orig->n : 1, sizeof(*j->before));
  for (uint32_t i = 0; i < j->orig->n; i++) {
    if (!j->res[i]) continue;
    if (j->res[i]->error || !br->res_map) {
      if (j->res[i]->error) sl_msg_set_error(j->orig->msgs[i], j->res[i]->error);
      sl_msg_free(j->res[i]);
      j->res[i] = NULL;
    } else {
      sl_kv_copy(&j->before[i], &j->res[i]->meta);   /* shares the entries until either changes */
      sl_batch_push(b, j->res[i]);
    }
  }
  if (!b->n) {
    mapped_back(b, j);
    return;
  }
  /* result_map runs on the results in order; each stays matched to its
   * original by pointer (a script that drops one leaves its original as is). */
  sl_ljob_opts_t o = {.log = br->log, .max_concurrency = 1, .done = mapped_back, .arg = j};
  sl_ljob_t *job = sl_lscript_start(br->res_map, b, &o);
  if (job) j->job = job;   /* else done already ran, and j may be gone */
}

static void on_results(sl_sink_t *s, sl_batch_t *b) {
  branch_t *br = (branch_t *)((char *)s - offsetof(branch_t, results));
  if (br->destroying) {
    sl_batch_free(b);
    return;
  }
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    const char *tag = sl_kv_get(&m->meta, TAG);
    unsigned id = 0, at = 0;
    bjob_t *j = tag && sscanf(tag, "%u:%u", &id, &at) == 2 ? find_job(br, id) : NULL;
    if (!j || at >= j->orig->n || j->res[at]) {
      sl_msg_free(m);   /* a split's extra copies bring nothing back */
      continue;
    }
    sl_kv_del(&m->meta, TAG);
    j->res[at] = m;
    /* The last copy back completes the job's txn (and may run all of the
     * rest): m must not hold it by then. */
    sl_txn_t *t = m->txn;
    m->txn = NULL;
    if (t) sl_txn_unref(t);
  }
  sl_batch_free_shell(b);
}

static void requests_mapped(sl_batch_t *b, void *arg) {
  bjob_t *j = arg;
  j->job = NULL;
  sl_batch_t *go = sl_batch_new(b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    const char *tag = sl_kv_get(&m->meta, TAG);
    unsigned id, at;
    if (m->error) {
      if (tag && sscanf(tag, "%u:%u", &id, &at) == 2 && at < j->orig->n) sl_msg_set_error(j->orig->msgs[at], m->error);
      sl_msg_free(m);
    } else {
      sl_batch_push(go, m);
    }
  }
  sl_batch_free_shell(b);
  sl_txn_t *t = j->txn;
  sl_txn_ref(t);
  if (go->n) j->br->chain->sink.push(&j->br->chain->sink, go);
  else sl_batch_free(go);
  sl_txn_unref(t);   /* may complete the job now */
}

static void br_process(sl_processor_t *p, sl_batch_t *b) {
  branch_t *br = (branch_t *)p;
  bjob_t *j = sl_xcalloc(1, sizeof(*j));
  j->br = br;
  j->id = ++br->last_id;
  j->orig = b;
  j->res = sl_xcalloc(b->n ? b->n : 1, sizeof(*j->res));
  *br->tail = j;
  br->tail = &j->after;
  j->txn = sl_txn_new(on_copies_done, j);
  sl_batch_t *copies = sl_batch_new(b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *c = sl_msg_clone(b->msgs[i]);
    sl_msg_set_txn(c, j->txn);
    sl_msg_set_error(c, NULL);
    char tag[32];
    int n = snprintf(tag, sizeof tag, "%u:%u", j->id, i);
    sl_kv_set(&c->meta, TAG, tag, (size_t)n);
    sl_batch_push(copies, c);
  }
  /* The first ref, dropped last: the job completes once the copies are
   * back or gone, never before they are all sent. */
  sl_txn_t *t = j->txn;
  if (br->req_map && copies->n) {
    sl_ljob_opts_t o = {.log = br->log, .max_concurrency = 64, .timeout_ms = 30000, .done = requests_mapped,
                        .arg = j};
    sl_ljob_t *job = sl_lscript_start(br->req_map, copies, &o);
    if (job) j->job = job;
  } else {
    requests_mapped(copies, j);
  }
  sl_txn_unref(t);
}

static void br_flush(sl_processor_t *p) { sl_chain_flush(((branch_t *)p)->chain); }

static void br_destroy(sl_processor_t *p) {
  branch_t *br = (branch_t *)p;
  br->destroying = 1;
  if (br->chain) sl_chain_free(br->chain);
  while (br->head) {
    bjob_t *j = br->head;
    br->head = j->after;
    if (j->job) {
      /* request_map's run holds the copies, result_map's the results */
      sl_batch_free(sl_ljob_cancel(j->job));
      memset(j->res, 0, j->orig->n * sizeof(*j->res));
    }
    for (uint32_t i = 0; i < j->orig->n; i++)
      if (j->res[i]) sl_msg_free(j->res[i]);
    free_before(j);
    sl_batch_free(j->orig);
    free(j->res);
    free(j);
  }
  sl_lfaillog_free(br->log);
  sl_lscript_free(br->req_map);
  sl_lscript_free(br->res_map);
  free(br);
}

static const sl_processor_vt vt = {br_process, br_flush, br_destroy};
static const sl_spec_t spec;

static void *br_create(sl_build_t *b, const sl_cnode_t *conf) {
  branch_t *br = sl_xcalloc(1, sizeof(*br));
  sl_component_init_processor(&br->base, &vt, &spec, b);
  br->tail = &br->head;
  br->results.push = on_results;
  int bad = 0;
  if (sl_cnode_get(conf, "request_map") && !(br->req_map = sl_lua_script_field(b->worker, conf, b->diags, "request_map")))
    bad = 1;
  if (sl_cnode_get(conf, "result_map") && !(br->res_map = sl_lua_script_field(b->worker, conf, b->diags, "result_map")))
    bad = 1;
  br->chain = sl_proc_child_chain(b, conf, "processors", "branch");
  if (!br->chain || bad) {
    br_destroy(&br->base);
    return NULL;
  }
  sl_chain_connect(br->chain, &br->results, NULL);
  if (b->worker && !b->lint_only) br->log = sl_lfaillog_new(b->worker->loop, b->stream_name, &br->base.label);
  return br;
}

static const sl_spec_t spec = {
  .name = "branch",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Maps a copy of each message, runs processors on it, and merges the result back.",
  .desc =
    "Benthos's `branch`, with Lua mappings: `request_map` makes a copy of each message into a request, "
    "`processors` (an `http` processor, say) run on the copies, and `result_map` turns each result into a "
    "JSON object whose keys are set on the original message, which keeps everything else, metadata "
    "included: metadata the branch's processors set (an `http` processor's response headers) stays in "
    "the branch unless `result_map` copies it under a name of its own (`meta.status = "
    "meta.http_status_code`: what result_map changed is compared with the result's metadata before it "
    "ran, so writing a key back unchanged changes nothing); what `result_map` sets, changes or removes "
    "in `meta` is done to the original. A copy that fails in the branch "
    "flags its original with the error; a copy `request_map` deletes or a processor drops leaves its "
    "original unchanged. Batches leave in the order they came. An enrichment that keeps the original "
    "message is one block (see the example).",
  .fields = fields,
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - branch:\n"
    "        request_map: 'return {id = this.user_id}'\n"
    "        processors:\n"
    "          - http:\n"
    "              url: 'http://users:8080/users/${! this.id }'\n"
    "              verb: GET\n"
    "        result_map: 'return {user = this}'\n",
  .create = br_create,
};
SL_REGISTER(spec)
