#include "stream.h"
#include "batching.h"
#include "blocks.h"
#include "log.h"
#include "loglimit.h"
#include "pool.h"
#include "metrics.h"
#include "section.h"
#include "trace.h"
#include "xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the stream remembers about each emitted batch until its txn completes. */
typedef struct emit_ctx {
  sl_stream_t *s;
  sl_chain_t *chain;         /* where its batch enters: the input's own processors, or the stream's */
  sl_txn_cb user_cb;
  void *user_arg;
  sl_batch_t *copy;          /* kept to re-emit on nack when the input cannot (keeps_copy) */
  int retry;                 /* the stream, not the input, answers for failures */
  uint32_t n;                /* messages emitted */
  int64_t attempt;
  uint64_t t0;               /* when the input emitted it: input_latency_ns */
  sl_spans_t *spans;         /* root spans of its sampled messages */
  uv_timer_t timer;
} emit_ctx_t;

typedef struct stream_impl {
  sl_stream_t pub;
  uv_idle_t kick;            /* deferred work: resume input, drain checks */
  int kick_active;
  int input_blocked;
  int flushed, closing, started;
  int in_open, out_open;     /* closing: input and output not closed yet */
  int64_t retry_timers;      /* re-emits waiting on their backoff */
} stream_impl_t;

/* n occurrences of a retry warning, rate-limited per stream. */
static void retry_warn(sl_stream_t *s, const char *component, const char *msg, const char *err) {
  if (!s->retry_log)
    s->retry_log = sl_loglimit_new(s->worker->loop, s->name, "more failed deliveries and writes were not logged");
  sl_loglimit_warn(s->retry_log, component, 1, msg, err ? err : "");
}

static void kick(sl_stream_t *s);

/* ---- inputs ---- */

int sl_input_ready(sl_input_t *in) {
  sl_stream_t *s = in->stream;
  if (!s || s->stopping) return 0;
  if (s->in_flight < s->max_in_flight) return 1;
  ((stream_impl_t *)s)->input_blocked = 1;
  return 0;
}

static int64_t backoff_ms(const sl_retry_policy_t *p, int64_t attempt) {
  int64_t d = p->initial_ms > 0 ? p->initial_ms : 1;
  for (int64_t i = 1; i < attempt && d < p->max_ms; i++) d *= 2;
  return d < p->max_ms ? d : p->max_ms;
}

static void push_under_txn(emit_ctx_t *ec, sl_batch_t *b);

static void emit_ctx_free(emit_ctx_t *ec) {
  sl_trace_end(ec->spans, 1, 0);   /* abandoned at shutdown while waiting to be re-sent */
  sl_batch_free(ec->copy);
  sl_blocks_put(ec, sizeof(*ec));
}

static void reemit_timer_closed(uv_handle_t *h) {
  emit_ctx_t *ec = h->data;
  stream_impl_t *si = (stream_impl_t *)ec->s;
  si->retry_timers--;
  if (ec->copy) {
    sl_batch_t *again = sl_batch_clone(ec->copy);
    si->flushed = 0;   /* the re-emitted batch may be held by processors again */
    push_under_txn(ec, again);
  } else {
    emit_ctx_free(ec);
  }
  kick(&si->pub);
}

static void reemit_timer_fired(uv_timer_t *t) {
  uv_close((uv_handle_t *)t, reemit_timer_closed);
}

static void on_txn_done(sl_txn_t *t, int status, const char *err, void *arg) {
  emit_ctx_t *ec = arg;
  sl_stream_t *s = ec->s;
  stream_impl_t *si = (stream_impl_t *)s;
  if (status != 0 && ec->copy && !s->stopping &&
      (s->retry.max_retries == 0 || ec->attempt < s->retry.max_retries)) {
    ec->attempt++;
    int64_t d = backoff_ms(&s->retry, ec->attempt);
    char msg[64];
    snprintf(msg, sizeof msg, "delivery failed, re-sending in %lld ms", (long long)d);
    retry_warn(s, s->input ? s->input->label : NULL, msg, err);
    si->retry_timers++;
    uv_timer_init(s->worker->loop, &ec->timer);
    ec->timer.data = ec;
    uv_timer_start(&ec->timer, reemit_timer_fired, (uint64_t)d, 0);
    return;
  }
  if (status != 0 && ec->retry)
    sl_logf(SL_LOG_ERROR, s->name, s->input ? s->input->label : NULL,
            "%u message(s) could not be delivered: %s", ec->n, err ? err : "");
  s->in_flight--;
  if (s->m_in.latency) sl_histo_observe(s->m_in.latency, sl_now_ns() - ec->t0);
  sl_trace_end(ec->spans, status != 0, 0);
  ec->spans = NULL;
  if (ec->user_cb) ec->user_cb(t, status, err, ec->user_arg);
  emit_ctx_free(ec);
  kick(s);
}

