/* `http_server` output: serves messages to HTTP clients, by long-poll GET on
 * `path` and as Server-Sent Events on `sse_path`; every client gets every
 * message (broadcast) or each message goes to one client (round_robin). */
#include "http_server_out.h"
#include "http_routes.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "http/http_ws.h"
#include "store/streams.h"
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const deliveries[] = {"broadcast", "round_robin", NULL};
static const char *const starts[] = {"live", "earliest", NULL};

static const sl_field_t fields[] = {
  SL_HTTP_ADDRESS_FIELD,
  SL_HTTP_CORS_FIELD,
  {"path", SL_F_STRING, "/get", 0,
   "GET here waits up to `timeout` for the next batch and answers it (several messages joined by "
   "newlines), or 204 when none came. Empty: no long-poll path.", NULL, NULL},
  {"sse_path", SL_F_STRING, "", 0,
   "GET here opens a Server-Sent Events stream: each message is an event (`id:` counts messages "
   "of this output, `event:` from `meta.event` when set, `data:` lines hold the content); a "
   "`: keepalive` comment every `heartbeat`. `?types=a,b` keeps only messages whose type (`type_field`) "
   "is listed. When the stream's input is a `stream` input (and `delivery` is `broadcast`), `id:` is the "
   "stream position (`0:41,1:17`) and a client coming back with `Last-Event-ID` gets every later message "
   "read again from the stream, through the processors, for it alone, even after a restart. A "
   "`Last-Event-ID` that is not an id this output sends is answered 400. Empty: off.",
   NULL, NULL},
  {"ws_path", SL_F_STRING, "", 0,
   "WebSocket path: each message is pushed as a text frame (a binary frame when it is not UTF-8). "
   "`?types=`, `end_events`, `start` and `?last_event_id=` (or a `Last-Event-ID` header) work as on "
   "`sse_path`; frames carry no id, so a client resumes with ids its processors put in the content (with a "
   "`stream` input: `PARTITION:OFFSET` from `meta.stream_partition` and `meta.stream_offset`). Empty: off.",
   NULL, NULL},
  {"delivery", SL_F_ENUM, "broadcast", 0,
   "`broadcast`: every connected client gets every message (with no client connected the message "
   "is dropped and acknowledged). `round_robin`: each batch goes to one client in turn, and waits "
   "for one when none is connected (Benthos' behaviour); it is acknowledged once that client's socket "
   "took it (the kernel has it, so a kill -9 of sluice loses nothing its input acknowledged), and goes "
   "out again (to another client, or back to the input) when the client left first or was closed as "
   "too slow; a long-poll GET's answer counts once answered. When the stream stops (shutdown, reload, "
   "an idle request-scoped instance), what waits goes back to the input unacknowledged at once, "
   "and a Kafka or `stream` input reads it again later.", deliveries, NULL},
  {"start", SL_F_ENUM, "live", 0,
   "Where an SSE or WebSocket client that names no `Last-Event-ID` starts: `live` (the next message) or "
   "`earliest`: first what is kept, then live. With a `stream` input that is every record the stream keeps, "
   "read again for this client alone through the processors (so a client that connects late still gets "
   "the whole story); otherwise the recent messages `replay_bytes` keeps (`broadcast` only).", starts, NULL},
  {"type_field", SL_F_STRING, "meta.event", 0,
   "Where a message names its type, which `?types=` and `end_events` match: `meta.KEY` or `this.FIELD` "
   "(a top-level JSON field). The SSE `event:` name is `meta.event` either way.", NULL, NULL},
  {"end_events", SL_F_STRLIST, "[]", 0,
   "Message types (see `type_field`) after which an SSE or WebSocket client is done: the message is sent "
   "(a `?types=` filter never hides it), then the SSE response ends, or the WebSocket closes with 1000. "
   "Clients following a workflow's events stop at its end event without extra parameters.", NULL, NULL},
  SL_HTTP_AUTH_FIELD,
  {"tenant", SL_F_STRING, "", 0,
   "`ctx.user`: with `delivery: broadcast`, each client gets only the messages whose `tenant_field` equals "
   "its authenticated user (from `auth`), so isolation does not depend on a Lua filter; clients without a "
   "user are refused (403). Empty: off.", NULL, NULL},
  {"tenant_field", SL_F_STRING, "meta.tenant", 0,
   "Where a message names its tenant: `meta.KEY` or `this.FIELD` (a top-level JSON field).", NULL, NULL},
  {"replay_bytes", SL_F_SIZE, "1MiB", 0,
   "Recent messages kept (up to this many content bytes) so that an SSE client reconnecting with "
   "`Last-Event-ID` (header or `last_event_id` query) gets what it missed, in order and once: with "
   "`broadcast` every kept message after that id, with `round_robin` the kept messages after it that "
   "went to the same client's earlier connection (the one that got that id). Older ids are gone: the "
   "client is told with a `: gap` comment. An output fed by a `stream` input keeps nothing: its clients "
   "resume from the stream. 0: no replay.", NULL, NULL},
  {"timeout", SL_F_DURATION, "5s", 0, "How long a long-poll GET waits.", NULL, NULL},
  {"heartbeat", SL_F_DURATION, "15s", 0, "Interval of SSE keep-alive comments.", NULL, NULL},
  {"max_buffer", SL_F_SIZE, "1MiB", 0,
   "Bytes that may wait in a slow SSE client's socket buffer; beyond it the client is disconnected "
   "(it reconnects with `Last-Event-ID`), never silently skipped.", NULL, NULL},
  {0}};

typedef struct hout hout_t;

