#include "component.h"
#include "batching.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "stream.h"
#include "trace.h"
#include "xalloc.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void *build(sl_build_t *b, sl_kind_t kind, const sl_cnode_t *wrapper, const char *path,
                   const sl_spec_t **spec_out, const char **label_out) {
  const sl_cnode_t *body = NULL;
  const char *name = sl_component_name(wrapper, &body);
  const sl_spec_t *spec = name ? sl_registry_find(kind, name) : NULL;
  if (!spec) {
    sl_diag_add(b->diags, wrapper, path, "no %s component here", sl_kind_name(kind));
    return NULL;
  }
  const sl_cnode_t *procs = sl_cnode_get(wrapper, "processors");
  if (procs && procs->type == SL_CN_SEQ && procs->n && !b->top_level) {
    sl_diag_add(b->diags, procs, path,
                "processors are allowed on the stream's own input and output only; "
                "move them to pipeline.processors or into a switch case");
    return NULL;
  }
  if (!b->top_level && sl_cnode_get(body, "batching") && sl_batching_generic(spec)) {
    sl_diag_add(b->diags, sl_cnode_get(body, "batching"), path,
                "batching is applied on the stream's own input and output (or by a parent that has its own "
                "`batching`): move it there, or use a `batch` processor");
    return NULL;
  }
  /* Children a component builds (a fallback's outputs) are not the stream's own. */
  const char *saved = b->path;
  int top = b->top_level;
  b->path = path;
  b->top_level = 0;
  void *inst = spec->create(b, body);
  b->path = saved;
  b->top_level = top;
  *spec_out = spec;
  const sl_cnode_t *label = sl_cnode_get(wrapper, "label");
  *label_out = label && label->str ? label->str : NULL;
  return inst;
}

sl_input_t *sl_build_input(sl_build_t *b, const sl_cnode_t *wrapper, const char *path) {
  const sl_spec_t *spec;
  const char *label;
  sl_input_t *in = build(b, SL_KIND_INPUT, wrapper, path, &spec, &label);
  if (!in) return NULL;
  in->spec = spec;
  in->label = sl_xstrdup(label ? label : spec->name);
  return in;
}

sl_output_t *sl_build_output(sl_build_t *b, const sl_cnode_t *wrapper, const char *path) {
  const sl_spec_t *spec;
  const char *label;
  sl_output_t *o = build(b, SL_KIND_OUTPUT, wrapper, path, &spec, &label);
  if (!o) return NULL;
  o->spec = spec;
  o->label = sl_xstrdup(label ? label : spec->name);
  return o;
}

sl_processor_t *sl_build_processor(sl_build_t *b, const sl_cnode_t *wrapper, const char *path) {
  const sl_spec_t *spec;
  const char *label;
  sl_processor_t *p = build(b, SL_KIND_PROCESSOR, wrapper, path, &spec, &label);
  if (!p) return NULL;
  p->spec = spec;
  p->label = sl_xstrdup(label ? label : spec->name);
  return p;
}

void sl_component_init_input(sl_input_t *in, const sl_input_vt *vt, const sl_spec_t *s, sl_build_t *b) {
  memset(in, 0, sizeof(*in));
  in->vt = vt;
  in->spec = s;
  in->worker = b->worker;
}

void sl_component_init_processor(sl_processor_t *p, const sl_processor_vt *vt, const sl_spec_t *s, sl_build_t *b) {
  memset(p, 0, sizeof(*p));
  p->vt = vt;
  p->spec = s;
  p->worker = b->worker;
}

void sl_component_init_output(sl_output_t *o, const sl_output_vt *vt, const sl_spec_t *s, sl_build_t *b) {
  memset(o, 0, sizeof(*o));
  o->vt = vt;
  o->spec = s;
  o->worker = b->worker;
}

void sl_input_destroy(sl_input_t *in) {
  if (!in) return;
  char *label = in->label;
  in->vt->destroy(in);
  free(label);
}

void sl_processor_destroy(sl_processor_t *p) {
  if (!p) return;
  char *label = p->label;
  p->vt->destroy(p);
  free(label);
}

void sl_output_destroy(sl_output_t *o) {
  if (!o) return;
  char *label = o->label;
  o->vt->destroy(o);
  free(label);
}

char *sl_build_path(const sl_build_t *b, const char *p) {
  if (p[0] == '/' || !b->config_dir || !*b->config_dir) return sl_xstrdup(p);
  return sl_xasprintf("%s/%s", b->config_dir, p);
}

/* ---- processor chains ---- */