static void push_under_txn(emit_ctx_t *ec, sl_batch_t *b) {
  sl_txn_t *t = sl_txn_new(on_txn_done, ec);
  for (uint32_t i = 0; i < b->n; i++) sl_msg_set_txn(b->msgs[i], t);
  sl_chain_t *c = ec->chain;
  if (b->n) c->sink.push(&c->sink, b);
  else sl_batch_free_shell(b);
  sl_txn_unref(t);
}

/* A write fails while the stream runs only when the retry policy gives up
 * or the output answers for failures itself (a wrapper such as
 * reject_errored); otherwise the output retries the same batch until it
 * succeeds, a failure comes only at shutdown, and a copy would never be
 * re-sent (it was a tenth of a Kafka producer's loop thread). */
static int keeps_copy(const sl_stream_t *s) { return s->retry.max_retries > 0 || s->output->no_retry; }

static void emit(sl_input_t *in, sl_batch_t *b, sl_txn_cb ack_cb, void *arg, int retry) {
  sl_stream_t *s = in->stream;
  emit_ctx_t *ec = sl_blocks_zero(sizeof(*ec));   /* as retry_req_t and out_write_t: one a batch */
  ec->s = s;
  ec->chain = in->chain ? in->chain : s->chain;
  ec->user_cb = ack_cb;
  ec->user_arg = arg;
  if (s->m_in.received) {
    *s->m_in.received += b->n;
    ec->t0 = sl_now_ns();
  }
  if (s->ctx)
    for (uint32_t i = 0; i < b->n; i++)
      if (!b->msgs[i]->ctx) sl_msg_set_ctx(b->msgs[i], s->ctx);
  if (sl_tracing()) ec->spans = sl_trace_begin(s->t_in, b);   /* before the copy: re-sends keep the ids */
  ec->retry = retry;
  ec->n = b->n;
  if (retry && keeps_copy(s)) ec->copy = sl_batch_clone(b);
  s->in_flight++;
  push_under_txn(ec, b);
  if (s->in_flight >= s->max_in_flight) kick(s);   /* full: on_kick sees whether a batch holds it up */
}

void sl_input_emit(sl_input_t *in, sl_batch_t *b, sl_txn_cb ack_cb, void *arg) { emit(in, b, ack_cb, arg, !ack_cb); }

void sl_input_emit_retry(sl_input_t *in, sl_batch_t *b, sl_txn_cb ack_cb, void *arg) { emit(in, b, ack_cb, arg, 1); }

void sl_input_eof(sl_input_t *in) {
  in->eof = 1;
  if (in->parent) {
    in->parent->eof(in->parent, in);
  } else if (in->stream) {
    in->stream->input_done = 1;
    kick(in->stream);
  }
}

static void connected_changed(sl_stream_t *s) {
  if (!s->not_ready && !s->out_not_ready && s->on_connected) s->on_connected(s, s->on_connected_arg);
}

/* Inputs and outputs report per message (Kafka's delivery reports): only
 * a change of state does anything. */
void sl_input_set_connected(sl_input_t *in, int connected, const char *why) {
  if (in->parent) {
    in->parent->connected(in->parent, in, connected, why);
    return;
  }
  sl_stream_t *s = in->stream;
  if (!s || (connected && !s->not_ready)) return;
  free(s->not_ready);
  s->not_ready = connected ? NULL : sl_xstrdup(why ? why : "input not connected");
  connected_changed(s);
}