/* Where a message names its tenant or its type: a metadata key or a
 * top-level JSON field (one of them is set). */
typedef struct mfield { char *meta, *json; } mfield_t;

typedef struct client {      /* an SSE or WebSocket subscriber */
  struct client *next;
  sl_http_stream_t *st;      /* SSE */
  sl_ws_t *ws;               /* WebSocket */
  hout_t *o;
  char *types;               /* `types=a,b` filter as ",a,b,", or NULL */
  char *user;                /* tenant mode: the client's user */
  uint64_t serial;           /* this connection, as kept_t.holder names it */
  int opening, gone;         /* the client left while it was still being set up */
  int fanned;                /* gets the broadcast through the output's fan (its HTTP worker writes it) */
  int ending;                /* while opening: how a send ended it (DONE, SLOW), for attach() */
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

/* round_robin: a batch given to a client, written once the client's socket
 * took it, so that an input acknowledges nothing a kill -9 of sluice would
 * lose (issue 16); status 0 or -1 (the client left first), then reported. */
typedef struct given {
  struct given *next;
  struct hout *o;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  int status;
} given_t;

/* Recent events kept for clients that resume with Last-Event-ID. */
typedef struct kept {
  uint64_t id;
  sl_bytes_t *content;
  char *event, *type, *tenant;
  uint64_t holder;           /* round_robin: the connection it went to (0: a long-poll GET) */
} kept_t;

/* What sending one message to one client came to. */
enum { SENT = 0, SLOW = 1, DONE = 2, GONE = -1 };

struct hout {
  sl_output_t base;
  kept_t *replay;            /* ring of the last events (outputs not fed by a stream) */
  uint32_t replay_head, replay_n, replay_cap;
  int64_t replay_bytes, replay_max_bytes;
  sl_http_auth_t *auth;
  int tenant;
  mfield_t tenant_f, type_f;
  char **cur_tenants, **cur_types;   /* of the batch being written */
  char *ends;                /* end_events as ",a,b,", or NULL */
  char *path, *sse_path, *ws_path;
  sl_hroute_t routes[3];     /* path, sse_path, ws_path */
  int round_robin, start_earliest;
  int64_t timeout_ms, heartbeat_ms, max_buffer;
  client_t *clients;
  int nplain;                /* clients listed that are not fanned: only these are walked per batch */
  waiter_t *waiters, **waiters_tail;
  held_t *held, **held_tail;
  /* Given batches whose end is known, reported from the settle timer: never
   * inside the send or close that learned it (a write's callback may write
   * to this output again). */
  given_t *ended, **ended_tail;
  uv_timer_t settle;
  int handles;               /* open at destroy: heartbeat and settle */
  unsigned rr;
  uint64_t seq, serials;
  uv_timer_t heartbeat;
  int routed, mounted, closing;
  int stopping;              /* the stream is stopping: nothing is held for clients to come */
  int nclients;              /* waiting GETs plus SSE and WebSocket clients */
  /* Fed by a `stream` input: SSE ids are the stream positions after each
   * event ("0:41,1:17"), so a client resumes from the stream itself. */
  uint64_t *pos;
  int npos;
  uint64_t tokens;
  void (*watch)(void *arg, int nclients);
  void *watch_arg;
  /* Clients that get every message as it is (no filter, tenant nor ids
   * of their own) and stay on an HTTP worker: each broadcast event goes to
   * each worker once and the workers write them (http.h, fans). */
  sl_http_fan_t *fan_sse, *fan_ws;
};

static void count_clients(hout_t *o, int delta) {
  o->nclients += delta;
  if (o->watch) o->watch(o->watch_arg, o->nclients);
}

static const char *stream_name(const hout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

/* Is this output fed by an input that can replay (a `stream` input:
 * durable resume applies)? */
static int from_stream(const hout_t *o) {
  return !o->round_robin && o->base.stream && o->base.stream->input && o->base.stream->input->vt->replay;
}

static const sl_replay_vt *replay_of(const hout_t *o) { return o->base.stream->input->vt->replay; }

/* Is name in a ",a,b," list? */
static int listed(const char *list, const char *name) {
  if (!list) return 0;
  char *key = sl_xasprintf(",%s,", name ? name : "");
  int in = strstr(list, key) != NULL;
  free(key);
  return in;
}

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

/* Unlinks c (if linked) and ends its connection (code: WebSocket close code). */
static void client_end(hout_t *o, client_t *c, int code, const char *why) {
  client_t **pp = &o->clients;
  while (*pp && *pp != c) pp = &(*pp)->next;
  if (*pp) {
    *pp = c->next;
    count_clients(o, -1);
    if (!c->fanned) o->nplain--;
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

/* `meta.KEY` or `this.FIELD`; -1 for anything else. */
static int mfield_set(mfield_t *f, const char *spec) {
  if ((strncmp(spec, "meta.", 5) != 0 && strncmp(spec, "this.", 5) != 0) || !spec[5]) return -1;
  if (spec[0] == 'm') f->meta = sl_xstrdup(spec + 5);
  else f->json = sl_xstrdup(spec + 5);
  return 0;
}

/* m's value of f (caller frees), or NULL. */
static char *mfield_of(const mfield_t *f, const sl_msg_t *m) {
  if (f->meta) {
    const char *v = sl_kv_get(&m->meta, f->meta);
    return v ? sl_xstrdup(v) : NULL;
  }
  json_t *doc = json_loadb(m->content->data, m->content->len, 0, NULL);
  json_t *v = json_object_get(doc, f->json);
  char *t = !v ? NULL : json_is_string(v) ? sl_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
  json_decref(doc);
  return t;
}

static char **mfield_all(const mfield_t *f, const sl_batch_t *b) {
  char **v = sl_xcalloc(b->n ? b->n : 1, sizeof(char *));
  for (uint32_t i = 0; i < b->n; i++) v[i] = mfield_of(f, b->msgs[i]);
  return v;
}

static void strs_free(char **v, uint32_t n) {
  for (uint32_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

/* The tenant (tenant mode) and type of each message of b, for the sends
 * that follow; classified_done forgets them. */
static void classify(hout_t *o, const sl_batch_t *b) {
  if (o->tenant) o->cur_tenants = mfield_all(&o->tenant_f, b);
  o->cur_types = mfield_all(&o->type_f, b);
}

static void classified_done(hout_t *o, const sl_batch_t *b) {
  strs_free(o->cur_tenants, b->n);
  strs_free(o->cur_types, b->n);
  o->cur_tenants = o->cur_types = NULL;
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

/* An SSE event: `id:`, `event:` when set, one `data:` line per line of the
 * content (an SSE client ends a line at CR, LF or CRLF alike, so a CR left
 * inside a line would cut the rest off). */
static sl_bytes_t *sse_event(const char *id, const char *event, const sl_bytes_t *m) {
  size_t breaks = 0;
  for (size_t i = 0; i < m->len; i++) breaks += m->data[i] == '\n' || m->data[i] == '\r';
  int named = event && *event && !strpbrk(event, "\r\n");
  size_t cap = 5 + strlen(id) + (named ? 8 + strlen(event) : 0) + m->len + 7 * (breaks + 1) + 1;
  char *ev = sl_xmalloc(cap), *o = ev;
  o += sprintf(o, "id: %s\n", id);
  if (named) o += sprintf(o, "event: %s\n", event);
  const char *p = m->data, *end_p = m->data + m->len;
  do {
    size_t n = 0;
    while (p + n < end_p && p[n] != '\n' && p[n] != '\r') n++;
    memcpy(o, "data: ", 6);
    memcpy(o + 6, p, n);
    o[6 + n] = '\n';
    o += 7 + n;
    p += n;
    if (p < end_p) p += *p == '\r' && p + 1 < end_p && p[1] == '\n' ? 2 : 1;
  } while (p < end_p);
  *o++ = '\n';
  sl_bytes_t *b = sl_bytes_new(ev, (size_t)(o - ev));
  free(ev);
  return b;
}

/* A message's event and frame, formatted once for every client of a
 * broadcast that gets the same bytes (NULL until the first one needs it). */
typedef struct shared { sl_bytes_t *sse, *ws; } shared_t;

static sl_bytes_t *ws_frame_in(sl_bytes_t **slot, const sl_bytes_t *m) {
  if (!*slot) *slot = sl_ws_frame(sl_utf8_valid(m->data, m->len), m->data, m->len);
  return *slot;
}

static sl_bytes_t *sse_event_in(sl_bytes_t **slot, const char *id, const char *event, const sl_bytes_t *m) {
  if (!*slot) *slot = sse_event(id, event, m);
  return *slot;
}

static void shared_free(shared_t *v, uint32_t n) {
  for (uint32_t i = 0; v && i < n; i++) {
    sl_bytes_unref(v[i].sse);
    sl_bytes_unref(v[i].ws);
  }
  free(v);
}

/* One message to one client, unless its filters skip it: SENT (or
 * skipped), SLOW (sent to a slow client), DONE (an end event was sent: the
 * client is done), GONE. sh: the message's shared bytes, or NULL when this
 * client's differ (its own ids); sh_sse: whether the SSE event may be shared. */
static int send_one(hout_t *o, client_t *c, const char *id, const sl_bytes_t *m, const char *event, const char *type,
                    const char *tenant, shared_t *sh, int sh_sse) {
  if (o->tenant && (!c->user || !tenant || strcmp(tenant, c->user) != 0)) return SENT;
  int end = listed(o->ends, type);
  if (!end && c->types && !listed(c->types, type)) return SENT;
  sl_bytes_t *own = NULL, **slot = &own;
  int rc;
  if (c->ws) {
    if (sh) slot = &sh->ws;
    rc = sl_ws_send_frame(c->ws, ws_frame_in(slot, m), (size_t)o->max_buffer);
  } else {
    if (sh && sh_sse) slot = &sh->sse;
    rc = sl_http_stream_send(c->st, sse_event_in(slot, id, event, m), (size_t)o->max_buffer);
  }
  sl_bytes_unref(own);
  return rc < 0 ? GONE : end ? DONE : rc;
}

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

/* An SSE event or a WebSocket frame per message of a classified batch,
 * ids first_id, first_id + 1, ... or, for a stream-fed client (c->pos), the
 * client's stream position after each message; a stream-fed client skips
 * what it already has (it resumed ahead of this output). Stops at DONE or
 * GONE, else SLOW when the client is slow. */
static int send_events(hout_t *o, client_t *c, const sl_batch_t *b, uint64_t first_id, shared_t *sh) {
  if (c->ending) return c->ending;
  int slow = 0, rc = SENT, n = c->npos;
  uint64_t *had = c->pos ? sl_xmalloc((size_t)(n ? n : 1) * sizeof(uint64_t)) : NULL;
  if (had) memcpy(had, c->pos, (size_t)n * sizeof(uint64_t));
  for (uint32_t i = 0; i < b->n && rc != GONE && rc != DONE; i++) {
    int p;
    uint64_t off;
    char num[24], *id = num;
    if (had && position_of(b->msgs[i], &p, &off) && p < n && off < had[p]) continue;
    if (had) {
      advance(&c->pos, &c->npos, b->msgs[i]);
      id = sl_positions_id(c->pos, c->npos);
    } else {
      snprintf(num, sizeof num, "%llu", (unsigned long long)(first_id + i));
    }
    rc = send_one(o, c, id, b->msgs[i]->content, sl_kv_get(&b->msgs[i]->meta, "event"), o->cur_types[i],
                  o->cur_tenants ? o->cur_tenants[i] : NULL, sh ? &sh[i] : NULL, !had);
    if (id != num) free(id);
    if (rc == SLOW) slow = 1;
  }
  free(had);
  return rc == GONE || rc == DONE ? rc : slow ? SLOW : SENT;
}

/* The fan's clients get the messages of a classified batch (ids first,
 * first + 1, ...) from their HTTP workers, the SSE events of a run of them
 * then its WebSocket frames (the workers get one message for all); after an
 * end event they are done. */
static void fan_events(hout_t *o, const sl_batch_t *b, uint64_t first, shared_t *sh) {
  for (uint32_t from = 0, to; from < b->n; from = to + 1) {
    int nsse = sl_http_fan_members(o->fan_sse), nws = sl_http_fan_members(o->fan_ws);
    if (!nsse && !nws) return;
    for (to = from; to + 1 < b->n && !listed(o->ends, o->cur_types[to]);) to++;
    for (uint32_t i = from; i <= to && nsse; i++) {
      const sl_msg_t *m = b->msgs[i];
      char id[24];
      snprintf(id, sizeof id, "%llu", (unsigned long long)(first + i));
      sl_http_fan_send(o->fan_sse, sse_event_in(&sh[i].sse, id, sl_kv_get(&m->meta, "event"), m->content));
    }
    for (uint32_t i = from; i <= to && nws; i++) sl_http_fan_send(o->fan_ws, ws_frame_in(&sh[i].ws, b->msgs[i]->content));
    if (!listed(o->ends, o->cur_types[to])) continue;
    for (client_t *c = o->clients, *next; c; c = next) {
      next = c->next;
      if (c->fanned) client_end(o, c, 1000, "end of stream");
    }
  }
}

static void kept_drop_oldest(hout_t *o) {
  kept_t *k = &o->replay[o->replay_head];
  o->replay_bytes -= (int64_t)k->content->len;
  sl_bytes_unref(k->content);
  free(k->event);
  free(k->type);
  free(k->tenant);
  o->replay_head = (o->replay_head + 1) % o->replay_cap;
  o->replay_n--;
}

/* Keeps message i of the classified batch being written, sent as `id`. */
static void keep_event(hout_t *o, uint64_t id, const sl_msg_t *m, uint32_t i, uint64_t holder) {
  if (o->replay_max_bytes <= 0 || (int64_t)m->content->len > o->replay_max_bytes) return;
  while (o->replay_n && o->replay_bytes + (int64_t)m->content->len > o->replay_max_bytes) kept_drop_oldest(o);
  if (o->replay_n == o->replay_cap) {
    uint32_t cap = o->replay_cap ? o->replay_cap * 2 : 64;
    kept_t *r = sl_xcalloc(cap, sizeof(*r));
    for (uint32_t k = 0; k < o->replay_n; k++) r[k] = o->replay[(o->replay_head + k) % o->replay_cap];
    free(o->replay);
    o->replay = r;
    o->replay_cap = cap;
    o->replay_head = 0;
  }
  kept_t *k = &o->replay[(o->replay_head + o->replay_n) % o->replay_cap];
  const char *event = sl_kv_get(&m->meta, "event"), *type = o->cur_types[i];
  const char *tenant = o->cur_tenants ? o->cur_tenants[i] : NULL;
  *k = (kept_t){id, sl_bytes_ref(m->content), event ? sl_xstrdup(event) : NULL, type ? sl_xstrdup(type) : NULL,
                tenant ? sl_xstrdup(tenant) : NULL, holder};
  o->replay_n++;
  o->replay_bytes += (int64_t)m->content->len;
}

static kept_t *kept_at(hout_t *o, uint32_t i) { return &o->replay[(o->replay_head + i) % o->replay_cap]; }

static int gap_notice(hout_t *o, client_t *c, const char *what) {
  if (!c->st) return SENT;   /* WebSocket has no comments */
  char *gap = sl_xasprintf(": gap: %s\n\n", what);
  int rc = sl_http_stream_write(c->st, gap, strlen(gap), (size_t)o->max_buffer) < 0 ? GONE : SENT;
  free(gap);
  return rc;
}

/* Sends the kept events after `after` (notice: say so when some are gone).
 * With round_robin only those that went where `after` went: the client's
 * earlier connection; they are this connection's from now on. */
static int replay_to(hout_t *o, client_t *c, uint64_t after, int notice) {
  uint64_t oldest = o->replay_n ? o->replay[o->replay_head].id : o->seq + 1, holder = 0;
  char *what = NULL;
  if (o->round_robin) {
    int found = 0;
    for (uint32_t i = 0; i < o->replay_n && !found; i++)
      if (kept_at(o, i)->id == after) {
        found = 1;
        holder = kept_at(o, i)->holder;   /* 0: a long-poll got it, no connection to follow */
      }
    if (!found && after >= 1 && after < o->seq)   /* whose it was, and what followed it there, is forgotten */
      what = sl_xasprintf("events after %llu are no longer kept", (unsigned long long)after);
  } else if (oldest > after + 1 && after < o->seq) {
    what = sl_xasprintf("events %llu to %llu are gone", (unsigned long long)after + 1, (unsigned long long)oldest - 1);
  }
  int rc = what && notice ? gap_notice(o, c, what) : SENT;
  free(what);
  for (uint32_t i = 0; i < o->replay_n && rc == SENT; i++) {
    kept_t *k = kept_at(o, i);
    if (k->id <= after || (o->round_robin && (!holder || k->holder != holder))) continue;
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)k->id);
    rc = send_one(o, c, id, k->content, k->event, k->type, k->tenant, NULL, 0);
    if (rc == SLOW) rc = SENT;   /* the live writes that follow will tell */
    if (o->round_robin) k->holder = c->serial;
  }
  return rc;
}

/* A client that fell more than max_buffer behind (SLOW) is told so
 * (WebSocket 1008) and logged; one that got its end event (DONE) is closed
 * cleanly; one that is gone is just forgotten. */
static void drop_client(hout_t *o, client_t *c, int rc) {
  if (c->opening) {   /* a replay that ran at once: attach() ends it */
    if (rc == GONE) c->gone = 1;
    else c->ending = rc;
    return;
  }
  if (rc == DONE) {
    client_end(o, c, 1000, "end of stream");
  } else if (rc == SLOW) {
    sl_http_slow_dropped(stream_name(o), o->base.label, c->ws ? "ws" : "sse");
    client_end(o, c, 1008, "too slow: send buffer full");
  } else {
    client_remove(o, c);
  }
}

static const char not_written[] = "the client left before its connection wrote the batch";

/* The given batches whose end is known go back to the stream: written, or
 * (the client left first) failed, to be written again (another client, or
 * the input's redelivery); abandoned once the output stops. */
static void report_ended(hout_t *o) {
  while (o->ended) {
    given_t *g = o->ended;
    o->ended = g->next;
    if (!o->ended) o->ended_tail = &o->ended;
    int status = g->status == 0 ? 0 : o->closing || o->stopping ? SL_WRITE_ABANDONED : -1;
    g->cb(&o->base, g->b, status, status ? not_written : NULL, g->arg);
    free(g);
  }
}

static void on_settle(uv_timer_t *t) { report_ended(t->data); }

static void given_ended(void *arg, int status) {
  given_t *g = arg;
  hout_t *o = g->o;
  g->status = status;
  *o->ended_tail = g;
  o->ended_tail = &g->next;
  uv_timer_start(&o->settle, on_settle, 0, 0);
}

/* Gives b to one client (round_robin), keeping its messages for a resume
 * with the connection that got them; 0 when nobody could take it. Given,
 * cb ends the write once the client's socket took the batch (a long-poll
 * GET's answer and a client closed by an end event: at once). */
static int deliver_one(hout_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  uint64_t first = o->seq + 1, holder = 0;
  int given = 0;
  given_t *g = sl_xmalloc(sizeof(*g));
  *g = (given_t){NULL, o, b, cb, arg, 0};
  classify(o, b);
  if (o->waiters) {
    waiter_t *w = o->waiters;
    o->waiters = w->next;
    if (!o->waiters) o->waiters_tail = &o->waiters;
    answer_waiter(o, w, b);
    given = 1;
    given_ended(g, 0);
  }
  unsigned n = 0;
  for (client_t *c = o->clients; c && !given; c = c->next) n++;
  for (unsigned tries = 0; tries < n && !given; tries++) {
    unsigned k = o->rr++ % n, i = 0;
    client_t *c = o->clients;
    while (i++ < k) c = c->next;
    int rc = send_events(o, c, b, first, NULL);
    holder = c->serial;
    given = rc != GONE;
    /* a client too slow is closed: the batch is not known to be written */
    if (rc == SENT || rc == SLOW) sl_http_stream_when_written(c->ws ? sl_ws_stream(c->ws) : c->st, given_ended, g);
    else if (rc == DONE) given_ended(g, 0);
    if (rc != SENT) drop_client(o, c, rc);
    if (rc == GONE) n--;
  }
  if (given) {
    for (uint32_t i = 0; i < b->n; i++) keep_event(o, first + i, b->msgs[i], i, holder);
    o->seq += b->n;
  } else {
    free(g);
  }
  classified_done(o, b);
  return given;
}

static void drain_held(hout_t *o) {
  while (o->held) {
    held_t *h = o->held;
    if (!deliver_one(o, h->b, h->cb, h->arg)) return;
    o->held = h->next;
    if (!o->held) o->held_tail = &o->held;
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
    c->gone = 1;   /* attach() cleans up */
    return;
  }
  client_remove(c->o, c);
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
  classify(c->o, later);
  int rc = send_events(c->o, c, later, 0, NULL);
  classified_done(c->o, later);
  sl_batch_free(later);
  if (rc != SENT) drop_client(c->o, c, rc);
}

/* Where live messages of partition p start for a client connecting now:
 * past what this output sent, or, before it sent anything, where the input
 * started (after a restart, say). */
static uint64_t live_from(const hout_t *o, int p) {
  return p < o->npos && o->pos[p] ? o->pos[p] : replay_of(o)->first(o->base.stream->input, p);
}

/* A stream-fed client's position vector starts at what it gets live. */
static void start_positions(hout_t *o, client_t *c) {
  int n = replay_of(o)->partitions(o->base.stream->input);
  c->pos = sl_xcalloc((size_t)(n > 0 ? n : 1), sizeof(uint64_t));
  c->npos = n > 0 ? n : 0;
  for (int p = 0; p < c->npos; p++) c->pos[p] = live_from(o, p);
}

/* A stream-fed client that resumes (next: the next offset per partition
 * it names, given[p] set for those) or starts at the earliest (next NULL):
 * the stream input reads the records from there again, up to what this
 * output has sent, for this client alone; live messages wait meanwhile. */
static void resume_from_stream(hout_t *o, client_t *c, const uint64_t *next, const int *given) {
  start_positions(o, c);
  int n = c->npos;
  if (n <= 0) return;
  uint64_t *to = sl_xcalloc((size_t)n, sizeof(uint64_t));
  memcpy(to, c->pos, (size_t)n * sizeof(uint64_t));
  for (int p = 0; p < n; p++) {
    uint64_t end = replay_of(o)->end(o->base.stream->input, p);
    if (!next) c->pos[p] = 0;   /* the input starts at the earliest it keeps */
    /* Ahead of this output (its input has not read that far yet): what
     * comes live up to there is skipped. Past the stream's end (an id of a
     * stream deleted since): live. */
    else if (given[p]) c->pos[p] = next[p] <= end ? next[p] : to[p];
  }
  c->token = ++o->tokens;
  c->later = sl_batch_new(0);
  resume_arg_t *a = sl_xcalloc(1, sizeof(*a));
  *a = (resume_arg_t){o, c->token};
  char token[24];
  snprintf(token, sizeof token, "%llu", (unsigned long long)c->token);
  /* The client's vector starts where it left off; replayed messages move it. */
  uint64_t *from = sl_xcalloc((size_t)n, sizeof(uint64_t));
  memcpy(from, c->pos, (size_t)n * sizeof(uint64_t));
  replay_of(o)->replay(o->base.stream->input, from, to, n, token, replay_done, a);
  free(from);
  free(to);
}

/* Where a client resumes from: a Last-Event-ID header or ?last_event_id=. */
typedef struct resume {
  char *id;                  /* NULL: none */
  uint64_t after;            /* numeric ids (outputs not fed by a stream) */
  uint64_t *next;            /* stream-fed: next offset per partition named */
  int *given, n;
} resume_t;

static void resume_free(resume_t *rs) {
  free(rs->id);
  free(rs->next);
  free(rs->given);
}

/* Reads r's resume id; -1 (answered 400, listing the forms) when it is not
 * an id this output sends. */
static int resume_parse(hout_t *o, sl_http_req_t *r, resume_t *rs) {
  *rs = (resume_t){0};
  const char *h = sl_kv_get(&r->headers, "last-event-id");
  rs->id = h && *h ? sl_xstrdup(h) : sl_http_query(r, "last_event_id");
  if (rs->id && !*rs->id) {
    free(rs->id);
    rs->id = NULL;
  }
  if (!rs->id) return 0;
  const char *what = h && *h ? "Last-Event-ID" : "last_event_id";
  char *msg = NULL;
  if (from_stream(o)) {
    rs->n = replay_of(o)->partitions(o->base.stream->input);
    rs->next = sl_xcalloc((size_t)(rs->n > 0 ? rs->n : 1), sizeof(uint64_t));
    rs->given = sl_xcalloc((size_t)(rs->n > 0 ? rs->n : 1), sizeof(int));
    if (sl_positions_parse(rs->id, rs->next, rs->given, rs->n) != 0) msg = sl_positions_error(what, rs->id, rs->n);
  } else {
    char *end;
    errno = 0;
    rs->after = strtoull(rs->id, &end, 10);
    if (*end || rs->id[0] < '0' || rs->id[0] > '9' || errno == ERANGE)
      msg = sl_positions_error(what, rs->id, 0);
  }
  if (!msg) return 0;
  sl_http_error(r, 400, msg);
  free(msg);
  resume_free(rs);
  return -1;
}

/* Where a new client starts: after its resume id, or at the earliest kept
 * (start: earliest), or live. SENT, DONE or GONE. */
static int client_start(hout_t *o, client_t *c, const resume_t *rs) {
  if (from_stream(o)) {
    if (rs->id || o->start_earliest) resume_from_stream(o, c, rs->id ? rs->next : NULL, rs->given);
    else start_positions(o, c);
    return SENT;
  }
  if (rs->id) return replay_to(o, c, rs->after, 1);
  if (o->start_earliest && !o->round_robin) return replay_to(o, c, 0, 0);
  return SENT;
}

static client_t *client_new(hout_t *o, sl_http_req_t *r) {
  client_t *c = sl_xcalloc(1, sizeof(*c));
  c->o = o;
  c->serial = ++o->serials;
  c->opening = 1;
  if (r->user) c->user = sl_xstrdup(r->user);
  char *types = sl_http_query(r, "types");
  if (types) c->types = sl_xasprintf(",%s,", types);
  free(types);
  return c;
}

/* A new client is connected (SSE answered, WebSocket accepted): it joins
 * the others and gets what it resumes (unless it already failed). */
static void attach(hout_t *o, client_t *c, resume_t *rs, int failed) {
  c->next = o->clients;
  o->clients = c;
  count_clients(o, 1);
  o->nplain++;
  int rc = failed ? GONE : client_start(o, c, rs);
  resume_free(rs);
  c->opening = 0;
  if (c->gone) rc = GONE;
  else if (rc == SENT && c->ending) rc = c->ending;
  if (rc != SENT) {
    drop_client(o, c, rc);
    return;
  }
  /* From here on, what it gets is what every plain client gets. */
  if (!o->round_robin && !o->tenant && !c->types && !c->token && !from_stream(o))
    c->fanned = sl_http_fan_join(c->ws ? o->fan_ws : o->fan_sse, c->ws ? sl_ws_stream(c->ws) : c->st,
                                 (size_t)o->max_buffer);
  if (c->fanned) o->nplain--;
  drain_held(o);
}

/* Its HTTP worker found it more than max_buffer behind. */
static void on_client_slow(void *arg) {
  client_t *c = arg;
  drop_client(c->o, c, SLOW);
}

static void on_sse(sl_http_req_t *r, void *arg) {
  hout_t *o = arg;
  resume_t rs;
  if (!admit(o, r) || resume_parse(o, r, &rs) != 0) return;
  client_t *c = client_new(o, r);
  sl_http_req_stay(r);
  c->st = sl_http_sse_open(r, on_client_gone, c);
  sl_http_stream_on_slow(c->st, on_client_slow, c);
  static const char hello[] = "retry: 3000\n: connected\n\n";
  attach(o, c, &rs, sl_http_stream_write(c->st, hello, sizeof hello - 1, (size_t)o->max_buffer) < 0);
}

static void on_ws_gone(sl_ws_t *ws, void *arg) {
  client_t *c = arg;
  (void)ws;
  c->ws = NULL;   /* already freed after this returns */
  if (c->opening) {
    c->gone = 1;
    return;
  }
  client_end(c->o, c, 1000, NULL);
}

static void on_ws(sl_http_req_t *r, void *arg) {
  hout_t *o = arg;
  resume_t rs;
  if (!admit(o, r) || resume_parse(o, r, &rs) != 0) return;
  client_t *c = client_new(o, r);
  static const sl_ws_handlers_t h = {NULL, on_ws_gone};
  sl_http_req_stay(r);
  c->ws = sl_ws_accept(r, &h, c, 64 << 10, 20000, o->base.worker);
  if (!c->ws) {   /* refused (answered), or gone at once */
    resume_free(&rs);
    client_end(o, c, 1000, NULL);
    return;
  }
  sl_http_stream_on_slow(sl_ws_stream(c->ws), on_client_slow, c);
  attach(o, c, &rs, 0);
}

static void on_heartbeat(uv_timer_t *t) {
  hout_t *o = t->data;
  sl_bytes_t *ka = sl_bytes_new(": keepalive\n\n", 13);
  if (sl_http_fan_members(o->fan_sse)) sl_http_fan_send(o->fan_sse, ka);
  for (client_t *c = o->nplain ? o->clients : NULL, *next; c; c = next) {
    next = c->next;
    if (c->st && !c->fanned && sl_http_stream_send(c->st, ka, (size_t)o->max_buffer) != 0) client_remove(o, c);
  }
  sl_bytes_unref(ka);
}

/* ---------- output ---------- */

static int hout_start(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  if (o->sse_path[0] && o->heartbeat_ms > 0)
    uv_timer_start(&o->heartbeat, on_heartbeat, (uint64_t)o->heartbeat_ms, (uint64_t)o->heartbeat_ms);
  return 0;
}

static const char no_client[] = "no client took the message before shutdown";

/* Ends the held writes with status: nobody is going to take them. */
static void fail_held(hout_t *o, int status) {
  while (o->held) {
    held_t *h = o->held;
    o->held = h->next;
    h->cb(&o->base, h->b, status, no_client, h->arg);
    free(h);
  }
  o->held_tail = &o->held;
}

/* A shutdown brings no new client: what waits for one goes back to the
 * input at once, unacknowledged (a Kafka input reads it again after the
 * restart), instead of holding the drain until shutdown_timeout. */
static void hout_stopping(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  o->stopping = 1;
  fail_held(o, SL_WRITE_ABANDONED);
}

static void hout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  hout_t *o = (hout_t *)out;
  if (o->round_robin) {
    if (!o->held && deliver_one(o, b, cb, arg)) return;
    if (o->stopping) {
      cb(out, b, SL_WRITE_ABANDONED, no_client, arg);
      return;
    }
    held_t *h = sl_xcalloc(1, sizeof(*h));
    *h = (held_t){NULL, b, cb, arg};
    *o->held_tail = h;
    o->held_tail = &h->next;
    return;
  }
  classify(o, b);
  const char *tag = b->n ? sl_kv_get(&b->msgs[0]->meta, SL_REPLAY_META) : NULL;
  if (tag) {
    /* A replay for one resuming client: to it alone, with its own ids. */
    client_t *c = client_by_token(o, strtoull(tag, NULL, 10));
    if (c) {
      int rc = send_events(o, c, b, 0, NULL);
      if (rc != SENT) drop_client(o, c, rc);
    }
    classified_done(o, b);
    cb(out, b, 0, NULL, arg);
    return;
  }
  uint64_t first = o->seq + 1;
  o->seq += b->n;
  /* Stream-fed: ids are the stream positions after each message, per client. */
  int fed = b->n && from_stream(o);
  if (fed)
    for (uint32_t i = 0; i < b->n; i++) advance(&o->pos, &o->npos, b->msgs[i]);
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
  shared_t *sh = o->clients ? sl_xcalloc(b->n ? b->n : 1, sizeof(*sh)) : NULL;
  if (sh) fan_events(o, b, first, sh);
  /* 10,000 fanned clients walked for nothing cost ~1 ms of the engine's loop per batch. */
  for (client_t *c = o->nplain ? o->clients : NULL, *next; c; c = next) {
    next = c->next;
    if (c->fanned) continue;
    if (c->token) {   /* resuming: after its replay */
      for (uint32_t i = 0; i < b->n; i++) sl_batch_push(c->later, sl_msg_clone(b->msgs[i]));
      continue;
    }
    int rc = send_events(o, c, b, first, sh);
    if (rc != SENT) drop_client(o, c, rc);
  }
  shared_free(sh, b->n);
  /* A stream-fed output's clients resume from the stream itself. */
  for (uint32_t i = 0; i < b->n && !fed; i++) keep_event(o, first + i, b->msgs[i], i, 0);
  classified_done(o, b);
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
  fail_held(o, SL_WRITE_ABANDONED);
  report_ended(o);   /* the clients' closes ended every given batch */
  if (o->routed || o->mounted) {
    uv_timer_stop(&o->heartbeat);
    uv_timer_stop(&o->settle);
  }
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
  free(o->tenant_f.meta);
  free(o->tenant_f.json);
  free(o->type_f.meta);
  free(o->type_f.json);
  free(o->ends);
  sl_http_auth_free(o->auth);
  sl_http_fan_free(o->fan_sse);
  sl_http_fan_free(o->fan_ws);
  free(o);
}

static void hout_closed(uv_handle_t *h) {
  hout_t *o = h->data;
  if (--o->handles == 0) hout_free(h);
}

static void hout_destroy(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  if (o->routed) sl_hroutes_remove(out->worker, o->routes, 3);
  if (o->routed || o->mounted) {
    o->handles = 2;
    uv_close((uv_handle_t *)&o->heartbeat, hout_closed);
    uv_close((uv_handle_t *)&o->settle, hout_closed);
    return;
  }
  hout_free((uv_handle_t *)&o->heartbeat);
}

static const sl_output_vt vt = {hout_start, hout_write, hout_close, hout_destroy, hout_stopping, NULL};
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

static void *hout_create(sl_build_t *b, const sl_cnode_t *conf) {
  hout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->heartbeat.data = o->settle.data = o;
  o->fan_sse = sl_http_fan_new();
  o->fan_ws = sl_http_fan_new();
  o->path = sl_hroute_path(sl_conf_str(conf, "path", "/get"));
  o->sse_path = sl_hroute_path(sl_conf_str(conf, "sse_path", ""));
  o->ws_path = sl_hroute_path(sl_conf_str(conf, "ws_path", ""));
  o->round_robin = strcmp(sl_conf_str(conf, "delivery", "broadcast"), "round_robin") == 0;
  o->timeout_ms = sl_conf_duration_ms(conf, "timeout", 5000);
  o->heartbeat_ms = sl_conf_duration_ms(conf, "heartbeat", 15000);
  o->max_buffer = sl_conf_size(conf, "max_buffer", (int64_t)SL_HTTP_MAX_BUFFER);
  o->replay_max_bytes = sl_conf_size(conf, "replay_bytes", 1 << 20);
  o->start_earliest = strcmp(sl_conf_str(conf, "start", "live"), "earliest") == 0;
  o->waiters_tail = &o->waiters;
  o->held_tail = &o->held;
  o->ended_tail = &o->ended;
  /* end_events as ",a,b," (a scalar is a one-item list). */
  const sl_cnode_t *ends = sl_cnode_get(conf, "end_events");
  uint32_t nends = !ends ? 0 : ends->type == SL_CN_SEQ ? ends->n : ends->type == SL_CN_SCALAR;
  for (uint32_t i = 0; i < nends; i++) {
    const char *e = ends->type == SL_CN_SEQ ? ends->items[i]->str : ends->str;
    char *l = sl_xasprintf("%s%s,", o->ends ? o->ends : ",", e ? e : "");
    free(o->ends);
    o->ends = l;
  }
  if (mfield_set(&o->type_f, sl_conf_str(conf, "type_field", "meta.event")) != 0) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "type_field"), "type_field", "type_field is `meta.KEY` or `this.FIELD`");
    hout_free((uv_handle_t *)&o->heartbeat);
    return NULL;
  }
  const char *tenant = sl_conf_str(conf, "tenant", ""), *tf = sl_conf_str(conf, "tenant_field", "meta.tenant");
  if (*tenant) {
    if (strcmp(tenant, "ctx.user") != 0 || o->round_robin || mfield_set(&o->tenant_f, tf) != 0) {
      sl_diag_add(b->diags, sl_cnode_get(conf, "tenant"), "tenant",
                  "tenant isolation is `tenant: ctx.user` with `delivery: broadcast` and a `tenant_field` of "
                  "`meta.KEY` or `this.FIELD`");
      hout_free((uv_handle_t *)&o->heartbeat);
      return NULL;
    }
    o->tenant = 1;
  }
  if (!o->path[0] && !o->sse_path[0] && !o->ws_path[0]) {
    sl_diag_add(b->diags, conf, "http_server", "set at least one of `path`, `sse_path`, `ws_path`");
    hout_free((uv_handle_t *)&o->heartbeat);
    return NULL;
  }
  if (b->mounted) {
    /* A request-scoped instance: control/scoped.c routes and authenticates. */
    uv_timer_init(b->worker->loop, &o->heartbeat);
    uv_timer_init(b->worker->loop, &o->settle);
    o->mounted = 1;
  } else {
    const char *address = sl_conf_str(conf, "address", "");
    o->routes[0] = (sl_hroute_t){"path", o->path, 1, NULL, on_get, address};
    o->routes[1] = (sl_hroute_t){"sse_path", o->sse_path, 1, NULL, on_sse, address};
    o->routes[2] = (sl_hroute_t){"ws_path", o->ws_path, 1, NULL, on_ws, address};
    if (sl_hroutes_add(b, conf, o->routes, 3, o, &o->auth) != 0) {
      hout_free((uv_handle_t *)&o->heartbeat);
      return NULL;
    }
    if (b->worker) {
      uv_timer_init(b->worker->loop, &o->heartbeat);
      uv_timer_init(b->worker->loop, &o->settle);
      o->routed = 1;
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
