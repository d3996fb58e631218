/* `http_server` input: each request on `path` becomes a message carrying the
 * request's context; the client is answered once the message's transaction
 * completes (200), fails (502), times out (408) or meets a shutdown (503). */
#include "http_routes.h"
#include "core/blocks.h"
#include "core/globs.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "http/http_ws.h"
#include "lua/lhost.h"
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sl_field_t rate_fields[] = {
  {"count", SL_F_INT, "0", 0, "Requests allowed per interval; 0 turns the limit off.", NULL, NULL},
  {"interval", SL_F_DURATION, "1s", 0, "Length of a window.", NULL, NULL},
  {0}};

static const sl_field_t sync_meta_fields[] = {
  {"include_prefixes", SL_F_STRLIST, "[]", 0, "Metadata keys starting with one of these become headers of the "
   "answer (`\"\"`: all).", NULL, NULL},
  {"include_patterns", SL_F_STRLIST, "[]", 0, "Metadata keys matching one of these regular expressions (POSIX "
   "extended) become headers of the answer.", NULL, NULL},
  {0}};

static const sl_field_t sync_fields[] = {
  {"status", SL_F_STRING, "", SL_INTERP,
   "Status of the answer, interpolated on the message that set it (`${! meta.code }`); empty: the "
   "`sync_response` output's.", NULL, NULL},
  {"headers", SL_F_MAP, "{}", SL_INTERP, "Headers of the answer, interpolated on the message that set it.",
   NULL, NULL},
  {"metadata_headers", SL_F_OBJECT, NULL, 0, "Metadata of that message sent as headers (values with line "
   "breaks are left out).", NULL, sync_meta_fields},
  {0}};

