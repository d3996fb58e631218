#include "http_client.h"
#include "hclient_lean.h"
#include "hclient_url.h"
#include "core/blocks.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Responses are read for error texts only: the rest is dropped. */
#define BODY_MAX 65536
/* Easy handles kept for reuse: a new one costs its buffers' allocations
 * (a third of a small request's time in the webhook bench). */
#define IDLE_MAX 64

typedef struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  sl_hclient_t *c;
  struct sock *next, **prev;
} sock_t;

typedef struct req {
  CURL *easy;
  sl_hurl_t *url;            /* its parsed URL, or NULL (CURLOPT_URL) */
  struct curl_slist *headers;
  sl_hclient_cb cb;
  void *arg;
  char *body;
  size_t len;
  char errbuf[CURL_ERROR_SIZE];
  struct req *next, **prev;
  /* sl_hreq_opts_t: */
  size_t body_max;
  void (*on_header)(const char *line, size_t len, void *arg);
  int (*on_data)(const char *data, size_t len, void *arg);
} req_t;

struct sl_hclient {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  sock_t *socks;
  req_t *reqs;
  int npending;
  int handles;               /* open uv handles: the client is freed at 0 */
  int closing;
  CURL *idle[IDLE_MAX];      /* finished easy handles, reset, for the next requests */
  int nidle;
  sl_hurls_t urls;
  sl_hlean_t *lean;          /* plain http:// (sl_hclient_send), made on first use */
  /* The last URL the lean client took and where it goes (sl_hlean_target's
   * spans, into last_url): an enrichment asks one URL over and over, and
   * parsing it again was ~0.35k instructions of a call. */
  char last_url[256];
  size_t last_len;           /* 0: none */
  sl_hlean_target_t last_t;
};

static void handle_closed(uv_handle_t *h) {
  sl_hclient_t *c = h->data;
  if (h != (uv_handle_t *)&c->timer) free((char *)h - offsetof(sock_t, poll));
  if (--c->handles == 0) free(c);
}

static void sock_close(sock_t *s) {
  *s->prev = s->next;
  if (s->next) s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  s->poll.data = s->c;
  uv_close((uv_handle_t *)&s->poll, handle_closed);
}

/* Takes r out of the client (its easy handle kept for reuse). */
static void req_detach(sl_hclient_t *c, req_t *r) {
  *r->prev = r->next;
  if (r->next) r->next->prev = r->prev;
  curl_multi_remove_handle(c->multi, r->easy);
  if (c->nidle < IDLE_MAX && !c->closing) {
    curl_easy_reset(r->easy);
    c->idle[c->nidle++] = r->easy;
  } else {
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->headers);
  if (r->url) sl_hurl_release(r->url);
  c->npending--;
}

/* err may be r->errbuf: r is freed after cb. */
static void req_finish(sl_hclient_t *c, req_t *r, int status, const char *err) {
  req_detach(c, r);
  r->cb(status, err, r->body ? r->body : "", r->len, r->arg);
  free(r->body);
  free(r);
}

/* A request dropped: its callback does not run. */
static void req_drop(sl_hclient_t *c, req_t *r) {
  req_detach(c, r);
  free(r->body);
  free(r);
}

static void check_done(sl_hclient_t *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    req_t *r;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode res = m->data.result;
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (res != CURLE_OK)
      req_finish(c, r, -1, r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
    else
      req_finish(c, r, (int)code, NULL);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_t *s = p->data;
  int flags = status < 0 ? CURL_CSELECT_ERR : 0;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  sl_hclient_t *c = s->c;
  int running;
  curl_multi_socket_action(c->multi, s->fd, flags, &running);
  check_done(c);
}

static void on_timer(uv_timer_t *t) {
  sl_hclient_t *c = t->data;
  int running;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  sl_hclient_t *c = userp;
  sock_t *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(c->multi, fd, NULL);
      sock_close(s);
    }
    return 0;
  }
  if (!s) {
    s = sl_xcalloc(1, sizeof(*s));
    s->fd = fd;
    s->c = c;
    uv_poll_init_socket(c->loop, &s->poll, fd);
    s->poll.data = s;
    c->handles++;
    if ((s->next = c->socks)) s->next->prev = &s->next;
    c->socks = s;
    s->prev = &c->socks;
    curl_multi_assign(c->multi, fd, s);
  }
  int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&s->poll, ev, on_poll);
  return 0;
}

