/* Core units: transactions, messages and the stream runtime's ack/nack,
 * retry and drain behaviour, driven by test components registered here. */
#include "core/component.h"
#include "core/config.h"
#include "core/dec.h"
#include "core/kept.h"
#include "core/list.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- the intrusive list ---- */

typedef struct member { int id; sl_dnode_t node; } member_t;

static int ids(sl_dlist_t *l, char *out) {   /* the members' ids in order, as digits */
  int n = 0;
  SL_DLIST_EACH(l, member_t, node, m) out[n++] = (char)('0' + m->id);
  out[n] = 0;
  return n;
}

/* sl_dec writes what "%lld" and "%llu" write, at both ends of the range. */
static void test_dec(void) {
  static const int64_t s[] = {0, 7, -1, 10, -10, 99, 100, 123456789, -987654321012345, INT64_MAX, INT64_MIN};
  static const uint64_t u[] = {0, 9, 10, 18446744073709551615ull, 9223372036854775808ull};
  char got[SL_DEC_MAX + 1], want[32];
  for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
    got[sl_dec(got, s[i])] = 0;
    snprintf(want, sizeof want, "%lld", (long long)s[i]);
    CHECK(!strcmp(got, want), "sl_dec %s: %s", want, got);
  }
  for (size_t i = 0; i < sizeof u / sizeof *u; i++) {
    got[sl_dec_u64(got, u[i])] = 0;
    snprintf(want, sizeof want, "%llu", (unsigned long long)u[i]);
    CHECK(!strcmp(got, want), "sl_dec_u64 %s: %s", want, got);
  }
}

