/* `http_server` output: serves messages to HTTP clients, by long-poll GET on
 * `path` and as Server-Sent Events on `sse_path`; every client gets every
 * message (broadcast) or each message goes to one client (round_robin). */
#include "../core/component.h"
#include "../core/http.h"
#include "../core/http_auth.h"
#include "../core/http_ws.h"
#include "../core/scoped.h"
#include "../core/stream.h"
#include "../core/xalloc.h"
#include "stream_replay.h"
#include "../core/store.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const deliveries[] = {"broadcast", "round_robin", NULL};

static const sl_field_t fields[] = {
  {"path", SL_F_STRING, "/get", 0,
   "GET here waits up to `timeout` for the next batch and answers it (several messages joined by "
   "newlines), or 204 when none came. Empty: no long-poll path.", NULL, NULL},
  {"sse_path", SL_F_STRING, "", 0,
   "GET here opens a Server-Sent Events stream: each message is an event (`id:` counts messages "
   "of this output, `event:` from `meta.event` when set, `data:` lines hold the content); a "
   "`: keepalive` comment every `heartbeat`. `?types=a,b` keeps only events named so. When the "
   "stream's input is a `stream` input, `id:` is the stream position (`0:41,1:17`) and a client "
   "coming back with `Last-Event-ID` gets every later message read again from the stream, through "
   "the processors, for it alone, even after a restart. Empty: off.",
   NULL, NULL},
  {"ws_path", SL_F_STRING, "", 0,
   "WebSocket path: each message is pushed as a text frame (a binary frame when it is not UTF-8). "
   "Empty: off.", NULL, NULL},
  {"delivery", SL_F_ENUM, "broadcast", 0,
   "`broadcast`: every connected client gets every message (with no client connected the message "
   "is dropped and acknowledged). `round_robin`: each batch goes to one client in turn, and waits "
   "for one when none is connected (Benthos' behaviour).", deliveries, NULL},
  {"auth", SL_F_OBJECT, NULL, 0,
   "Authentication for this component's paths, replacing `http.auth` (see the `http:` section).",
   NULL, sl_http_auth_fields},
  {"tenant", SL_F_STRING, "", 0,
   "`ctx.user`: with `delivery: broadcast`, each client gets only the messages whose `tenant_field` equals "
   "its authenticated user (from `auth`), so isolation does not depend on a Lua filter; clients without a "
   "user are refused (403). Empty: off.", NULL, NULL},
  {"tenant_field", SL_F_STRING, "meta.tenant", 0,
   "Where a message names its tenant: `meta.KEY` or `this.FIELD` (a top-level JSON field).", NULL, NULL},
  {"replay_bytes", SL_F_SIZE, "1MiB", 0,
   "Recent messages kept (up to this many content bytes) so that an SSE client reconnecting with "
   "`Last-Event-ID` (header or `last_event_id` query) gets what it missed, in order and once. Older ids "
   "are gone: the client is told with a `: gap` comment. 0: no replay.", NULL, NULL},
  {"timeout", SL_F_DURATION, "5s", 0, "How long a long-poll GET waits.", NULL, NULL},
  {"heartbeat", SL_F_DURATION, "15s", 0, "Interval of SSE keep-alive comments.", NULL, NULL},
  {"max_buffer", SL_F_SIZE, "1MiB", 0,
   "Bytes that may wait in a slow SSE client's socket buffer; beyond it the client is disconnected "
   "(it reconnects with `Last-Event-ID`), never silently skipped.", NULL, NULL},
  {0}};

typedef struct hout hout_t;

typedef struct client {      /* an SSE or WebSocket subscriber */
  struct client *next;
  sl_http_stream_t *st;      /* SSE */
  sl_ws_t *ws;               /* WebSocket */
  hout_t *o;
  char *types;               /* SSE `types=a,b` filter as ",a,b,", or NULL */
  char *user;                /* tenant mode: the client's user */
  int opening, gone;         /* the client left while on_sse was still setting it up */
  /* Resuming from a `stream` input: the replay's token and the client's own
   * positions; live messages wait in `later` until the replay is done. */
  uint64_t token;
  uint64_t *pos;
  int npos;
  sl_batch_t *later;
} client_t;

typedef struct waiter {      /* a long-poll GET */
  struct waiter *next;
  char *user;                /* tenant mode: the client's user */
  sl_http_req_t *req;        /* NULL once answered */
  uv_timer_t timer;
  hout_t *o;
} waiter_t;

typedef struct held {        /* round_robin: a batch waiting for a client */
  struct held *next;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
} held_t;

/* Recent events kept for SSE clients that resume with Last-Event-ID. */
typedef struct kept {
  uint64_t id;
  sl_bytes_t *content;
  char *event, *tenant;
} kept_t;