/* curl asks for a timeout; 0 means "act now", which must not happen inside
 * its own callback: a timer of 0 runs at the loop's next turn (not 1 ms
 * later, which would cost every request a millisecond). */
static int on_timeout_change(CURLM *multi, long ms, void *userp) {
  (void)multi;
  sl_hclient_t *c = userp;
  if (ms < 0) uv_timer_stop(&c->timer);
  else uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
  req_t *r = userp;
  size_t len = size * n, max = r->body_max ? r->body_max : BODY_MAX;
  if (r->on_data) {
    int rc = r->on_data(data, len, r->arg);
    return rc < 0 ? 0 : rc > 0 ? CURL_WRITEFUNC_PAUSE : len;   /* 0: libcurl aborts */
  }
  size_t keep = r->len + len > max ? max - r->len : len;
  if (keep) {
    r->body = sl_xrealloc(r->body, r->len + keep + 1);
    memcpy(r->body + r->len, data, keep);
    r->len += keep;
    r->body[r->len] = 0;
  }
  return len;
}

/* No proxy variable set (libcurl's: http_proxy, https_proxy, HTTPS_PROXY,
 * all_proxy, ALL_PROXY): requests say so, and libcurl skips its six
 * getenv calls per request. Read once, as the environment is at start. */
static int no_proxy_env;

static void env_init(void) {
  static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", NULL};
  no_proxy_env = 1;
  for (const char *const *v = vars; *v; v++) {
    const char *val = getenv(*v);
    if (val && *val) no_proxy_env = 0;
  }
}

static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Once per process, whichever thread comes first: Lua VMs of pipeline.threads
 * workers make their clients on their own threads. */
static uv_once_t env_once = UV_ONCE_INIT, curl_once = UV_ONCE_INIT;

sl_hclient_t *sl_hclient_new(uv_loop_t *loop) {
  uv_once(&env_once, env_init);
  sl_hclient_t *c = sl_xcalloc(1, sizeof(*c));
  c->loop = loop;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  return c;
}

/* The multi handle, made for the client's first libcurl request: a client
 * whose requests all take the lean client never loads libcurl. */
static CURLM *multi_of(sl_hclient_t *c) {
  if (c->multi) return c->multi;
  uv_once(&curl_once, curl_init);
  c->multi = curl_multi_init();
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timeout_change);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
  return c->multi;
}

static void apply_opts(req_t *r, const sl_hreq_opts_t *o);

void sl_hclient_request(sl_hclient_t *c, const char *method, const char *url, const char *const *headers,
                        const char *body, size_t len, int64_t timeout_ms, sl_hclient_cb cb, void *arg) {
  sl_hclient_request_opts(c, method, url, headers, body, len, timeout_ms, NULL, cb, arg);
}