static void test_dlist(void) {
  sl_dlist_t l = {0};
  member_t m[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
  char got[8];
  CHECK(ids(&l, got) == 0 && SL_DLIST_FIRST(&l, member_t, node) == NULL, "an empty list walks nothing");
  for (int i = 0; i < 4; i++) sl_dlist_push(&l, &m[i].node);
  ids(&l, got);
  CHECK(!strcmp(got, "3210"), "pushed at the head: %s", got);
  sl_dlist_remove(&l, &m[1].node);   /* a middle one */
  sl_dlist_remove(&l, &m[3].node);   /* the first */
  ids(&l, got);
  CHECK(!strcmp(got, "20"), "removed from the middle and the head: %s", got);
  member_t lone = {9, {NULL, NULL}};
  sl_dlist_remove(&l, &lone.node);   /* in no list: left alone */
  ids(&l, got);
  CHECK(!strcmp(got, "20"), "a node in no list is left alone: %s", got);
  /* a walk may remove the member it stands on */
  int n = 0;
  SL_DLIST_EACH(&l, member_t, node, x) {
    sl_dlist_remove(&l, &x->node);
    n++;
  }
  CHECK(n == 2 && l.first == NULL, "a walk removing each member visits all: %d", n);
}

/* ---- transactions ---- */

static int txn_calls, txn_status;
static void txn_cb(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t; (void)err; (void)arg;
  txn_calls++;
  txn_status = status;
}

static void test_txn(void) {
  txn_calls = 0;
  sl_txn_t *t = sl_txn_new(txn_cb, NULL);
  sl_msg_t *a = sl_msg_new("a", 1), *b = sl_msg_new("b", 1);
  sl_msg_set_txn(a, t);
  sl_msg_set_txn(b, t);
  sl_txn_unref(t);
  CHECK(txn_calls == 0, "txn completed while messages alive");
  sl_msg_t *c = sl_msg_clone(a);
  sl_msg_free(a);
  sl_msg_free(b);
  CHECK(txn_calls == 0, "txn completed while a clone is alive");
  CHECK(c->content == c->content && memcmp(c->content->data, "a", 1) == 0, "clone content");
  sl_msg_free(c);
  CHECK(txn_calls == 1 && txn_status == 0, "txn acked once: calls=%d status=%d", txn_calls, txn_status);

  txn_calls = 0;
  t = sl_txn_new(txn_cb, NULL);
  sl_batch_t *batch = sl_batch_new(0);
  for (int i = 0; i < 3; i++) {
    sl_msg_t *m = sl_msg_new("x", 1);
    sl_msg_set_txn(m, t);
    sl_batch_push(batch, m);
  }
  sl_txn_unref(t);
  sl_batch_fail(batch, "boom");
  CHECK(txn_calls == 1 && txn_status == -1, "failed batch nacks: calls=%d status=%d", txn_calls, txn_status);
}

/* A deferred list's source: counts loads and releases. */
typedef struct t_src { sl_kv_src_t base; const sl_kv_t *kv; int loads, released; } t_src_t;
static void t_src_load(sl_kv_src_t *s, sl_kvlist_t *into) {
  t_src_t *t = (t_src_t *)s;
  t->loads++;
  sl_kv_pack(into, t->kv, 2);
}
static void t_src_release(sl_kv_src_t *s) { ((t_src_t *)s)->released++; }

static void test_kv_deferred(const sl_kv_t *kv) {
  t_src_t t = {{1, t_src_load, t_src_release}, kv, 0, 0};
  sl_kvlist_t l = {0}, c1 = {0}, c2 = {0}, c3 = {0};
  sl_kv_defer(&l, &t.base);
  sl_kv_copy(&c1, &l);
  sl_kv_copy(&c2, &l);
  CHECK(t.loads == 0 && t.base.refs == 3 && l.n == 0, "copies of a deferred list share its source unloaded");
  CHECK(strcmp(sl_kv_get(&l, "topic"), "t") == 0 && t.loads == 1 && l.n == 2, "the first read loads");
  CHECK(strcmp(sl_kv_get(&l, "topic"), "t") == 0 && t.loads == 1, "loaded once");
  sl_kv_set(&c1, "topic", "u", 1);
  CHECK(t.loads == 2 && c1.n == 2 && strcmp(sl_kv_get(&c1, "topic"), "u") == 0 &&
          strcmp(sl_kv_get(&l, "topic"), "t") == 0,
        "a change loads that copy first and leaves the others");
  CHECK(t.released == 0 && t.base.refs == 1, "the source lives while a list holds it");
  sl_kv_add(&c3, "own", "1", 1);
  sl_kv_copy(&c3, &c2);   /* into a list with entries: c2 loads, then its entries are appended */
  CHECK(c3.n == 3 && strcmp(c3.v[1].key, "topic") == 0 && c2.n == 2, "copy into a non-empty list");
  CHECK(t.released == 1 && t.base.refs == 0, "released once the last holder loaded: released=%d refs=%d",
        t.released, t.base.refs);
  sl_kv_clear(&c3);
  sl_kv_clear(&l);
  sl_kv_clear(&c1);
  sl_kv_clear(&c2);

  t_src_t u = {{1, t_src_load, t_src_release}, kv, 0, 0};
  sl_msg_t *m = sl_msg_new("x", 1);
  sl_kv_defer(&m->meta, &u.base);
  sl_msg_t *c = sl_msg_clone(m);
  sl_msg_free(m);
  CHECK(u.loads == 0 && u.released == 0, "a clone keeps the source of its original's metadata");
  sl_kv_load(&c->meta);
  CHECK(c->meta.n == 2 && u.loads == 1 && u.released == 1, "sl_kv_load loads for direct readers");
  sl_msg_free(c);
}

static void test_kv(void) {
  sl_kvlist_t l = {0};
  sl_kv_set(&l, "a", "1", 1);
  sl_kv_set(&l, "b", "2", 1);
  sl_kv_set(&l, "a", "3", 1);
  CHECK(l.n == 2 && strcmp(sl_kv_get(&l, "a"), "3") == 0, "kv_set replaces");
  CHECK(sl_kv_del(&l, "a") == 1 && sl_kv_get(&l, "a") == NULL, "kv_del");
  sl_kv_clear(&l);

  /* packed lists: readable as is, shared by copies, unpacked by the first change */
  const sl_kv_t src[] = {{"topic", "t", 1}, {"bin", "x\0y", 3}, {"k", "", 0}};
  sl_kv_pack(&l, src, 3);
  CHECK(l.n == 3 && strcmp(sl_kv_get(&l, "topic"), "t") == 0 && sl_kv_find(&l, "bin")->vlen == 3 &&
          memcmp(sl_kv_get(&l, "bin"), "x\0y", 4) == 0 && strcmp(sl_kv_get(&l, "k"), "") == 0,
        "kv_pack keeps keys, values and lengths");
  sl_kvlist_t c1 = {0}, c2 = {0};
  sl_kv_copy(&c1, &l);
  sl_kv_copy(&c2, &l);
  sl_kv_set(&c1, "topic", "u", 1);   /* c1 copies out; l and c2 still share the block */
  sl_kv_del(&l, "k");                /* l copies out; c2 alone holds the block */
  CHECK(strcmp(sl_kv_get(&c1, "topic"), "u") == 0 && strcmp(sl_kv_get(&c2, "topic"), "t") == 0 && l.n == 2 &&
          c2.n == 3 && strcmp(sl_kv_get(&l, "topic"), "t") == 0,
        "a change to one copy of a packed list leaves the others");
  sl_kv_add(&c2, "more", "1", 1);    /* the last holder unpacks and frees the block */
  CHECK(c2.n == 4 && !c2.packed && strcmp(sl_kv_get(&c2, "bin"), "x") == 0, "the last holder unpacks");
  sl_kv_clear(&c1);
  sl_kv_clear(&c2);
  sl_kv_clear(&l);
  sl_kv_pack(&l, src, 2);
  sl_kv_clear(&l);   /* freed whole (ASan's leak check) */
  test_kv_deferred(src);
}

/* ---- test components ---- */

typedef struct t_in {
  sl_input_t base;
  int total, sent, acked, nacked;
  int max_seen_in_flight;
} t_in_t;

/* Test components live in static storage so the checks can read them after the stream is freed. */
static t_in_t g_in_store, *g_in = &g_in_store;


static void t_in_produce(sl_input_t *in) {
  t_in_t *ti = (t_in_t *)in;
  while (ti->sent < ti->total && sl_input_ready(in)) {
    sl_batch_t *b = sl_batch_new(1);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d", ti->sent);
    sl_batch_push(b, sl_msg_new(buf, (size_t)n));
    ti->sent++;
    sl_input_emit(in, b, NULL, NULL);
    if (in->stream->in_flight > ti->max_seen_in_flight) ti->max_seen_in_flight = (int)in->stream->in_flight;
  }
  if (ti->sent == ti->total && !in->eof) sl_input_eof(in);
}
static int t_in_start(sl_input_t *in) { t_in_produce(in); return 0; }
static void t_in_resume(sl_input_t *in) { t_in_produce(in); }
static void t_in_destroy(sl_input_t *in) { (void)in; }
static const sl_input_vt t_in_vt = {t_in_start, t_in_resume, NULL, t_in_destroy, NULL, NULL};
static const sl_field_t t_in_fields[] = {{"count", SL_F_INT, "3", 0, "messages", NULL, NULL}, {0}};
static void *t_in_create(sl_build_t *b, const sl_cnode_t *conf) {
  t_in_t *ti = g_in;
  memset(ti, 0, sizeof(*ti));
  sl_component_init_input(&ti->base, &t_in_vt, NULL, b);
  ti->total = (int)sl_conf_int(conf, "count", 3);
  return ti;
}
static const sl_spec_t t_in_spec = {"t_in", SL_KIND_INPUT, "test input", NULL, t_in_fields, NULL, NULL, t_in_create, 0, 0, 0};
SL_REGISTER(t_in_spec)

/* Output that fails the first `fail_first` writes, then delivers asynchronously. */
typedef struct t_out {
  sl_output_t base;
  int fail_first, writes, delivered;
  uv_timer_t timer;
  sl_batch_t *pending_b; sl_write_cb pending_cb; void *pending_arg;
  int closed;
} t_out_t;
static t_out_t g_out_store, *g_out = &g_out_store;

static void t_out_fire(uv_timer_t *t) {
  t_out_t *o = t->data;
  sl_batch_t *b = o->pending_b;
  o->pending_b = NULL;
  o->delivered += (int)b->n;
  o->pending_cb(&o->base, b, 0, NULL, o->pending_arg);
}
static int t_out_start(sl_output_t *o) {
  t_out_t *to = (t_out_t *)o;
  uv_timer_init(o->worker->loop, &to->timer);
  to->timer.data = to;
  return 0;
}
static void t_out_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  t_out_t *to = (t_out_t *)o;
  to->writes++;
  if (to->writes <= to->fail_first) { cb(o, b, -1, "test failure", arg); return; }
  if (to->pending_b) { to->delivered += (int)b->n; cb(o, b, 0, NULL, arg); return; }
  to->pending_b = b; to->pending_cb = cb; to->pending_arg = arg;
  uv_timer_start(&to->timer, t_out_fire, 1, 0);
}
static void t_out_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  ((t_out_t *)o)->closed = 1;
  done(o, arg);
}
static void t_out_destroy(sl_output_t *o) {
  t_out_t *to = (t_out_t *)o;
  if (o->worker) uv_close((uv_handle_t *)&to->timer, NULL);
}
static const sl_output_vt t_out_vt = {t_out_start, t_out_write, t_out_close, t_out_destroy, NULL, NULL};
static const sl_field_t t_out_fields[] = {{"fail_first", SL_F_INT, "0", 0, "failures", NULL, NULL}, {0}};
static void *t_out_create(sl_build_t *b, const sl_cnode_t *conf) {
  t_out_t *to = g_out;
  memset(to, 0, sizeof(*to));
  sl_component_init_output(&to->base, &t_out_vt, NULL, b);
  to->fail_first = (int)sl_conf_int(conf, "fail_first", 0);
  return to;
}
static const sl_spec_t t_out_spec = {"t_out", SL_KIND_OUTPUT, "test output", NULL, t_out_fields, NULL, NULL, t_out_create, 0, 0, 0};
SL_REGISTER(t_out_spec)