struct hout {
  sl_output_t base;
  kept_t *replay;            /* ring of the last events (broadcast only) */
  uint32_t replay_head, replay_n, replay_cap;
  int64_t replay_bytes, replay_max_bytes;
  sl_http_auth_t *auth;
  int tenant;
  char *tenant_meta, *tenant_json;   /* one of them names the message's tenant */
  char **cur_tenants;        /* tenants of the batch being written (tenant mode) */
  char *path, *sse_path, *ws_path;
  int round_robin;
  int64_t timeout_ms, heartbeat_ms, max_buffer;
  client_t *clients;
  waiter_t *waiters, **waiters_tail;
  held_t *held, **held_tail;
  unsigned rr;
  uint64_t seq;
  uv_timer_t heartbeat;
  int routed, mounted, closing;
  int nclients;              /* waiting GETs plus SSE and WebSocket clients */
  /* Fed by a `stream` input: SSE ids are the stream positions after each
   * event ("0:41,1:17"), so a client resumes from the stream itself. */
  uint64_t *pos;
  int npos;
  uint64_t tokens;
  void (*watch)(void *arg, int nclients);
  void *watch_arg;
};

static void count_clients(hout_t *o, int delta) {
  o->nclients += delta;
  if (o->watch) o->watch(o->watch_arg, o->nclients);
}

static const char *stream_name(const hout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

/* ---------- clients ---------- */

static void waiter_closed(uv_handle_t *h) {
  waiter_t *w = h->data;
  free(w->user);
  free(w);
}

/* Unlinks w (if still listed) and frees it once its timer is closed. */
static void waiter_remove(hout_t *o, waiter_t *w) {
  waiter_t **pp = &o->waiters;
  while (*pp && *pp != w) pp = &(*pp)->next;
  if (*pp) {
    *pp = w->next;
    o->waiters_tail = &o->waiters;
    while (*o->waiters_tail) o->waiters_tail = &(*o->waiters_tail)->next;
  }
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, waiter_closed);
  count_clients(o, -1);
}

/* The waiting GETs as of now: answering one may let its client's next
 * pipelined GET in, which must wait for the next batch. */
static waiter_t *take_waiters(hout_t *o) {
  waiter_t *list = o->waiters;
  o->waiters = NULL;
  o->waiters_tail = &o->waiters;
  return list;
}

/* Unlinks c and ends its connection (code: WebSocket close code). */
static void client_end(hout_t *o, client_t *c, int code, const char *why) {
  client_t **pp = &o->clients;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) {
    *pp = c->next;
    count_clients(o, -1);
  }
  if (c->st) sl_http_stream_close(c->st);
  if (c->ws) sl_ws_close(c->ws, code, why);
  free(c->types);
  free(c->user);
  free(c->pos);
  sl_batch_free(c->later);
  free(c);
}

static void client_remove(hout_t *o, client_t *c) { client_end(o, c, 1001, "going away"); }

static char *joined(const sl_batch_t *b, size_t *len) {
  size_t n = 0;
  for (uint32_t i = 0; i < b->n; i++) n += b->msgs[i]->content->len + 1;
  char *out = sl_xmalloc(n + 1), *p = out;
  for (uint32_t i = 0; i < b->n; i++) {
    if (i) *p++ = '\n';
    memcpy(p, b->msgs[i]->content->data, b->msgs[i]->content->len);
    p += b->msgs[i]->content->len;
  }
  *p = 0;
  *len = (size_t)(p - out);
  return out;
}

/* The tenant a message belongs to (caller frees), or NULL. */
static char *tenant_of(const hout_t *o, const sl_msg_t *m) {
  if (o->tenant_meta) {
    const char *v = sl_kv_get(&m->meta, o->tenant_meta);
    return v ? sl_xstrdup(v) : NULL;
  }
  json_t *doc = json_loadb(m->content->data, m->content->len, 0, NULL);
  json_t *v = json_object_get(doc, o->tenant_json);
  char *t = !v ? NULL : json_is_string(v) ? sl_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
  json_decref(doc);
  return t;
}

/* The tenant of each message of b, for the sends that follow (tenant mode). */
static void tenants_of(hout_t *o, const sl_batch_t *b) {
  if (!o->tenant) return;
  o->cur_tenants = sl_xcalloc(b->n ? b->n : 1, sizeof(char *));
  for (uint32_t i = 0; i < b->n; i++) o->cur_tenants[i] = tenant_of(o, b->msgs[i]);
}

static void tenants_done(hout_t *o, const sl_batch_t *b) {
  if (!o->cur_tenants) return;
  for (uint32_t i = 0; i < b->n; i++) free(o->cur_tenants[i]);
  free(o->cur_tenants);
  o->cur_tenants = NULL;
}

