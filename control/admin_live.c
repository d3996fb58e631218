/* GET /admin/live: the console's Streams view as server-sent events. Each
 * tick one `status` event (every stream's state, counters, rates over the
 * tick, mean latency and top-level components) is formatted once and queued
 * by reference to every subscriber of that interval; subscribers stay on the
 * HTTP worker that accepted them, which writes the event to its own (a fan,
 * as the http_server output's); a subscriber with more than
 * SL_HTTP_MAX_BUFFER waiting is dropped like any slow SSE client. */
#include "engine_int.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "http/http_auth.h"
#include <stdlib.h>
#include <string.h>

#define MIN_MS 100
#define MAX_MS 60000

typedef struct feed feed_t;
typedef struct sub {
  struct sub *next;
  feed_t *f;
  sl_http_stream_t *st;
  int fanned;                /* its HTTP worker writes it the feed's events */
} sub_t;

/* The subscribers of one interval: one timer, one formatted event a tick. */
struct feed {
  feed_t *next;
  sl_engine_t *e;
  unsigned ms;
  uv_timer_t timer;
  sub_t *subs;
  sl_http_fan_t *fan;
  json_t *prev;              /* stream -> [received, errors, latency sum, latency count] of the last tick */
  uint64_t prev_ns;
  sl_bytes_t *last;          /* the last event: a new subscriber's first */
};

static feed_t *feeds;

/* ---- one tick's numbers, from the component series ---- */

typedef struct {
  json_t *units;             /* name -> unit json: the streams reported */
  char stream[256], path[256], label[256];
} acc_t;

static void add(json_t *o, const char *k, int64_t v) {
  json_object_set_new(o, k, json_integer(json_integer_value(json_object_get(o, k)) + v));
}

/* The console draws the input, the output and each top-level processor. */
static int top_level(const char *path) {
  if (!strcmp(path, "root.input") || !strcmp(path, "root.output")) return 1;
  static const char pre[] = "root.pipeline.processors.";
  if (strncmp(path, pre, sizeof pre - 1) || !path[sizeof pre - 1]) return 0;
  return strspn(path + sizeof pre - 1, "0123456789") == strlen(path + sizeof pre - 1);
}

static void series(const char *name, const char *labels, int64_t v, const sl_histo_t *h, void *arg) {
  acc_t *a = arg;
  if (sl_metrics_label(labels, "stream", a->stream, sizeof a->stream) ||
      sl_metrics_label(labels, "path", a->path, sizeof a->path))
    return;
  json_t *u = json_object_get(a->units, a->stream);
  if (!u) return;
  const char *kind = name[0] == 'i' ? "input" : name[0] == 'p' ? "processor" : "output";
  const char *what = name + strlen(kind) + 1;
  if (h) {
    if (!strcmp(what, "latency_ns") && name[0] != 'i') {
      add(u, "latency_sum", (int64_t)SL_READ(&h->sum));
      add(u, "latency_count", (int64_t)SL_READ(&h->count));
    }
    return;
  }
  int counted = !strcmp(what, name[0] == 'i' ? "received" : "sent"), error = !strcmp(what, "error");
  if (!counted && !error) return;
  if (error) add(u, "errors", v);
  if (counted && !strcmp(a->path, name[0] == 'i' ? "root.input" : "root.output"))
    add(u, name[0] == 'i' ? "received" : "sent", v);
  if (!top_level(a->path)) return;
  json_t *comps = json_object_get(u, "components");
  json_t *c = json_object_get(comps, a->path);
  if (!c) {
    sl_metrics_label(labels, "label", a->label, sizeof a->label);
    c = json_pack("{s:s,s:s,s:i,s:i}", "kind", kind, "label", a->label, "count", 0, "errors", 0);
    json_object_set_new(comps, a->path, c);
  }
  add(c, counted ? "count" : "errors", v);
}

static double per_s(int64_t now, int64_t before, double dt) { return now > before ? (double)(now - before) / dt : 0; }

/* Rates over the tick against the feed's last one (none on its first);
 * next gets this tick's totals. */
static void rates(const feed_t *f, json_t *next, const char *name, json_t *u, uint64_t now_ns) {
#define NUM(o, k) json_integer_value(json_object_get(o, k))
#define PREV(i) json_integer_value(json_array_get(p, i))
  int64_t in = NUM(u, "received"), err = NUM(u, "errors"), ls = NUM(u, "latency_sum"), lc = NUM(u, "latency_count");
  json_t *p = json_object_get(f->prev, name);
  if (p && now_ns > f->prev_ns) {
    double dt = (double)(now_ns - f->prev_ns) / 1e9;
    json_object_set_new(u, "rate", json_real(per_s(in, PREV(0), dt)));
    json_object_set_new(u, "error_rate", json_real(per_s(err, PREV(1), dt)));
    if (lc > PREV(3)) json_object_set_new(u, "latency_ns", json_real((double)(ls - PREV(2)) / (double)(lc - PREV(3))));
  }
#undef NUM
#undef PREV
  json_object_set_new(next, name,
                      json_pack("[I,I,I,I]", (json_int_t)in, (json_int_t)err, (json_int_t)ls, (json_int_t)lc));
}

