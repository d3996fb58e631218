/* Live readers of a stored stream: SSE (`/stream/{name}/sse/{sub}`) and
 * WebSocket (`/stream/{name}/ws/{sub}`). They read from disk from their own
 * position and are woken by appends (no polling); a slow one pauses while
 * its socket buffer is full and catches up from disk, never costing others
 * anything. SSE ids are `partition:offset` lists that Last-Event-ID (or
 * ?last_event_id=) takes back; `types=` filters by event name without ever
 * hiding an `end_events` event, after which the server ends the stream. */
#include "store_api.h"
#include "http_ws.h"
#include "log.h"
#include "xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_BUFFER = 1 << 20, TURN = 256 };

typedef struct live {
  sl_sstream_t *s;           /* NULL once the stream is gone */
  char *sub;
  int P;
  uint64_t *pos;             /* next offset per partition */
  char *types, *ends;        /* ",a,b," filters, or NULL */
  sl_http_stream_t *sse;
  sl_ws_t *ws;
  sl_swatch_t watch;
  uv_timer_t timer;          /* paused (slow client) or yielding (long backlog) */
  uv_timer_t beat;           /* SSE keep-alive comments */
  int ended;
} live_t;

static int listed(const char *list, const char *name, size_t n) {
  if (!list) return 0;
  char *key = sl_xasprintf(",%.*s,", (int)n, name);
  int in = strstr(list, key) != NULL;
  free(key);
  return in;
}

static char *comma_list(sl_http_req_t *r, const char *name) {
  char *v = sl_http_query(r, name);
  if (!v) return NULL;
  char *l = sl_xasprintf(",%s,", v);
  free(v);
  return l;
}

static void live_closed(uv_handle_t *h) {
  live_t *l = h->data;
  if (h == (uv_handle_t *)&l->timer) {
    uv_close((uv_handle_t *)&l->beat, live_closed);
    return;
  }
  free(l->pos);
  free(l->sub);
  free(l->types);
  free(l->ends);
  free(l);
}

/* Saves the position for the subscriber (its next reader starts there) and
 * frees l once its timers are closed. */
static void live_free(live_t *l) {
  if (l->s) {
    char *err = NULL;
    sl_sstream_unwatch(l->s, &l->watch);
    if (sl_sstream_set_cursor(l->s, "subscriber", l->sub, l->pos, &err) != 0) {
      sl_logf(SL_LOG_WARN, NULL, "store", "subscriber %s: position not saved: %s", l->sub, err);
      free(err);
    }
  }
  uv_close((uv_handle_t *)&l->timer, live_closed);
}

/* We end the stream (end event, deleted stream). */
static void live_end(live_t *l, int code, const char *why) {
  if (l->ended) return;
  l->ended = 1;
  if (l->sse) sl_http_stream_close(l->sse);
  if (l->ws) sl_ws_close(l->ws, code, why);
  l->sse = NULL;
  l->ws = NULL;
  live_free(l);
}

static size_t queued(const live_t *l) { return l->sse ? sl_http_stream_queued(l->sse) : sl_ws_queued(l->ws); }

typedef struct turn { live_t *l; int p; int sent, end, gone; } turn_t;

/* Readers at the live end all send the same records: each record's JSON is
 * made once and kept in a small ring, not once per reader. */
enum { ENCODED = 1024 };
static struct encoded { uint64_t stream, offset; int partition; char *json; } encoded[ENCODED];

static const char *json_of(const live_t *l, const sl_record_t *rec, int p) {
  uint64_t sid = sl_sstream_id(l->s);
  struct encoded *c = &encoded[(rec->offset * 31 + (uint64_t)p + sid * 7919) % ENCODED];
  if (c->json && c->stream == sid && c->offset == rec->offset && c->partition == p) return c->json;
  json_t *e = sl_api_event(rec, p);
  free(c->json);
  *c = (struct encoded){sid, rec->offset, p, json_dumps(e, JSON_COMPACT)};
  json_decref(e);
  return c->json;
}

static int send_record(const sl_record_t *rec, void *arg) {
  turn_t *t = arg;
  live_t *l = t->l;
  l->pos[t->p] = rec->offset + 1;
  int is_end = listed(l->ends, rec->event, rec->event_len);
  if (!is_end && l->types && !listed(l->types, rec->event, rec->event_len)) return 0;
  const char *data = json_of(l, rec, t->p);
  int rc;
  if (l->ws) {
    rc = sl_ws_send(l->ws, 1, data, strlen(data), MAX_BUFFER);
  } else {
    char *ev = NULL;
    size_t evl = 0;
    FILE *f = open_memstream(&ev, &evl);
    char *id = sl_positions_id(l->pos, l->P);
    fprintf(f, "id: %s\n", id);
    free(id);
    if (rec->event_len && !memchr(rec->event, '\n', rec->event_len) && !memchr(rec->event, '\r', rec->event_len))
      fprintf(f, "event: %.*s\n", (int)rec->event_len, rec->event);
    fprintf(f, "data: %s\n\n", data);
    fclose(f);
    rc = sl_http_stream_write(l->sse, ev, evl, MAX_BUFFER);
    free(ev);
  }
  t->sent++;
  if (rc < 0) t->gone = 1;
  if (is_end) t->end = 1;
  return rc != 0 || is_end;
}

static void pump(live_t *l);
static void on_timer(uv_timer_t *t) { pump(t->data); }

