#include "http_client.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* sl_hclient_request reads responses for error texts only: the rest is
 * dropped. Header lines beyond HEADERS_MAX fail a request. */
#define BODY_MAX 65536
#define HEADERS_MAX 65536

typedef struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  sl_hclient_t *c;
  struct sock *next, **prev;
} sock_t;

typedef struct sl_hclient_req {
  sl_hclient_t *c;
  CURL *easy;
  struct curl_slist *headers;
  sl_hclient_cb cb;            /* sl_hclient_request's */
  sl_hclient_resp_cb rcb;      /* or sl_hclient_send's */
  void *arg;
  char *body, *hdrs;
  size_t len, hlen, bcap, hcap;
  size_t max_body;             /* 0: cut at BODY_MAX (sl_hclient_request) */
  const char *too_big;         /* why the transfer was stopped */
  char errbuf[CURL_ERROR_SIZE];
  struct sl_hclient_req *next, **prev;
} req_t;

/* Easy handles kept for the next requests: making one allocates its buffers
 * anew (most of a small request's cost). */
#define SPARE_MAX 64

struct sl_hclient {
  CURL *spare[SPARE_MAX];
  int nspare;
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  sock_t *socks;
  req_t *reqs;
  int npending;
  int handles;               /* open uv handles: the client is freed at 0 */
  int closing;
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

static void req_free(sl_hclient_t *c, req_t *r) {
  *r->prev = r->next;
  if (r->next) r->next->prev = r->prev;
  curl_multi_remove_handle(c->multi, r->easy);
  if (c->nspare < SPARE_MAX && !c->closing) {
    curl_easy_reset(r->easy);
    c->spare[c->nspare++] = r->easy;
  } else {
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->headers);
  c->npending--;
  free(r->body);
  free(r->hdrs);
  free(r);
}

static void req_finish(sl_hclient_t *c, req_t *r, int status, const char *err) {
  if (r->rcb) {
    sl_hclient_resp_t resp = {.status = status, .err = err, .body = r->body ? r->body : "", .len = r->len,
                              .headers = r->hdrs ? r->hdrs : "", .hlen = r->hlen};
    r->rcb(&resp, r->arg);
  } else {
    r->cb(status, err, r->body ? r->body : "", r->len, r->arg);
  }
  req_free(c, r);
}

void sl_hclient_cancel(sl_hclient_req_t *r) { req_free(r->c, r); }

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
      req_finish(c, r, -1, r->too_big ? r->too_big : r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
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

/* Appends to a growing buffer, doubling it (a body comes in many pieces). */
static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < *len + n + 1) c *= 2;
    *buf = sl_xrealloc(*buf, c);
    *cap = c;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
  req_t *r = userp;
  size_t len = size * n;
  if (r->max_body && r->len + len > r->max_body) {
    r->too_big = "response body too large";
    return 0;   /* stops the transfer */
  }
  size_t keep = r->max_body || r->len + len <= BODY_MAX ? len : BODY_MAX - r->len;
  if (keep) append(&r->body, &r->len, &r->bcap, data, keep);
  return len;
}

/* Keeps the last response's header lines: a redirect or a 100 Continue
 * starts again at its status line, which is not kept. */
static size_t on_header(char *data, size_t size, size_t n, void *userp) {
  req_t *r = userp;
  size_t len = size * n;
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    r->hlen = 0;
    return len;
  }
  if (r->hlen + len > HEADERS_MAX) {
    r->too_big = "response headers too large";
    return 0;
  }
  append(&r->hdrs, &r->hlen, &r->hcap, data, len);
  return len;
}

sl_hclient_t *sl_hclient_new(uv_loop_t *loop) {
  static int inited;
  if (!inited) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    inited = 1;
  }
  sl_hclient_t *c = sl_xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->multi = curl_multi_init();
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timeout_change);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 1;
  return c;
}

static req_t *start(sl_hclient_t *c, const sl_hclient_opts_t *o, req_t *r) {
  r->c = c;
  r->max_body = o->max_body;
  r->easy = c->nspare ? c->spare[--c->nspare] : curl_easy_init();
  int ctype = 0;
  for (const char *const *h = o->headers; h && *h; h++) {
    r->headers = curl_slist_append(r->headers, *h);
    ctype |= strncasecmp(*h, "content-type:", 13) == 0;
  }
  r->headers = curl_slist_append(r->headers, "Expect:");   /* no 100-continue round trip */
  /* curl would call a body a form (application/x-www-form-urlencoded) */
  if (o->body && !ctype) r->headers = curl_slist_append(r->headers, "Content-Type: application/octet-stream");
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, o->url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
  if (strcmp(o->method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  if (o->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body);
  }
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  if (r->rcb) {
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  }
  if (o->max_redirects > 0) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, o->max_redirects);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if ((r->next = c->reqs)) r->next->prev = &r->next;
  c->reqs = r;
  r->prev = &c->reqs;
  c->npending++;
  CURLMcode mc = curl_multi_add_handle(c->multi, e);
  if (mc != CURLM_OK) {
    req_finish(c, r, -1, curl_multi_strerror(mc));
    return NULL;
  }
  return r;
}

void sl_hclient_request(sl_hclient_t *c, const char *method, const char *url, const char *const *headers,
                        const char *body, size_t len, int64_t timeout_ms, sl_hclient_cb cb, void *arg) {
  if (c->closing) {
    cb(-1, "client closed", "", 0, arg);
    return;
  }
  req_t *r = sl_xcalloc(1, sizeof(*r));
  r->cb = cb;
  r->arg = arg;
  sl_hclient_opts_t o = {.method = method, .url = url, .headers = headers, .body = body, .len = len,
                         .timeout_ms = timeout_ms};
  start(c, &o, r);
}

sl_hclient_req_t *sl_hclient_send(sl_hclient_t *c, const sl_hclient_opts_t *o, sl_hclient_resp_cb cb, void *arg) {
  if (c->closing) {
    sl_hclient_resp_t resp = {.status = -1, .err = "client closed", .body = "", .headers = ""};
    cb(&resp, arg);
    return NULL;
  }
  req_t *r = sl_xcalloc(1, sizeof(*r));
  r->rcb = cb;
  r->arg = arg;
  return start(c, o, r);
}

int sl_hclient_pending(const sl_hclient_t *c) { return c->npending; }

void sl_hclient_close(sl_hclient_t *c) {
  c->closing = 1;
  while (c->reqs) req_finish(c, c->reqs, -1, "client closed");
  while (c->nspare) curl_easy_cleanup(c->spare[--c->nspare]);
  curl_multi_cleanup(c->multi);   /* closes cached connections: their sockets go */
  while (c->socks) sock_close(c->socks);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, handle_closed);
}