static sl_bytes_t *snapshot(feed_t *f) {
  sl_engine_t *e = f->e;
  uint64_t now = uv_now(e->worker->loop), now_ns = sl_now_ns();
  acc_t a = {.units = json_object()};
  for (int i = 0; i < e->nunits; i++) {
    json_t *u = sl_admin_unit_json(e->units[i], now);
    json_object_update_missing_new(u, json_pack("{s:i,s:i,s:i,s:i,s:i,s:{}}", "received", 0, "sent", 0, "errors", 0,
                                                "latency_sum", 0, "latency_count", 0, "components"));
    json_object_set_new(a.units, e->units[i]->name, u);
  }
  sl_metrics_each("input_", series, &a);
  sl_metrics_each("processor_", series, &a);
  sl_metrics_each("output_", series, &a);
  json_t *next = json_object();
  const char *name;
  json_t *u;
  json_object_foreach(a.units, name, u) rates(f, next, name, u, now_ns);
  json_decref(f->prev);
  f->prev = next;
  f->prev_ns = now_ns;
  json_t *body = json_pack("{s:I,s:{s:I,s:s},s:o}", "interval_ms", (json_int_t)f->ms, "config", "version",
                           (json_int_t)e->version, "hash", e->hash, "streams", a.units);
  char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
  json_decref(body);
  char *ev = sl_xasprintf("event: status\ndata: %s\n\n", text);
  free(text);
  sl_bytes_t *b = sl_bytes_new(ev, strlen(ev));
  free(ev);
  return b;
}

/* ---- subscribers ---- */

static void feed_closed(uv_handle_t *h) {
  feed_t *f = h->data;
  json_decref(f->prev);
  if (f->last) sl_bytes_unref(f->last);
  sl_http_fan_free(f->fan);
  free(f);
}

static void sub_remove(sub_t *s) {
  feed_t *f = s->f;
  for (sub_t **p = &f->subs; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  sl_http_stream_close(s->st);
  free(s);
  if (f->subs) return;
  for (feed_t **p = &feeds; *p; p = &(*p)->next)
    if (*p == f) {
      *p = f->next;
      break;
    }
  uv_close((uv_handle_t *)&f->timer, feed_closed);
}

static void sub_gone(void *arg) { sub_remove(arg); }

static void sub_slow(void *arg) {
  sl_http_slow_dropped(NULL, "/admin/live", "sse");
  sub_remove(arg);
}

/* 0 sent; otherwise s is gone (the client left, or is dropped as slow). */
static int send_to(sub_t *s, sl_bytes_t *b) {
  int rc = sl_http_stream_send(s->st, b, SL_HTTP_MAX_BUFFER);
  if (rc == 0) return 0;
  if (rc > 0) sub_slow(s);
  else sub_remove(s);
  return -1;
}

static void tick(uv_timer_t *t) {
  feed_t *f = t->data;
  if (f->last) sl_bytes_unref(f->last);
  f->last = snapshot(f);
  sl_bytes_t *b = sl_bytes_ref(f->last);   /* f->last goes with the feed once its last subscriber leaves */
  if (sl_http_fan_members(f->fan)) sl_http_fan_send(f->fan, b);
  for (sub_t *s = f->subs, *next; s; s = next) {
    next = s->next;
    if (!s->fanned) send_to(s, b);
  }
  sl_bytes_unref(b);
}

static void live(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, "follow the streams' status (/admin/live)") != 0) return;
  if (e->stopping) {   /* sl_admin_live_stop has ended the viewers: none begins now */
    sl_http_error(r, 503, "sluice is stopping");
    return;
  }
  char *iv = sl_http_query(r, "interval");
  char *end = NULL;
  long ms = iv ? strtol(iv, &end, 10) : 1000;
  int bad = iv && (!*iv || *end || ms < MIN_MS || ms > MAX_MS);
  free(iv);
  if (bad) {
    sl_http_error(r, 400, "interval: milliseconds between events, 100 to 60000");
    return;
  }
  feed_t *f = feeds;
  while (f && f->ms != (unsigned)ms) f = f->next;
  if (!f) {
    f = sl_xcalloc(1, sizeof(*f));
    *f = (feed_t){.next = feeds, .e = e, .ms = (unsigned)ms, .prev = json_object(), .fan = sl_http_fan_new()};
    uv_timer_init(e->worker->loop, &f->timer);
    uv_unref((uv_handle_t *)&f->timer);   /* subscribers keep it going, not the loop's end */
    f->timer.data = f;
    feeds = f;
    f->last = snapshot(f);
    uv_timer_start(&f->timer, tick, (uint64_t)ms, (uint64_t)ms);
  }
  sub_t *s = sl_xcalloc(1, sizeof(*s));
  s->f = f;
  s->next = f->subs;
  f->subs = s;
  sl_http_req_stay(r);
  s->st = sl_http_sse_open(r, sub_gone, s);
  static const char hello[] = "retry: 3000\n: connected\n\n";
  if (sl_http_stream_write(s->st, hello, sizeof hello - 1, SL_HTTP_MAX_BUFFER) < 0) return;   /* sub_gone ran */
  if (send_to(s, f->last) != 0) return;
  sl_http_stream_on_slow(s->st, sub_slow, s);
  s->fanned = sl_http_fan_join(f->fan, s->st, SL_HTTP_MAX_BUFFER);
}

void sl_admin_live_stop(void) {
  while (feeds && feeds->subs) sub_remove(feeds->subs);   /* a feed goes with its last subscriber */
}

void sl_admin_live_route(sl_engine_t *e, sl_diags_t *d) {
  sl_http_route_get(e->worker, "/admin/live", live, e, "admin", d, NULL);
}