/* A link feeds one processor and sees what it passes on, for its Benthos
 * metrics. Processors call the next one synchronously, so the time spent
 * downstream is subtracted from the processor's latency. */
typedef struct link {
  sl_sink_t sink;            /* into the processor */
  sl_sink_t out;             /* the processor's p->next: counted, then forwarded */
  sl_processor_t *p;
  sl_sink_t *next;
  sl_cmetrics_t m;           /* zeroed when only linting (nothing runs then) */
  const sl_trace_site_t *site;
  int64_t *lua_errors;       /* sluice_lua_errors_total, for lua processors */
  int in_call;
  int64_t call_errors;       /* flagged messages pushed on during the current call */
  uint64_t downstream_ns;
  struct pooled *pooled;     /* on a pool worker: m and lua_errors point here */
} link_t;

/* A pool worker's link counts into its own series, and a collector on the
 * stream's loop adds what is new to the shared ones before every scrape:
 * the hot path stays a plain add on a line no other thread writes. */
typedef struct pooled {
  sl_cmetrics_t shared;
  int64_t *lua_errors;       /* shared; NULL unless a lua processor */
  int64_t received, sent, error, lua_err;
  sl_histo_t latency;
  int64_t seen[4];           /* what was added to the shared series already */
  sl_histo_t seen_latency;
} pooled_t;

static void add_new(int64_t *to, int64_t *from, int64_t *seen) {
  int64_t now = SL_READ(from);
  if (to) SL_COUNT(to, now - *seen);
  *seen = now;
}

static void collect_link(void *arg) {
  pooled_t *p = arg;
  add_new(p->shared.received, &p->received, &p->seen[0]);
  add_new(p->shared.sent, &p->sent, &p->seen[1]);
  add_new(p->shared.error, &p->error, &p->seen[2]);
  add_new(p->lua_errors, &p->lua_err, &p->seen[3]);
  for (unsigned i = 0; i <= SL_HISTO_BUCKETS; i++)
    add_new((int64_t *)&p->shared.latency->bucket[i], (int64_t *)&p->latency.bucket[i],
            (int64_t *)&p->seen_latency.bucket[i]);
  add_new((int64_t *)&p->shared.latency->count, (int64_t *)&p->latency.count, (int64_t *)&p->seen_latency.count);
  add_new((int64_t *)&p->shared.latency->sum, (int64_t *)&p->latency.sum, (int64_t *)&p->seen_latency.sum);
}

static void link_pool(link_t *l) {
  pooled_t *p = sl_xcalloc(1, sizeof(*p));
  p->shared = l->m;
  p->lua_errors = l->lua_errors;
  l->m = (sl_cmetrics_t){&p->received, &p->sent, &p->error, &p->latency};
  if (l->lua_errors) l->lua_errors = &p->lua_err;
  l->pooled = p;
  sl_metrics_collector_add(collect_link, p);
}

typedef struct chain_impl {
  sl_chain_t pub;
  link_t *links;
} chain_impl_t;

static int64_t count_errors(const sl_batch_t *b) {
  int64_t n = 0;
  for (uint32_t i = 0; i < b->n; i++) n += b->msgs[i]->error != NULL;
  return n;
}

sl_scope_save_t sl_processor_scope(const sl_processor_t *p, const sl_batch_t *b) {
  sl_scope_save_t s = {sl_log_scope, NULL};
  sl_log_scope = (sl_log_scope_t){p->stream ? p->stream->name : NULL, p->label, sl_pool_hold(b, &s.pin)};
  return s;
}

void sl_processor_scope_end(sl_scope_save_t s) {
  sl_log_scope = s.saved;
  if (s.pin) sl_txn_unref(s.pin);
}

static void link_push(sl_sink_t *s, sl_batch_t *b) {
  link_t *l = (link_t *)s;
  if (b->n == 0) { sl_batch_free_shell(b); return; }
  sl_scope_save_t scope = sl_processor_scope(l->p, b);
  sl_spans_t *spans = sl_tracing() ? sl_trace_begin(l->site, b) : NULL;
  SL_COUNT(l->m.received, b->n);
  /* Errors the processor added: those it passed on minus those it was given
   * (a `catch` clearing them adds none). */
  int64_t before = count_errors(b);
  int outer = l->in_call;
  l->in_call = 1;
  l->call_errors = 0;
  l->downstream_ns = 0;
  uint64_t t0 = sl_now_ns();
  l->p->vt->process(l->p, b);
  sl_histo_observe(l->m.latency, sl_now_ns() - t0 - l->downstream_ns);
  sl_processor_scope_end(scope);
  l->in_call = outer;
  int64_t added = l->call_errors > before ? l->call_errors - before : 0;
  sl_trace_end(spans, added > 0, l->downstream_ns);
  SL_COUNT(l->m.error, added);
  if (l->lua_errors) SL_COUNT(l->lua_errors, added);
}