static const sl_field_t meta_fields[] = {
  {"include_headers", SL_F_STRLIST, "[]", 0,
   "Request headers copied into metadata, by name (any case) or glob pattern (`x-trace-*`), under their "
   "lower-cased name. Credentials are never copied, even when listed: `Authorization`, "
   "`Proxy-Authorization`, `Cookie`, `X-API-Key` and the key header of any `auth` block. `traceparent` "
   "(W3C trace context, which tracing continues) always is.", NULL, NULL},
  {"include_query", SL_F_STRLIST, "[]", 0,
   "Query parameters copied into metadata, by name or glob pattern; `api_key`, `access_token` and the key "
   "parameter of any `auth` block never are.", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  SL_HTTP_ADDRESS_FIELD,
  SL_HTTP_CORS_FIELD,
  {"path", SL_F_STRING, "/post", 0,
   "Path served, after the `http.base_path` prefix. `{name}` segments match one path segment and "
   "land in `ctx.params.name`; a trailing `/` serves every path below it.", NULL, NULL},
  {"allowed_verbs", SL_F_STRLIST, "[POST]", 0, "Methods accepted; others get 405 with `Allow`.", NULL, NULL},
  {"ws_path", SL_F_STRING, "", 0,
   "WebSocket path: each text or binary message a client sends is a message with the "
   "connection's request context. A `sync_response` answer is sent back on the connection in the "
   "frame type of the message (a text answer that is not UTF-8 goes as binary); a failed delivery "
   "sends `{\"error\": ...}`. A message that comes while the stream is at `max_in_flight` waits for room "
   "as a request does, and its connection is read no further meanwhile; one still waiting after `timeout` "
   "is answered `{\"error\": \"busy: ...\", \"status\": 503}`. A client that lets more than 1 MiB of answers "
   "wait unread is closed with 1008 (`sluice_http_slow_clients_dropped_total`). Empty: off.", NULL, NULL},
  {"ws_max_message_bytes", SL_F_SIZE, "1MiB", SL_ADVANCED, "Larger WebSocket messages close the connection with 1009.",
   NULL, NULL},
  {"rate_limit", SL_F_OBJECT, NULL, 0,
   "At most `count` requests per `interval` for this path (0: unlimited); the rest get 429 with "
   "`Retry-After`.", NULL, rate_fields},
  SL_HTTP_AUTH_FIELD,
  {"timeout", SL_F_DURATION, "5s", 0,
   "How long a request waits for its message to be delivered before it is answered 408 (the "
   "message still completes); a request still waiting for room in the stream (`max_in_flight`) then is "
   "answered 503 instead, a WebSocket message a 503 error frame (its message never entered).", NULL, NULL},
  {"sync_response", SL_F_OBJECT, NULL, 0,
   "How an answer that a `sync_response` output (or a fallback to it) set is sent: its status, headers and "
   "the metadata that become headers (Benthos's `sync_response` of this input). Without a `sync_response` "
   "output the client gets `200 {\"status\":\"ok\"}` once the message is delivered.", NULL, sync_fields},
  {"metadata", SL_F_OBJECT, NULL, 0,
   "Which headers and query parameters of a request become metadata (messages of `ws_path` get none). "
   "Metadata is stored (a `stream` output "
   "keeps it as record headers, `kafka` sends it as Kafka headers) and read by every consumer, so none is "
   "copied unless named here; Lua reads the whole request as `ctx` whatever this says.", NULL, meta_fields},
  {0}};

typedef struct hin {
  sl_input_t base;
  sl_http_auth_t *auth;
  char *path, *ws_path;
  sl_hroute_t routes[2];     /* path, ws_path */
  int64_t ws_max;
  int64_t timeout_ms;
  int routed, stopped;
  int64_t rate_count, rate_interval_ms, window_used;
  uint64_t window_start;
  int64_t waiting;            /* requests not yet answered */
  struct parked *parked;      /* messages waiting for room (max_in_flight), oldest first */
  struct parked **parked_tail;
  sl_globs_t meta_headers, meta_query;   /* metadata allowlists */
  struct wsconn *conns;       /* open WebSocket connections */
  sl_interp_t *sync_status;   /* sync_response: NULL when not set */
  sl_interp_map_t sync_headers;
  const char **sync_prefixes;
  unsigned nsync_prefixes;
  regex_t *sync_patterns;
  unsigned nsync_patterns;
} hin_t;

/* A message that came while the stream was at max_in_flight, waiting in
 * in->parked until there is room, in arrival order: a request's, or a
 * WebSocket message's (its connection reads no further meanwhile). With
 * pipeline.threads every message's transaction stays open while a pool
 * worker runs it, so 100 clients at once are 100 transactions, where one
 * worker ran each to its answer before reading the next; refusing those
 * beyond max_in_flight at once turned most of such a load into 503s. */
typedef struct parked {
  sl_batch_t *batch;          /* its message while it waits, else NULL */
  void (*take)(struct parked *pk);     /* emits batch: there is room */
  void (*refuse)(struct parked *pk);   /* the input stops: drops batch; a request goes on (refuse_request) */
  struct parked *next, **pprev;
} parked_t;

/* One request on its way: answered by whichever comes first, the
 * transaction's outcome or the timeout; freed when both are over. */
typedef struct pending {
  parked_t park;              /* first: in->parked holds it while it waits for room */
  hin_t *in;
  sl_http_req_t *req;         /* NULL once answered */
  sl_reply_t *reply;          /* what a sync_response wrote */
  uv_timer_t timer;
  int txn_done;
} pending_t;

static void park(hin_t *in, parked_t *pk, sl_batch_t *b) {
  pk->batch = b;
  pk->next = NULL;
  pk->pprev = in->parked_tail;
  *in->parked_tail = pk;
  in->parked_tail = &pk->next;
}

/* Takes pk out of in->parked; returns its message. */
static sl_batch_t *unlink_parked(hin_t *in, parked_t *pk) {
  *pk->pprev = pk->next;
  if (pk->next) pk->next->pprev = pk->pprev;
  else in->parked_tail = pk->pprev;
  sl_batch_t *b = pk->batch;
  pk->batch = NULL;
  return b;
}

static void pending_closed(uv_handle_t *h) {
  pending_t *p = h->data;
  sl_reply_unref(p->reply);
  sl_blocks_put(p, sizeof(*p));
}

static void pending_finish(pending_t *p) {
  if (p->req || !p->txn_done) return;
  uv_close((uv_handle_t *)&p->timer, pending_closed);
}

static int sync_meta_wanted(const hin_t *in, const char *key) {
  if (strpbrk(key, ": \r\n")) return 0;
  for (unsigned i = 0; i < in->nsync_prefixes; i++)
    if (!strncmp(key, in->sync_prefixes[i], strlen(in->sync_prefixes[i]))) return 1;
  for (unsigned i = 0; i < in->nsync_patterns; i++)
    if (!regexec(&in->sync_patterns[i], key, 0, NULL, 0)) return 1;
  return 0;
}

/* This input shapes a sync_response's answer on its message: the reply
 * keeps a copy of it. */
static int sync_shaped(const hin_t *in) {
  return in->sync_status || in->sync_headers.n || in->nsync_prefixes || in->nsync_patterns;
}

/* The answer a sync_response output set, as it is or shaped by this
 * input's sync_response: its status and headers interpolated on that
 * message, and the metadata it names. A status that does not evaluate to
 * 100-599 keeps the output's (logged). */
static void sync_answer(hin_t *in, sl_http_req_t *r, sl_reply_t *rp) {
  if (!rp->msg) {
    sl_http_respond(r, rp->status, NULL, rp->body->data, rp->body->len, &rp->headers);
    return;
  }
  sl_kvlist_t h = {0};
  sl_kv_copy(&h, &rp->headers);
  int status = rp->status;
  char *err = NULL;
  if (in->sync_status) {
    char *v = sl_interp_eval(in->sync_status, rp->msg, 0, NULL, &err);
    char *end = NULL;
    long code = v ? strtol(v, &end, 10) : 0;
    if (v && end != v && !*end && code >= 100 && code <= 599) status = (int)code;
    else sl_logf(SL_LOG_WARN, in->base.stream ? in->base.stream->name : NULL, in->base.label,
                 "sync_response.status: %s%s%s: the answer keeps %d", v ? "not a status: " : "", v ? v : "",
                 err ? err : "", status);
    free(v);
    free(err);
    err = NULL;
  }
  for (unsigned i = 0; i < in->sync_headers.n; i++) {
    size_t len;
    char *v = sl_interp_eval(in->sync_headers.values[i], rp->msg, 0, &len, &err);
    if (v && !memchr(v, '\r', len) && !memchr(v, '\n', len)) sl_kv_set(&h, in->sync_headers.names[i], v, len);
    free(v);
    free(err);
    err = NULL;
  }
  if (in->nsync_prefixes || in->nsync_patterns) {
    sl_kv_load(&rp->msg->meta);
    for (uint32_t k = 0; k < rp->msg->meta.n; k++) {
      const sl_kv_t *kv = &rp->msg->meta.v[k];
      if (sync_meta_wanted(in, kv->key) && !memchr(kv->val, '\r', kv->vlen) && !memchr(kv->val, '\n', kv->vlen))
        sl_kv_set(&h, kv->key, kv->val, kv->vlen);
    }
  }
  sl_http_respond(r, status, NULL, rp->body->data, rp->body->len, &h);
  sl_kv_clear(&h);
}

/* 503 with Retry-After: the request's message was never taken in. */
static void respond_busy(sl_http_req_t *r) {
  sl_kvlist_t h = {0};
  sl_kv_add(&h, "Retry-After", "1", 1);
  static const char busy[] = "{\"error\":\"busy: too many messages in flight\",\"status\":503}";
  sl_http_respond(r, 503, "application/json", busy, sizeof busy - 1, &h);
  sl_kv_clear(&h);
}

/* The request leaves p, to be answered (NULL: it was already). */
static sl_http_req_t *release(pending_t *p) {
  sl_http_req_t *r = p->req;
  if (!r) return NULL;
  p->req = NULL;
  p->in->waiting--;
  uv_timer_stop(&p->timer);
  return r;
}

static void answer(pending_t *p, int status, const char *err) {
  sl_http_req_t *r = release(p);
  if (!r) return;
  if (status == 200 && p->reply->set) {
    sync_answer(p->in, r, p->reply);
  } else if (status == 200) {
    static const char ok[] = "{\"status\":\"ok\"}";
    sl_http_respond(r, 200, "application/json", ok, sizeof ok - 1, NULL);
  } else {
    sl_http_error(r, status, err);
  }
}

/* A parked request leaves the queue without being taken in (timeout,
 * client gone, stop), its message dropped: returned for the caller to
 * answer. */
static sl_http_req_t *unpark(pending_t *p) {
  sl_batch_free(unlink_parked(p->in, &p->park));
  p->txn_done = 1;
  sl_http_req_t *r = release(p);
  r->on_gone = NULL;
  pending_finish(p);
  return r;
}

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg);