void sl_output_set_connected(sl_output_t *o, int connected, const char *why) {
  sl_stream_t *s = o->stream;
  if (!s || (connected && !s->out_not_ready)) return;
  free(s->out_not_ready);
  s->out_not_ready = connected ? NULL : sl_xstrdup(why ? why : "output not connected");
  connected_changed(s);
}

/* ---- outputs with retries ---- */

typedef struct retry_req {
  sl_output_t *o;
  sl_retry_policy_t p;
  int once;                  /* no policy: one attempt */
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  int64_t attempt;
  uv_timer_t timer;
} retry_req_t;

static void retry_write(retry_req_t *r);

static void retry_closed(uv_handle_t *h) { retry_write(h->data); }
static void retry_fired(uv_timer_t *t) { uv_close((uv_handle_t *)t, retry_closed); }

static void retry_done(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  retry_req_t *r = arg;
  if (status == 0 || status == SL_WRITE_ABANDONED || r->once || (r->p.max_retries && r->attempt >= r->p.max_retries)) {
    if (status != 0 && o->vt->forget) o->vt->forget(o, b);
    sl_write_cb cb = r->cb;
    void *cb_arg = r->arg;
    sl_blocks_put(r, sizeof(*r));
    cb(o, b, status, err, cb_arg);
    return;
  }
  r->attempt++;
  int64_t d = backoff_ms(&r->p, r->attempt);
  char msg[80];
  snprintf(msg, sizeof msg, "write failed (attempt %lld), retrying in %lld ms", (long long)r->attempt, (long long)d);
  if (o->stream) retry_warn(o->stream, o->label, msg, err);
  else sl_logf(SL_LOG_WARN, NULL, o->label, "%s: %s", msg, err ? err : "");
  uv_timer_init(o->worker->loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, retry_fired, (uint64_t)d, 0);
}

static void retry_write(retry_req_t *r) { r->o->vt->write(r->o, r->b, retry_done, r); }

void sl_output_write_retry(sl_output_t *o, const sl_retry_policy_t *p, sl_batch_t *b,
                           sl_write_cb cb, void *arg) {
  int once = o->no_retry || !p;
  if (once && !o->vt->forget) {
    o->vt->write(o, b, cb, arg);
    return;
  }
  retry_req_t *r = sl_blocks_zero(sizeof(*r));
  r->o = o;
  if (p) r->p = *p;
  r->once = once;
  r->b = b;
  r->cb = cb;
  r->arg = arg;
  retry_write(r);
}

typedef struct out_write { sl_stream_t *s; uint64_t t0; sl_spans_t *spans; } out_write_t;

static void on_written(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)o;
  out_write_t *w = arg;
  sl_stream_t *s = w->s;
  s->pending_writes--;
  if (s->m_out.sent) {
    *(status == 0 ? s->m_out.sent : s->m_out.error) += b->n;
    sl_histo_observe(s->m_out.latency, sl_now_ns() - w->t0);
  }
  sl_trace_end(w->spans, status != 0, 0);
  sl_blocks_put(w, sizeof(*w));
  if (status == 0) sl_batch_free(b);
  else sl_batch_fail(b, err);
  kick(s);
}

static void out_push(sl_sink_t *sink, sl_batch_t *b) {
  sl_stream_t *s = (sl_stream_t *)((char *)sink - offsetof(sl_stream_t, out_sink));
  s->pending_writes++;
  out_write_t *w = sl_blocks_get(sizeof(*w));
  *w = (out_write_t){s, s->m_out.sent ? sl_now_ns() : 0, sl_tracing() ? sl_trace_begin(s->t_out, b) : NULL};
  sl_output_write_retry(s->output, &s->retry, b, on_written, w);
}

/* ---- lifecycle ---- */

static void maybe_stopped(sl_stream_t *s) {
  stream_impl_t *si = (stream_impl_t *)s;
  if (si->in_open || si->out_open) return;
  s->stopped = 1;
  sl_logf(SL_LOG_DEBUG, s->name, NULL, "stream stopped");
  if (s->on_done) s->on_done(s, s->on_done_arg);
}

static void on_output_closed(sl_output_t *o, void *arg) {
  (void)o;
  ((stream_impl_t *)arg)->out_open = 0;
  maybe_stopped(arg);
}

