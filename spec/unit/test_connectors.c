/* Units of the wrapper outputs (broker, switch, fallback, reject_errored, drop):
 * routing, acks, retries and child lifecycles, driven by a recording test
 * output registered here. */
#include "core/component.h"
#include "core/stream.h"
#include "core/loglimit.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- t_mem: records what it is given; fails its first `fail` writes (-1: all) ---- */

typedef struct rec {
  char id[16];
  char log[4096];
  int writes, starts, closes;
  int no_retry;
} rec_t;

static rec_t recs[16];
static unsigned nrecs;

static rec_t *rec_get(const char *id) {
  for (unsigned i = 0; i < nrecs; i++)
    if (strcmp(recs[i].id, id) == 0) return &recs[i];
  rec_t *r = &recs[nrecs++];
  memset(r, 0, sizeof(*r));
  snprintf(r->id, sizeof(r->id), "%s", id);
  return r;
}

static void recs_reset(void) { nrecs = 0; }

typedef struct t_mem {
  sl_output_t base;
  rec_t *rec;
  int64_t fail;
} t_mem_t;

static void t_mem_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  t_mem_t *t = (t_mem_t *)o;
  t->rec->writes++;
  t->rec->no_retry = o->no_retry;
  if (t->fail) {
    if (t->fail > 0) t->fail--;
    char err[64];
    snprintf(err, sizeof(err), "%s refused", t->rec->id);
    cb(o, b, -1, err, arg);
    return;
  }
  for (uint32_t i = 0; i < b->n; i++) {
    const char *fe = sl_kv_get(&b->msgs[i]->meta, "fallback_error");
    size_t l = strlen(t->rec->log);
    snprintf(t->rec->log + l, sizeof(t->rec->log) - l, "%s%s%s\n", b->msgs[i]->content->data, fe ? "|" : "",
             fe ? fe : "");
  }
  cb(o, b, 0, NULL, arg);
}

static int t_mem_start(sl_output_t *o) {
  ((t_mem_t *)o)->rec->starts++;
  return o->stream ? 0 : -1;
}

static void t_mem_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  ((t_mem_t *)o)->rec->closes++;
  done(o, arg);
}

static void t_mem_destroy(sl_output_t *o) { free(o); }

static const sl_output_vt t_mem_vt = {t_mem_start, t_mem_write, t_mem_close, t_mem_destroy, NULL, NULL};
static const sl_spec_t t_mem_spec;

static void *t_mem_create(sl_build_t *b, const sl_cnode_t *conf) {
  t_mem_t *t = sl_xcalloc(1, sizeof(*t));
  sl_component_init_output(&t->base, &t_mem_vt, &t_mem_spec, b);
  t->rec = rec_get(sl_conf_str(conf, "id", "x"));
  t->fail = sl_conf_int(conf, "fail", 0);
  return t;
}

static const sl_field_t t_mem_fields[] = {
  {"id", SL_F_STRING, "x", 0, "record name", NULL, NULL},
  {"fail", SL_F_INT, "0", 0, "writes to fail first (-1: all)", NULL, NULL},
  {0},
};

static const sl_spec_t t_mem_spec = {
  .name = "t_mem", .kind = SL_KIND_OUTPUT, .summary = "test output", .desc = "test output",
  .fields = t_mem_fields, .example = "t_mem: {}\n", .create = t_mem_create,
};
SL_REGISTER(t_mem_spec)

/* ---- helpers ---- */

static sl_worker_t *W;
static sl_stream_t fake_stream;
/* Never 0 here: that would retry a failing child forever. */
static const sl_retry_policy_t one_retry = {.max_retries = 1, .initial_ms = 1, .max_ms = 1};
static sl_cnode_t *trees[64];
static unsigned ntrees;

