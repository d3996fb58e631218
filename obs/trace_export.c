#include "trace_export.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "http/http_client.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rec {
  const sl_trace_site_t *site;
  sl_span_t s;
  uint64_t start, end;
  int failed;
} rec_t;

typedef struct exporter {
  struct exporter *next;
  char *stream;              /* exports this stream's spans; NULL: every other's */
  double ratio;
  sl_hclient_t *hc;
  uv_timer_t timer;
  uv_async_t soon;           /* a full batch is sent on the next loop turn (woken from any thread) */
  char *url;
  char *resource;            /* the JSON of the resource, built once */
  rec_t *q;                  /* ring: n spans from head */
  size_t head, n, cap, batch;
  int64_t *dropped, *exported, *failed_exports;
  int stopping;
  int closing;               /* handles still to close */
} exporter_t;

static exporter_t *g_exp;   /* the running exporters */
/* Spans end on pool workers too (pipeline.threads; a tracer that a reload
 * turns on finds pooled chains running): the list and every exporter's
 * queue are changed under this lock; the rest stays on the engine's loop. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int same_stream(const char *a, const char *b) { return !a == !b && (!a || !strcmp(a, b)); }

/* The exporter of a stream's spans: its own, else the process-wide one. */
static exporter_t *exporter_of(const char *stream) {
  exporter_t *all = NULL;
  for (exporter_t *e = g_exp; e; e = e->next) {
    if (e->stream && !strcmp(e->stream, stream)) return e;
    if (!e->stream) all = e;
  }
  return all;
}

static double export_ratio(const char *stream);
static void export_add(const sl_spans_t *sp, uint64_t end_ns, int failed);
static const sl_trace_sink_t sink = {export_ratio, export_add};

static void update_on(void) {
  sl_trace_set_sink(&sink);
  int on = 0;
  for (exporter_t *e = g_exp; e; e = e->next) on |= e->ratio > 0;
  __atomic_store_n(&sl_trace_on, on, __ATOMIC_RELEASE);
}

static double export_ratio(const char *stream) {
  exporter_t *e = exporter_of(stream);
  return e ? e->ratio : 0;
}

static void put_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static void put_attr(FILE *f, int first, const char *k, const char *v) {
  fputs(first ? "{\"key\":" : ",{\"key\":", f);
  put_str(f, k);
  fputs(",\"value\":{\"stringValue\":", f);
  put_str(f, v);
  fputs("}}", f);
}

/* OTLP span kinds: SERVER for what a stream receives, PRODUCER for what it
 * sends, INTERNAL in between. */
static const int kinds[] = {2, 1, 4};

static char *encode(exporter_t *e, size_t n, size_t *len) {
  char *out = NULL;
  FILE *f = open_memstream(&out, len);
  fprintf(f, "{\"resourceSpans\":[{\"resource\":%s,\"scopeSpans\":[{\"scope\":{\"name\":\"sluice\"},\"spans\":[",
          e->resource);
  for (size_t i = 0; i < n; i++) {
    const rec_t *r = &e->q[(e->head + i) % e->cap];
    fprintf(f, "%s{\"traceId\":\"%016llx%016llx\",\"spanId\":\"%016llx\"", i ? "," : "",
            (unsigned long long)r->s.trace_hi, (unsigned long long)r->s.trace_lo, (unsigned long long)r->s.id);
    if (r->s.parent) fprintf(f, ",\"parentSpanId\":\"%016llx\"", (unsigned long long)r->s.parent);
    fputs(",\"name\":", f);
    put_str(f, r->site->name);
    fprintf(f, ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":[",
            kinds[r->site->kind], (unsigned long long)r->start, (unsigned long long)r->end);
    put_attr(f, 1, "sluice.stream", r->site->stream);
    put_attr(f, 0, "sluice.path", r->site->path);
    put_attr(f, 0, "sluice.component", r->site->type);
    fprintf(f, "],\"status\":{\"code\":%d}}", r->failed ? 2 : 0);
  }
  fputs("]}]}]}", f);
  fclose(f);
  return out;
}

static void finish(exporter_t *e);
static void flush(exporter_t *e);

/* Spans waiting (engine's loop; workers may be adding). */
static size_t queued(exporter_t *e) {
  pthread_mutex_lock(&g_mu);
  size_t n = e->n;
  pthread_mutex_unlock(&g_mu);
  return n;
}

static void sent(int status, const char *err, const char *body, size_t len, void *arg) {
  exporter_t *e = arg;
  if (status < 200 || status > 299) {
    (*e->failed_exports)++;
    sl_logf(SL_LOG_WARN, NULL, "tracer", "export to %s failed: %s%.*s", e->url, status < 0 ? err : "",
            status < 0 ? 0 : (int)len, body);
    if (e->stopping) {
      /* At shutdown an unreachable endpoint must not hold the exit for every batch's timeout. */
      pthread_mutex_lock(&g_mu);
      SL_COUNT(e->dropped, (int64_t)e->n);
      e->n = 0;
      pthread_mutex_unlock(&g_mu);
    }
  }
  /* A backlog drains at the pace of the endpoint, two requests at a time. */
  if (e->stopping || queued(e) >= e->batch) flush(e);
  if (e->stopping && !queued(e) && !sl_hclient_pending(e->hc)) finish(e);
}