/* ---- stream runs ---- */

static int done_calls;
static void on_done(sl_stream_t *s, void *arg) { (void)s; (void)arg; done_calls++; }

/* Builds and runs the stream of yaml to its end; after (optional) sees it
 * before it is freed. */
static void run_stream_then(const char *yaml, void (*after)(sl_stream_t *s)) {
  sl_diags_t d = {0};
  sl_cnode_t *root = sl_conf_parse(yaml, strlen(yaml), "test.yaml", &d);
  CHECK(root && d.n == 0, "parse");
  sl_config_validate(root, &d);
  if (d.n) sl_diag_print(&d, stderr);
  CHECK(d.n == 0, "validate");
  sl_worker_t *w = sl_worker_new(0);
  sl_build_t b = {.worker = w, .diags = &d};
  const sl_cnode_t *streams = sl_cnode_get(root, "streams");
  sl_stream_t *s = sl_stream_build(&b, streams->items[0], streams->keys[0]);
  CHECK(s != NULL, "stream built");
  done_calls = 0;
  sl_stream_start(s, on_done, NULL);
  uv_run(w->loop, UV_RUN_DEFAULT);
  CHECK(done_calls == 1, "stream finished once (%d)", done_calls);
  CHECK(s->in_flight == 0, "nothing in flight at the end");
  if (after) after(s);
  sl_stream_free(s);
  sl_worker_free(w);
  sl_cnode_free(root);
  sl_diags_free(&d);
}

