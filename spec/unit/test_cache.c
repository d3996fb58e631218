/* Units of cache/ against a backend that answers later, as a Redis backend
 * will: the processors wait for every answer of a batch and keep its order,
 * however the answers come back; a script's call is handed to the hook for
 * asynchronous backends instead of being started. The `later` backend here
 * holds each operation until the test answers it. */
#include "cache/cache.h"
#include "core/component.h"
#include "core/config.h"
#include "core/section.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- later: keeps each operation's key and callback until answered ---- */

typedef struct pending {
  sl_cache_op_t op;
  char key[32];
  sl_cache_cb cb;
  void *arg;
} pending_t;
static pending_t held[16];
static unsigned nheld;

static void *later_create(const sl_cnode_t *body) { (void)body; return &held; }
static void later_update(void *self, const sl_cnode_t *body) { (void)self; (void)body; }
static void later_destroy(void *self) { (void)self; }
static void later_exec(void *self, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg) {
  (void)self;
  pending_t *p = &held[nheld++];
  p->op = rq->op;
  snprintf(p->key, sizeof p->key, "%.*s", (int)rq->klen, rq->key);
  p->cb = cb;
  p->arg = arg;
}

static const sl_field_t later_fields[] = {{0}};
static const sl_cache_backend_t later = {
  .name = "later", .desc = "answers when the test says", .fields = later_fields,
  .create = later_create, .update = later_update, .exec = later_exec, .destroy = later_destroy};
SL_REGISTER_CACHE_BACKEND(later)

static void answer(unsigned i, sl_cache_status_t st, const char *val) {
  sl_cache_res_t r = {.status = st, .val = val, .len = val ? strlen(val) : 0, .err = "connection lost"};
  held[i].cb(held[i].arg, &r);
}

/* ---- a sink that records what a processor passes on ---- */

static char seen[1024];
static int batches;
static void record(sl_sink_t *s, sl_batch_t *b) {
  (void)s;
  batches++;
  for (uint32_t i = 0; i < b->n; i++) {
    size_t l = strlen(seen);
    snprintf(seen + l, sizeof seen - l, "%.*s%s%s;", (int)b->msgs[i]->content->len, b->msgs[i]->content->data,
             b->msgs[i]->error ? "!" : "", b->msgs[i]->error ? b->msgs[i]->error : "");
  }
  sl_batch_free(b);
}
static sl_sink_t sink = {record};

static sl_worker_t *W;

static sl_processor_t *build(const char *yaml) {
  sl_diags_t d = {0};
  sl_cnode_t *root = sl_conf_parse(yaml, strlen(yaml), "test.yaml", &d);
  sl_build_t b = {.worker = W, .diags = &d, .stream_name = "t", .path = "p"};
  sl_processor_t *p = root ? sl_build_processor(&b, root, "p") : NULL;
  if (d.n) sl_diag_print(&d, stderr);
  CHECK(p != NULL, "built: %s", yaml);
  if (p) p->next = &sink;
  sl_cnode_free(root);
  sl_diags_free(&d);
  return p;
}

static sl_batch_t *batch(const char *a, const char *b, const char *c) {
  sl_batch_t *x = sl_batch_new(3);
  sl_batch_push(x, sl_msg_new(a, strlen(a)));
  sl_batch_push(x, sl_msg_new(b, strlen(b)));
  sl_batch_push(x, sl_msg_new(c, strlen(c)));
  return x;
}

static void reset(void) {
  nheld = 0;
  seen[0] = 0;
  batches = 0;
}

static void test_get_waits_and_keeps_order(void) {
  sl_processor_t *p = build("cache: {resource: slow, operator: get, key: 'k-${! content() }'}");
  if (!p) return;
  reset();
  p->vt->process(p, batch("a", "b", "c"));
  CHECK(nheld == 3 && batches == 0, "all three asked, nothing passed on yet (%u, %d)", nheld, batches);
  CHECK(!strcmp(held[0].key, "k-a") && !strcmp(held[2].key, "k-c"), "keys interpolated (%s)", held[0].key);
  answer(2, SL_CACHE_OK, "C");
  answer(0, SL_CACHE_MISS, NULL);
  CHECK(batches == 0, "still waiting for one answer");
  answer(1, SL_CACHE_ERROR, NULL);
  CHECK(batches == 1, "one batch once every answer came (%d)", batches);
  CHECK(!strcmp(seen, "a!cache slow: key does not exist;b!cache slow: connection lost;C;"), "in order: %s", seen);
  CHECK(p->late_errors == 0, "late_errors reset after the emit");
  sl_processor_destroy(p);
}

static void test_dedupe_drops_on_answer(void) {
  sl_processor_t *p = build("dedupe: {cache: slow, key: '${! content() }', drop_on_err: false}");
  if (!p) return;
  reset();
  p->vt->process(p, batch("x", "y", "z"));
  CHECK(nheld == 3 && held[0].op == SL_CACHE_ADD, "three adds (%u)", nheld);
  answer(0, SL_CACHE_OK, NULL);
  answer(1, SL_CACHE_EXISTS, NULL);
  answer(2, SL_CACHE_ERROR, NULL);
  CHECK(!strcmp(seen, "x;z!dedupe: cache slow: connection lost;"), "y dropped, z kept and flagged: %s", seen);
  sl_processor_destroy(p);
}

int sl_lcache_op(int op, const char *name, size_t nlen, const char *key, size_t klen, const char *val, size_t vlen,
                 int64_t ttl_ms, int64_t by, const char **out, size_t *olen, int64_t *n);

static void test_script_call_goes_to_the_hook(void) {
  reset();
  const char *out = NULL;
  size_t olen = 0;
  int64_t n = 0;
  int rc = sl_lcache_op(SL_CACHE_GET, "slow", 4, "k", 1, NULL, 0, SL_CACHE_TTL_DEFAULT, 0, &out, &olen, &n);
  CHECK(rc == -3, "an asynchronous backend answers SL_LCACHE_ASYNC (%d)", rc);
  CHECK(nheld == 0, "and the operation is left to the hook, not started");
}

int main(void) {
  W = sl_worker_new(0);
  sl_diags_t d = {0};
  const char *yaml = "cache_resources: [{label: slow, later: {}}]\ninput: {generate: {count: 1, mapping: 'return 1'}}\noutput: {drop: {}}\n";
  sl_cnode_t *root = sl_conf_parse(yaml, strlen(yaml), "test.yaml", &d);
  sl_config_validate(root, &d);
  sl_sections_apply(W, root, &d);
  if (d.n) sl_diag_print(&d, stderr);
  CHECK(d.n == 0 && sl_cache_find("slow", 4), "the resource runs");
  RUN(test_get_waits_and_keeps_order);
  RUN(test_dedupe_drops_on_answer);
  RUN(test_script_call_goes_to_the_hook);
  sl_cnode_free(root);
  sl_diags_free(&d);
  sl_worker_free(W);
  return check_report("test_cache");
}
