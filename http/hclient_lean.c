#include "hclient_lean.h"
#include "http_tls.h"
#include "core/blocks.h"
#include "core/xalloc.h"
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IDLE_PER_HOST 256    /* as libcurl's CURLMOPT_MAXCONNECTS for the curl path */
#define READ_BUF 65536

typedef struct conn conn_t;

typedef struct host {
  char *name;
  int port;
  conn_t *idle;              /* kept-alive connections, the last used first */
  int nidle;
  int tls;                   /* https: the scheme is part of the pool's key */
  void *session;             /* a TLS session new connections resume (sl_tls_session) */
  struct host *next;
} host_t;

enum { RESOLVING, CONNECTING, BUSY, IDLE, CLOSING };

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;          /* the request's deadline (see arm_timer) */
  uv_write_t wr;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  llhttp_t parser;
  sl_tls_t *tls;             /* https: the session on this connection */
  sl_hlean_t *c;
  host_t *host;
  sl_hlean_req_t *req;
  conn_t *next, **prev;      /* in its host's idle list or the client's busy list */
  struct addrinfo *ais, *ai; /* resolved addresses, the one tried */
  const char *err;           /* why the parser stopped (a callback's reason) */
  char *line;                /* the header line being assembled */
  size_t llen, lcap, hbytes;
  uint64_t due, armed;       /* the request's deadline, and when the timer fires (0: stopped), loop time */
  int state, handles, resolving, reused, got, complete, hstate, next_addr;
};

struct sl_hlean_req {
  sl_hlean_t *c;
  conn_t *conn;
  host_t *host;
  sl_hlean_cbs_t cbs;
  char *out;                 /* the request's bytes, kept for a retry: after the struct, in its block */
  size_t olen, size;         /* size: of its block (core/blocks.h) */
  uint64_t start, received;
  int64_t timeout_ms, connect_ms;
  int head, retried;
};

struct sl_hlean {
  uv_loop_t *loop;
  host_t *hosts;
  conn_t *busy;
  sl_tls_ctx_t *tls;         /* https: made on the first https request (the system's CAs) */
  char *tls_err;             /* why it could not be made */
  int conns;                 /* not yet freed: the client is freed at 0 once closing */
  int closing;
  char rbuf[READ_BUF];       /* one read at a time on a loop: shared by its connections */
};

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

/* ---- URLs ---- */