static void out_closed(sl_stream_t *s) {
  (void)s;
  CHECK(g_out->closed, "output closed on drain");
}

static void run_stream(const char *yaml) { run_stream_then(yaml, out_closed); }


static void test_stream_delivers_all(void) {
  run_stream("input: {t_in: {count: 200}}\nmax_in_flight: 7\noutput: {t_out: {}}\n");
  CHECK(g_out->delivered == 200, "delivered %d of 200", g_out->delivered);
  CHECK(g_in->max_seen_in_flight <= 7, "max_in_flight respected (%d)", g_in->max_seen_in_flight);
}

static void test_stream_retries(void) {
  run_stream("input: {t_in: {count: 5}}\nretry: {initial_interval: 1ms, max_interval: 2ms}\n"
             "output: {t_out: {fail_first: 3}}\n");
  CHECK(g_out->delivered == 5, "delivered after retries: %d", g_out->delivered);
  CHECK(g_out->writes == 5 + 3, "writes %d", g_out->writes);
}

static void test_stream_nack_reemits(void) {
  /* With max_retries the output gives up; the stream re-emits the kept copy. */
  run_stream("input: {t_in: {count: 2}}\nretry: {max_retries: 1, initial_interval: 1ms, max_interval: 1ms}\n"
             "output: {t_out: {fail_first: 3}}\n");
  CHECK(g_out->delivered == 2, "delivered after re-emit: %d", g_out->delivered);
}

