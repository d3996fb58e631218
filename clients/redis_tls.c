/* The Redis TLS tunnel (redis_tls.h). Replies hiredis reads arrive
 * decrypted on its Unix socket; what it writes goes out encrypted. A
 * failure on either side closes both: hiredis reads the end. */
#include "redis_tls.h"
#include "core/uv_alloc.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_rtls {
  uv_loop_t *loop;
  uv_tcp_t tcp;              /* to Redis */
  uv_pipe_t listener, peer;  /* hiredis's end */
  uv_connect_t creq;
  sl_tls_t *tls;
  char dir[64], path[80];    /* dir empty: no socket file */
  sl_rtls_cb cb;
  void *arg;
  char *early;               /* decrypted before hiredis was accepted */
  size_t nearly;
  int accepted, offered, ended, freed, open;   /* open: handles not yet closed */
  int held_tcp, held_peer;   /* reading stopped: the other side has more than HIGH_WATER to write */
};

/* What one side may have waiting to be written before the other side's
 * reads stop: a slow Redis or a slow hiredis holds the tunnel's memory to this. */
#define HIGH_WATER (4u << 20)

typedef struct wreq {
  uv_write_t req;
  char *buf;
  sl_rtls_t *t;
} wreq_t;

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void on_written(uv_write_t *req, int status) {
  (void)status;   /* a failed write shows as a failed read too */
  wreq_t *w = (wreq_t *)req;
  sl_rtls_t *t = w->t;
  uv_stream_t *dst = req->handle;
  free(w->buf);
  free(w);
  if (t->ended || uv_is_closing((uv_handle_t *)dst) || uv_stream_get_write_queue_size(dst) > HIGH_WATER / 2) return;
  if (dst == (uv_stream_t *)&t->tcp && t->held_peer) {
    t->held_peer = 0;
    uv_read_start((uv_stream_t *)&t->peer, sl_uv_alloc, on_peer_read);
  } else if (dst == (uv_stream_t *)&t->peer && t->held_tcp) {
    t->held_tcp = 0;
    uv_read_start((uv_stream_t *)&t->tcp, sl_uv_alloc, on_tcp_read);
  }
}

/* Takes buf (malloc'd). Past HIGH_WATER waiting on s, the side that feeds s stops reading. */
static void put(sl_rtls_t *t, uv_stream_t *s, char *buf, size_t n) {
  if (!n || uv_is_closing((uv_handle_t *)s)) {
    free(buf);
    return;
  }
  wreq_t *w = sl_xmalloc(sizeof(*w));
  w->buf = buf;
  w->t = t;
  uv_buf_t b = uv_buf_init(buf, (unsigned)n);
  if (uv_write(&w->req, s, &b, 1, on_written)) {
    free(buf);
    free(w);
    return;
  }
  if (uv_stream_get_write_queue_size(s) <= HIGH_WATER) return;
  if (s == (uv_stream_t *)&t->tcp && !t->held_peer && t->accepted) {
    t->held_peer = 1;
    uv_read_stop((uv_stream_t *)&t->peer);
  } else if (s == (uv_stream_t *)&t->peer && !t->held_tcp) {
    t->held_tcp = 1;
    uv_read_stop((uv_stream_t *)&t->tcp);
  }
}

static void flush_tls(sl_rtls_t *t) {
  size_t n = 0;
  char *out = sl_tls_take_output(t->tls, &n);
  if (out) put(t, (uv_stream_t *)&t->tcp, out, n);
}

static void unlink_socket(sl_rtls_t *t) {
  if (!t->dir[0]) return;
  unlink(t->path);
  rmdir(t->dir);
  t->dir[0] = 0;
}

static void destroy(sl_rtls_t *t) {
  sl_tls_free(t->tls);
  free(t->early);
  free(t);
}

/* A tunnel that failed stays its owner's until sl_rtls_free. */
static void on_closed(uv_handle_t *h) {
  sl_rtls_t *t = h->data;
  if (--t->open == 0 && t->freed) destroy(t);
}

static void close_h(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, on_closed);
}

static void close_all(sl_rtls_t *t) {
  unlink_socket(t);
  close_h((uv_handle_t *)&t->tcp);
  close_h((uv_handle_t *)&t->listener);
  close_h((uv_handle_t *)&t->peer);
}

/* Both ends close; the owner hears why once (it may free t in the call). */
static void fail(sl_rtls_t *t, const char *why) {
  if (t->ended) return;
  t->ended = 1;
  close_all(t);
  if (!t->freed) t->cb(t, NULL, why, t->arg);
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  sl_rtls_t *t = s->data;
  if (n > 0) {
    sl_tls_send(t->tls, b->base, (size_t)n);
    flush_tls(t);
  } else if (n < 0) {
    close_all(t);   /* hiredis closed: its owner knows */
    t->ended = 1;
  }
  free(b->base);
}