int sl_hlean_target(const char *url, sl_hlean_target_t *t) {
  int tls = !strncasecmp(url, "https://", 8);
  if (!tls && strncasecmp(url, "http://", 7)) return 0;
  const char *a = url + 7 + tls, *p = a;
  for (const char *s = url; *s; s++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return 0;
  memset(t, 0, sizeof(*t));
  t->authority = a;
  t->tls = tls;
  if (*p == '[') {
    t->host = ++p;
    while (*p && *p != ']') {
      if (!strchr("0123456789abcdefABCDEF:.", *p)) return 0;
      p++;
    }
    if (*p != ']') return 0;
    t->hlen = (size_t)(p++ - t->host);
  } else {
    t->host = p;
    while (*p == '-' || *p == '.' || *p == '_' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
      p++;
    t->hlen = (size_t)(p - t->host);
  }
  if (!t->hlen) return 0;
  t->port = tls ? 443 : 80;
  if (*p == ':') {
    long port = 0;
    const char *d = ++p;
    while (*p >= '0' && *p <= '9' && port <= 65535) port = port * 10 + (*p++ - '0');
    if (p == d || port < 1 || port > 65535) return 0;
    t->port = (int)port;
  }
  t->alen = (size_t)(p - a);
  if (*p && *p != '/' && *p != '?' && *p != '#') return 0;   /* user:password@ and the like: libcurl's */
  if (*p == '/' || *p == '?') {
    t->path = p;
    const char *f = strchr(p, '#');
    t->plen = f ? (size_t)(f - p) : strlen(p);
  }
  return 1;
}

/* ---- Connections ---- */

static void list_add(conn_t **head, conn_t *k) {
  if ((k->next = *head)) k->next->prev = &k->next;
  *head = k;
  k->prev = head;
}

static void list_del(conn_t *k) {
  if (!k->prev) return;
  *k->prev = k->next;
  if (k->next) k->next->prev = k->prev;
  k->prev = NULL;
  k->next = NULL;
}

static void client_free(sl_hlean_t *c) {
  while (c->hosts) {
    host_t *h = c->hosts;
    c->hosts = h->next;
    if (h->session) sl_tls_session_free(h->session);
    free(h->name);
    free(h);
  }
  sl_tls_ctx_free(c->tls);
  free(c->tls_err);
  free(c);
}

static void conn_maybe_free(conn_t *k) {
  if (k->handles || k->resolving) return;
  sl_hlean_t *c = k->c;
  if (k->ais) uv_freeaddrinfo(k->ais);
  sl_tls_free(k->tls);
  free(k->line);
  free(k);
  if (--c->conns == 0 && c->closing) client_free(c);
}

static void connect_next(conn_t *k);

static void handle_closed(uv_handle_t *h) {
  conn_t *k = h->data;
  k->handles--;
  if (k->next_addr && h == (uv_handle_t *)&k->tcp) {   /* a fresh socket for the next address */
    k->next_addr = 0;
    uv_tcp_init(k->c->loop, &k->tcp);
    k->tcp.data = k;
    k->handles++;
    connect_next(k);
    return;
  }
  conn_maybe_free(k);
}

static int tls_flush(conn_t *k);

static void conn_close(conn_t *k) {
  if (k->state == CLOSING) return;
  if (k->tls && sl_tls_shutdown(k->tls)) tls_flush(k);   /* close_notify, best effort */
  if (k->state == IDLE) k->host->nidle--;
  k->state = CLOSING;
  k->next_addr = 0;
  list_del(k);
  if (k->resolving) uv_cancel((uv_req_t *)&k->gai);
  if (!uv_is_closing((uv_handle_t *)&k->tcp)) uv_close((uv_handle_t *)&k->tcp, handle_closed);
  uv_close((uv_handle_t *)&k->timer, handle_closed);
}

/* Takes r off its connection (the connection is the caller's to keep or close). */
static void detach(sl_hlean_req_t *r) {
  conn_t *k = r->conn;
  r->conn = NULL;
  k->req = NULL;
  uv_unref((uv_handle_t *)&k->timer);   /* left running: see arm_timer */
}

static void req_free(sl_hlean_req_t *r) { sl_blocks_put(r, r->size); }

static void fail(sl_hlean_req_t *r, const char *err) {
  conn_t *k = r->conn;
  if (k) {
    detach(r);
    conn_close(k);
  }
  r->cbs.done(-1, err, r->cbs.arg);
  req_free(r);
}

static void failf(sl_hlean_req_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(sl_hlean_req_t *r, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fail(r, msg);
}

static void dispatch(sl_hlean_req_t *r, int fresh);

/* The connection went before the answer did: a kept-alive one the server
 * had closed while idle is tried again once on a new connection (as
 * libcurl does), when nothing of the answer had come. */
static void lost(conn_t *k, const char *why) {
  sl_hlean_req_t *r = k->req;
  if (k->reused && !k->got && !r->retried) {
    r->retried = 1;
    detach(r);
    conn_close(k);
    dispatch(r, 1);
    return;
  }
  if (!k->got) failf(r, "Empty reply from server (%s)", why);
  else failf(r, "transfer closed before the response was complete (%s)", why);
}

static void on_timer(uv_timer_t *t) {
  conn_t *k = t->data;
  sl_hlean_req_t *r = k->req;
  k->armed = 0;
  if (!k->err) {
    uint64_t now = uv_now(k->c->loop);
    if (!r) return;   /* armed for a request that is done */
    if (now < k->due) {
      uv_timer_start(&k->timer, on_timer, k->due - now, 0);
      k->armed = k->due;
      return;
    }
  }
  if (k->err) {   /* a connect or lookup refused at once, reported here: never inside sl_hlean_request */
    if (k->state == RESOLVING) failf(r, "Could not resolve host: %s (%s)", k->host->name, k->err);
    else failf(r, "Failed to connect to %s port %d: Couldn't connect to server (%s)", k->host->name, k->host->port, k->err);
    return;
  }
  uint64_t took = uv_now(k->c->loop) - r->start;
  if (k->state == RESOLVING || k->state == CONNECTING)
    failf(r, "Connection timed out after %llu milliseconds", (unsigned long long)took);
  else
    failf(r, "Operation timed out after %llu milliseconds with %llu bytes received", (unsigned long long)took,
          (unsigned long long)r->received);
}

/* The timer is not stopped when a request ends: a kept-alive connection's
 * next request finds it armed for an earlier deadline and only moves k->due
 * (a stop and a start per call were ~0.6k instructions); on_timer then
 * re-arms for what is left. It holds the loop only while a request is on. */
static void arm_timer(conn_t *k) {
  sl_hlean_req_t *r = k->req;
  uint64_t now = uv_now(k->c->loop);
  int64_t left = r->timeout_ms - (int64_t)(now - r->start);
  if ((k->state == RESOLVING || k->state == CONNECTING) && r->connect_ms > 0 && r->connect_ms < left)
    left = r->connect_ms - (int64_t)(now - r->start);
  k->due = now + (left > 0 ? (uint64_t)left : 0);
  uv_ref((uv_handle_t *)&k->timer);
  if (k->armed && k->armed <= k->due) return;
  uv_timer_start(&k->timer, on_timer, k->due - now, 0);
  k->armed = k->due;
}

/* An error found at once is reported from the loop (never inside sl_hlean_request). */
static void fail_soon(conn_t *k, const char *err) {
  k->err = err;
  k->armed = uv_now(k->c->loop);
  uv_timer_start(&k->timer, on_timer, 0, 0);
}

static void on_written(uv_write_t *w, int status) {
  conn_t *k = w->data;
  if (status < 0 && status != UV_ECANCELED && k->req && k->state == BUSY) lost(k, uv_strerror(status));
}

/* ---- TLS (https): the session's records go out as OpenSSL makes them ---- */

typedef struct tls_write {
  uv_write_t w;
  conn_t *k;
  char *buf;
} tls_write_t;

/* A certificate refused is said in libcurl's words. */
static void handshake_failed(conn_t *k, const char *why) {
  const char *cert = why ? NULL : sl_tls_verify_error(k->tls);
  if (cert) {
    failf(k->req, "SSL certificate problem: %s", cert);
    return;
  }
  char *w = why ? sl_xstrdup(why) : sl_tls_why(k->tls);
  failf(k->req, "TLS handshake with %s port %d failed: %s", k->host->name, k->host->port, w);
  free(w);
}

static void tls_written(uv_write_t *w, int status) {
  tls_write_t *tw = (tls_write_t *)w;
  conn_t *k = tw->k;
  free(tw->buf);
  free(tw);
  if (status >= 0 || status == UV_ECANCELED || !k->req) return;
  if (k->state == CONNECTING) handshake_failed(k, uv_strerror(status));
  else if (k->state == BUSY) lost(k, uv_strerror(status));
}

/* Writes what the session has to send (a write queued behind another keeps
 * the order: uv_try_write refuses while one is queued). 0 or a libuv error. */
static int tls_flush(conn_t *k) {
  size_t len;
  char *buf;
  while ((buf = sl_tls_take_output(k->tls, &len))) {
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int rc = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (rc == (int)len) {
      free(buf);
      continue;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
      free(buf);
      return rc;
    }
    size_t off = rc > 0 ? (size_t)rc : 0;
    tls_write_t *tw = sl_xmalloc(sizeof(*tw));
    tw->k = k;
    tw->buf = buf;
    b = uv_buf_init(buf + off, (unsigned)(len - off));
    rc = uv_write(&tw->w, (uv_stream_t *)&k->tcp, &b, 1, tls_written);
    if (rc < 0) {
      free(buf);
      free(tw);
      return rc;
    }
  }
  return 0;
}

/* Writes k's request (and arms its deadline); a write refused at once is
 * lost(): r may be gone when this returns. */
static void send_req(conn_t *k) {
  sl_hlean_req_t *r = k->req;
  k->state = BUSY;
  arm_timer(k);
  k->got = 0;
  k->complete = 0;
  k->hstate = 0;
  k->hbytes = 0;
  k->err = NULL;
  llhttp_init(&k->parser, HTTP_RESPONSE, &settings);
  k->parser.data = k;
  if (k->tls) {
    sl_tls_send(k->tls, r->out, r->olen);
    int rc = tls_flush(k);
    if (rc < 0) lost(k, uv_strerror(rc));
    return;
  }
  /* uv_write of a request written at once still costs an epoll_ctl on the
   * next loop turn (libuv re-arms the watcher when it drops POLLOUT) */
  uv_buf_t b = uv_buf_init(r->out, (unsigned)r->olen);
  int rc = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
  if (rc == (int)r->olen) return;
  if (rc > 0) b = uv_buf_init(r->out + rc, (unsigned)(r->olen - (size_t)rc));
  else if (rc != UV_EAGAIN) {
    lost(k, uv_strerror(rc));
    return;
  }
  k->wr.data = k;
  rc = uv_write(&k->wr, (uv_stream_t *)&k->tcp, &b, 1, on_written);
  if (rc < 0) lost(k, uv_strerror(rc));
}

/* ---- Reading and parsing ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  conn_t *k = h->data;
  *b = uv_buf_init(k->c->rbuf, READ_BUF);
}

/* The answer is complete: the connection goes back to its host's pool
 * before done runs, so that a call done starts may take it. */
static void finish(conn_t *k, int reusable) {
  sl_hlean_req_t *r = k->req;
  int status = llhttp_get_status_code(&k->parser);
  detach(r);
  host_t *h = k->host;
  if (k->tls && !k->reused) {   /* by now a TLS 1.3 server's tickets have come */
    void *s = sl_tls_session(k->tls);
    if (s) {
      if (h->session) sl_tls_session_free(h->session);
      h->session = s;
    }
  }
  if (reusable && llhttp_should_keep_alive(&k->parser) && !k->c->closing && h->nidle < IDLE_PER_HOST) {
    list_del(k);
    k->state = IDLE;
    k->reused = 1;
    uv_unref((uv_handle_t *)&k->tcp);   /* as libcurl's idle connections: they keep no loop running */
    list_add(&h->idle, k);
    h->nidle++;
  } else {
    conn_close(k);
  }
  r->cbs.done(status, NULL, r->cbs.arg);
  req_free(r);
}

static void parse_failed(conn_t *k, const char *data, size_t n) {
  sl_hlean_req_t *r = k->req;
  if (k->err) failf(r, "%s", k->err);
  else if (k->got == 1 && memcmp(data, "HTTP/", n < 5 ? n : 5))
    failf(r, "not an HTTP/1.x response (HTTP/0.9 is not allowed)");
  else failf(r, "malformed response: %s", llhttp_get_error_reason(&k->parser));
}

/* n bytes of the answer (plain text), or the connection's end (n < 0). */
static void got(conn_t *k, ssize_t n, const char *data) {
  if (k->state != BUSY || !k->req) {   /* an idle connection spoke or closed: not reusable */
    if (k->state == IDLE) conn_close(k);
    return;
  }
  if (n < 0) {
    if (n == UV_EOF && k->got) {   /* an answer without a length ends here */
      llhttp_finish(&k->parser);
      if (k->complete) finish(k, 0);
      else lost(k, "closed by the server");
      return;
    }
    lost(k, n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
    return;
  }
  k->got++;
  llhttp_errno_t e = llhttp_execute(&k->parser, data, (size_t)n);
  if (k->complete) {
    /* bytes after the answer (nothing was asked): the connection is spoiled */
    finish(k, e == HPE_PAUSED && llhttp_get_error_pos(&k->parser) == data + n);
    return;
  }
  if (e != HPE_OK) parse_failed(k, data, (size_t)n);
}

/* Ciphertext, or the connection's end, on a TLS connection: the handshake,
 * then the request once it is done, then the answer. An end without the
 * server's close_notify may have cut the answer: it cannot end one. */
static void tls_read(conn_t *k, ssize_t n, const char *data) {
  if (n < 0) {
    if (k->state == CONNECTING) handshake_failed(k, n == UV_EOF ? "closed by the server" : uv_strerror((int)n));
    else if (k->state == BUSY && k->got && n == UV_EOF && !sl_tls_closed(k->tls))
      lost(k, "closed without TLS close_notify");
    else got(k, n, NULL);
    return;
  }
  char *pt = NULL;
  size_t pl = 0;
  int rc = sl_tls_recv(k->tls, data, (size_t)n, &pt, &pl);
  int wrc = tls_flush(k);
  if (k->state == CONNECTING) {
    if (rc < 0 || wrc < 0) handshake_failed(k, wrc < 0 ? uv_strerror(wrc) : NULL);
    else if (sl_tls_ready(k->tls)) send_req(k);
    if (k->state != BUSY) {
      free(pt);
      return;
    }
  }
  if (pl) got(k, (ssize_t)pl, pt);
  free(pt);
  if (rc < 0 || wrc < 0) {
    if (k->state == BUSY && k->req) {
      char *w = wrc < 0 ? sl_xstrdup(uv_strerror(wrc)) : sl_tls_why(k->tls);
      failf(k->req, "TLS error on %s port %d: %s", k->host->name, k->host->port, w);
      free(w);
    } else if (k->state == IDLE) {
      conn_close(k);
    }
  } else if (sl_tls_closed(k->tls) && (k->state == BUSY || k->state == IDLE)) {
    got(k, UV_EOF, NULL);
  }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn_t *k = s->data;
  if (n == 0) return;
  if (k->tls) tls_read(k, n, b->base);
  else got(k, n, b->base);
}

static int line_add(conn_t *k, const char *at, size_t n) {
  k->hbytes += n;
  if (k->hbytes > SL_HCLIENT_HEADERS_MAX) {
    k->err = "response headers too large";
    return HPE_USER;
  }
  if (k->llen + n > k->lcap) {
    k->lcap = k->lcap ? k->lcap * 2 : 256;
    while (k->lcap < k->llen + n) k->lcap *= 2;
    k->line = sl_xrealloc(k->line, k->lcap);
  }
  memcpy(k->line + k->llen, at, n);
  k->llen += n;
  return 0;
}

/* The header lines are gathered in k->line and handed over at once when
 * they are complete: a call per line, each copied again, was a fifth of
 * reading an answer. */
static int on_status_complete(llhttp_t *p) {
  conn_t *k = p->data;
  k->llen = 0;
  k->hstate = 0;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  conn_t *k = p->data;
  if (k->hstate == 2 && line_add(k, "\r\n", 2)) return HPE_USER;
  k->hstate = 1;
  return line_add(k, at, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  conn_t *k = p->data;
  if (k->hstate == 1 && line_add(k, ": ", 2)) return HPE_USER;
  k->hstate = 2;
  return line_add(k, at, n);
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *k = p->data;
  if (k->hstate == 2 && line_add(k, "\r\n", 2)) return -1;
  k->hstate = 0;
  sl_hlean_req_t *r = k->req;
  if (r->cbs.on_headers) r->cbs.on_headers(k->line ? k->line : "", k->llen, r->cbs.arg);
  return r->head ? 1 : 0;   /* 1: llhttp expects no body */
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  conn_t *k = p->data;
  sl_hlean_req_t *r = k->req;
  r->received += n;
  if (r->cbs.on_data && r->cbs.on_data(at, n, r->cbs.arg) < 0) {
    k->err = "aborted by the response's reader";
    return HPE_USER;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn_t *k = p->data;
  int st = llhttp_get_status_code(p);
  if (st >= 100 && st < 200 && st != 101) return 0;   /* 100 Continue and the like: the answer follows */
  k->complete = 1;
  return HPE_PAUSED;
}

static void settings_init(void) {
  llhttp_settings_init(&settings);
  settings.on_status_complete = on_status_complete;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
}

/* ---- Connecting ---- */

static void on_connect(uv_connect_t *cr, int status) {
  conn_t *k = cr->data;
  if (status == UV_ECANCELED || k->state == CLOSING) return;
  sl_hlean_req_t *r = k->req;
  if (status < 0) {
    if (k->ai && k->ai->ai_next) {   /* the name's next address, on a fresh socket */
      k->ai = k->ai->ai_next;
      k->next_addr = 1;
      uv_close((uv_handle_t *)&k->tcp, handle_closed);
      return;
    }
    failf(r, "Failed to connect to %s port %d: Couldn't connect to server (%s)", k->host->name, k->host->port,
          uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(&k->tcp, 1);
  uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
  if (!k->host->tls) {
    send_req(k);
    return;
  }
  /* the request waits in r->out for the handshake, under the connect deadline */
  k->tls = sl_tls_client_new(k->c->tls, k->host->name);
  if (k->host->session) sl_tls_resume(k->tls, k->host->session);
  char *none = NULL;
  size_t nlen = 0;
  sl_tls_recv(k->tls, NULL, 0, &none, &nlen);
  free(none);
  int rc = tls_flush(k);
  if (rc < 0) handshake_failed(k, uv_strerror(rc));
}

static void connect_to(conn_t *k, const struct sockaddr *sa) {
  k->state = CONNECTING;
  k->creq.data = k;
  int rc = uv_tcp_connect(&k->creq, &k->tcp, sa, on_connect);
  if (rc < 0) fail_soon(k, uv_strerror(rc));
}

static void connect_next(conn_t *k) {
  if (k->state == CLOSING || !k->req) {
    conn_close(k);
    return;
  }
  struct sockaddr_storage ss;
  memcpy(&ss, k->ai->ai_addr, k->ai->ai_addrlen);
  ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)k->host->port);   /* same offset in sockaddr_in6 */
  connect_to(k, (struct sockaddr *)&ss);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai) {
  conn_t *k = g->data;
  k->resolving = 0;
  k->ais = k->ai = ai;
  if (k->state == CLOSING) {
    conn_maybe_free(k);
    return;
  }
  if (status < 0 || !ai) {
    failf(k->req, "Could not resolve host: %s (%s)", k->host->name, uv_strerror(status));
    return;
  }
  connect_next(k);
  if (k->state == CONNECTING && !k->err) arm_timer(k);
}

static conn_t *conn_new(sl_hlean_t *c, host_t *h) {
  conn_t *k = sl_xcalloc(1, sizeof(*k));
  k->c = c;
  k->host = h;
  uv_tcp_init(c->loop, &k->tcp);
  uv_timer_init(c->loop, &k->timer);
  k->tcp.data = k->timer.data = k;
  k->handles = 2;
  c->conns++;
  list_add(&c->busy, k);
  return k;
}

static void open_conn(sl_hlean_req_t *r) {
  sl_hlean_t *c = r->c;
  host_t *h = r->host;
  conn_t *k = conn_new(c, h);
  k->req = r;
  r->conn = k;
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (h->tls && !c->tls) {   /* the CAs could not be loaded: said as a connect error, on the loop */
    fail_soon(k, c->tls_err);
  } else if (uv_ip4_addr(h->name, h->port, &a4) == 0) connect_to(k, (struct sockaddr *)&a4);
  else if (uv_ip6_addr(h->name, h->port, &a6) == 0) connect_to(k, (struct sockaddr *)&a6);
  else {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    k->state = RESOLVING;
    k->gai.data = k;
    int rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, h->name, NULL, &hints);
    if (rc < 0) fail_soon(k, uv_strerror(rc));
    else k->resolving = 1;
  }
  if (!k->err) arm_timer(k);
}

/* A kept-alive connection of r's host, or a new one (fresh: always new). */
static void dispatch(sl_hlean_req_t *r, int fresh) {
  host_t *h = r->host;
  if (!fresh && h->idle) {
    conn_t *k = h->idle;
    list_del(k);
    h->nidle--;
    list_add(&r->c->busy, k);
    uv_ref((uv_handle_t *)&k->tcp);
    k->req = r;
    r->conn = k;
    send_req(k);
    return;
  }
  open_conn(r);
}

/* ---- Requests ---- */

static host_t *host_of(sl_hlean_t *c, const sl_hlean_target_t *t) {
  for (host_t *h = c->hosts; h; h = h->next)
    if (h->port == t->port && h->tls == t->tls && strlen(h->name) == t->hlen && !strncasecmp(h->name, t->host, t->hlen)) return h;
  host_t *h = sl_xcalloc(1, sizeof(*h));
  h->name = sl_xstrndup(t->host, t->hlen);
  h->port = t->port;
  h->tls = t->tls;
  h->next = c->hosts;
  c->hosts = h;
  return h;
}

static int is_header(const char *h, const char *name) {
  size_t n = strlen(name);
  return !strncasecmp(h, name, n) && h[n] == ':';
}

/* A header "Name:" with nothing after it only takes away the default of
 * that name (libcurl's rule for its header lists). */
static int empty_value(const char *h) {
  const char *v = strchr(h, ':') + 1;
  while (*v == ' ' || *v == '\t') v++;
  return !*v;
}

static char *put(char *o, const char *s, size_t n) {
  memcpy(o, s, n);
  return o + n;
}
#define PUT(o, lit) put(o, lit, sizeof(lit) - 1)

/* What build writes at most: the fixed text below ("/" for no path) and a
 * size_t in decimal. */
static size_t request_need(const char *method, const sl_hlean_target_t *t, const char *const *headers, size_t len) {
  size_t need = strlen(method) + t->plen + t->alen + len + 20 +
                sizeof(" / HTTP/1.1\r\nHost: \r\nAccept: */*\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: \r\n\r\n");
  for (const char *const *h = headers; h && *h; h++) need += strlen(*h) + 2;
  return need;
}

/* The request in r->out: request line, Host, Accept, the caller's
 * headers, Content-Type and Content-Length with a body, then the body. */
static void build(sl_hlean_req_t *r, const char *method, const sl_hlean_target_t *t, const char *const *headers,
                  const char *body, size_t len) {
  int host = 1, accept = 1, ctype = body != NULL;
  for (const char *const *h = headers; h && *h; h++) {
    if (is_header(*h, "host")) host = 0;
    else if (is_header(*h, "accept")) accept = 0;
    else if (is_header(*h, "content-type")) ctype = 0;
  }
  char *o = r->out;
  o = put(o, method, strlen(method));
  o = PUT(o, " ");
  o = t->path ? put(o, t->path, t->plen) : PUT(o, "/");
  o = PUT(o, " HTTP/1.1\r\n");
  if (host) o = put(PUT(o, "Host: "), t->authority, t->alen), o = PUT(o, "\r\n");
  if (accept) o = PUT(o, "Accept: */*\r\n");
  for (const char *const *h = headers; h && *h; h++) {
    if (is_header(*h, "content-length") || empty_value(*h)) continue;
    o = put(o, *h, strlen(*h));
    o = PUT(o, "\r\n");
  }
  if (body) {
    if (ctype) o = PUT(o, "Content-Type: application/octet-stream\r\n");
    o += sprintf(o, "Content-Length: %zu\r\n", len);
  }
  o = PUT(o, "\r\n");
  if (body) o = put(o, body, len);
  r->olen = (size_t)(o - r->out);
}

sl_hlean_t *sl_hlean_new(uv_loop_t *loop) {
  uv_once(&settings_once, settings_init);
  sl_hlean_t *c = sl_xcalloc(1, sizeof(*c));
  c->loop = loop;
  return c;
}

sl_hlean_req_t *sl_hlean_request(sl_hlean_t *c, const char *method, const sl_hlean_target_t *t,
                                 const char *const *headers, const char *body, size_t len, int64_t timeout_ms,
                                 int64_t connect_ms, const sl_hlean_cbs_t *cbs) {
  /* one block with its bytes (core/blocks.h, whose per-thread magazines
   * serve a burst of calls that glibc's cache of 7 blocks a size does not) */
  size_t size = sizeof(sl_hlean_req_t) + request_need(method, t, headers, len);
  sl_hlean_req_t *r = memset(sl_blocks_get(size), 0, sizeof(sl_hlean_req_t));
  r->size = size;
  r->out = (char *)(r + 1);
  r->c = c;
  r->cbs = *cbs;
  r->host = host_of(c, t);
  r->start = uv_now(c->loop);
  r->timeout_ms = timeout_ms;
  r->connect_ms = connect_ms;
  r->head = !strcmp(method, "HEAD");
  if (t->tls && !c->tls && !c->tls_err) c->tls = sl_tls_client_ctx_new(NULL, NULL, 0, &c->tls_err);
  build(r, method, t, headers, body, len);
  dispatch(r, 0);
  return r;
}

void sl_hlean_cancel(sl_hlean_req_t *r) {
  conn_t *k = r->conn;
  if (k) {
    detach(r);
    conn_close(k);
  }
  req_free(r);
}

void sl_hlean_close(sl_hlean_t *c) {
  c->closing = 1;
  while (c->busy) {
    conn_t *k = c->busy;
    if (k->req) fail(k->req, "client closed");
    else conn_close(k);
  }
  for (host_t *h = c->hosts; h; h = h->next)
    while (h->idle) conn_close(h->idle);
  if (!c->conns) client_free(c);
}