static sl_output_t *build(const char *yaml) {
  sl_diags_t d = {0};
  sl_cnode_t *n = sl_conf_parse(yaml, strlen(yaml), "test.yaml", &d);
  if (n) sl_spec_validate_component(SL_KIND_OUTPUT, n, "output", &d);
  sl_build_t b = {.worker = W, .diags = &d, .stream_name = "t", .path = "output", .config_dir = "/tmp"};
  sl_output_t *o = n && d.n == 0 ? sl_build_output(&b, n, "output") : NULL;
  if (d.n) sl_diag_print(&d, stderr);
  CHECK(o != NULL && d.n == 0, "build failed: %s", yaml);
  sl_diags_free(&d);
  if (n) trees[ntrees++] = n;
  if (o) {
    o->stream = &fake_stream;
    CHECK(o->vt->start == NULL || o->vt->start(o) == 0, "start failed: %s", yaml);
  }
  return o;
}

static int txn_calls, txn_status;
static void txn_cb(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t; (void)err; (void)arg;
  txn_calls++;
  txn_status = status;
}

/* A batch of messages "c1|err1", ... where "|err" flags the message as failed. */
static sl_batch_t *mkbatch(const char *const *items, unsigned n) {
  sl_txn_t *t = sl_txn_new(txn_cb, NULL);
  sl_batch_t *b = sl_batch_new(n);
  for (unsigned i = 0; i < n; i++) {
    const char *bar = strchr(items[i], '|');
    sl_msg_t *m = sl_msg_new(items[i], bar ? (size_t)(bar - items[i]) : strlen(items[i]));
    if (bar) sl_msg_set_error(m, bar + 1);
    sl_kv_set(&m->meta, "k", items[i], 1);
    sl_msg_set_txn(m, t);
    sl_batch_push(b, m);
  }
  sl_txn_unref(t);
  txn_calls = 0;
  return b;
}

static int wcalls, wstatus;
static char werr[256];
static void wcb(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)o; (void)b; (void)arg;
  wcalls++;
  wstatus = status;
  snprintf(werr, sizeof(werr), "%s", err ? err : "");
}

/* Writes a batch, runs the loop until idle, frees the batch and checks its txn. */
static int write_one(sl_output_t *o, const char *const *items, unsigned n) {
  sl_batch_t *b = mkbatch(items, n);
  wcalls = 0;
  o->vt->write(o, b, wcb, NULL);
  uv_run(W->loop, UV_RUN_DEFAULT);
  CHECK(wcalls == 1, "write callback ran %d times", wcalls);
  CHECK(txn_calls == 0, "txn completed while the caller still holds the batch");
  if (wstatus == 0) sl_batch_free(b);
  else sl_batch_fail(b, werr);
  CHECK(txn_calls == 1 && txn_status == wstatus, "txn outcome %d/%d vs write %d", txn_calls, txn_status, wstatus);
  return wstatus;
}

static int closed_calls;
static void on_closed(sl_output_t *o, void *arg) {
  (void)o; (void)arg;
  closed_calls++;
}

static void finish(sl_output_t *o) {
  closed_calls = 0;
  o->vt->close(o, on_closed, NULL);
  CHECK(closed_calls == 1, "close done ran %d times", closed_calls);
  sl_output_destroy(o);
}

/* ---- tests ---- */

static void test_drop(void) {
  sl_output_t *o = build("drop: {}\n");
  const char *m[] = {"a", "b"};
  CHECK(write_one(o, m, 2) == 0, "drop acks");
  finish(o);
}