static void link_out(sl_sink_t *s, sl_batch_t *b) {
  link_t *l = (link_t *)((char *)s - offsetof(link_t, out));
  SL_COUNT(l->m.sent, b->n);
  if (!l->in_call) {
    SL_COUNT(l->m.error, l->p->late_errors);
    if (l->lua_errors) SL_COUNT(l->lua_errors, l->p->late_errors);
    l->next->push(l->next, b);
    return;
  }
  l->call_errors += count_errors(b);
  uint64_t t0 = sl_now_ns();
  l->next->push(l->next, b);
  l->downstream_ns += sl_now_ns() - t0;
}

static void chain_push(sl_sink_t *s, sl_batch_t *b) {
  sl_chain_t *c = (sl_chain_t *)s;
  if (c->n) link_push(&((chain_impl_t *)c)->links[0].sink, b);
  else c->out->push(c->out, b);
}

sl_chain_t *sl_chain_build(sl_build_t *b, const sl_cnode_t *seq, const char *path) {
  chain_impl_t *c = sl_xcalloc(1, sizeof(*c));
  c->pub.sink.push = chain_push;
  unsigned n = seq && seq->type == SL_CN_SEQ ? seq->n : 0;
  c->pub.procs = sl_xcalloc(n ? n : 1, sizeof(*c->pub.procs));
  c->links = sl_xcalloc(n ? n : 1, sizeof(*c->links));
  int failed = 0;
  for (unsigned i = 0; i < n; i++) {
    char *p = sl_xasprintf("%s.%u", path, i);
    if (++b->processors > SL_MAX_PROCESSORS) {
      sl_diag_add(b->diags, seq->items[i], p, "a stream holds at most %d processors (each one calls the next on the stack)",
                  SL_MAX_PROCESSORS);
      free(p);
      failed = 1;
      break;
    }
    sl_processor_t *proc = sl_build_processor(b, seq->items[i], p);
    if (!proc) { failed = 1; free(p); continue; }
    link_t *l = &c->links[c->pub.n];
    l->sink.push = link_push;
    l->out.push = link_out;
    l->p = proc;
    if (b->worker && !b->lint_only) {
      const char *st = b->stream_name ? b->stream_name : "";
      sl_cmetrics_init(&l->m, SL_CM_PROCESSOR, st, proc->label, p);
      l->site = sl_trace_site(SL_TS_PROCESSOR, st, proc->label, proc->spec->name, p);
      if (!strcmp(proc->spec->name, "lua")) {
        char *sn = sl_xstrndup(st, strcspn(st, "{"));
        l->lua_errors = sl_metric(SL_COUNTER, "sluice_lua_errors_total", "Messages a Lua processor flagged as failed.",
                                  "stream", sn, "label", proc->label, NULL);
        free(sn);
      }
      if (b->worker->parent) link_pool(l);
    }
    free(p);
    c->pub.procs[c->pub.n++] = proc;
  }
  if (failed) {
    sl_chain_free(&c->pub);
    return NULL;
  }
  return &c->pub;
}

void sl_chain_connect(sl_chain_t *pub, sl_sink_t *out, sl_stream_t *stream) {
  chain_impl_t *c = (chain_impl_t *)pub;
  pub->out = out;
  for (unsigned i = 0; i < pub->n; i++) {
    pub->procs[i]->stream = stream;
    pub->procs[i]->next = &c->links[i].out;
    c->links[i].next = i + 1 < pub->n ? &c->links[i + 1].sink : out;
  }
}

void sl_chain_flush(sl_chain_t *c) {
  for (unsigned i = 0; i < c->n; i++)
    if (c->procs[i]->vt->flush) c->procs[i]->vt->flush(c->procs[i]);
}

void sl_chain_free(sl_chain_t *pub) {
  if (!pub) return;
  chain_impl_t *c = (chain_impl_t *)pub;
  for (unsigned i = 0; i < pub->n; i++) {
    sl_processor_destroy(pub->procs[i]);
    pooled_t *p = c->links[i].pooled;
    if (!p) continue;
    collect_link(p);   /* the worker has stopped: its last counts */
    sl_metrics_collector_remove(collect_link, p);
    free(p);
  }
  free(pub->procs);
  free(c->links);
  free(c);
}