static int visible(const hout_t *o, uint32_t i, const char *user) {
  if (!o->cur_tenants) return 1;
  return user && o->cur_tenants[i] && strcmp(o->cur_tenants[i], user) == 0;
}

static void answer_waiter(hout_t *o, waiter_t *w, const sl_batch_t *b) {
  sl_http_req_t *r = w->req;
  w->req = NULL;
  waiter_remove(o, w);
  if (!b) {
    sl_http_respond(r, 204, NULL, NULL, 0, NULL);
    return;
  }
  size_t len;
  char *body = joined(b, &len);
  sl_http_respond(r, 200, "application/octet-stream", body, len, NULL);
  free(body);
}

/* An SSE event or a WebSocket frame per message. 1: client too slow. */
/* One message to one client, unless its filters skip it: 0 sent or
 * skipped, 1 sent to a slow client, -1 the client is gone. */
static int send_one(hout_t *o, client_t *c, const char *id, const sl_bytes_t *m, const char *event, const char *tenant) {
  if (o->tenant && (!c->user || !tenant || strcmp(tenant, c->user) != 0)) return 0;
  if (c->types) {
    char *key = sl_xasprintf(",%s,", event ? event : "");
    int wanted = strstr(c->types, key) != NULL;
    free(key);
    if (!wanted) return 0;
  }
  if (c->ws) return sl_ws_send(c->ws, sl_utf8_valid(m->data, m->len), m->data, m->len, (size_t)o->max_buffer);
  char *ev = NULL;
  size_t evl = 0;
  FILE *f = open_memstream(&ev, &evl);
  fprintf(f, "id: %s\n", id);
  if (event && *event && !strpbrk(event, "\r\n")) fprintf(f, "event: %s\n", event);
  const char *p = m->data, *end = m->data + m->len;
  do {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    fputs("data: ", f);
    fwrite(p, 1, n, f);
    fputc('\n', f);
    p += n + (nl ? 1 : 0);
  } while (p < end);
  fputc('\n', f);
  fclose(f);
  int rc = sl_http_stream_write(c->st, ev, evl, (size_t)o->max_buffer);
  free(ev);
  return rc;
}

/* An SSE event or a WebSocket frame per message. 1: client too slow. */
/* The position of a message from a `stream` input: 0 when it has none. */
static int position_of(const sl_msg_t *m, int *p, uint64_t *off) {
  const char *ps = sl_kv_get(&m->meta, "stream_partition"), *os = sl_kv_get(&m->meta, "stream_offset");
  if (!ps || !os) return 0;
  *p = atoi(ps);
  *off = strtoull(os, NULL, 10);
  return *p >= 0 && *p < 1024;
}

/* Moves a position vector past m. */
static void advance(uint64_t **pos, int *n, const sl_msg_t *m) {
  int p;
  uint64_t off;
  if (!position_of(m, &p, &off)) return;
  if (p >= *n) {
    *pos = sl_xrealloc(*pos, (size_t)(p + 1) * sizeof(uint64_t));
    for (int k = *n; k <= p; k++) (*pos)[k] = 0;
    *n = p + 1;
  }
  if (off + 1 > (*pos)[p]) (*pos)[p] = off + 1;
}

/* The SSE ids of b's messages for a client at pos, which moves past them
 * (free with ids_free). */
static char **ids_for(uint64_t **pos, int *n, const sl_batch_t *b) {
  char **ids = sl_xcalloc(b->n ? b->n : 1, sizeof(char *));
  for (uint32_t i = 0; i < b->n; i++) {
    advance(pos, n, b->msgs[i]);
    ids[i] = sl_positions_id(*pos, *n);
  }
  return ids;
}

static void ids_free(char **ids, uint32_t n) {
  for (uint32_t i = 0; ids && i < n; i++) free(ids[i]);
  free(ids);
}


/* An SSE event or a WebSocket frame per message (ids: each message's id
 * text, or NULL for first_id, first_id + 1, ...). 1: client too slow. */
static int send_events(hout_t *o, client_t *c, const sl_batch_t *b, uint64_t first_id, char **ids) {
  int slow = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)(first_id + i));
    int rc = send_one(o, c, ids ? ids[i] : num, b->msgs[i]->content, sl_kv_get(&b->msgs[i]->meta, "event"),
                      o->cur_tenants ? o->cur_tenants[i] : NULL);
    if (rc < 0) return -1;
    if (rc > 0) slow = 1;
  }
  return slow;
}

static void kept_drop_oldest(hout_t *o) {
  kept_t *k = &o->replay[o->replay_head];
  o->replay_bytes -= (int64_t)k->content->len;
  sl_bytes_unref(k->content);
  free(k->event);
  free(k->tenant);
  o->replay_head = (o->replay_head + 1) % o->replay_cap;
  o->replay_n--;
}