/* Sends what the reader has not seen yet, a turn at a time. */
static void pump(live_t *l) {
  if (l->ended) return;
  if (queued(l) > MAX_BUFFER) {
    uv_timer_start(&l->timer, on_timer, 20, 0);   /* paused until the client drains */
    return;
  }
  int total = 0;
  for (int p = 0; p < l->P; p++) {
    turn_t t = {l, p, 0, 0, 0};
    char *err = NULL;
    if (sl_sstream_read(l->s, p, l->pos[p], TURN, 4 << 20, send_record, &t, &err) < 0) {
      sl_logf(SL_LOG_ERROR, NULL, "store", "reader %s: %s", l->sub, err);
      free(err);
      live_end(l, 1011, "read error");
      return;
    }
    if (t.gone) return;   /* the close callback frees l */
    if (t.end) {
      live_end(l, 1000, "end of stream");
      return;
    }
    total += t.sent;
  }
  /* More may be waiting: go on after other work had its turn. */
  if (total) uv_timer_start(&l->timer, on_timer, queued(l) > MAX_BUFFER ? 20 : 0, 0);
}

static void on_wake(sl_swatch_t *w) {
  live_t *l = (live_t *)((char *)w - offsetof(live_t, watch));
  if (sl_sstream_deleted(l->s)) {
    sl_sstream_unwatch(l->s, &l->watch);
    l->s = NULL;
    live_end(l, 1001, "stream deleted");
    return;
  }
  if (!uv_is_active((uv_handle_t *)&l->timer)) pump(l);
}

static void on_beat(uv_timer_t *t) {
  live_t *l = t->data;
  if (l->sse) sl_http_stream_write(l->sse, ": keepalive\n\n", 13, MAX_BUFFER);
}

/* The client left first. */
static void on_sse_gone(void *arg) {
  live_t *l = arg;
  if (l->ended) return;
  l->ended = 1;
  sl_http_stream_close(l->sse);
  l->sse = NULL;
  live_free(l);
}

static void on_ws_gone(sl_ws_t *ws, void *arg) {
  live_t *l = arg;
  (void)ws;
  l->ws = NULL;
  if (l->ended) return;
  l->ended = 1;
  live_free(l);
}

/* Start positions: Last-Event-ID / ?last_event_id= ("p:o,…", or one
 * offset for partition 0), else ?from_offset=, else the subscriber's saved
 * position, else the earliest kept. 0, or -1 when r was answered. */
static int start_positions(sl_http_req_t *r, sl_sstream_t *s, const char *sub, uint64_t *pos, int P) {
  const uint64_t *saved = sl_sstream_cursor(s, "subscriber", sub);
  uint64_t from = 0;
  int has_from = sl_api_uint(r, "from_offset", &from);
  if (has_from < 0) {
    sl_api_error(r, 400, "from_offset is a non-negative integer");
    return -1;
  }
  for (int p = 0; p < P; p++) pos[p] = has_from ? from : saved ? saved[p] : sl_sstream_start(s, p);
  const char *h = sl_kv_get(&r->headers, "last-event-id");
  char *resume = h ? sl_xstrdup(h) : sl_http_query(r, "last_event_id");
  if (resume) sl_positions_parse(resume, pos, P, NULL);
  free(resume);
  char *reset = sl_http_query(r, "offset_reset");
  int rc = 0;
  for (int p = 0; p < P && rc == 0; p++) rc = sl_api_position(r, s, p, pos[p], reset, &pos[p]);
  free(reset);
  return rc;
}

void sl_store_live(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, const char *kind, const char *sub) {
  int ws = !strcmp(kind, "ws");
  if (ws && !sl_ws_is_upgrade(r)) {
    sl_api_error(r, 426, "this path speaks WebSocket");
    return;
  }
  live_t *l = sl_xcalloc(1, sizeof(*l));
  l->s = s;
  l->sub = sl_xstrdup(sub);
  l->P = sl_sstream_conf(s)->partitions;
  l->pos = sl_xcalloc((size_t)l->P, sizeof(uint64_t));
  if (start_positions(r, s, sub, l->pos, l->P) != 0) {
    free(l->pos);
    free(l->sub);
    free(l);
    return;
  }
  l->types = comma_list(r, "types");
  l->ends = comma_list(r, "end_events");
  const char *dflt = sl_sstream_conf(s)->end_events;
  if (!l->ends && *dflt) l->ends = sl_xasprintf(",%s,", dflt);   /* the stream's default */
  uv_timer_init(sl_store_loop(st), &l->timer);
  uv_timer_init(sl_store_loop(st), &l->beat);
  l->timer.data = l->beat.data = l;
  l->watch.wake = on_wake;
  if (ws) {
    static const sl_ws_handlers_t h = {NULL, on_ws_gone};
    l->ws = sl_ws_accept(r, &h, l, 64 << 10, 20000, sl_store_worker(st));
    if (!l->ws) {
      l->s = NULL;   /* refused or gone: nothing to save */
      if (!l->ended) {
        l->ended = 1;
        live_free(l);
      }
      return;
    }
  } else {
    sl_kvlist_t hd = {0};
    sl_kv_add(&hd, "Cache-Control", "no-cache", 8);
    sl_kv_add(&hd, "X-Accel-Buffering", "no", 2);
    l->sse = sl_http_stream_open(r, 200, "text/event-stream", &hd, on_sse_gone, l);
    sl_kv_clear(&hd);
    static const char hello[] = "retry: 3000\n: connected\n\n";
    if (sl_http_stream_write(l->sse, hello, sizeof hello - 1, MAX_BUFFER) < 0) return;   /* on_sse_gone frees */
    uv_timer_start(&l->beat, on_beat, 15000, 15000);
  }
  sl_sstream_watch(s, &l->watch);
  pump(l);
}