/* Takes parked messages in, oldest first, while the stream has room. */
static void take_parked(hin_t *in) {
  while (in->parked && !in->stopped && sl_input_ready(&in->base)) in->parked->take(in->parked);
}

static void take_request(parked_t *pk) {
  pending_t *p = (pending_t *)pk;
  sl_batch_t *b = unlink_parked(p->in, pk);
  p->req->on_gone = NULL;
  sl_input_emit(&p->in->base, b, on_txn, p);
}

/* The input stops with the request still waiting for room, its message
 * never taken in: the request goes to whoever serves its path now, as if it
 * had just come, so that a reload's new instance takes it (in arrival order:
 * the queue is walked oldest first); 503 when none does (the stream was
 * removed) or this one still does (shutdown: it refuses as it stops). */
static void refuse_request(parked_t *pk) {
  sl_http_req_t *r = unpark((pending_t *)pk);
  if (sl_http_reroute(r) != 0) sl_http_error(r, 503, "shutting down");
}

static void on_parked_gone(sl_http_req_t *r, void *arg) {
  (void)r;
  sl_http_error(unpark(arg), 499, "client gone");   /* nobody reads it: as http_server_out does */
}

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  pending_t *p = arg;
  p->txn_done = 1;
  answer(p, status == 0 ? 200 : 502, err ? err : "delivery failed");
  pending_finish(p);
}