static void on_input_closed(sl_input_t *in, void *arg) {
  (void)in;
  ((stream_impl_t *)arg)->in_open = 0;
  maybe_stopped(arg);
}

/* Input and output close side by side: every transaction has completed, so
 * what the input settles with its source (offsets) is final. */
static void close_ends(sl_stream_t *s) {
  stream_impl_t *si = (stream_impl_t *)s;
  si->closing = 1;
  si->in_open = s->input->vt->close != NULL;
  si->out_open = 1;
  if (si->in_open) s->input->vt->close(s->input, on_input_closed, s);
  s->output->vt->close(s->output, on_output_closed, s);
}

void sl_stream_describe(const sl_stream_t *s, char *buf, size_t cap) {
  const stream_impl_t *si = (const stream_impl_t *)s;
  if (si->closing)
    snprintf(buf, cap, "closing its %s%s%s", si->in_open ? "input" : "", si->in_open && si->out_open ? " and " : "",
             si->out_open ? "output" : "");
  else
    snprintf(buf, cap, "%lld transaction(s) open, %lld write(s) waiting for the output, %lld retry timer(s)",
             (long long)s->in_flight, (long long)s->pending_writes, (long long)si->retry_timers);
}

static void flush_processors(sl_stream_t *s) {
  sl_chain_flush(s->chain);
  if (s->pool) sl_pool_flush(s->pool);
}

static void on_kick(uv_idle_t *h) {
  stream_impl_t *si = h->data;
  sl_stream_t *s = &si->pub;
  uv_idle_stop(h);
  si->kick_active = 0;
  if (si->input_blocked && !s->stopping && s->in_flight < s->max_in_flight) {
    si->input_blocked = 0;
    if (s->input->vt->resume) s->input->vt->resume(s->input);
  }
  /* Every transaction the stream admits is open and nothing is being
   * written: what batches hold can only wait for messages that cannot come
   * (a count above what max_in_flight lets in), so it goes now. */
  if (!s->stopping && !s->input_done && s->in_flight >= s->max_in_flight && s->pending_writes == 0 &&
      si->retry_timers == 0)
    flush_processors(s);
  if (!(s->input_done || s->stopping) || si->closing) return;
  if (!si->flushed) {
    si->flushed = 1;
    flush_processors(s);
  }
  if (s->in_flight == 0 && s->pending_writes == 0 && si->retry_timers == 0) close_ends(s);
}

static void kick(sl_stream_t *s) {
  stream_impl_t *si = (stream_impl_t *)s;
  if (si->kick_active || !si->started) return;
  si->kick_active = 1;
  uv_idle_start(&si->kick, on_kick);
}

static void push_all(sl_cnode_t *seq, const sl_cnode_t *list) {
  if (list && list->type == SL_CN_SEQ)
    for (uint32_t j = 0; j < list->n; j++) sl_cnode_seq_push(seq, sl_cnode_dup(list->items[j]));
}

/* The `batching` of the stream's input or output, as processors. */
static int batching(const sl_cnode_t *wrapper, sl_kind_t kind, sl_cnode_t *seq, sl_diags_t *d) {
  const sl_cnode_t *body = NULL;
  const char *name = wrapper ? sl_component_name(wrapper, &body) : NULL;
  return name ? sl_batching_stages(sl_registry_find(kind, name), body, seq, d) : 0;
}

/* Input and output may carry their own processors and batch policies
 * (Benthos shape): the input's batching, then its processors, run before
 * the pipeline's; the output's processors, then its batching, after. NULL
 * (with diags) when a batch policy is refused. */
static sl_cnode_t *all_processors(const sl_cnode_t *node, sl_diags_t *d) {
  const sl_cnode_t *input = sl_cnode_get(node, "input");
  const sl_cnode_t *pipeline = sl_cnode_get(node, "pipeline");
  const sl_cnode_t *output = sl_cnode_get(node, "output");
  sl_cnode_t *seq = sl_cnode_new(SL_CN_SEQ, node);
  int bad = batching(input, SL_KIND_INPUT, seq, d);
  push_all(seq, input ? sl_cnode_get(input, "processors") : NULL);
  push_all(seq, pipeline ? sl_cnode_get(pipeline, "processors") : NULL);
  push_all(seq, output ? sl_cnode_get(output, "processors") : NULL);
  bad |= batching(output, SL_KIND_OUTPUT, seq, d);
  if (bad) {
    sl_cnode_free(seq);
    return NULL;
  }
  return seq;
}