/* ---- stopping: held writes are abandoned, not retried; the input closes last ---- */

/* Input: emits `count` one-message batches (acks counted), never ends by
 * itself; its close completes on a timer. */
typedef struct t_stop {
  sl_input_t base;
  int total, sent, acked, nacked, closes;
  int stream_done_before_close;
  uv_timer_t timer;
  void (*close_done)(sl_input_t *, void *);
  void *close_arg;
} t_stop_t;
static t_stop_t g_stop_store, *g_stop = &g_stop_store;

static void t_stop_ack(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t; (void)err;
  t_stop_t *ti = arg;
  if (status == 0) ti->acked++;
  else ti->nacked++;
}
static int t_stop_start(sl_input_t *in) {
  t_stop_t *ti = (t_stop_t *)in;
  uv_timer_init(in->worker->loop, &ti->timer);
  ti->timer.data = ti;
  while (ti->sent < ti->total && sl_input_ready(in)) {
    sl_batch_t *b = sl_batch_new(1);
    sl_batch_push(b, sl_msg_new("m", 1));
    ti->sent++;
    sl_input_emit_retry(in, b, t_stop_ack, ti);
  }
  return 0;
}
static void t_stop_closed(uv_timer_t *t) {
  t_stop_t *ti = t->data;
  ti->close_done(&ti->base, ti->close_arg);
}
static void t_stop_close(sl_input_t *in, void (*done)(sl_input_t *, void *), void *arg) {
  t_stop_t *ti = (t_stop_t *)in;
  ti->closes++;
  ti->close_done = done;
  ti->close_arg = arg;
  uv_timer_start(&ti->timer, t_stop_closed, 5, 0);
}
static void t_stop_destroy(sl_input_t *in) {
  t_stop_t *ti = (t_stop_t *)in;
  if (in->worker) uv_close((uv_handle_t *)&ti->timer, NULL);
}
static const sl_input_vt t_stop_vt = {t_stop_start, NULL, NULL, t_stop_destroy, t_stop_close, NULL};
static void *t_stop_create(sl_build_t *b, const sl_cnode_t *conf) {
  t_stop_t *ti = g_stop;
  memset(ti, 0, sizeof(*ti));
  sl_component_init_input(&ti->base, &t_stop_vt, NULL, b);
  ti->total = (int)sl_conf_int(conf, "count", 3);
  return ti;
}
static const sl_spec_t t_stop_spec = {"t_stop", SL_KIND_INPUT, "test input", NULL, t_in_fields, NULL, NULL, t_stop_create, 0, 0, 0};
SL_REGISTER(t_stop_spec)

/* Output that holds every write until the stream stops (a round_robin
 * http_server without clients), and fails its first write once. */
typedef struct t_hold {
  sl_output_t base;
  int writes, stopping, forgets;
  sl_batch_t *held[8]; sl_write_cb cbs[8]; void *args[8];
  int nheld;
} t_hold_t;
static t_hold_t g_hold_store, *g_hold = &g_hold_store;

