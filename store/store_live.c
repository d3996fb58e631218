/* Live readers of a stream: SSE (`/stream/{name}/sse/{sub}`) and WebSocket
 * (`/stream/{name}/ws/{sub}`), whichever backend feeds them (sl_live_src_t:
 * the embedded store's in store/embedded/store_rest.c, Kafka's in
 * store/kafka/kafka_store_read.c). A slow client
 * pauses its reader while its socket buffer is full, never costing others
 * anything. SSE ids are `partition:offset` lists that Last-Event-ID (or
 * ?last_event_id=) takes back; `types=` filters by event name without ever
 * hiding an `end_events` event, after which the server ends the stream. */
#include "store_api.h"
#include "core/list.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/http_ws.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_BUFFER = SL_HTTP_MAX_BUFFER };

struct sl_live {
  const sl_live_src_t *src;
  void *arg;
  uint64_t cache_id;         /* 0: the records' JSON is not shared between readers */
  int P;
  uint64_t *pos;             /* next offset per partition */
  char *types, *ends;        /* ",a,b," filters, or NULL */
  sl_http_stream_t *sse;
  sl_ws_t *ws;
  uv_timer_t timer;          /* yielding to other work (long backlog) */
  uv_timer_t beat;           /* SSE keep-alive comments */
  int ended, stop, gone, end_seen, pumping;
  int paused;                /* a slow client: until its buffer drains (on_drained) */
  int opened;                /* the client was answered: there is a position to save */
  sl_dnode_t node;           /* in `lives` until freed */
};

/* Every open reader (handlers run on the engine's loop): a shutdown says goodbye to each. */
static sl_dlist_t lives;

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
  sl_live_t *l = h->data;
  if (h == (uv_handle_t *)&l->timer) {
    uv_close((uv_handle_t *)&l->beat, live_closed);
    return;
  }
  free(l->pos);
  free(l->types);
  free(l->ends);
  free(l);
}

/* Tells the source where the reader got to (the subscriber's next reader
 * starts there) and frees l once its timers are closed. */
static void live_free(sl_live_t *l) {
  sl_dlist_remove(&lives, &l->node);
  if (l->src) l->src->end(l->arg, l->opened ? l->pos : NULL, l->P);
  l->src = NULL;
  uv_close((uv_handle_t *)&l->timer, live_closed);
}

void sl_live_stop(sl_live_t *l, int code, const char *why) {
  if (l->ended) return;
  l->ended = 1;
  if (l->sse) sl_http_stream_close(l->sse);
  if (l->ws) sl_ws_close(l->ws, code, why);
  l->sse = NULL;
  l->ws = NULL;
  live_free(l);
}

void sl_live_stop_all(int code, const char *why) {
  for (sl_live_t *l = SL_DLIST_FIRST(&lives, sl_live_t, node), *next; l; l = next) {
    next = SL_DLIST_NEXT(l, sl_live_t, node);
    sl_live_stop(l, code, why);
  }
}

static size_t queued(const sl_live_t *l) { return l->sse ? sl_http_stream_queued(l->sse) : sl_ws_queued(l->ws); }

/* Readers at the live end all send the same records: each record's JSON is
 * made once and kept in a small ring, not once per reader. */
enum { ENCODED = 1024 };
static struct encoded { uint64_t stream, offset; int partition; char *json; } encoded[ENCODED];

static const char *json_of(const sl_live_t *l, const sl_record_t *rec, int p, char **own) {
  json_t *e;
  if (!l->cache_id) {
    e = sl_api_event(rec, p);
    *own = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return *own;
  }
  uint64_t sid = l->cache_id;
  struct encoded *c = &encoded[(rec->offset * 31 + (uint64_t)p + sid * 7919) % ENCODED];
  if (c->json && c->stream == sid && c->offset == rec->offset && c->partition == p) return c->json;
  e = sl_api_event(rec, p);
  free(c->json);
  *c = (struct encoded){sid, rec->offset, p, json_dumps(e, JSON_COMPACT)};
  json_decref(e);
  return c->json;
}

int sl_live_send(sl_live_t *l, const sl_record_t *rec, int p) {
  if (l->stop) return 1;
  l->pos[p] = rec->offset + 1;
  int is_end = listed(l->ends, rec->event, rec->event_len);
  if (!is_end && l->types && !listed(l->types, rec->event, rec->event_len)) return 0;
  char *own = NULL;
  const char *data = json_of(l, rec, p, &own);
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
    /* An SSE field is one line of UTF-8: other names are only in the data
     * (base64, with event_encoding). */
    if (rec->event_len && !memchr(rec->event, '\n', rec->event_len) && !memchr(rec->event, '\r', rec->event_len) &&
        !memchr(rec->event, 0, rec->event_len) && sl_utf8_valid(rec->event, rec->event_len))
      fprintf(f, "event: %.*s\n", (int)rec->event_len, rec->event);
    fprintf(f, "data: %s\n\n", data);
    fclose(f);
    rc = sl_http_stream_write(l->sse, ev, evl, MAX_BUFFER);
    free(ev);
  }
  free(own);
  if (rc < 0) l->gone = 1;
  if (is_end) l->end_seen = 1;
  l->stop = rc != 0 || is_end;
  return l->stop;
}