/* The end of the stream's (empty) chain when a pool runs the processors:
 * batches go to a worker a transaction at a time (the inputs of a broker
 * input run their own chains into it, so a batch may mix them). */
static void pool_entry(sl_sink_t *sink, sl_batch_t *b) {
  sl_stream_t *s = (sl_stream_t *)((char *)sink - offsetof(sl_stream_t, pool_entry));
  uint32_t from = 0;
  while (from < b->n) {
    sl_txn_t *t = b->msgs[from]->txn;
    uint32_t to = from + 1;
    while (to < b->n && b->msgs[to]->txn == t) to++;
    if (from == 0 && to == b->n) {
      sl_pool_push(s->pool, b, t);
      return;
    }
    sl_batch_t *run = sl_batch_new(to - from);
    for (uint32_t i = from; i < to; i++) sl_batch_push(run, b->msgs[i]);
    sl_pool_push(s->pool, run, t);
    from = to;
  }
  sl_batch_free_shell(b);
}

/* How many pool workers run the processors: one per core by default, 1
 * (none) on one core, when asked for, or unless every processor of the
 * chain may run as copies side by side. */
static int pool_size(const sl_build_t *b, const sl_cnode_t *node, const sl_cnode_t *procs, const char *name) {
  /* A request-scoped instance (there may be thousands) stays on the loop. */
  if (!b->worker || b->lint_only || b->mounted || !procs->n) return 1;
  const sl_cnode_t *t = sl_cnode_get(sl_cnode_get(node, "pipeline"), "threads");
  const char *env = getenv("SLUICE_THREADS");
  int64_t n = t && !t->synthetic ? sl_conf_int(sl_cnode_get(node, "pipeline"), "threads", -1) : env ? atoll(env) : -1;
  if (n <= 0) n = (int64_t)uv_available_parallelism();
  if (n > 256) n = 256;
  if (n <= 1) return 1;
  for (uint32_t i = 0; i < procs->n; i++) {
    const char *kind = sl_component_name(procs->items[i], NULL);
    const sl_spec_t *spec = kind ? sl_registry_find(SL_KIND_PROCESSOR, kind) : NULL;
    if (!spec || !spec->pooled) {
      sl_logf(SL_LOG_DEBUG, name, NULL, "pipeline.threads: the processors run on the stream's loop (%s)",
              kind ? kind : "?");
      return 1;
    }
  }
  return (int)n;
}

/* One chain per pool worker, built on that worker (its Lua VM). Problems
 * are the same for every copy: the first reports them. */
static int build_pool(sl_stream_t *s, sl_build_t *b, const sl_cnode_t *procs, const char *path, int n, int ordered) {
  s->pool = sl_pool_new(b->worker, n, ordered, &s->out_sink);
  unsigned counted = b->processors;
  for (int i = 0; i < n; i++) {
    sl_build_t wb = *b;
    wb.worker = sl_pool_worker(s->pool, i);
    wb.processors = counted;
    sl_chain_t *c = sl_chain_build(&wb, procs, path);
    if (!c) return -1;
    sl_pool_set_chain(s->pool, i, c);
    b->processors = wb.processors;
  }
  return 0;
}