static void t_hold_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  t_hold_t *to = (t_hold_t *)o;
  if (++to->writes == 1) { cb(o, b, -1, "first write fails", arg); return; }
  if (to->stopping || to->nheld == 8) { cb(o, b, SL_WRITE_ABANDONED, "stopping", arg); return; }
  to->held[to->nheld] = b; to->cbs[to->nheld] = cb; to->args[to->nheld++] = arg;
}
static void t_hold_stopping(sl_output_t *o) {
  t_hold_t *to = (t_hold_t *)o;
  to->stopping = 1;
  for (int i = 0; i < to->nheld; i++) to->cbs[i](o, to->held[i], SL_WRITE_ABANDONED, "stopping", to->args[i]);
  to->nheld = 0;
}
static void t_hold_forget(sl_output_t *o, sl_batch_t *b) { (void)b; ((t_hold_t *)o)->forgets++; }
static void t_hold_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) { done(o, arg); }
static void t_hold_destroy(sl_output_t *o) { (void)o; }
static const sl_output_vt t_hold_vt = {NULL, t_hold_write, t_hold_close, t_hold_destroy, t_hold_stopping, t_hold_forget};
static void *t_hold_create(sl_build_t *b, const sl_cnode_t *conf) {
  (void)conf;
  t_hold_t *to = g_hold;
  memset(to, 0, sizeof(*to));
  sl_component_init_output(&to->base, &t_hold_vt, NULL, b);
  return to;
}
static const sl_spec_t t_hold_spec = {"t_hold", SL_KIND_OUTPUT, "test output", NULL, NULL, NULL, NULL, t_hold_create, 0, 0, 0};
SL_REGISTER(t_hold_spec)

static sl_stream_t *g_stopped_stream;
static void stop_now(uv_timer_t *t) {
  sl_stream_stop(g_stopped_stream);
  uv_close((uv_handle_t *)t, NULL);
}
static void give_up(uv_timer_t *t) {
  CHECK(0, "the stream did not finish within 5 s of its stop");
  uv_stop(t->loop);
}
static void on_done_stop(sl_stream_t *s, void *arg) {
  (void)arg;
  done_calls++;
  g_stop->stream_done_before_close = g_stop->closes == 0;
  uv_stop(s->worker->loop);
}

static void test_stream_stopping_abandons_held(void) {
  const char *yaml = "input: {t_stop: {count: 3}}\nretry: {initial_interval: 1ms, max_interval: 1ms}\n"
                     "output: {t_hold: {}}\n";
  sl_diags_t d = {0};
  sl_cnode_t *root = sl_conf_parse(yaml, strlen(yaml), "test.yaml", &d);
  sl_config_validate(root, &d);
  CHECK(d.n == 0, "validate");
  sl_worker_t *w = sl_worker_new(0);
  sl_build_t b = {.worker = w, .diags = &d};
  const sl_cnode_t *streams = sl_cnode_get(root, "streams");
  sl_stream_t *s = sl_stream_build(&b, streams->items[0], streams->keys[0]);
  g_stopped_stream = s;
  done_calls = 0;
  sl_stream_start(s, on_done_stop, NULL);
  uv_timer_t stop, guard;
  uv_timer_init(w->loop, &stop);
  uv_timer_init(w->loop, &guard);
  uv_timer_start(&stop, stop_now, 50, 0);
  uv_timer_start(&guard, give_up, 5000, 0);
  uv_run(w->loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&guard, NULL);
  CHECK(done_calls == 1, "the stream finished after its stop (%d)", done_calls);
  CHECK(g_stop->nacked == 3 && g_stop->acked == 0, "every held batch went back unacknowledged: %d nacked, %d acked",
        g_stop->nacked, g_stop->acked);
  CHECK(g_hold->writes == 4, "abandoned writes are not retried: %d writes (3 and one retry)", g_hold->writes);
  CHECK(g_hold->forgets == 3, "the output was told to forget each abandoned batch: %d", g_hold->forgets);
  CHECK(g_stop->closes == 1 && !g_stop->stream_done_before_close, "the input closed once, before the stream ended");
  sl_stream_free(s);
  sl_worker_free(w);
  sl_cnode_free(root);
  sl_diags_free(&d);
}