static void keep_event(hout_t *o, uint64_t id, const sl_msg_t *m, const char *tenant) {
  if (o->replay_max_bytes <= 0 || (int64_t)m->content->len > o->replay_max_bytes) return;
  while (o->replay_n && o->replay_bytes + (int64_t)m->content->len > o->replay_max_bytes) kept_drop_oldest(o);
  if (o->replay_n == o->replay_cap) {
    uint32_t cap = o->replay_cap ? o->replay_cap * 2 : 64;
    kept_t *r = sl_xcalloc(cap, sizeof(*r));
    for (uint32_t i = 0; i < o->replay_n; i++) r[i] = o->replay[(o->replay_head + i) % o->replay_cap];
    free(o->replay);
    o->replay = r;
    o->replay_cap = cap;
    o->replay_head = 0;
  }
  kept_t *k = &o->replay[(o->replay_head + o->replay_n) % o->replay_cap];
  const char *event = sl_kv_get(&m->meta, "event");
  *k = (kept_t){id, sl_bytes_ref(m->content), event ? sl_xstrdup(event) : NULL, tenant ? sl_xstrdup(tenant) : NULL};
  o->replay_n++;
  o->replay_bytes += (int64_t)m->content->len;
}

/* Sends the kept events after `after`; -1 when the client went away. */
static int replay_to(hout_t *o, client_t *c, uint64_t after) {
  if (o->replay_n && o->replay[o->replay_head].id > after + 1) {
    char gap[96];
    int n = snprintf(gap, sizeof gap, ": gap: events %llu to %llu are gone\n\n", (unsigned long long)after + 1,
                     (unsigned long long)o->replay[o->replay_head].id - 1);
    if (sl_http_stream_write(c->st, gap, (size_t)n, (size_t)o->max_buffer) < 0) return -1;
  }
  for (uint32_t i = 0; i < o->replay_n; i++) {
    kept_t *k = &o->replay[(o->replay_head + i) % o->replay_cap];
    if (k->id <= after) continue;
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)k->id);
    if (send_one(o, c, id, k->content, k->event, k->tenant) < 0) return -1;
  }
  return 0;
}

/* A client that fell more than max_buffer behind (rc 1) is told so (WebSocket
 * 1008) and logged; one that is gone (rc -1) is just forgotten. */
static void drop_client(hout_t *o, client_t *c, int rc) {
  if (rc > 0) {
    sl_http_slow_dropped(stream_name(o), o->base.label, c->ws ? "ws" : "sse");
    client_end(o, c, 1008, "too slow: send buffer full");
  } else {
    client_remove(o, c);
  }
}

/* Gives b to one client (round_robin); 0 when nobody could take it. */
static int deliver_one(hout_t *o, const sl_batch_t *b, uint64_t first_id) {
  if (o->waiters) {
    waiter_t *w = o->waiters;
    o->waiters = w->next;
    if (!o->waiters) o->waiters_tail = &o->waiters;
    answer_waiter(o, w, b);
    return 1;
  }
  unsigned n = 0;
  for (client_t *c = o->clients; c; c = c->next) n++;
  for (unsigned tries = 0; tries < n; tries++) {
    unsigned k = o->rr++ % n, i = 0;
    client_t *c = o->clients;
    while (i++ < k) c = c->next;
    int rc = send_events(o, c, b, first_id, NULL);
    if (rc == 0) return 1;
    drop_client(o, c, rc);
    if (rc > 0) return 1;
    n--;
  }
  return 0;
}

static void drain_held(hout_t *o) {
  while (o->held) {
    held_t *h = o->held;
    if (!deliver_one(o, h->b, o->seq + 1)) return;
    o->seq += h->b->n;
    o->held = h->next;
    if (!o->held) o->held_tail = &o->held;
    h->cb(&o->base, h->b, 0, NULL, h->arg);
    free(h);
  }
}

/* ---------- routes ---------- */

static void on_waiter_timeout(uv_timer_t *t) {
  waiter_t *w = t->data;
  answer_waiter(w->o, w, NULL);
}

static void on_waiter_gone(sl_http_req_t *r, void *arg) {
  waiter_t *w = arg;
  (void)r;
  sl_http_respond(w->req, 499, NULL, NULL, 0, NULL);   /* frees it: the client is gone */
  w->req = NULL;
  waiter_remove(w->o, w);
}

/* May this client connect now? Otherwise it is answered (503 or 403). */
static int admit(hout_t *o, sl_http_req_t *r) {
  if (o->closing) {
    sl_http_error(r, 503, "shutting down");
    return 0;
  }
  if (o->tenant && !r->user) {
    sl_http_error(r, 403, "tenant isolation needs an authenticated user (configure auth)");
    return 0;
  }
  return 1;
}