static void on_timeout(uv_timer_t *t) {
  pending_t *p = t->data;
  if (p->park.batch) {
    respond_busy(unpark(p));
    return;
  }
  answer(p, 408, "timed out waiting for delivery");
  pending_finish(p);
}

/* Sets key in v[0..*n) as sl_kv_set would (a later value of a key replaces
 * the earlier one in its place), pointing at the caller's bytes: the
 * message's metadata is then packed in one allocation, not one a key. */
static void meta_set(sl_kv_t *v, uint32_t *n, const char *key, const char *val, size_t vlen) {
  uint32_t i = 0;
  while (i < *n && strcmp(v[i].key, key)) i++;
  v[i] = (sl_kv_t){(char *)key, (char *)val, vlen};
  if (i == *n) (*n)++;
}

static void on_request(sl_http_req_t *r, void *arg) {
  hin_t *in = arg;
  if (in->stopped) {
    sl_http_error(r, 503, "shutting down");
    return;
  }
  if (in->rate_count > 0) {
    uint64_t now = uv_now(in->base.worker->loop);
    if (now - in->window_start >= (uint64_t)in->rate_interval_ms) {
      in->window_start = now;
      in->window_used = 0;
    }
    if (in->window_used >= in->rate_count) {
      uint64_t left_ms = in->window_start + (uint64_t)in->rate_interval_ms - now;
      char secs[24];
      snprintf(secs, sizeof secs, "%llu", (unsigned long long)((left_ms + 999) / 1000));
      sl_kvlist_t h = {0};
      sl_kv_add(&h, "Retry-After", secs, strlen(secs));
      static const char limited[] = "{\"error\":\"rate limit exceeded\",\"status\":429}";
      sl_http_respond(r, 429, "application/json", limited, sizeof limited - 1, &h);
      sl_kv_clear(&h);
      return;
    }
    in->window_used++;
  }
  sl_msg_t *m = sl_msg_new_bytes(sl_bytes_ref(r->body));
  sl_ctx_t *ctx = sl_http_ctx_new(r);
  ctx->reply = sl_reply_new();
  ctx->reply->keep_msg = sync_shaped(in);
  sl_msg_set_ctx(m, ctx);
  sl_kv_load(&r->headers);
  sl_kv_load(&ctx->query);
  uint32_t cap = 4 + r->headers.n + ctx->query.n, n = 0;
  sl_kv_t few[32];
  sl_kv_t *meta = cap <= 32 ? few : sl_xmalloc(cap * sizeof(*meta));
  meta_set(meta, &n, "http_method", ctx->method, strlen(ctx->method));
  meta_set(meta, &n, "http_path", r->path, strlen(r->path));
  const char *colon = strrchr(r->remote_addr, ':');
  meta_set(meta, &n, "http_remote_ip", r->remote_addr,
           colon ? (size_t)(colon - r->remote_addr) : strlen(r->remote_addr));
  meta_set(meta, &n, "http_request_id", r->request_id, strlen(r->request_id));
  for (uint32_t i = 0; i < r->headers.n; i++) {
    const sl_kv_t *kv = &r->headers.v[i];
    /* W3C trace context goes on: the tracer continues it (and writes it itself when tracing). */
    if ((!strcmp(kv->key, "traceparent") || sl_globs_match(&in->meta_headers, kv->key, 1)) &&
        !sl_http_auth_secret_header(kv->key))
      meta_set(meta, &n, kv->key, kv->val, kv->vlen);
  }
  for (uint32_t i = 0; i < ctx->query.n; i++) {
    const sl_kv_t *kv = &ctx->query.v[i];
    if (sl_globs_match(&in->meta_query, kv->key, 0) && !sl_http_auth_secret_query(kv->key))
      meta_set(meta, &n, kv->key, kv->val, kv->vlen);
  }
  sl_kv_pack(&m->meta, meta, n);
  if (meta != few) free(meta);
  sl_ctx_unref(ctx);
  pending_t *p = sl_blocks_zero(sizeof(*p));   /* one a request */
  p->in = in;
  p->req = r;
  p->reply = sl_reply_ref(ctx->reply);
  uv_timer_init(in->base.worker->loop, &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, on_timeout, (uint64_t)in->timeout_ms, 0);
  in->waiting++;
  sl_batch_t *b = sl_batch_new(1);
  sl_batch_push(b, m);
  /* In arrival order: behind the messages already waiting for room. */
  p->park.take = take_request;
  p->park.refuse = refuse_request;
  park(in, &p->park, b);
  r->on_gone = on_parked_gone;
  r->gone_arg = p;
  take_parked(in);
}