/* ---- failed writes kept by batch: which messages failed, read once ---- */

static sl_kept_t *kept;
static sl_batch_t *outer_b, *inner_b;
static uint8_t seen[3];
static int seen_n, again_null, inner_null;

static void inner_cb(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)o; (void)status; (void)err; (void)arg;
  inner_null = sl_kept_failed(b) == NULL;
}

static void outer_cb(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)status; (void)err; (void)arg;
  /* a parent's own write failing inside the callback reports its own */
  sl_kept_fail_some(&kept, "inner", NULL, 0, o, inner_b, "inner failed", inner_cb, NULL);
  CHECK(sl_kept_take(&kept, inner_b) != NULL, "the inner write is kept");
  const uint8_t *f = sl_kept_failed(b);
  seen_n = f ? 3 : 0;
  if (f) memcpy(seen, f, 3);
  again_null = sl_kept_failed(b) == NULL;
}

static void test_kept(void) {
  outer_b = sl_batch_new(3);
  inner_b = sl_batch_new(1);
  for (int i = 0; i < 3; i++) sl_batch_push(outer_b, sl_msg_new("m", 1));
  uint8_t *state = sl_xcalloc(3, 1);   /* 0: delivered, as the output's own states say */
  state[1] = 7;
  sl_kept_fail_some(&kept, "outer", state, 0, NULL, outer_b, "one failed", outer_cb, NULL);
  free(state);
  CHECK(inner_null, "a write failed without saying which: all of it");
  CHECK(seen_n == 3 && !seen[0] && seen[1] && !seen[2], "the failed message, after a nested report");
  CHECK(again_null, "read once");
  CHECK(sl_kept_failed(outer_b) == NULL, "only while the callback runs");
  CHECK(sl_kept_take(&kept, outer_b) != NULL && sl_kept_pop(&kept) == NULL, "the outer write is kept");
  sl_batch_free(outer_b);
  sl_batch_free(inner_b);
}

/* An output's write with its own field after the kept part; states as
 * mqtt's: delivered 0, failed 1, unsent 2, in flight 3. */
typedef struct twrite {
  sl_kwrite_t kw;
  int own;
} twrite_t;

static int fails;
static void fail_cb(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)o; (void)b; (void)arg;
  fails += status == -1 && !strcmp(err, "no");
}

static void test_kept_write(void) {
  sl_kept_t *list = NULL;
  sl_batch_t *b = sl_batch_new(4);
  for (int i = 0; i < 4; i++) sl_batch_push(b, sl_msg_new("m", 1));
  twrite_t *w = sl_kept_write(&list, b, sizeof(*w), 2, 0, fail_cb, &fails);
  CHECK(w->kw.b == b && w->kw.cb == fail_cb && w->kw.arg == &fails && !w->kw.err && !w->own, "a new write, zeroed");
  CHECK(w->kw.state[0] == 2 && w->kw.state[3] == 2, "all its messages unsent");
  w->own = 5;
  memcpy(w->kw.state, (uint8_t[]){0, 1, 2, 0}, 4);
  w->kw.err = sl_xstrdup("no");
  sl_kept_write_fail(&list, w, 0, NULL);
  CHECK(fails == 1, "its failure reported");
  twrite_t *again = sl_kept_write(&list, b, sizeof(*w), 2, 0, NULL, NULL);
  CHECK(again == w && w->own == 5, "a retry: the kept write");
  CHECK(!memcmp(w->kw.state, (uint8_t[]){0, 2, 2, 0}, 4), "delivered stays delivered, the rest unsent");
  CHECK(!w->kw.err && !w->kw.cb && !w->kw.arg, "its error cleared, the new callback set");
  CHECK(sl_kept_take(&list, b) == NULL, "out of the list");
  sl_kept_write_free(w);
  sl_batch_free(b);
}

/* ---- pool workers write for an output that may write anywhere ---- */