sl_hreq_t *sl_hclient_request_opts(sl_hclient_t *c, const char *method, const char *url, const char *const *headers,
                                   const char *body, size_t len, int64_t timeout_ms, const sl_hreq_opts_t *o,
                                   sl_hclient_cb cb, void *arg) {
  if (c->closing) {
    cb(-1, "client closed", "", 0, arg);
    return NULL;
  }
  CURLM *multi = multi_of(c);
  req_t *r = sl_xcalloc(1, sizeof(*r));
  r->cb = cb;
  r->arg = arg;
  r->easy = c->nidle ? c->idle[--c->nidle] : curl_easy_init();
  int ctype = 0;
  for (const char *const *h = headers; h && *h; h++) {
    r->headers = curl_slist_append(r->headers, *h);
    ctype |= strncasecmp(*h, "content-type:", 13) == 0;
  }
  if (body) {   /* no 100-continue round trip; libcurl would call the body a form (x-www-form-urlencoded) */
    r->headers = curl_slist_append(r->headers, "Expect:");
    if (!ctype) r->headers = curl_slist_append(r->headers, "Content-Type: application/octet-stream");
  }
  CURL *e = r->easy;
  if ((r->url = sl_hurl_take(&c->urls, url))) curl_easy_setopt(e, CURLOPT_CURLU, r->url->u);
  else curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (no_proxy_env) {
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
  }
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
  }
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (o) apply_opts(r, o);
  if ((r->next = c->reqs)) r->next->prev = &r->next;
  c->reqs = r;
  r->prev = &c->reqs;
  c->npending++;
  CURLMcode mc = curl_multi_add_handle(multi, e);
  if (mc != CURLM_OK) {
    req_finish(c, r, -1, curl_multi_strerror(mc));
    return NULL;
  }
  return (sl_hreq_t *)r;
}

int sl_hclient_pending(const sl_hclient_t *c) { return c->npending; }

void sl_hclient_close(sl_hclient_t *c) {
  c->closing = 1;
  while (c->reqs) req_finish(c, c->reqs, -1, "client closed");
  if (c->lean) sl_hlean_close(c->lean);
  while (c->nidle) curl_easy_cleanup(c->idle[--c->nidle]);
  sl_hurls_free(&c->urls);
  if (c->multi) curl_multi_cleanup(c->multi);   /* closes cached connections: their sockets go */
  while (c->socks) sock_close(c->socks);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, handle_closed);
}

/* ---- Per-request options (sl_hreq_opts_t) ---- */

static size_t on_header_line(char *data, size_t size, size_t n, void *userp) {
  req_t *r = userp;
  size_t len = size * n, l = len;
  while (l && (data[l - 1] == '\n' || data[l - 1] == '\r')) l--;
  r->on_header(data, l, r->arg);
  return len;
}