/* ---------- WebSocket connections ---------- */

/* Shared by the connection and its messages' acks, which may outlive it. */
typedef struct wsconn {
  int refs;
  int closed;
  sl_ws_t *ws;                /* NULL once closed */
  sl_ctx_t *ctx;
  hin_t *in;
  struct wsmsg *parked;       /* its message waiting for room (its reads pause meanwhile), or NULL */
  uv_timer_t wait;            /* the input's timeout for that one */
  struct wsconn *next, **pprev;   /* in in->conns while open */
} wsconn_t;

static void wsconn_unlink(wsconn_t *w) {
  if (!w->pprev) return;
  *w->pprev = w->next;
  if (w->next) w->next->pprev = w->pprev;
  w->pprev = NULL;
}

static void wsconn_freed(uv_handle_t *h) { free(h->data); }

static void wsconn_unref(wsconn_t *w) {
  if (--w->refs > 0) return;
  sl_ctx_unref(w->ctx);
  uv_close((uv_handle_t *)&w->wait, wsconn_freed);
}

static void ws_unpark(wsconn_t *w, int taken, int answer);

/* Closes with code and drops the connection's reference (no on_close
 * follows); a message still waiting for room goes: nobody would read its
 * answer. */
static void wsconn_close(wsconn_t *w, int code, const char *why) {
  wsconn_unlink(w);
  sl_ws_t *ws = w->ws;
  w->ws = NULL;
  w->closed = 1;
  if (w->parked) ws_unpark(w, 0, 0);
  sl_ws_close(ws, code, why);
  wsconn_unref(w);
}

/* Answers on the connection, unless more than SL_HTTP_MAX_BUFFER still
 * waits to be sent to it: a client that sends and does not read its answers
 * is dropped with 1008, not buffered for. One answer may be larger than the
 * bound (a big echo): it is the next one that finds the client behind. */
static void ws_answer(wsconn_t *w, int text, const void *p, size_t n) {
  if (sl_ws_queued(w->ws) > SL_HTTP_MAX_BUFFER) {
    const sl_input_t *in = &w->in->base;
    sl_http_slow_dropped(in->stream ? in->stream->name : NULL, in->label, "ws");
    wsconn_close(w, 1008, "too slow: send buffer full");
    return;
  }
  sl_ws_send(w->ws, text, p, n, SL_HTTP_MAX_BUFFER);
}

typedef struct wsmsg {
  parked_t park;              /* first: in->parked holds it while it waits for room */
  wsconn_t *conn;
  sl_reply_t *reply;
  int text;                   /* the message came in a text frame */
} wsmsg_t;

static void wsmsg_free(wsmsg_t *m) {
  sl_reply_unref(m->reply);
  wsconn_unref(m->conn);
  free(m);
}

static const char ws_busy[] = "{\"error\":\"busy: message not accepted\",\"status\":503}";