/* Pass-through processor that may run on pool workers. */
static void t_pass_process(sl_processor_t *p, sl_batch_t *b) { sl_processor_emit(p, b); }
static void t_pass_destroy(sl_processor_t *p) { free(p); }
static const sl_processor_vt t_pass_vt = {t_pass_process, NULL, t_pass_destroy};
static const sl_spec_t t_pass_spec;
static void *t_pass_create(sl_build_t *b, const sl_cnode_t *conf) {
  (void)conf;
  sl_processor_t *p = calloc(1, sizeof(*p));
  sl_component_init_processor(p, &t_pass_vt, &t_pass_spec, b);
  return p;
}
static const sl_spec_t t_pass_spec = {.name = "t_pass", .kind = SL_KIND_PROCESSOR, .summary = "test pass-through",
                                      .create = t_pass_create, .pooled = 1};
SL_REGISTER(t_pass_spec)

/* Output that may write from any thread: counts writes by thread, fails the
 * first write it gets on a worker (which goes to the loop and is retried). */
typedef struct t_any {
  sl_output_t base;
  uv_thread_t loop_thread;
  int on_loop, on_worker, delivered, failed;   /* atomic */
} t_any_t;
static t_any_t g_any_store, *g_any = &g_any_store;
static void t_any_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  t_any_t *ta = (t_any_t *)o;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &ta->loop_thread)) {
    __atomic_add_fetch(&ta->on_loop, 1, __ATOMIC_SEQ_CST);
  } else {
    __atomic_add_fetch(&ta->on_worker, 1, __ATOMIC_SEQ_CST);
    if (__atomic_exchange_n(&ta->failed, 1, __ATOMIC_SEQ_CST) == 0) {
      cb(o, b, -1, "test failure", arg);
      return;
    }
  }
  __atomic_add_fetch(&ta->delivered, (int)b->n, __ATOMIC_SEQ_CST);
  cb(o, b, 0, NULL, arg);
}
static void t_any_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) { done(o, arg); }
static void t_any_destroy(sl_output_t *o) { (void)o; }
static const sl_output_vt t_any_vt = {NULL, t_any_write, t_any_close, t_any_destroy, NULL, NULL};
static const sl_spec_t t_any_spec;
static void *t_any_create(sl_build_t *b, const sl_cnode_t *conf) {
  (void)conf;
  t_any_t *ta = g_any;
  memset(ta, 0, sizeof(*ta));
  sl_component_init_output(&ta->base, &t_any_vt, &t_any_spec, b);
  ta->loop_thread = uv_thread_self();
  return ta;
}
static const sl_spec_t t_any_spec = {.name = "t_any", .kind = SL_KIND_OUTPUT, .summary = "test output, any thread",
                                     .create = t_any_create, .writes_anywhere = 1};
SL_REGISTER(t_any_spec)

static void has_pool(sl_stream_t *s) { CHECK(s->pool != NULL, "a pool runs the processors"); }

static void test_pool_writes_on_workers(void) {
  run_stream_then("input: {t_in: {count: 300}}\nmax_in_flight: 8\nretry: {initial_interval: 1ms, max_interval: 1ms}\n"
                  "pipeline: {threads: 2, processors: [{t_pass: {}}]}\noutput: {t_any: {}}\n",
                  has_pool);
  /* without the workers writing, every write is on the loop */
  CHECK(g_any->on_worker > 1, "batches written on the workers (%d)", g_any->on_worker);
  CHECK(g_any->on_loop == 1, "only the failed batch retried on the loop (%d)", g_any->on_loop);
  CHECK(g_any->delivered == 300, "delivered %d of 300", g_any->delivered);
}

int main(void) {
  RUN(test_kept);
  RUN(test_kept_write);
  RUN(test_dec);
  RUN(test_dlist);
  RUN(test_txn);
  RUN(test_kv);
  RUN(test_stream_delivers_all);
  RUN(test_stream_retries);
  RUN(test_stream_nack_reemits);
  RUN(test_stream_stopping_abandons_held);
  RUN(test_pool_writes_on_workers);
  return check_report("test_core");
}