static void test_fan_out(void) {
  recs_reset();
  sl_output_t *o = build("broker:\n  outputs:\n    - t_mem: {id: A}\n    - t_mem: {id: B}\n");
  CHECK(rec_get("A")->starts == 1 && rec_get("B")->starts == 1, "children started with the stream set");
  CHECK(o->no_retry == 1, "the broker retries its children itself");
  const char *m[] = {"1", "2", "3"};
  CHECK(write_one(o, m, 3) == 0, "fan_out acks");
  CHECK(strcmp(rec_get("A")->log, "1\n2\n3\n") == 0, "A got %s", rec_get("A")->log);
  CHECK(strcmp(rec_get("B")->log, "1\n2\n3\n") == 0, "B got %s", rec_get("B")->log);
  finish(o);
  CHECK(rec_get("A")->closes == 1 && rec_get("B")->closes == 1, "children closed");

  recs_reset();
  fake_stream.retry = (sl_retry_policy_t){.max_retries = 2, .initial_ms = 1, .max_ms = 1};
  o = build("broker:\n  pattern: fan_out\n  outputs:\n    - t_mem: {id: A}\n    - t_mem: {id: B, fail: -1}\n");
  CHECK(write_one(o, m, 1) == -1, "a failing child fails the batch");
  CHECK(strstr(werr, "B refused") != NULL, "error names the child's reason: %s", werr);
  CHECK(rec_get("A")->writes == 1, "the good child is written once: %d", rec_get("A")->writes);
  CHECK(rec_get("B")->writes == 3, "the failing child is retried per policy: %d", rec_get("B")->writes);
  finish(o);

  recs_reset();
  o = build("broker:\n  outputs:\n    - t_mem: {id: A}\n    - t_mem: {id: B, fail: 1}\n");
  CHECK(write_one(o, m, 1) == 0, "a child that recovers on retry delivers");
  CHECK(rec_get("A")->writes == 1 && rec_get("B")->writes == 2, "writes A=%d B=%d", rec_get("A")->writes,
        rec_get("B")->writes);
  finish(o);
  fake_stream.retry = one_retry;
}

static void test_round_robin(void) {
  recs_reset();
  sl_output_t *o = build("broker:\n  pattern: round_robin\n  outputs:\n    - t_mem: {id: A}\n    - t_mem: {id: B}\n");
  const char *m[][1] = {{"1"}, {"2"}, {"3"}, {"4"}};
  for (int i = 0; i < 4; i++) CHECK(write_one(o, m[i], 1) == 0, "round_robin acks");
  CHECK(strcmp(rec_get("A")->log, "1\n3\n") == 0, "A got %s", rec_get("A")->log);
  CHECK(strcmp(rec_get("B")->log, "2\n4\n") == 0, "B got %s", rec_get("B")->log);
  finish(o);
}

static void test_fallback(void) {
  recs_reset();
  fake_stream.retry = (sl_retry_policy_t){.max_retries = 3, .initial_ms = 1, .max_ms = 1};
  sl_output_t *o = build("fallback:\n  - t_mem: {id: F, fail: -1}\n  - t_mem: {id: G}\n");
  const char *m[] = {"1", "2"};
  CHECK(write_one(o, m, 2) == 0, "delivered by the second output");
  CHECK(rec_get("F")->writes == 1 && rec_get("F")->no_retry, "first output tried once, without retries");
  CHECK(strcmp(rec_get("G")->log, "1|F refused\n2|F refused\n") == 0, "G got %s", rec_get("G")->log);
  finish(o);

  recs_reset();
  o = build("fallback:\n  outputs:\n    - t_mem: {id: F, fail: -1}\n    - t_mem: {id: G, fail: -1}\n");
  CHECK(write_one(o, m, 1) == -1, "fails when the last output fails");
  CHECK(rec_get("G")->writes == 4, "last output retried per policy: %d", rec_get("G")->writes);
  CHECK(strstr(werr, "G refused") != NULL, "last error reported: %s", werr);
  finish(o);

  recs_reset();
  o = build("fallback:\n  - t_mem: {id: F}\n  - t_mem: {id: G}\n");
  CHECK(write_one(o, m, 2) == 0, "first output delivers");
  CHECK(strcmp(rec_get("F")->log, "1\n2\n") == 0 && rec_get("G")->writes == 0, "second output unused");
  finish(o);
  fake_stream.retry = one_retry;
}

