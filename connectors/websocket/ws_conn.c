#include "ws_conn.h"
#include "ws_handshake.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "http/http_tls.h"
#include "http/http_ws.h"
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

const sl_field_t sl_wsc_tls_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Use TLS with a `ws://` URL too (`wss://` always does).", NULL, NULL},
  SL_TLS_CONF_FIELDS,
  {0}};

enum { BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000, CLOSE_WAIT_MS = 2000, MAX_HEAD = 16384 };

typedef enum { S_IDLE, S_RESOLVING, S_CONNECTING, S_PROXY, S_TLS, S_UPGRADING, S_OPEN, S_CLOSING } state_t;

struct sl_wsc {
  uv_loop_t *loop;
  sl_wsc_cbs_t cbs;
  void *arg;
  sl_input_t *in;
  sl_output_t *out;
  int kind;
  char *path_cfg;            /* config path, for the metrics */
  /* from the URL */
  char *url;
  sl_wsh_url_t u;
  char *auth;                /* "Basic …", "Bearer …" or NULL */
  sl_oauth1_t *oauth;        /* signs each upgrade instead, or NULL */
  sl_wsh_url_t proxy;        /* proxy.host NULL: no proxy */
  char *proxy_auth;          /* "Basic …" or NULL */
  sl_tls_ctx_t *tls_ctx;
  size_t max_message;
  int64_t ping_ms, connect_timeout_ms, backoff_ms;
  /* the current connection */
  state_t state;
  unsigned gen;              /* connection number: callbacks of an older one are ignored */
  uv_tcp_t *tcp;
  sl_tls_t *tls;
  wslay_event_context_ptr ws;
  char key[32];              /* Sec-WebSocket-Key sent */
  char *head; size_t head_len;   /* the upgrade response so far */
  char *in_buf; size_t in_len, in_off;
  /* wslay hands a frame's header and payload in separate calls: what one
   * wslay_event_send produced goes to the socket as one write. */
  char *obuf; size_t obuf_len, obuf_cap;
  uint64_t issued, done_writes;  /* socket writes of this connection: made, completed */
  uint64_t last_rx;
  uint64_t opened_at;        /* loop time the connection opened */
  int paused, in_wslay, stopping, freed;
  int peer_code;             /* close code the server sent, or 0 */
  int proto_err;             /* wslay refused a frame */
  char *peer_reason;
  uv_timer_t retry;          /* backoff, connect timeout, close wait */
  uv_timer_t ping;
  int handles;               /* timers and reqs/handles still to come back */
  void (*stop_done)(void *);
  void *stop_arg;
  sl_connmetrics_t m;
  char rbuf[65536];          /* what one read takes from the socket */
};

static void drop(sl_wsc_t *c, const char *why);
static void on_ping(uv_timer_t *t);

static const char *sname(const sl_wsc_t *c) {
  const sl_stream_t *s = c->in ? c->in->stream : c->out ? c->out->stream : NULL;
  return s ? s->name : NULL;
}
static const char *lname(const sl_wsc_t *c) { return c->in ? c->in->label : c->out ? c->out->label : NULL; }

static void set_ready(sl_wsc_t *c, int up, const char *why) {
  if (c->in) sl_input_set_connected(c->in, up, why);
  else if (c->out) sl_output_set_connected(c->out, up, why);
}

static void maybe_free(sl_wsc_t *c) {
  if (!c->freed || c->handles) return;
  free(c->path_cfg);
  free(c->url);
  sl_wsh_url_clear(&c->u);
  free(c->auth);
  sl_oauth1_free(c->oauth);
  sl_wsh_url_clear(&c->proxy);
  free(c->proxy_auth);
  free(c->peer_reason);
  free(c->obuf);
  sl_tls_ctx_free(c->tls_ctx);
  free(c);
}

static void stopped(sl_wsc_t *c) {
  void (*done)(void *) = c->stop_done;
  c->stop_done = NULL;
  if (done) done(c->stop_arg);
}

static void handle_closed(uv_handle_t *h) {
  sl_wsc_t *c = h->data;
  int tcp = h->type == UV_TCP;
  if (tcp) free(h);
  c->handles--;
  if (tcp && c->stopping) stopped(c);
  maybe_free(c);
}

/* ---- tearing a connection down ---- */

static void attempt(sl_wsc_t *c);