static void on_get(sl_http_req_t *r, void *arg) {
  hout_t *o = arg;
  if (!admit(o, r)) return;
  waiter_t *w = sl_xcalloc(1, sizeof(*w));
  w->req = r;
  if (r->user) w->user = sl_xstrdup(r->user);
  w->o = o;
  uv_timer_init(o->base.worker->loop, &w->timer);
  w->timer.data = w;
  uv_timer_start(&w->timer, on_waiter_timeout, (uint64_t)o->timeout_ms, 0);
  *o->waiters_tail = w;
  o->waiters_tail = &w->next;
  count_clients(o, 1);
  r->on_gone = on_waiter_gone;
  r->gone_arg = w;
  drain_held(o);
}

static void on_client_gone(void *arg) {
  client_t *c = arg;
  if (c->opening) {
    c->gone = 1;   /* on_sse cleans up */
    return;
  }
  client_remove(c->o, c);
}

/* Is this output fed by a `stream` input (durable resume applies)? */
static int from_stream(const hout_t *o) {
  return !o->round_robin && o->base.stream && o->base.stream->input && sl_stream_is_input(o->base.stream->input);
}

static client_t *client_by_token(hout_t *o, uint64_t token) {
  for (client_t *c = o->clients; c; c = c->next)
    if (c->token == token) return c;
  return NULL;
}

typedef struct resume_arg { hout_t *o; uint64_t token; } resume_arg_t;

/* The replay is over: what came live meanwhile follows, in order. */
static void replay_done(void *arg) {
  resume_arg_t *a = arg;
  client_t *c = client_by_token(a->o, a->token);
  free(a);
  if (!c) return;
  c->token = 0;
  sl_batch_t *later = c->later;
  c->later = NULL;
  if (!later) return;
  char **ids = ids_for(&c->pos, &c->npos, later);
  tenants_of(c->o, later);
  int rc = send_events(c->o, c, later, 0, ids);
  tenants_done(c->o, later);
  ids_free(ids, later->n);
  sl_batch_free(later);
  if (rc != 0) drop_client(c->o, c, rc);
}

/* Where live messages of partition p start for a client connecting now:
 * past what this output sent, or, before it sent anything, where the input
 * started (after a restart, say). */
static uint64_t live_from(const hout_t *o, int p) {
  return p < o->npos && o->pos[p] ? o->pos[p] : sl_stream_first(o->base.stream->input, p);
}

/* A stream-fed client's position vector starts at what it gets live. */
static void start_positions(hout_t *o, client_t *c) {
  int n = sl_stream_partitions(o->base.stream->input);
  c->pos = sl_xcalloc((size_t)(n > 0 ? n : 1), sizeof(uint64_t));
  c->npos = n > 0 ? n : 0;
  for (int p = 0; p < c->npos; p++) c->pos[p] = live_from(o, p);
}

/* Last-Event-ID "0:41,1:17" from a client of a stream-fed output: the
 * stream input reads the records after it again, up to what this output
 * has sent, for this client alone; live messages wait meanwhile. */
static void resume_from_stream(hout_t *o, client_t *c, const char *resume) {
  start_positions(o, c);
  int n = c->npos;
  if (n <= 0) return;
  uint64_t *to = sl_xcalloc((size_t)n, sizeof(uint64_t));
  memcpy(to, c->pos, (size_t)n * sizeof(uint64_t));
  sl_positions_parse(resume, c->pos, n, to);
  c->token = ++o->tokens;
  c->later = sl_batch_new(0);
  resume_arg_t *a = sl_xcalloc(1, sizeof(*a));
  *a = (resume_arg_t){o, c->token};
  char token[24];
  snprintf(token, sizeof token, "%llu", (unsigned long long)c->token);
  /* The client's vector starts where it left off; replayed messages move it. */
  uint64_t *from = sl_xcalloc((size_t)n, sizeof(uint64_t));
  memcpy(from, c->pos, (size_t)n * sizeof(uint64_t));
  sl_stream_replay(o->base.stream->input, from, to, n, token, replay_done, a);
  free(from);
  free(to);
}