static void on_ws_ack(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  wsmsg_t *m = arg;
  wsconn_t *w = m->conn;
  if (w->ws && status == 0 && m->reply->set) {
    /* The answer keeps the frame type of the message (a text answer that
     * is not UTF-8 cannot be a text frame). */
    sl_reply_t *r = m->reply;
    ws_answer(w, m->text && sl_utf8_valid(r->body->data, r->body->len), r->body->data, r->body->len);
  } else if (w->ws && status != 0) {
    char *e = sl_http_error_body(502, err ? err : "delivery failed");
    ws_answer(w, 1, e, strlen(e));
    free(e);
  }
  /* The last answer of a stopped input's connection: it may go now. */
  if (w->ws && w->in->stopped && w->refs == 2) wsconn_close(w, 1001, "stream stopping");
  wsmsg_free(m);
}

/* The connection's parked message leaves the queue: taken in (there is
 * room), or dropped, answered busy unless its client left. Either way the
 * connection reads on, which may bring its next message here at once. */
static void ws_unpark(wsconn_t *w, int taken, int answer) {
  wsmsg_t *m = w->parked;
  w->parked = NULL;
  uv_timer_stop(&w->wait);
  sl_batch_t *b = unlink_parked(w->in, &m->park);
  w->refs++;   /* the ack, or an answer that finds the client slow, may drop the others */
  if (taken) {
    sl_input_emit(&w->in->base, b, on_ws_ack, m);
  } else {
    sl_batch_free(b);
    wsmsg_free(m);
    if (answer && w->ws) ws_answer(w, 1, ws_busy, sizeof ws_busy - 1);
  }
  if (w->ws) sl_ws_resume(w->ws);
  wsconn_unref(w);
}

static void take_ws(parked_t *pk) { ws_unpark(((wsmsg_t *)pk)->conn, 1, 0); }
static void refuse_ws(parked_t *pk) { ws_unpark(((wsmsg_t *)pk)->conn, 0, 1); }
static void on_ws_wait(uv_timer_t *t) { ws_unpark(t->data, 0, 1); }

static void on_ws_message(sl_ws_t *ws, int text, const char *p, size_t n, void *arg) {
  wsconn_t *w = arg;
  w->ws = ws;   /* a message that came with the upgrade request: sl_ws_accept has not returned yet */
  hin_t *in = w->in;
  if (in->stopped) {
    ws_answer(w, 1, ws_busy, sizeof ws_busy - 1);
    return;
  }
  sl_msg_t *m = sl_msg_new(p, n);
  /* Each message gets its own reply slot on a copy of the connection's context. */
  sl_ctx_t *ctx = sl_ctx_new();
  sl_ctx_set_strs(ctx, w->ctx->method, w->ctx->path, w->ctx->remote_addr, w->ctx->request_id);
  if (w->ctx->user) ctx->user = sl_xstrdup(w->ctx->user);
  sl_kv_copy(&ctx->jwt, &w->ctx->jwt);
  sl_kv_copy(&ctx->query, &w->ctx->query);
  sl_kv_copy(&ctx->headers, &w->ctx->headers);
  sl_kv_copy(&ctx->params, &w->ctx->params);
  sl_kv_copy(&ctx->cookies, &w->ctx->cookies);
  ctx->reply = sl_reply_new();
  sl_msg_set_ctx(m, ctx);
  sl_kv_set(&m->meta, "http_method", "WS", 2);
  sl_kv_set(&m->meta, "http_path", ctx->path, strlen(ctx->path));
  sl_kv_set(&m->meta, "http_request_id", ctx->request_id, strlen(ctx->request_id));
  wsmsg_t *wm = sl_xmalloc(sizeof(*wm));
  wm->conn = w;
  wm->reply = sl_reply_ref(ctx->reply);
  wm->text = text;
  w->refs++;
  sl_ctx_unref(ctx);
  sl_batch_t *b = sl_batch_new(1);
  sl_batch_push(b, m);
  if (!in->parked && sl_input_ready(&in->base)) {
    sl_input_emit(&in->base, b, on_ws_ack, wm);
    return;
  }
  /* No room: it waits behind what already does, and the connection's
   * further frames wait in its socket, as a pipelined request waits. */
  wm->park.take = take_ws;
  wm->park.refuse = refuse_ws;
  park(in, &wm->park, b);
  w->parked = wm;
  sl_ws_pause(ws);
  uv_timer_start(&w->wait, on_ws_wait, (uint64_t)in->timeout_ms, 0);
}

static void on_ws_close(sl_ws_t *ws, void *arg) {
  (void)ws;
  wsconn_t *w = arg;
  w->ws = NULL;
  w->closed = 1;
  wsconn_unlink(w);
  if (w->parked) ws_unpark(w, 0, 0);   /* nobody to answer */
  wsconn_unref(w);
}