static void on_retry(uv_timer_t *t) {
  sl_wsc_t *c = t->data;
  if (c->state == S_IDLE) {
    attempt(c);
    return;
  }
  /* The attempt took too long, or the server did not answer our close. */
  drop(c, c->state == S_CLOSING ? NULL : "connect timeout: no WebSocket after connect_timeout");
}

/* Ends the current connection (why NULL: we closed it on purpose) and,
 * unless stopping, schedules the next attempt. */
static void drop(sl_wsc_t *c, const char *why) {
  int was_open = c->state == S_OPEN || c->state == S_CLOSING;
  /* A connection that lasted resets the backoff; one the server ends at
   * once (a close, a 1 GiB frame) does not, or we would hammer it. */
  if (was_open && uv_now(c->loop) - c->opened_at >= BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MIN_MS;
  c->gen++;
  if (c->tcp) {
    uv_close((uv_handle_t *)c->tcp, handle_closed);
    c->tcp = NULL;
  }
  sl_tls_free(c->tls);
  c->tls = NULL;
  if (c->ws && !c->in_wslay) wslay_event_context_free(c->ws);   /* else ws_run frees it */
  c->ws = NULL;
  free(c->head);
  c->head = NULL;
  c->head_len = 0;
  free(c->in_buf);
  c->in_buf = NULL;
  c->in_len = c->in_off = 0;
  c->obuf_len = 0;
  c->issued = c->done_writes = 0;
  c->state = S_IDLE;
  uv_timer_stop(&c->retry);
  uv_timer_stop(&c->ping);
  if (c->stopping) {
    set_ready(c, 0, "websocket: closed");
  } else {
    if (was_open) (*c->m.lost)++;
    else (*c->m.failed)++;
    char *r = sl_xasprintf("websocket %s: %s", c->url, why ? why : "closed");
    sl_logf(SL_LOG_WARN, sname(c), lname(c), "%s; reconnecting in %lld ms", r, (long long)c->backoff_ms);
    set_ready(c, 0, r);
    free(r);
    uv_timer_start(&c->retry, on_retry, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
  }
  if (c->cbs.down) c->cbs.down(c->arg, why ? why : "connection closed");
}

/* ---- writing ---- */

typedef struct wreq {
  uv_write_t req;
  sl_wsc_t *c;
  unsigned gen;
  char *buf;
} wreq_t;

static void on_written(uv_write_t *r, int status) {
  wreq_t *w = (wreq_t *)r;
  sl_wsc_t *c = w->c;
  free(w->buf);
  unsigned gen = w->gen;
  free(w);
  c->handles--;
  if (gen != c->gen || c->freed) {
    maybe_free(c);
    return;
  }
  if (status < 0) {
    char *why = sl_xasprintf("write: %s", uv_strerror(status));
    drop(c, why);
    free(why);
    return;
  }
  c->done_writes++;
  if (c->cbs.written) c->cbs.written(c->arg, c->done_writes);
}

/* Hands bytes (taken: malloc'd) to the socket. */
static void put(sl_wsc_t *c, char *buf, size_t n) {
  if (!n || !c->tcp) {
    free(buf);
    return;
  }
  wreq_t *w = sl_xmalloc(sizeof(*w));
  w->c = c;
  w->gen = c->gen;
  w->buf = buf;
  uv_buf_t b = uv_buf_init(buf, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)c->tcp, &b, 1, on_written) != 0) {
    free(buf);
    free(w);
    return;   /* the read side sees the socket's end */
  }
  c->handles++;
  c->issued++;
}

/* Plain bytes to the server, through TLS when it is on. */
static void put_plain(sl_wsc_t *c, const void *p, size_t n) {
  if (c->tls) {
    sl_tls_send(c->tls, p, n);
    size_t len = 0;
    char *out = sl_tls_take_output(c->tls, &len);
    if (out) put(c, out, len);
  } else {
    char *copy = sl_xmalloc(n);
    memcpy(copy, p, n);
    put(c, copy, n);
  }
}