static void on_sse(sl_http_req_t *r, void *arg) {
  hout_t *o = arg;
  if (!admit(o, r)) return;
  client_t *c = sl_xcalloc(1, sizeof(*c));
  c->o = o;
  c->opening = 1;
  if (r->user) c->user = sl_xstrdup(r->user);
  /* Resume point: Last-Event-ID (what EventSource sends on reconnect) or ?last_event_id=. */
  const char *last = sl_kv_get(&r->headers, "last-event-id");
  char *resume = last ? sl_xstrdup(last) : NULL;
  for (const char *q = r->query; q && *q;) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    size_t l;
    if (!resume && n > 14 && strncmp(q, "last_event_id=", 14) == 0) resume = sl_http_form_decode(q + 14, n - 14, &l);
    if (n > 6 && strncmp(q, "types=", 6) == 0) {
      char *v = sl_http_form_decode(q + 6, n - 6, &l);
      c->types = sl_xasprintf(",%s,", v);
      free(v);
    }
    q += n + (amp ? 1 : 0);
  }
  sl_kvlist_t h = {0};
  sl_kv_add(&h, "Cache-Control", "no-cache", 8);
  sl_kv_add(&h, "X-Accel-Buffering", "no", 2);
  c->st = sl_http_stream_open(r, 200, "text/event-stream", &h, on_client_gone, c);
  sl_kv_clear(&h);
  static const char hello[] = "retry: 3000\n: connected\n\n";
  char *end = NULL;
  unsigned long long after = resume ? strtoull(resume, &end, 10) : 0;
  int durable = resume && strchr(resume, ':') && from_stream(o);
  int bad = sl_http_stream_write(c->st, hello, sizeof hello - 1, (size_t)o->max_buffer) < 0 ||
            (!durable && resume && end && *end == 0 && end != resume && replay_to(o, c, after) < 0);
  c->opening = 0;
  if (bad || c->gone) {
    free(resume);
    client_end(o, c, 1001, NULL);   /* not linked yet: closes the stream and frees */
    return;
  }
  c->next = o->clients;
  o->clients = c;
  count_clients(o, 1);
  if (durable) resume_from_stream(o, c, resume);
  else if (from_stream(o)) start_positions(o, c);
  free(resume);
  drain_held(o);
}

static void on_ws_gone(sl_ws_t *ws, void *arg) {
  client_t *c = arg;
  (void)ws;
  c->ws = NULL;   /* already freed after this returns */
  client_end(c->o, c, 1000, NULL);
}

static void on_ws(sl_http_req_t *r, void *arg) {
  hout_t *o = arg;
  if (!admit(o, r)) return;
  client_t *c = sl_xcalloc(1, sizeof(*c));
  c->o = o;
  if (r->user) c->user = sl_xstrdup(r->user);
  c->next = o->clients;
  o->clients = c;
  count_clients(o, 1);
  static const sl_ws_handlers_t h = {NULL, on_ws_gone};
  c->ws = sl_ws_accept(r, &h, c, 64 << 10, 20000, o->base.worker);
  if (!c->ws) {
    /* Refused, or gone at once (then on_ws_gone already unlinked it). */
    client_t **pp = &o->clients;
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) {
      *pp = c->next;
      count_clients(o, -1);
      free(c);
    }
    return;
  }
  drain_held(o);
}

static void on_heartbeat(uv_timer_t *t) {
  hout_t *o = t->data;
  for (client_t *c = o->clients, *next; c; c = next) {
    next = c->next;
    if (c->st && sl_http_stream_write(c->st, ": keepalive\n\n", 13, (size_t)o->max_buffer) != 0) client_remove(o, c);
  }
}

/* ---------- output ---------- */

static int hout_start(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  if (o->sse_path[0] && o->heartbeat_ms > 0)
    uv_timer_start(&o->heartbeat, on_heartbeat, (uint64_t)o->heartbeat_ms, (uint64_t)o->heartbeat_ms);
  return 0;
}

static void hout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  hout_t *o = (hout_t *)out;
  if (o->round_robin) {
    if (!o->held && deliver_one(o, b, o->seq + 1)) {
      o->seq += b->n;
      cb(out, b, 0, NULL, arg);
      return;
    }
    held_t *h = sl_xcalloc(1, sizeof(*h));
    *h = (held_t){NULL, b, cb, arg};
    *o->held_tail = h;
    o->held_tail = &h->next;
    return;
  }
  const char *tag = b->n ? sl_kv_get(&b->msgs[0]->meta, SL_REPLAY_META) : NULL;
  if (tag) {
    /* A replay for one resuming client: to it alone, with its own ids. */
    client_t *c = client_by_token(o, strtoull(tag, NULL, 10));
    if (c) {
      char **ids = ids_for(&c->pos, &c->npos, b);
      tenants_of(o, b);
      int rc = send_events(o, c, b, 0, ids);
      ids_free(ids, b->n);
      tenants_done(o, b);
      if (rc != 0) drop_client(o, c, rc);
    }
    cb(out, b, 0, NULL, arg);
    return;
  }
  uint64_t first = o->seq + 1;
  o->seq += b->n;
  /* Stream-fed: ids are the stream positions after each message, per client. */
  int fed = b->n && from_stream(o);
  if (fed)
    for (uint32_t i = 0; i < b->n; i++) advance(&o->pos, &o->npos, b->msgs[i]);
  tenants_of(o, b);
  for (waiter_t *w = take_waiters(o), *next; w; w = next) {
    next = w->next;
    if (!o->tenant) {
      answer_waiter(o, w, b);
      continue;
    }
    /* A waiter gets its own messages of the batch, or keeps waiting. */
    sl_batch_t mine = {0};
    for (uint32_t i = 0; i < b->n; i++)
      if (visible(o, i, w->user)) sl_batch_push(&mine, b->msgs[i]);
    if (mine.n) {
      answer_waiter(o, w, &mine);
    } else {
      w->next = NULL;
      *o->waiters_tail = w;
      o->waiters_tail = &w->next;
    }
    free(mine.msgs);
  }
  for (client_t *c = o->clients, *next; c; c = next) {
    next = c->next;
    if (c->token) {   /* resuming: after its replay */
      for (uint32_t i = 0; i < b->n; i++) sl_batch_push(c->later, sl_msg_clone(b->msgs[i]));
      continue;
    }
    char **ids = fed ? ids_for(&c->pos, &c->npos, b) : NULL;
    int rc = send_events(o, c, b, first, ids);
    ids_free(ids, b->n);
    if (rc != 0) drop_client(o, c, rc);
  }
  for (uint32_t i = 0; i < b->n; i++) keep_event(o, first + i, b->msgs[i], o->cur_tenants ? o->cur_tenants[i] : NULL);
  tenants_done(o, b);
  cb(out, b, 0, NULL, arg);
}