static void pump(sl_live_t *l);
static void on_timer(uv_timer_t *t) { pump(t->data); }

static void on_drained(void *arg) {
  sl_live_t *l = arg;
  l->paused = 0;
  pump(l);
}

/* A slow client: sending resumes when half of its buffer went out. */
static void pause_until_drained(sl_live_t *l) {
  l->paused = 1;
  if (l->sse) sl_http_stream_on_drain(l->sse, MAX_BUFFER / 2, on_drained, l);
  else sl_ws_on_drain(l->ws, MAX_BUFFER / 2, on_drained, l);
}

/* Sends what the reader has not seen yet, a turn at a time. */
static void pump(sl_live_t *l) {
  if (l->ended || l->pumping || l->paused) return;
  if (queued(l) > MAX_BUFFER) {
    pause_until_drained(l);
    return;
  }
  l->stop = 0;
  l->pumping = 1;
  int more = l->src->pump(l->arg, l);
  l->pumping = 0;
  if (l->gone) return;   /* the close callback frees l */
  if (more < 0) {
    sl_live_stop(l, 1011, "read error");
  } else if (l->end_seen) {
    sl_live_stop(l, 1000, "end of stream");
  } else if (queued(l) > MAX_BUFFER) {
    pause_until_drained(l);
  } else if (more > 0 || l->stop) {
    uv_timer_start(&l->timer, on_timer, 0, 0);   /* more may be waiting: after other work had its turn */
  }
}

const uint64_t *sl_live_pos(const sl_live_t *l) { return l->pos; }

void sl_live_wake(sl_live_t *l) {
  if (!uv_is_active((uv_handle_t *)&l->timer)) pump(l);
}

static void on_beat(uv_timer_t *t) {
  sl_live_t *l = t->data;
  if (l->sse) sl_http_stream_write(l->sse, ": keepalive\n\n", 13, MAX_BUFFER);
}

/* The client left first. */
static void on_sse_gone(void *arg) {
  sl_live_t *l = arg;
  if (l->ended) return;
  l->ended = 1;
  sl_http_stream_close(l->sse);
  l->sse = NULL;
  live_free(l);
}

static void on_ws_gone(sl_ws_t *ws, void *arg) {
  sl_live_t *l = arg;
  (void)ws;
  l->ws = NULL;
  if (l->ended) return;
  l->ended = 1;
  live_free(l);
}

int sl_live_start_positions(sl_http_req_t *r, const uint64_t *saved, uint64_t *pos, int P, int *given) {
  uint64_t from = 0;
  int has_from = sl_api_uint(r, "from_offset", &from);
  if (has_from < 0) {
    sl_api_error(r, 400, "from_offset is a non-negative integer");
    return -1;
  }
  for (int p = 0; p < P; p++) {
    pos[p] = has_from ? from : saved ? saved[p] : 0;
    if (given) given[p] = has_from;
  }
  const char *h = sl_kv_get(&r->headers, "last-event-id");
  if (h && !*h) h = NULL;   /* empty: none */
  char *resume = h ? sl_xstrdup(h) : sl_http_query(r, "last_event_id");
  int bad = resume && *resume && sl_positions_parse(resume, pos, given, P) != 0;
  if (bad) {
    char *msg = sl_positions_error(h ? "Last-Event-ID" : "last_event_id", resume, P);
    sl_http_error(r, 400, msg);
    free(msg);
  }
  free(resume);
  return bad ? -1 : 0;
}

sl_live_t *sl_live_open(sl_http_req_t *r, sl_worker_t *w, const char *kind, int P, uint64_t *pos,
                        const char *stream_ends, uint64_t cache_id, const sl_live_src_t *src, void *arg) {
  sl_live_t *l = sl_xcalloc(1, sizeof(*l));
  *l = (sl_live_t){.src = src, .arg = arg, .cache_id = cache_id, .P = P, .pos = pos};
  sl_dlist_push(&lives, &l->node);
  l->types = comma_list(r, "types");
  l->ends = comma_list(r, "end_events");
  if (!l->ends && stream_ends && *stream_ends) l->ends = sl_xasprintf(",%s,", stream_ends);   /* the stream's default */
  uv_timer_init(w->loop, &l->timer);
  uv_timer_init(w->loop, &l->beat);
  l->timer.data = l->beat.data = l;
  if (!strcmp(kind, "ws")) {
    static const sl_ws_handlers_t h = {NULL, on_ws_gone};
    l->ws = sl_ws_accept(r, &h, l, 64 << 10, 20000, w);
    if (!l->ws) {
      if (!l->ended) {
        l->ended = 1;
        live_free(l);
      }
      return NULL;
    }
  } else {
    l->sse = sl_http_sse_open(r, on_sse_gone, l);
    static const char hello[] = "retry: 3000\n: connected\n\n";
    l->opened = 1;
    if (sl_http_stream_write(l->sse, hello, sizeof hello - 1, MAX_BUFFER) < 0) return NULL;   /* on_sse_gone frees */
    uv_timer_start(&l->beat, on_beat, 15000, 15000);
  }
  l->opened = 1;
  pump(l);
  return l;
}