/* ---- wslay ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
  (void)flags;
  sl_wsc_t *c = user;
  return sl_ws_recv_from(ctx, buf, len, c->in_buf, &c->in_off, c->in_len);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
  (void)flags;
  sl_wsc_t *c = user;
  if (!c->tcp) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  if (c->obuf_len + len > c->obuf_cap) {
    c->obuf_cap = (c->obuf_len + len) * 2;
    c->obuf = sl_xrealloc(c->obuf, c->obuf_cap);
  }
  memcpy(c->obuf + c->obuf_len, data, len);
  c->obuf_len += len;
  return (ssize_t)len;
}

/* Lets wslay write what it has queued, in one socket write. */
static void ws_send(sl_wsc_t *c) {
  wslay_event_send(c->ws);
  if (!c->obuf_len || !c->tcp) {
    c->obuf_len = 0;
    return;
  }
  if (c->tls) {
    put_plain(c, c->obuf, c->obuf_len);
  } else {
    /* The staging buffer goes to the socket as it is; the next one starts empty. */
    put(c, c->obuf, c->obuf_len);
    c->obuf = NULL;
    c->obuf_cap = 0;
  }
  c->obuf_len = 0;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
  (void)ctx;
  (void)user;
  for (size_t i = 0; i < len; i += 8) {
    uint64_t r = sl_rand64();
    memcpy(buf + i, &r, len - i < 8 ? len - i : 8);
  }
  return 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user) {
  (void)ctx;
  sl_wsc_t *c = user;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    c->peer_code = a->status_code ? a->status_code : WSLAY_CODE_NO_STATUS_RCVD;
    free(c->peer_reason);
    c->peer_reason = a->msg_length > 2 ? sl_xstrndup((const char *)a->msg + 2, a->msg_length - 2) : NULL;
    return;
  }
  if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME) return;
  if (c->cbs.message && c->state == S_OPEN) c->cbs.message(c->arg, a->opcode == WSLAY_TEXT_FRAME, a->msg, a->msg_length);
}

/* Why the connection ended once wslay wants neither to read nor to write. */
static char *close_reason(sl_wsc_t *c) {
  uint16_t sent = wslay_event_get_status_code_sent(c->ws);
  if (c->peer_code && c->state != S_CLOSING)
    return sl_xasprintf("closed by the server with code %d%s%s%s", c->peer_code, c->peer_reason ? " (" : "",
                        c->peer_reason ? c->peer_reason : "", c->peer_reason ? ")" : "");
  if (sent == WSLAY_CODE_MESSAGE_TOO_BIG) return sl_xasprintf("the server sent a message over max_message_size (%zu bytes): closed with 1009", c->max_message);
  if (sent == WSLAY_CODE_PROTOCOL_ERROR) return sl_xstrdup("the server broke the WebSocket protocol: closed with 1002");
  if (c->proto_err) return sl_xstrdup("the server broke the WebSocket protocol: closed");
  if (sent == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA) return sl_xstrdup("the server sent a text message that is not UTF-8: closed with 1007");
  return NULL;
}

/* After wslay ran: the connection may have ended. 1 when it did. */
static int settle(sl_wsc_t *c) {
  if (!c->ws || wslay_event_want_read(c->ws) || wslay_event_want_write(c->ws)) return 0;
  char *why = close_reason(c);
  drop(c, why);
  free(why);
  return 1;
}

static void ws_run(sl_wsc_t *c) {
  wslay_event_context_ptr ws = c->ws;
  unsigned gen = c->gen;
  c->in_wslay = 1;
  if (wslay_event_get_read_enabled(ws) && c->in_len > c->in_off) {
    /* A frame wslay refuses from its header (a control frame over 125
     * bytes) ends the read with a failure, and wslay has queued a close
     * without a code (1005 to the server) unless we can queue 1002. */
    if (wslay_event_recv(ws) != 0 && gen == c->gen) {
      c->proto_err = 1;
      wslay_event_queue_close(ws, WSLAY_CODE_PROTOCOL_ERROR, (const uint8_t *)"protocol error", 14);
    }
  }
  if (gen == c->gen) ws_send(c);
  c->in_wslay = 0;
  if (gen != c->gen) {
    /* A callback ended the connection (drop) while wslay ran: its context
     * is freed only now. */
    wslay_event_context_free(ws);
    return;
  }
  if (settle(c)) return;
  if (c->in_off == c->in_len) {
    free(c->in_buf);
    c->in_buf = NULL;
    c->in_len = c->in_off = 0;
  }
}

/* ---- the upgrade ---- */

static void send_upgrade(sl_wsc_t *c) {
  size_t len;
  char *signed_auth = c->oauth ? sl_oauth1_header(c->oauth, "GET", c->url) : NULL;
  char *req = sl_wsh_request(&c->u, signed_auth ? signed_auth : c->auth, c->key, &len);
  c->state = S_UPGRADING;
  put_plain(c, req, len);
  free(req);
  free(signed_auth);
}