static void hout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  hout_t *o = (hout_t *)out;
  o->closing = 1;
  for (waiter_t *w = take_waiters(o), *next; w; w = next) {
    next = w->next;
    answer_waiter(o, w, NULL);
  }
  while (o->clients) client_remove(o, o->clients);
  while (o->held) {
    held_t *h = o->held;
    o->held = h->next;
    h->cb(out, h->b, -1, "no client took the message before shutdown", h->arg);
    free(h);
  }
  o->held_tail = &o->held;
  if (o->routed || o->mounted) uv_timer_stop(&o->heartbeat);
  done(out, arg);
}

static void hout_free(uv_handle_t *h) {
  hout_t *o = h->data;
  while (o->replay_n) kept_drop_oldest(o);
  free(o->replay);
  free(o->pos);
  free(o->path);
  free(o->sse_path);
  free(o->ws_path);
  free(o->tenant_meta);
  free(o->tenant_json);
  sl_http_auth_free(o->auth);
  free(o);
}

static void hout_destroy(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  if (o->routed) {
    if (o->path[0]) sl_http_unroute(out->worker, o->path);
    if (o->sse_path[0]) sl_http_unroute(out->worker, o->sse_path);
    if (o->ws_path[0]) sl_http_unroute(out->worker, o->ws_path);
  }
  if (o->routed || o->mounted) {
    uv_close((uv_handle_t *)&o->heartbeat, hout_free);
    return;
  }
  hout_free((uv_handle_t *)&o->heartbeat);
}

static const sl_output_vt vt = {hout_start, hout_write, hout_close, hout_destroy};
static const sl_spec_t spec;

int sl_hout_is(const sl_output_t *o) { return o->spec == &spec; }

void sl_hout_serve(sl_output_t *out, int which, sl_http_req_t *r) {
  static const sl_http_handler handlers[] = {on_get, on_sse, on_ws};
  handlers[which](r, out);
}

void sl_hout_watch(sl_output_t *out, void (*cb)(void *arg, int nclients), void *arg) {
  hout_t *o = (hout_t *)out;
  o->watch = cb;
  o->watch_arg = arg;
}

static char *route_path(const char *p) {
  if (!p[0]) return sl_xstrdup("");
  return p[0] == '/' ? sl_xstrdup(p) : sl_xasprintf("/%s", p);
}