/* One POST of up to a batch from the head of the queue. */
static void post_batch(exporter_t *e) {
  pthread_mutex_lock(&g_mu);
  size_t n = e->n < e->batch ? e->n : e->batch, len;
  char *body = encode(e, n, &len);
  e->head = (e->head + n) % e->cap;
  e->n -= n;
  pthread_mutex_unlock(&g_mu);
  *e->exported += (int64_t)n;
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  sl_hclient_request(e->hc, "POST", e->url, headers, body, len, 10000, sent, e);
  free(body);
}

/* Spans wait while two exports are in flight. */
static void flush(exporter_t *e) {
  while (queued(e) && sl_hclient_pending(e->hc) < 2) post_batch(e);
}

static void on_tick(uv_timer_t *t) { flush(t->data); }

static void on_soon(uv_async_t *h) { flush(h->data); }

static void handle_closed(uv_handle_t *h) {
  exporter_t *e = h->data;
  if (--e->closing > 0) return;   /* the other handle is still closing */
  sl_hclient_close(e->hc);
  free(e->url);
  free(e->stream);
  free(e->resource);
  free(e->q);
  free(e);
}

static void finish(exporter_t *e) {
  if (e->closing) return;
  e->closing = 2;
  uv_close((uv_handle_t *)&e->timer, handle_closed);
  uv_close((uv_handle_t *)&e->soon, handle_closed);
}

/* On any thread. An exporter found here is linked, and is unlinked only
 * under the lock: the wake-up reaches it before it can close. */
static void export_add(const sl_spans_t *sp, uint64_t end_ns, int failed) {
  pthread_mutex_lock(&g_mu);
  exporter_t *e = exporter_of(sp->site->stream);
  for (uint32_t i = 0; e && i < sp->n; i++) {
    if (e->n == e->cap) {
      SL_COUNT(e->dropped, sp->n - i);
      break;
    }
    e->q[(e->head + e->n++) % e->cap] = (rec_t){sp->site, sp->s[i], sp->start_ns, end_ns, failed};
  }
  if (e && e->n >= e->batch) uv_async_send(&e->soon);
  pthread_mutex_unlock(&g_mu);
}

static void stop(exporter_t *e) {
  e->stopping = 1;
  uv_timer_stop(&e->timer);
  /* What is left goes now, batch after batch (sent() goes on). */
  flush(e);
  if (!queued(e) && !sl_hclient_pending(e->hc)) finish(e);
}

/* Unlinks and returns the exporter of stream (NULL: the process-wide one). */
static exporter_t *take(const char *stream) {
  exporter_t *e = NULL;
  pthread_mutex_lock(&g_mu);
  for (exporter_t **pp = &g_exp; *pp; pp = &(*pp)->next)
    if (same_stream((*pp)->stream, stream)) {
      e = *pp;
      *pp = e->next;
      break;
    }
  pthread_mutex_unlock(&g_mu);
  return e;
}

void sl_trace_export_start(uv_loop_t *loop, const sl_trace_export_opts_t *o, const char *stream) {
  sl_trace_export_remove(stream);
  exporter_t *e = sl_xcalloc(1, sizeof(*e));
  e->stream = stream ? sl_xstrdup(stream) : NULL;
  e->ratio = o->ratio;
  size_t ul = strlen(o->endpoint);
  while (ul && o->endpoint[ul - 1] == '/') ul--;
  e->url = sl_xasprintf("%.*s/v1/traces", (int)ul, o->endpoint);
  size_t rl;
  FILE *f = open_memstream(&e->resource, &rl);
  fputs("{\"attributes\":[", f);
  put_attr(f, 1, "service.name", o->service);
  for (const char *const *t = o->tags; t && t[0] && t[1]; t += 2) put_attr(f, 0, t[0], t[1]);
  fputs("]}", f);
  fclose(f);
  e->cap = (size_t)(o->max_queue > 0 ? o->max_queue : 1);
  e->batch = (size_t)(o->batch > 0 ? o->batch : 1);
  e->q = sl_xmalloc(e->cap * sizeof(*e->q));
  e->hc = sl_hclient_new(loop);
  e->dropped = sl_metric(SL_COUNTER, "sluice_tracer_spans_dropped_total",
                         "Spans dropped because the export queue was full.", NULL);
  e->exported = sl_metric(SL_COUNTER, "sluice_tracer_spans_exported_total", "Spans sent to the OTLP endpoint.", NULL);
  e->failed_exports = sl_metric(SL_COUNTER, "sluice_tracer_export_errors_total",
                                "OTLP export requests that failed.", NULL);
  uv_timer_init(loop, &e->timer);
  uv_async_init(loop, &e->soon, on_soon);
  e->timer.data = e->soon.data = e;
  uv_timer_start(&e->timer, on_tick, (uint64_t)o->flush_ms, (uint64_t)o->flush_ms);
  uv_unref((uv_handle_t *)&e->timer);
  uv_unref((uv_handle_t *)&e->soon);
  pthread_mutex_lock(&g_mu);
  e->next = g_exp;
  g_exp = e;
  pthread_mutex_unlock(&g_mu);
  update_on();
}

void sl_trace_export_remove(const char *stream) {
  exporter_t *e = take(stream);
  if (e) stop(e);
  update_on();
}

void sl_trace_export_stop(void) {
  for (exporter_t *e; (e = g_exp) && (e = take(e->stream));) stop(e);
  update_on();
}