/* Connected to the server (or through the proxy's tunnel): TLS or the upgrade. */
static void begin(sl_wsc_t *c) {
  if (c->tls_ctx) {
    c->state = S_TLS;
    c->tls = sl_tls_client_new(c->tls_ctx, c->u.host);
    char *plain = NULL;
    size_t plen = 0;
    sl_tls_recv(c->tls, NULL, 0, &plain, &plen);   /* the ClientHello */
    free(plain);
    size_t olen = 0;
    char *out = sl_tls_take_output(c->tls, &olen);
    if (out) put(c, out, olen);
  } else {
    send_upgrade(c);
  }
}

static void opened(sl_wsc_t *c) {
  static const struct wslay_event_callbacks cb = {recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, on_msg};
  if (wslay_event_context_client_init(&c->ws, &cb, c) != 0) {
    fprintf(stderr, "sluice: out of memory for a WebSocket context\n");
    abort();
  }
  wslay_event_config_set_max_recv_msg_length(c->ws, c->max_message);
  c->state = S_OPEN;
  c->opened_at = uv_now(c->loop);
  c->peer_code = 0;
  c->proto_err = 0;
  uv_timer_stop(&c->retry);
  c->last_rx = uv_now(c->loop);
  if (c->ping_ms > 0) uv_timer_start(&c->ping, on_ping, (uint64_t)c->ping_ms, (uint64_t)c->ping_ms);
  (*c->m.up)++;
  sl_logf(SL_LOG_INFO, sname(c), lname(c), "websocket %s: connected", c->url);
  set_ready(c, 1, NULL);
  unsigned gen = c->gen;
  if (c->cbs.opened) c->cbs.opened(c->arg);
  if (gen == c->gen && c->ws) ws_send(c);
}

/* Adds p to the head of an answer (the proxy's or the upgrade's): once its
 * blank line came, how many bytes of p it took; 0 before (and when it grew
 * too large: then the connection is dropped). */
static size_t head_ended(sl_wsc_t *c, const char *p, size_t n) {
  size_t room = MAX_HEAD - c->head_len;
  size_t k = n < room ? n : room;
  c->head = sl_xrealloc(c->head, c->head_len + k + 1);
  memcpy(c->head + c->head_len, p, k);
  c->head_len += k;
  c->head[c->head_len] = 0;
  char *end = strstr(c->head, "\r\n\r\n");
  if (!end) {
    if (c->head_len >= MAX_HEAD) drop(c, c->state == S_PROXY ? "proxy answer headers over 16 KiB" : "upgrade response headers over 16 KiB");
    return 0;
  }
  return (size_t)(end + 4 - c->head) - (c->head_len - k);
}

/* The upgrade response so far; 1 when it ended (and the frames after it were taken). */
static int take_head(sl_wsc_t *c, const char *p, size_t n) {
  size_t used = head_ended(c, p, n);
  if (!used) return 0;
  char *why = NULL;
  if (sl_wsh_check_response(c->head, c->key, &why) != 0) {
    drop(c, why);
    free(why);
    return 0;
  }
  free(c->head);
  c->head = NULL;
  c->head_len = 0;
  opened(c);
  if (c->state != S_OPEN) return 0;
  if (n > used) {
    c->in_buf = sl_xmalloc(n - used);
    memcpy(c->in_buf, p + used, n - used);
    c->in_len = n - used;
  }
  return 1;
}

/* The proxy's answer to CONNECT (a proxy sends nothing after its head
 * before we speak). */
static void take_proxy_head(sl_wsc_t *c, const char *p, size_t n) {
  if (!head_ended(c, p, n)) return;
  char *why = NULL;
  if (sl_wsh_check_connect(c->head, &why) != 0) {
    drop(c, why);
    free(why);
    return;
  }
  free(c->head);
  c->head = NULL;
  c->head_len = 0;
  begin(c);
}