static void *hout_create(sl_build_t *b, const sl_cnode_t *conf) {
  hout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->heartbeat.data = o;
  o->path = route_path(sl_conf_str(conf, "path", "/get"));
  o->sse_path = route_path(sl_conf_str(conf, "sse_path", ""));
  o->ws_path = route_path(sl_conf_str(conf, "ws_path", ""));
  o->round_robin = strcmp(sl_conf_str(conf, "delivery", "broadcast"), "round_robin") == 0;
  o->timeout_ms = sl_conf_duration_ms(conf, "timeout", 5000);
  o->heartbeat_ms = sl_conf_duration_ms(conf, "heartbeat", 15000);
  o->max_buffer = sl_conf_size(conf, "max_buffer", (int64_t)SL_HTTP_MAX_BUFFER);
  o->replay_max_bytes = o->round_robin ? 0 : sl_conf_size(conf, "replay_bytes", 1 << 20);
  o->waiters_tail = &o->waiters;
  o->held_tail = &o->held;
  const char *tenant = sl_conf_str(conf, "tenant", ""), *tf = sl_conf_str(conf, "tenant_field", "meta.tenant");
  if (*tenant) {
    if (strcmp(tenant, "ctx.user") != 0 || o->round_robin ||
        (strncmp(tf, "meta.", 5) != 0 && strncmp(tf, "this.", 5) != 0) || !tf[5]) {
      sl_diag_add(b->diags, sl_cnode_get(conf, "tenant"), "tenant",
                  "tenant isolation is `tenant: ctx.user` with `delivery: broadcast` and a `tenant_field` of "
                  "`meta.KEY` or `this.FIELD`");
      hout_free((uv_handle_t *)&o->heartbeat);
      return NULL;
    }
    o->tenant = 1;
    if (strncmp(tf, "meta.", 5) == 0) o->tenant_meta = sl_xstrdup(tf + 5);
    else o->tenant_json = sl_xstrdup(tf + 5);
  }
  if (!o->path[0] && !o->sse_path[0] && !o->ws_path[0]) {
    sl_diag_add(b->diags, conf, "http_server", "set at least one of `path`, `sse_path`, `ws_path`");
    hout_free((uv_handle_t *)&o->heartbeat);
    return NULL;
  }
  if (b->mounted) {
    /* A request-scoped instance: core/scoped.c routes and authenticates. */
    uv_timer_init(b->worker->loop, &o->heartbeat);
    o->mounted = 1;
  } else if (!b->worker) {
    const char *paths[] = {o->path, o->sse_path, o->ws_path}, *keys[] = {"path", "sse_path", "ws_path"};
    for (int i = 0; i < 3; i++)
      if (paths[i][0] && sl_http_lint_route(paths[i], b->stream_name, b->diags,
                                            sl_cnode_get(conf, keys[i]) ? sl_cnode_get(conf, keys[i]) : conf)) {
        hout_free((uv_handle_t *)&o->heartbeat);
        return NULL;
      }
  } else {
    int bad = 0;
    if (o->path[0] && sl_http_route_get(b->worker, o->path, on_get, o, b->stream_name, b->diags,
                                        sl_cnode_get(conf, "path") ? sl_cnode_get(conf, "path") : conf) != 0)
      bad = 1;
    if (!bad && o->sse_path[0] &&
        sl_http_route_get(b->worker, o->sse_path, on_sse, o, b->stream_name, b->diags,
                          sl_cnode_get(conf, "sse_path")) != 0) {
      if (o->path[0]) sl_http_unroute(b->worker, o->path);
      bad = 1;
    }
    if (!bad && o->ws_path[0] &&
        sl_http_route_get(b->worker, o->ws_path, on_ws, o, b->stream_name, b->diags,
                          sl_cnode_get(conf, "ws_path")) != 0) {
      if (o->path[0]) sl_http_unroute(b->worker, o->path);
      if (o->sse_path[0]) sl_http_unroute(b->worker, o->sse_path);
      bad = 1;
    }
    if (bad) {
      hout_free((uv_handle_t *)&o->heartbeat);
      return NULL;
    }
    uv_timer_init(b->worker->loop, &o->heartbeat);
    o->routed = 1;
    uint32_t errors = b->diags->n;
    const sl_cnode_t *auth = sl_cnode_get(conf, "auth");
    if (auth) o->auth = sl_http_auth_new(auth, conf->file, b->diags);
    if (b->diags->n > errors) {
      hout_destroy(&o->base);
      return NULL;
    }
    if (o->auth) {
      const char *paths[] = {o->path, o->sse_path, o->ws_path};
      for (int i = 0; i < 3; i++)
        if (paths[i][0]) sl_http_route_auth(b->worker, paths[i], o->auth);
    }
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "http_server",
  .kind = SL_KIND_OUTPUT,
  .summary = "Serves messages to HTTP clients: long-poll GET, Server-Sent Events and WebSocket.",
  .desc =
    "Clients connect to the shared server (`http:` section). With `delivery: broadcast` (the "
    "default) every connected client gets every message; a message nobody is connected for is "
    "acknowledged and gone, as with any non-durable fan-out (use the durable `stream` output for "
    "replay). With `round_robin` each batch goes to one client and waits for one to connect.\n\n"
    "SSE clients that fall behind by more than `max_buffer` are disconnected (and logged), never "
    "silently skipped.\n\n"
    "When the stream's input or this output uses `${ctx.…}` (or a `$tyk_context.…` alias), the "
    "stream is request-scoped: each client's request resolves those values and is served by the "
    "instance for that resolution (see `request_scope` in the config reference).",
  .fields = fields,
  .example =
    "http:\n"
    "  address: 0.0.0.0:4195\n"
    "input:\n"
    "  generate: {interval: 1s, mapping: 'return {tick = i}'}\n"
    "output:\n"
    "  http_server:\n"
    "    path: /poll\n"
    "    sse_path: /events\n",
  .create = hout_create,
};
SL_REGISTER(spec)