static void test_reject_errored(void) {
  recs_reset();
  sl_output_t *o = build("reject_errored:\n  t_mem: {id: R}\n");
  const char *clean[] = {"a", "b"};
  CHECK(write_one(o, clean, 2) == 0, "clean batch written");
  CHECK(strcmp(rec_get("R")->log, "a\nb\n") == 0, "R got %s", rec_get("R")->log);
  const char *mixed[] = {"c", "d|it broke"};
  CHECK(write_one(o, mixed, 2) == -1, "batch with a failed message refused");
  CHECK(strcmp(werr, "it broke") == 0, "the message's error is the reason: %s", werr);
  CHECK(rec_get("R")->writes == 1, "nothing of a refused batch is written");
  finish(o);

  recs_reset();
  o = build("fallback:\n  - reject_errored: {t_mem: {id: R}}\n  - t_mem: {id: D}\n");
  const char *m[] = {"ok1", "bad1|E1", "ok2", "bad2|E2"};
  CHECK(write_one(o, m, 4) == 0, "every message found a home");
  CHECK(strcmp(rec_get("R")->log, "ok1\nok2\n") == 0, "clean ones stay on the first output: %s", rec_get("R")->log);
  CHECK(strcmp(rec_get("D")->log, "bad1|E1\nbad2|E2\n") == 0,
        "failed ones go on, tagged: %s", rec_get("D")->log);
  finish(o);
}

static void test_switch(void) {
  recs_reset();
  sl_output_t *o = build(
    "switch:\n"
    "  cases:\n"
    "    - check: meta.k == \"a\"\n"
    "      continue: true\n"
    "      output: {t_mem: {id: A}}\n"
    "    - check: meta.k == \"b\"\n"
    "      output: {t_mem: {id: B}}\n"
    "    - check: meta.k == \"a\"\n"
    "      output: {t_mem: {id: C}}\n");
  const char *m[] = {"a1", "b1", "z1", "a2"};
  CHECK(write_one(o, m, 4) == 0, "switch acks (unmatched dropped)");
  CHECK(strcmp(rec_get("A")->log, "a1\na2\n") == 0, "A got %s", rec_get("A")->log);
  CHECK(strcmp(rec_get("B")->log, "b1\n") == 0, "B got %s", rec_get("B")->log);
  CHECK(strcmp(rec_get("C")->log, "a1\na2\n") == 0, "continue reaches C: %s", rec_get("C")->log);
  CHECK(rec_get("A")->writes == 1, "one write per case per batch");
  finish(o);

  recs_reset();
  o = build("switch:\n  - check: meta.k == \"a\"\n    output: {t_mem: {id: A, fail: -1}}\n  - output: {t_mem: {id: B}}\n");
  const char *m2[] = {"a", "b"};
  CHECK(write_one(o, m2, 2) == -1, "a failing case output fails the batch");
  CHECK(strcmp(rec_get("B")->log, "b\n") == 0, "other cases still delivered: %s", rec_get("B")->log);
  finish(o);
}

static void test_lint_errors(void) {
  const char *bad[] = {
    "broker:\n  outputs: []\n",
    "fallback:\n  outputs:\n    - nope: {}\n",
    "switch:\n  cases:\n    - check: 'this.x =='\n      output: {drop: {}}\n",
  };
  for (unsigned i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    sl_diags_t d = {0};
    sl_cnode_t *n = sl_conf_parse(bad[i], strlen(bad[i]), "bad.yaml", &d);
    if (n) sl_spec_validate_component(SL_KIND_OUTPUT, n, "output", &d);
    sl_build_t b = {.worker = NULL, .diags = &d, .stream_name = "t", .path = "output", .lint_only = 1};
    sl_output_t *o = n && d.n == 0 ? sl_build_output(&b, n, "output") : NULL;
    CHECK(o == NULL && d.n > 0, "config %u should be refused", i);
    sl_output_destroy(o);
    sl_diags_free(&d);
    sl_cnode_free(n);
  }
}

int main(void) {
  W = sl_worker_new(0);
  fake_stream.name = "t";
  fake_stream.worker = W;
  fake_stream.retry = one_retry;
  RUN(test_drop);
  RUN(test_fan_out);
  RUN(test_round_robin);
  RUN(test_fallback);
  RUN(test_reject_errored);
  RUN(test_switch);
  RUN(test_lint_errors);
  for (unsigned i = 0; i < ntrees; i++) sl_cnode_free(trees[i]);
  sl_loglimit_free(fake_stream.retry_log);
  sl_worker_free(W);
  return check_report("test_connectors");
}