/* Plain bytes from the server. */
static void on_plain(sl_wsc_t *c, const char *p, size_t n) {
  unsigned gen = c->gen;
  if (c->state == S_PROXY) {
    take_proxy_head(c, p, n);
    return;
  }
  if (c->state == S_UPGRADING) {
    if (!take_head(c, p, n) || gen != c->gen) return;
  } else if (c->state == S_OPEN || c->state == S_CLOSING) {
    c->in_buf = sl_xrealloc(c->in_buf, c->in_len + n);
    memcpy(c->in_buf + c->in_len, p, n);
    c->in_len += n;
  } else {
    return;
  }
  if (c->ws && c->in_len > c->in_off) ws_run(c);
  if (c->cbs.read_end) c->cbs.read_end(c->arg);
}

/* ---- the socket ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  sl_wsc_t *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  sl_wsc_t *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    char *why = nread == UV_EOF ? sl_xstrdup(c->state == S_OPEN ? "the server ended the connection without a close frame"
                                                               : "the server ended the connection")
                                : sl_xasprintf("read: %s", uv_strerror((int)nread));
    if (c->state == S_CLOSING) drop(c, NULL);
    else drop(c, why);
    free(why);
    return;
  }
  c->last_rx = uv_now(c->loop);
  if (!c->tls) {
    on_plain(c, buf->base, (size_t)nread);
    return;
  }
  char *plain = NULL;
  size_t plen = 0;
  int rc = sl_tls_recv(c->tls, buf->base, (size_t)nread, &plain, &plen);
  size_t olen = 0;
  char *out = sl_tls_take_output(c->tls, &olen);
  if (out) put(c, out, olen);
  if (rc < 0) {
    free(plain);
    char *why = sl_tls_why(c->tls);
    char *r = sl_xasprintf("TLS: %s", why);
    drop(c, r);
    free(r);
    free(why);
    return;
  }
  unsigned gen = c->gen;
  if (c->state == S_TLS && sl_tls_ready(c->tls)) send_upgrade(c);
  if (plen && gen == c->gen) on_plain(c, plain, plen);
  free(plain);
}

typedef struct connecting {
  uv_connect_t req;
  sl_wsc_t *c;
  unsigned gen;
} connecting_t;

static void on_connect(uv_connect_t *req, int status) {
  connecting_t *k = (connecting_t *)req;
  sl_wsc_t *c = k->c;
  unsigned gen = k->gen;
  free(k);
  c->handles--;
  if (c->freed || gen != c->gen || c->state != S_CONNECTING) {
    maybe_free(c);
    return;
  }
  if (status < 0) {
    char *why = sl_xasprintf("connect to %s%s: %s", c->proxy.host ? "proxy " : "", c->proxy.host ? c->proxy.hostport : c->u.hostport, uv_strerror(status));
    drop(c, why);
    free(why);
    return;
  }
  uv_tcp_nodelay(c->tcp, 1);
  uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
  if (c->paused) uv_read_stop((uv_stream_t *)c->tcp);
  if (c->proxy.host) {
    size_t len;
    char *req = sl_wsh_connect_request(&c->u, c->proxy_auth, &len);
    c->state = S_PROXY;
    put_plain(c, req, len);
    free(req);
  } else {
    begin(c);
  }
}

typedef struct resolve {
  uv_getaddrinfo_t req;
  sl_wsc_t *c;
  unsigned gen;
} resolve_t;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_t *r = (resolve_t *)req;
  sl_wsc_t *c = r->c;
  unsigned gen = r->gen;
  free(r);
  c->handles--;
  if (c->freed || gen != c->gen || c->state != S_RESOLVING) {
    uv_freeaddrinfo(res);
    maybe_free(c);
    return;
  }
  if (status < 0) {
    char *why = sl_xasprintf("resolve %s%s: %s", c->proxy.host ? "proxy " : "", c->proxy.host ? c->proxy.host : c->u.host,
                             uv_strerror(status));
    drop(c, why);
    free(why);
    return;
  }
  c->tcp = sl_xmalloc(sizeof(*c->tcp));
  uv_tcp_init(c->loop, c->tcp);
  c->tcp->data = c;
  c->handles++;
  connecting_t *creq = sl_xmalloc(sizeof(*creq));
  creq->c = c;
  creq->gen = c->gen;
  c->state = S_CONNECTING;
  int rc = uv_tcp_connect(&creq->req, c->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc != 0) {
    free(creq);
    char *why = sl_xasprintf("connect to %s%s: %s", c->proxy.host ? "proxy " : "", c->proxy.host ? c->proxy.hostport : c->u.hostport, uv_strerror(rc));
    drop(c, why);
    free(why);
    return;
  }
  c->handles++;
}

static void attempt(sl_wsc_t *c) {
  if (c->stopping) return;
  c->state = S_RESOLVING;
  uv_timer_start(&c->retry, on_retry, (uint64_t)c->connect_timeout_ms, 0);
  resolve_t *r = sl_xmalloc(sizeof(*r));
  r->c = c;
  r->gen = c->gen;
  const sl_wsh_url_t *to = c->proxy.host ? &c->proxy : &c->u;
  char port[8];
  snprintf(port, sizeof port, "%d", to->port);
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  c->handles++;
  int rc = uv_getaddrinfo(c->loop, &r->req, on_resolved, to->host, port, &hints);
  if (rc != 0) {
    free(r);
    c->handles--;
    char *why = sl_xasprintf("resolve %s%s: %s", c->proxy.host ? "proxy " : "", to->host, uv_strerror(rc));
    drop(c, why);
    free(why);
  }
}

static void on_ping(uv_timer_t *t) {
  sl_wsc_t *c = t->data;
  if (c->state != S_OPEN) return;
  /* A paused reader does not see pongs: silence counts only while reading. */
  if (!c->paused && uv_now(c->loop) - c->last_rx > (uint64_t)(3 * c->ping_ms)) {
    char *why = sl_xasprintf("no answer to pings for %lld ms", (long long)(3 * c->ping_ms));
    drop(c, why);
    free(why);
    return;
  }
  struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"", 0};
  wslay_event_queue_msg(c->ws, &m);
  ws_send(c);
}