static void on_accept(uv_stream_t *l, int status) {
  sl_rtls_t *t = l->data;
  if (status || t->accepted || uv_accept(l, (uv_stream_t *)&t->peer)) {
    fail(t, "cannot accept hiredis on the tunnel's socket");
    return;
  }
  t->accepted = 1;
  unlink_socket(t);
  close_h((uv_handle_t *)&t->listener);
  uv_read_start((uv_stream_t *)&t->peer, sl_uv_alloc, on_peer_read);
  put(t, (uv_stream_t *)&t->peer, t->early, t->nearly);
  t->early = NULL;
  t->nearly = 0;
}

/* The handshake is done: a socket only this user can reach, for hiredis. */
static void offer(sl_rtls_t *t) {
  t->offered = 1;
  const char *tmp = getenv("TMPDIR");
  snprintf(t->dir, sizeof t->dir, "%s/sluice-redis-XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
  if (!mkdtemp(t->dir)) {
    t->dir[0] = 0;
    fail(t, "cannot make a directory for the tunnel's socket");
    return;
  }
  snprintf(t->path, sizeof t->path, "%s/s", t->dir);
  if (uv_pipe_bind(&t->listener, t->path) || uv_listen((uv_stream_t *)&t->listener, 1, on_accept)) {
    fail(t, "cannot listen on the tunnel's socket");
    return;
  }
  t->cb(t, t->path, NULL, t->arg);
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  sl_rtls_t *t = s->data;
  if (n < 0) {
    free(b->base);
    fail(t, n == UV_EOF ? "connection closed by the server" : uv_strerror((int)n));
    return;
  }
  char *plain = NULL;
  size_t plen = 0;
  int rc = sl_tls_recv(t->tls, b->base, (size_t)n, &plain, &plen);
  free(b->base);
  flush_tls(t);   /* an alert says why to the server too */
  if (rc < 0) {
    free(plain);
    char *why = sl_tls_why(t->tls), *msg = sl_xasprintf("%s%s", strncmp(why, "TLS", 3) ? "TLS: " : "", why);
    fail(t, msg);
    free(msg);
    free(why);
    return;
  }
  if (plen && t->accepted) {
    put(t, (uv_stream_t *)&t->peer, plain, plen);
  } else if (plen) {
    t->early = sl_xrealloc(t->early, t->nearly + plen);
    memcpy(t->early + t->nearly, plain, plen);
    t->nearly += plen;
    free(plain);
  } else {
    free(plain);
  }
  if (!t->offered && sl_tls_ready(t->tls)) offer(t);
}

static void on_connected(uv_connect_t *req, int status) {
  sl_rtls_t *t = req->data;
  if (status == UV_ECANCELED) return;
  if (status) {
    fail(t, uv_strerror(status));
    return;
  }
  char *plain = NULL;
  size_t plen = 0;
  sl_tls_recv(t->tls, NULL, 0, &plain, &plen);   /* the ClientHello */
  free(plain);
  flush_tls(t);
  uv_read_start((uv_stream_t *)&t->tcp, sl_uv_alloc, on_tcp_read);
}

sl_rtls_t *sl_rtls_new(uv_loop_t *loop, sl_tls_ctx_t *ctx, const char *host, const char *ip, int port,
                       sl_rtls_cb cb, void *arg, char **err) {
  struct sockaddr_storage sa;
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&sa) && uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&sa)) {
    *err = sl_xasprintf("not an address: %s", ip);
    return NULL;
  }
  sl_rtls_t *t = sl_xcalloc(1, sizeof(*t));
  t->loop = loop;
  t->cb = cb;
  t->arg = arg;
  t->tls = sl_tls_client_new(ctx, host);
  uv_tcp_init(loop, &t->tcp);
  uv_pipe_init(loop, &t->listener, 0);
  uv_pipe_init(loop, &t->peer, 0);
  t->open = 3;
  uv_handle_t *hs[3] = {(uv_handle_t *)&t->tcp, (uv_handle_t *)&t->listener, (uv_handle_t *)&t->peer};
  for (int i = 0; i < 3; i++) {
    hs[i]->data = t;
    uv_unref(hs[i]);   /* the client's owner keeps the loop alive */
  }
  t->creq.data = t;
  int rc = uv_tcp_connect(&t->creq, &t->tcp, (struct sockaddr *)&sa, on_connected);
  if (rc) {
    *err = sl_xstrdup(uv_strerror(rc));
    t->ended = t->freed = 1;
    close_all(t);
    return NULL;
  }
  uv_tcp_nodelay(&t->tcp, 1);
  return t;
}

void sl_rtls_free(sl_rtls_t *t) {
  if (!t) return;
  t->freed = 1;
  close_all(t);
  if (!t->open) destroy(t);   /* closed already, after a failure */
}