static void on_ws(sl_http_req_t *r, void *arg) {
  hin_t *in = arg;
  if (in->stopped) {
    sl_http_error(r, 503, "shutting down");
    return;
  }
  wsconn_t *w = sl_xcalloc(1, sizeof(*w));
  w->refs = 2;   /* the connection's, and ours while accepting */
  w->in = in;
  w->ctx = sl_http_ctx_new(r);
  uv_timer_init(in->base.worker->loop, &w->wait);
  w->wait.data = w;
  static const sl_ws_handlers_t h = {on_ws_message, on_ws_close};
  w->ws = sl_ws_accept(r, &h, w, (size_t)in->ws_max, 20000, in->base.worker);
  /* Not accepted (and not closed by the peer meanwhile): the connection's
   * reference goes too. */
  if (!w->ws && !w->closed) w->refs--;
  if (w->ws && !w->closed) {
    w->next = in->conns;
    if (in->conns) in->conns->pprev = &w->next;
    in->conns = w;
    w->pprev = &in->conns;
  }
  wsconn_unref(w);
}

static int hin_start(sl_input_t *i) {
  (void)i;
  return 0;
}

static void hin_resume(sl_input_t *i) { take_parked((hin_t *)i); }

static void hin_stop(sl_input_t *i) {
  hin_t *in = (hin_t *)i;
  in->stopped = 1;
  while (in->parked) in->parked->refuse(in->parked);
  /* The input goes (shutdown, or a reload replaced it) while clients stay
   * connected: each is told to go once its messages are answered, and
   * reconnects to whoever serves the path then. */
  for (wsconn_t *w = in->conns, *next; w; w = next) {
    next = w->next;
    if (w->refs == 1) wsconn_close(w, 1001, "stream stopping");
  }
  /* Not finite: the stream drains what is in flight, then it is done. */
  sl_input_eof(i);
}

static void hin_destroy(sl_input_t *i) {
  hin_t *in = (hin_t *)i;
  in->stopped = 1;   /* what a refused message's connection reads next is refused too */
  while (in->parked) in->parked->refuse(in->parked);
  while (in->conns) wsconn_close(in->conns, 1001, "stream stopping");
  if (in->routed) sl_hroutes_remove(i->worker, in->routes, 2);
  free(in->ws_path);
  free(in->path);
  sl_globs_free(&in->meta_headers);
  sl_globs_free(&in->meta_query);
  sl_http_auth_free(in->auth);
  sl_interp_free(in->sync_status);
  sl_interp_map_free(&in->sync_headers);
  free(in->sync_prefixes);
  for (unsigned i = 0; i < in->nsync_patterns; i++) regfree(&in->sync_patterns[i]);
  free(in->sync_patterns);
  free(in);
}

static const sl_input_vt vt = {hin_start, hin_resume, hin_stop, hin_destroy, NULL, NULL};
static const sl_spec_t spec;

static int sync_config(hin_t *in, sl_build_t *b, const sl_cnode_t *sync) {
  if (!sync) return 0;
  int rc = 0;
  if (*sl_conf_str(sync, "status", "") && !(in->sync_status = sl_lua_interp_field(b->worker, sync, b->diags, "status")))
    rc = -1;
  if (sl_lua_interp_map_field(b->worker, sync, b->diags, "headers", &in->sync_headers) != 0) rc = -1;
  const sl_cnode_t *mh = sl_cnode_get(sync, "metadata_headers");
  const sl_cnode_t *pre = sl_cnode_get(mh, "include_prefixes"), *pat = sl_cnode_get(mh, "include_patterns");
  if (pre && pre->type == SL_CN_SEQ && pre->n) {
    in->sync_prefixes = sl_xcalloc(pre->n, sizeof(char *));
    for (uint32_t i = 0; i < pre->n; i++) in->sync_prefixes[in->nsync_prefixes++] = pre->items[i]->str;
  }
  if (pat && pat->type == SL_CN_SEQ && pat->n) {
    in->sync_patterns = sl_xcalloc(pat->n, sizeof(regex_t));
    for (uint32_t i = 0; i < pat->n; i++) {
      if (regcomp(&in->sync_patterns[in->nsync_patterns], pat->items[i]->str, REG_EXTENDED | REG_NOSUB) != 0) {
        sl_diag_add(b->diags, pat->items[i], "include_patterns", "not a regular expression (POSIX extended)");
        rc = -1;
        continue;
      }
      in->nsync_patterns++;
    }
  }
  return rc;
}