static void apply_opts(req_t *r, const sl_hreq_opts_t *o) {
  CURL *e = r->easy;
  r->body_max = o->body_max;
  r->on_data = o->on_data;
  if ((r->on_header = o->on_header)) {
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  }
  if (o->ca_file && *o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
  if (o->cert_file && *o->cert_file) curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert_file);
  if (o->key_file && *o->key_file) curl_easy_setopt(e, CURLOPT_SSLKEY, o->key_file);
  if (o->cert_pem && *o->cert_pem) {
    struct curl_blob b = {(void *)o->cert_pem, strlen(o->cert_pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
  }
  if (o->key_pem && *o->key_pem) {
    struct curl_blob b = {(void *)o->key_pem, strlen(o->key_pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
  }
  if (o->key_password && *o->key_password) curl_easy_setopt(e, CURLOPT_KEYPASSWD, o->key_password);
  if (o->skip_verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->max_redirects > 0) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)o->max_redirects);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  if (o->connect_timeout_ms > 0) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
  if (o->idle_timeout_ms > 0) {   /* below 1 byte/s for that long: a silent or half-dead peer */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((o->idle_timeout_ms + 999) / 1000));
  }
}

void sl_hclient_unpause(sl_hclient_t *c, sl_hreq_t *h) {
  (void)c;
  curl_easy_pause(((req_t *)h)->easy, CURLPAUSE_CONT);
}

/* ---- sl_hclient_send: the response's headers and a body that fails the
 * request past max_body (Lua's http.request, the http processor). An
 * http:// or https:// URL without a proxy, credentials or TLS settings of
 * its own goes through sluice's own client
 * (hclient_lean.h), whose redirects are followed here; everything else
 * through libcurl. Both answer through send_data and send_done, libcurl's
 * header lines one at a time (send_header), the lean client's all at once
 * (lean_headers). ---- */

#define HEADERS_MAX SL_HCLIENT_HEADERS_MAX
#define INLINE 256

struct sl_hclient_req {
  sl_hclient_t *c;
  sl_hreq_t *h;              /* libcurl's request, or */
  sl_hlean_req_t *lean;      /* the lean client's */
  sl_hclient_resp_cb cb;
  void *arg;
  char *body, *hdrs;
  size_t len, cap, hlen, hcap, max_body;
  const char *too_big;       /* why the transfer was stopped */
  /* what a redirect of the lean client sends again: */
  sl_hclient_opts_t o;
  sl_hreq_opts_t conn;
  char *url, *req_body, **headers;   /* url: after the struct, in its block, until a redirect */
  char method[40];           /* lhttp.c allows 15 letters, the http processor 32 */
  int hops;
  size_t size;               /* of its block (core/blocks.h) */
  /* where body and hdrs start: a small answer (an enrichment's JSON) needs
   * no allocation of its own (two mallocs and frees were ~0.5k instructions
   * of a call) */
  char body_in[INLINE], hdrs_in[INLINE];
};

/* Appends to a growing buffer that starts in inl (INLINE bytes), doubling
 * it (a body comes in many pieces). */
static void append(char **buf, size_t *len, size_t *cap, char *inl, const char *data, size_t n) {
  if (!*buf) {
    *buf = inl;
    *cap = INLINE;
  }
  if (*len + n + 1 > *cap) {
    size_t c = *cap;
    while (c < *len + n + 1) c *= 2;
    if (*buf == inl) *buf = memcpy(sl_xmalloc(c), inl, *len);
    else *buf = sl_xrealloc(*buf, c);
    *cap = c;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = 0;
}

/* Keeps the last response's header lines ("Name: value\r\n"): a redirect or
 * a 100 Continue starts again at its status line, which is not kept. */
static void send_header(const char *line, size_t len, void *arg) {
  sl_hclient_req_t *q = arg;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    q->hlen = 0;
    return;
  }
  if (!len) return;
  if (q->hlen + len + 2 > HEADERS_MAX) {
    q->too_big = "response headers too large";
    return;
  }
  append(&q->hdrs, &q->hlen, &q->hcap, q->hdrs_in, line, len);
  append(&q->hdrs, &q->hlen, &q->hcap, q->hdrs_in, "\r\n", 2);
}

/* The lean client's header lines, all of a response's at once. */
static void lean_headers(const char *lines, size_t len, void *arg) {
  sl_hclient_req_t *q = arg;
  q->hlen = 0;
  if (len) append(&q->hdrs, &q->hlen, &q->hcap, q->hdrs_in, lines, len);
}

static int send_data(const char *data, size_t len, void *arg) {
  sl_hclient_req_t *q = arg;
  if (q->too_big) return -1;
  if (q->max_body && q->len + len > q->max_body) {
    q->too_big = "response body too large";
    return -1;
  }
  append(&q->body, &q->len, &q->cap, q->body_in, data, len);
  return 0;
}

static void url_free(sl_hclient_req_t *q) {
  if (q->url != (char *)(q + 1)) free(q->url);
}

/* What a request kept of its answer. */
static void answer_free(sl_hclient_req_t *q) {
  if (q->body != q->body_in) free(q->body);
  if (q->hdrs != q->hdrs_in) free(q->hdrs);
}

static void req_free_copies(sl_hclient_req_t *q) {
  url_free(q);
  free(q->req_body);
  for (char **h = q->headers; h && *h; h++) free(*h);
  free(q->headers);
}

static void send_done(int status, const char *err, const char *body, size_t len, void *arg) {
  (void)body, (void)len;
  sl_hclient_req_t *q = arg;
  sl_hclient_resp_t resp = {.status = q->too_big ? -1 : status, .err = q->too_big ? q->too_big : err,
                            .body = q->body ? q->body : "", .len = q->len,
                            .headers = q->hdrs ? q->hdrs : "", .hlen = q->hlen};
  q->cb(&resp, q->arg);
  answer_free(q);
  req_free_copies(q);
  sl_blocks_put(q, q->size);
}

static int start(sl_hclient_req_t *q);

/* The spans of t (into from) moved into to, a copy of from. */
static void move_spans(sl_hlean_target_t *t, const char *from, const char *to) {
  t->host = to + (t->host - from);
  t->authority = to + (t->authority - from);
  if (t->path) t->path = to + (t->path - from);
}

/* sl_hlean_target for a URL of len bytes, or the client's last one when it
 * is the same (its spans then in last_url: sl_hlean_request copies them). */
static int lean_target(sl_hclient_t *c, const char *url, size_t len, sl_hlean_target_t *t) {
  if (len == c->last_len && !memcmp(url, c->last_url, len)) {
    *t = c->last_t;
    return 1;
  }
  if (!sl_hlean_target(url, t)) return 0;
  if (len < sizeof c->last_url) {
    memcpy(c->last_url, url, len + 1);
    c->last_len = len;
    c->last_t = *t;
    move_spans(&c->last_t, url, c->last_url);
  }
  return 1;
}

/* The Location header's value, in q's header lines (NUL-terminated in a copy). */
static char *location(const sl_hclient_req_t *q) {
  for (const char *p = q->hdrs; p && p < q->hdrs + q->hlen;) {
    const char *eol = strstr(p, "\r\n");
    if (!strncasecmp(p, "location:", 9)) {
      const char *v = p + 9;
      while (*v == ' ' || *v == '\t') v++;
      return sl_xstrndup(v, (size_t)(eol - v));
    }
    p = eol + 2;
  }
  return NULL;
}

/* The redirect's absolute URL (Location may be relative), or NULL. */
static char *resolve(const char *base, const char *loc) {
  CURLU *u = curl_url();
  char *out = NULL, *abs = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, loc, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
    abs = sl_xstrdup(out);
  curl_free(out);
  curl_url_cleanup(u);
  return abs;
}

static int same_host(const char *a, const char *b) {
  sl_hlean_target_t ta, tb;
  return sl_hlean_target(a, &ta) && sl_hlean_target(b, &tb) && ta.tls == tb.tls && ta.port == tb.port &&
         ta.hlen == tb.hlen &&
         !strncasecmp(ta.host, tb.host, ta.hlen);
}

/* Follows a lean request's redirect as libcurl does: 303, and 301/302 of a
 * POST, become a GET without the body; credentials (Authorization, Cookie)
 * stay with the host that was asked. 0: not a redirect to follow. */
static int redirect(sl_hclient_req_t *q, int status) {
  if (q->o.max_redirects <= 0 || q->too_big || (status != 301 && status != 302 && status != 303 &&
                                                 status != 307 && status != 308))
    return 0;
  char *loc = location(q);
  if (!loc) return 0;
  char *next = resolve(q->url, loc);
  free(loc);
  if (!next) return 0;
  if (q->hops++ == q->o.max_redirects) {
    char msg[64];
    snprintf(msg, sizeof msg, "Maximum (%ld) redirects followed", q->o.max_redirects);
    free(next);
    send_done(-1, msg, NULL, 0, q);
    return 1;
  }
  if (status == 303 || ((status == 301 || status == 302) && !strcmp(q->method, "POST"))) {
    if (strcmp(q->method, "HEAD")) strcpy(q->method, "GET");
    free(q->req_body);
    q->req_body = NULL;
    q->o.len = 0;
  }
  if (!same_host(q->url, next) && q->headers) {
    char **w = q->headers;
    for (char **h = q->headers; *h; h++) {
      if (!strncasecmp(*h, "authorization:", 14) || !strncasecmp(*h, "cookie:", 7)) free(*h);
      else *w++ = *h;
    }
    *w = NULL;
  }
  url_free(q);
  q->url = next;
  q->len = q->hlen = 0;
  start(q);
  return 1;
}

static void lean_done(int status, const char *err, void *arg) {
  sl_hclient_req_t *q = arg;
  q->lean = NULL;
  q->c->npending--;
  if (!redirect(q, status)) send_done(status, err, NULL, 0, q);
}

/* TLS settings of the request's own (a CA file, a client certificate, no
 * verification): libcurl's; the lean client checks with the system's CAs. */
static int own_tls(const sl_hreq_opts_t *o) {
  return (o->ca_file && *o->ca_file) || (o->cert_file && *o->cert_file) || (o->cert_pem && *o->cert_pem) ||
         o->skip_verify;
}

/* Sends q's request through the lean client or libcurl (see above); 0 when
 * send_done ran already (q is gone). */
static int start(sl_hclient_req_t *q) {
  sl_hclient_t *c = q->c;
  sl_hclient_opts_t *o = &q->o;
  o->method = q->method;
  o->url = q->url;
  o->headers = (const char *const *)q->headers;
  o->body = q->req_body;
  sl_hlean_target_t t;
  if (no_proxy_env && !c->closing && lean_target(c, o->url, strlen(o->url), &t) && !(t.tls && own_tls(&q->conn))) {
    if (!c->lean) c->lean = sl_hlean_new(c->loop);
    sl_hlean_cbs_t cbs = {lean_headers, send_data, lean_done, q};
    q->lean = sl_hlean_request(c->lean, o->method, &t, o->headers, o->body, o->len, o->timeout_ms,
                               q->conn.connect_timeout_ms, &cbs);
    c->npending++;
    return 1;
  }
  sl_hreq_opts_t ro = q->conn;
  ro.max_redirects = (int)(o->max_redirects - q->hops);
  ro.on_header = send_header;
  ro.on_data = send_data;
  sl_hreq_t *h = sl_hclient_request_opts(c, o->method, o->url, o->headers, o->body, o->len, o->timeout_ms, &ro,
                                         send_done, q);
  if (!h) return 0;
  q->h = h;
  return 1;
}

sl_hclient_req_t *sl_hclient_send(sl_hclient_t *c, const sl_hclient_opts_t *o, sl_hclient_resp_cb cb, void *arg) {
  /* A block (core/blocks.h) with its URL: calloc skips glibc's per-thread
   * cache, and a malloc and a free fewer; the inline buffers need no zeroes. */
  size_t ul = strlen(o->url), size = sizeof(sl_hclient_req_t) + ul + 1;
  sl_hclient_req_t *q = memset(sl_blocks_get(size), 0, offsetof(sl_hclient_req_t, body_in));
  q->size = size;
  q->url = memcpy(q + 1, o->url, ul + 1);
  q->c = c;
  q->cb = cb;
  q->arg = arg;
  q->max_body = o->max_body;
  q->o = *o;
  size_t ml = strnlen(o->method, sizeof q->method - 1);
  memcpy(q->method, o->method, ml);
  if (o->body) q->req_body = sl_xstrndup(o->body, o->len);
  size_t nh = 0;
  while (o->headers && o->headers[nh]) nh++;
  if (nh) {
    q->headers = sl_xcalloc(nh + 1, sizeof(char *));
    for (size_t i = 0; i < nh; i++) q->headers[i] = sl_xstrdup(o->headers[i]);
  }
  if (o->conn) {   /* TLS and the connect timeout: its strings are the caller's, who outlives its requests */
    q->conn.ca_file = o->conn->ca_file;
    q->conn.cert_file = o->conn->cert_file;
    q->conn.key_file = o->conn->key_file;
    q->conn.cert_pem = o->conn->cert_pem;
    q->conn.key_pem = o->conn->key_pem;
    q->conn.key_password = o->conn->key_password;
    q->conn.skip_verify = o->conn->skip_verify;
    q->conn.connect_timeout_ms = o->conn->connect_timeout_ms;
  }
  q->o.conn = NULL;
  return start(q) ? q : NULL;
}

void sl_hclient_cancel(sl_hclient_req_t *q) {
  if (q->lean) {
    sl_hlean_cancel(q->lean);
    q->c->npending--;
  } else {
    req_drop(q->c, (req_t *)q->h);
  }
  answer_free(q);
  req_free_copies(q);
  sl_blocks_put(q, q->size);
}