/* ---- the component's side ---- */

/* basic_auth, jwt or oauth (one at most), and proxy_url: 0, or -1 with a
 * diagnostic. */
static int read_auth(sl_wsc_t *c, sl_build_t *b, const sl_cnode_t *conf) {
  const sl_cnode_t *ba = sl_cnode_get(conf, "basic_auth"), *jw = sl_cnode_get(conf, "jwt"),
                   *oa = sl_cnode_get(conf, "oauth");
  int baon = sl_conf_bool(ba, "enabled", 0), jwon = sl_conf_bool(jw, "enabled", 0);
  if (baon + jwon + sl_conf_bool(oa, "enabled", 0) > 1) {
    sl_diag_add(b->diags, conf, "basic_auth", "basic_auth, jwt and oauth exclude each other");
    return -1;
  }
  /* the helpers make a whole header line; the upgrade request names it */
  char *line = baon ? sl_hconf_basic(sl_conf_str(ba, "username", ""), sl_conf_str(ba, "password", ""))
               : jwon ? sl_hconf_jwt(jw, b->diags) : NULL;
  if (jwon && !line) return -1;
  if (line) {
    c->auth = sl_xstrdup(line + strlen("Authorization: "));
    OPENSSL_cleanse(line, strlen(line));
    free(line);
  }
  c->oauth = sl_oauth1_new(oa);
  const char *proxy = sl_conf_str(conf, "proxy_url", "");
  char *why = NULL;
  if (*proxy && sl_wsh_parse_proxy(proxy, &c->proxy, &c->proxy_auth, &why) != 0) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "proxy_url"), "proxy_url", "%s", why);
    free(why);
    return -1;
  }
  return 0;
}

sl_wsc_t *sl_wsc_new(sl_build_t *b, const sl_cnode_t *conf, sl_cmkind_t kind, const sl_wsc_cbs_t *cbs, void *arg) {
  sl_wsc_t *c = sl_xcalloc(1, sizeof(*c));
  c->cbs = *cbs;
  c->arg = arg;
  c->kind = kind;
  c->url = sl_xstrdup(sl_conf_str(conf, "url", ""));
  char *why = NULL;
  int bad = 0;
  if (sl_wsh_parse_url(c->url, &c->u, &why) != 0) {
    const sl_cnode_t *at = sl_cnode_get(conf, "url");
    sl_diag_add(b->diags, at ? at : conf, "url", "not a WebSocket URL (%s): %s", why, c->url);
    free(why);
    bad = 1;
  }
  const sl_cnode_t *tls = sl_cnode_get(conf, "tls");
  if (tls && sl_conf_bool(tls, "enabled", 0)) c->u.tls = 1;
  if (!bad && c->u.tls) {
    c->tls_ctx = sl_tls_conf_client(tls, b->diags);
    bad = !c->tls_ctx;
  } else if (!bad && tls) {
    const sl_cnode_t *certs = sl_cnode_get(tls, "client_certs");
    if (certs && certs->type == SL_CN_SEQ && certs->n) {
      sl_diag_add(b->diags, tls, "tls.client_certs", "a client certificate needs TLS: a wss:// URL or tls.enabled");
      bad = 1;
    }
  }
  if (!bad) bad = read_auth(c, b, conf) != 0;
  c->max_message = (size_t)sl_conf_size(conf, "max_message_size", 32 << 20);
  c->ping_ms = sl_conf_duration_ms(conf, "ping_interval", 30000);
  c->connect_timeout_ms = sl_conf_duration_ms(conf, "connect_timeout", 10000);
  if (c->connect_timeout_ms < 1) c->connect_timeout_ms = 1;
  c->backoff_ms = BACKOFF_MIN_MS;
  c->path_cfg = sl_xstrdup(b->path ? b->path : "");
  if (bad) {
    c->freed = 1;
    maybe_free(c);
    return NULL;
  }
  return c;
}