static void *hin_create(sl_build_t *b, const sl_cnode_t *conf) {
  hin_t *in = sl_xcalloc(1, sizeof(*in));
  in->parked_tail = &in->parked;
  sl_component_init_input(&in->base, &vt, &spec, b);
  const char *path = sl_conf_str(conf, "path", "/post");
  in->path = path[0] == '/' ? sl_xstrdup(path) : sl_xasprintf("/%s", path);
  in->timeout_ms = sl_conf_duration_ms(conf, "timeout", 5000);
  in->ws_path = sl_hroute_path(sl_conf_str(conf, "ws_path", ""));
  in->ws_max = sl_conf_size(conf, "ws_max_message_bytes", 1 << 20);
  const sl_cnode_t *meta = sl_cnode_get(conf, "metadata");
  sl_globs_init(&in->meta_headers, sl_cnode_get(meta, "include_headers"));
  sl_globs_init(&in->meta_query, sl_cnode_get(meta, "include_query"));
  const sl_cnode_t *rl = sl_cnode_get(conf, "rate_limit");
  in->rate_count = sl_conf_int(rl, "count", 0);
  in->rate_interval_ms = sl_conf_duration_ms(rl, "interval", 1000);
  if (in->rate_interval_ms < 1) in->rate_interval_ms = 1;
  if (b->worker) in->window_start = uv_now(b->worker->loop);
  const sl_cnode_t *verbs = sl_cnode_get(conf, "allowed_verbs");
  for (uint32_t i = 0; verbs && i < verbs->n; i++)
    for (char *c = verbs->items[i]->str; *c; c++)
      if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
  if (sync_config(in, b, sl_cnode_get(conf, "sync_response")) != 0) {
    hin_destroy(&in->base);
    return NULL;
  }
  const char *address = sl_conf_str(conf, "address", "");
  in->routes[0] = (sl_hroute_t){"path", in->path, 0, verbs, on_request, address};
  in->routes[1] = (sl_hroute_t){"ws_path", in->ws_path, 1, NULL, on_ws, address};
  if (sl_hroutes_add(b, conf, in->routes, 2, in, &in->auth) != 0) {
    hin_destroy(&in->base);
    return NULL;
  }
  in->routed = b->worker != NULL;
  return in;
}

static const sl_spec_t spec = {
  .name = "http_server",
  .kind = SL_KIND_INPUT,
  .summary = "Receives messages from HTTP requests on the shared server (`http:` section).",
  .desc =
    "Each request is one message: the body is its content; metadata holds `http_method`, "
    "`http_path`, `http_remote_ip`, `http_request_id`, `traceparent` when sent, and only the headers "
    "and query parameters that `metadata` names (never credentials). Lua sees the request as `ctx`: `ctx.method`, `ctx.path`, `ctx.query`, "
    "`ctx.headers`, `ctx.params`, `ctx.cookies`, `ctx.remote_addr`, `ctx.request_id` (also echoed "
    "as `X-Request-Id`; a client's own `X-Request-Id` is kept).\n\n"
    "The client is answered `200 {\"status\":\"ok\"}` only after the message was delivered (its "
    "transaction acked), `502` when delivery failed, `408` after `timeout`, and `503` during "
    "shutdown. A request that comes while the stream is at `max_in_flight` waits, in arrival order, for "
    "room; one still waiting after `timeout` is answered `503` with `Retry-After` (its message never "
    "entered the stream); a config reload that replaces the stream hands the waiting requests to the new "
    "instance, in arrival order (their `timeout` starts again there). Errors are JSON "
    "`{\"error\": \"...\", \"status\": N}`.",
  .fields = fields,
  .shorthand = "path",
  .example =
    "http:\n"
    "  address: 0.0.0.0:4195\n"
    "input:\n"
    "  http_server:\n"
    "    path: /events/{topic}\n"
    "    allowed_verbs: [POST, PUT]\n"
    "pipeline:\n"
    "  processors:\n"
    "    - lua: 'this.topic = ctx.params.topic; this.user = ctx.query.user'\n"
    "output:\n"
    "  stdout: {}\n",
  .create = hin_create,
};
SL_REGISTER(spec)