sl_stream_t *sl_stream_build(sl_build_t *b, const sl_cnode_t *node, const char *name) {
  stream_impl_t *si = sl_xcalloc(1, sizeof(*si));
  sl_stream_t *s = &si->pub;
  s->name = sl_xstrdup(name);
  s->worker = b->worker;
  s->max_in_flight = sl_conf_int(node, "max_in_flight", 64);
  if (s->max_in_flight < 1) s->max_in_flight = 1;
  const sl_cnode_t *retry = sl_cnode_get(node, "retry");
  s->retry.max_retries = sl_conf_int(retry, "max_retries", 0);
  s->retry.initial_ms = sl_conf_duration_ms(retry, "initial_interval", 100);
  s->retry.max_ms = sl_conf_duration_ms(retry, "max_interval", 5000);
  s->out_sink.push = out_push;
  s->pool_entry.push = pool_entry;
  if (b->worker && !b->lint_only) sl_sections_apply_stream(b->worker, node, name);
  const char *saved_stream = b->stream_name;
  b->stream_name = s->name;
  char *p_in = sl_xasprintf("streams.%s.input", name);
  char *p_proc = sl_xasprintf("streams.%s.pipeline.processors", name);
  char *p_out = sl_xasprintf("streams.%s.output", name);
  b->top_level = 1;
  s->input = sl_build_input(b, sl_cnode_get(node, "input"), p_in);
  b->top_level = 0;
  sl_cnode_t *procs = all_processors(node, b->diags);
  int threads = procs ? pool_size(b, node, procs, name) : 1;
  if (threads > 1 && build_pool(s, b, procs, p_proc, threads,
                                sl_conf_bool(sl_cnode_get(node, "pipeline"), "ordered", 1)) == 0)
    s->chain = sl_chain_build(b, NULL, p_proc);   /* empty: its end is the pool (pool_entry) */
  else if (threads <= 1)
    s->chain = procs ? sl_chain_build(b, procs, p_proc) : NULL;
  sl_cnode_free(procs);
  b->top_level = 1;
  s->output = sl_build_output(b, sl_cnode_get(node, "output"), p_out);
  b->top_level = 0;
  b->stream_name = saved_stream;
  if (s->input && s->output && b->worker && !b->lint_only) {
    sl_cmetrics_init(&s->m_in, SL_CM_INPUT, name, s->input->label, p_in);
    sl_cmetrics_init(&s->m_out, SL_CM_OUTPUT, name, s->output->label, p_out);
    s->t_in = sl_trace_site(SL_TS_INPUT, name, s->input->label, s->input->spec->name, p_in);
    s->t_out = sl_trace_site(SL_TS_OUTPUT, name, s->output->label, s->output->spec->name, p_out);
  }
  free(p_in); free(p_proc); free(p_out);
  if (!s->input || !s->chain || !s->output) {
    sl_stream_free(s);
    return NULL;
  }
  return s;
}

int sl_stream_start(sl_stream_t *s, void (*on_done)(sl_stream_t *, void *), void *arg) {
  stream_impl_t *si = (stream_impl_t *)s;
  s->on_done = on_done;
  s->on_done_arg = arg;
  uv_idle_init(s->worker->loop, &si->kick);
  si->kick.data = si;
  si->started = 1;
  s->input->stream = s;
  s->output->stream = s;
  if (s->pool) sl_pool_start(s->pool, s);
  sl_chain_connect(s->chain, s->pool ? &s->pool_entry : &s->out_sink, s);
  if (s->output->vt->start && s->output->vt->start(s->output) != 0) {
    sl_logf(SL_LOG_ERROR, s->name, s->output->label, "output failed to start");
    return -1;
  }
  if (s->input->vt->start(s->input) != 0) {
    sl_logf(SL_LOG_ERROR, s->name, s->input->label, "input failed to start");
    return -1;
  }
  sl_logf(SL_LOG_DEBUG, s->name, NULL, "stream started");
  return 0;
}

void sl_stream_stop(sl_stream_t *s) {
  if (s->stopping) return;
  s->stopping = 1;
  if (s->input && s->input->vt->stop) s->input->vt->stop(s->input);
  if (s->output && s->output->vt->stopping) s->output->vt->stopping(s->output);
  kick(s);
}

static void stream_mem_free(uv_handle_t *h) {
  stream_impl_t *si = h->data;
  free(si);
}

void sl_stream_free(sl_stream_t *s) {
  if (!s) return;
  stream_impl_t *si = (stream_impl_t *)s;
  sl_pool_free(s->pool);   /* first: what it still holds may complete transactions */
  sl_input_destroy(s->input);
  sl_chain_free(s->chain);
  sl_output_destroy(s->output);
  free(s->name);
  free(s->not_ready);
  free(s->out_not_ready);
  sl_ctx_unref(s->ctx);
  sl_loglimit_free(s->retry_log);
  if (si->started) uv_close((uv_handle_t *)&si->kick, stream_mem_free);
  else free(si);
}