void sl_wsc_start(sl_wsc_t *c, sl_input_t *in, sl_output_t *out) {
  c->in = in;
  c->out = out;
  c->loop = (in ? in->worker : out->worker)->loop;
  uv_timer_init(c->loop, &c->retry);
  uv_timer_init(c->loop, &c->ping);
  c->retry.data = c->ping.data = c;
  c->handles = 2;
  sl_connmetrics_init(&c->m, c->kind, sname(c) ? sname(c) : "", lname(c), c->path_cfg);
  char *r = sl_xasprintf("websocket %s: connecting", c->url);
  set_ready(c, 0, r);
  free(r);
  attempt(c);
}

int sl_wsc_is_open(const sl_wsc_t *c) { return c->state == S_OPEN; }

int sl_wsc_send(sl_wsc_t *c, int text, const void *p, size_t n) {
  if (c->state != S_OPEN) return -1;
  struct wslay_event_msg m = {text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, p, n};
  return wslay_event_queue_msg(c->ws, &m) == 0 ? 0 : -1;
}

uint64_t sl_wsc_flush(sl_wsc_t *c) {
  if (c->ws && !c->in_wslay) {
    c->in_wslay = 1;
    ws_send(c);
    c->in_wslay = 0;
  }
  return c->issued;
}

size_t sl_wsc_queued(const sl_wsc_t *c) { return c->tcp ? uv_stream_get_write_queue_size((const uv_stream_t *)c->tcp) : 0; }

void sl_wsc_pause(sl_wsc_t *c, int pause) {
  if (pause == c->paused) return;
  c->paused = pause;
  if (!c->tcp || c->state == S_RESOLVING || c->state == S_CONNECTING) return;
  if (pause) {
    uv_read_stop((uv_stream_t *)c->tcp);
  } else {
    c->last_rx = uv_now(c->loop);
    uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
  }
}

void sl_wsc_stop(sl_wsc_t *c, void (*done)(void *), void *arg) {
  if (c->stopping) return;
  c->stopping = 1;
  c->stop_done = done;
  c->stop_arg = arg;
  if (c->state == S_OPEN) {
    /* The close handshake: the server answers our close, then we close the socket. */
    c->state = S_CLOSING;
    wslay_event_queue_close(c->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    c->in_wslay = 1;
    ws_send(c);
    c->in_wslay = 0;
    if (c->paused) {
      c->paused = 0;
      if (c->tcp) uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
    }
    uv_timer_start(&c->retry, on_retry, CLOSE_WAIT_MS, 0);
    return;
  }
  int had_socket = c->tcp != NULL;
  drop(c, NULL);
  if (!had_socket) stopped(c);   /* else once the socket is closed */
}

void sl_wsc_free(sl_wsc_t *c) {
  if (!c) return;
  if (!c->loop) {   /* never started */
    c->freed = 1;
    maybe_free(c);
    return;
  }
  /* Nothing is reported any more: the component is going away. */
  memset(&c->cbs, 0, sizeof c->cbs);
  c->in = NULL;
  c->out = NULL;
  c->stop_done = NULL;
  c->stopping = 1;
  if (c->state != S_IDLE || c->tcp) drop(c, NULL);
  c->freed = 1;
  uv_close((uv_handle_t *)&c->retry, handle_closed);
  uv_close((uv_handle_t *)&c->ping, handle_closed);
}
