/* The link's thread. librabbitmq blocks: connecting, logging in and every
 * channel RPC (declare, qos, consume, confirm.select) wait for the broker
 * with no non-blocking form, and amqp_basic_publish loops in send() while
 * the socket is full (a broker applying flow control). Driving its socket
 * from the loop with uv_poll would still leave those waits on the loop, so
 * each connector gets a thread that owns its connection and may block, and
 * hands work to and from the loop through queues: the loop is woken by
 * uv_async, the thread by a pipe it polls beside the socket. Nothing on the
 * loop ever waits for the broker. The thread logs nothing itself (logging
 * is the loop's): it reports its state, which the loop logs and shows on
 * /ready. */
#include "amqp_link.h"
#include "core/component.h"
#include "core/detached.h"
#include "core/xalloc.h"
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reconnect backoff: from the first to the last, doubling. */
enum { BACKOFF_FIRST_MS = 100, BACKOFF_MAX_MS = 5000, CONNECT_TIMEOUT_S = 10, RPC_TIMEOUT_S = 30, HEARTBEAT_S = 30 };

struct sl_amqp_link {
  sl_amqp_hooks_t h;
  void *arg, *loop_arg;
  char **urls;
  unsigned nurls, next_url;
  int tls, verify;
  int tls_any;            /* thread: the current connection is TLS */
  sl_tls_ctx_t *tls_ctx;  /* NULL without TLS: what each connection's context copies */
  pthread_mutex_t mu;
  int pipe[2];
  uv_async_t async;
  int refs;               /* the thread and the async handle */
  int quit, loop_gone;    /* under mu */
  int connected;          /* under mu */
  uint64_t gen;           /* under mu: connections made so far */
  char why[512];          /* under mu: why not connected */
  int shown_up;           /* the loop's: what it reported last */
  char shown_why[512];
  char err[512];          /* thread: the current failure */
};

sl_amqp_link_t *sl_amqp_link_new(sl_build_t *b, const sl_cnode_t *conf, const sl_amqp_hooks_t *h, void *shared,
                                  void *loop_arg) {
  const sl_cnode_t *urls = sl_cnode_get(conf, "urls");
  const sl_cnode_t *tls = sl_cnode_get(conf, "tls");
  sl_amqp_link_t *l = sl_xcalloc(1, sizeof(*l));
  l->h = *h;
  l->arg = shared;
  l->loop_arg = loop_arg;
  l->pipe[0] = l->pipe[1] = -1;
  uint32_t n = urls && urls->type == SL_CN_SEQ ? urls->n : 0;
  int any_amqps = 0;
  l->urls = sl_xcalloc(n + 1, sizeof(char *));
  for (uint32_t i = 0; i < n; i++) {
    struct amqp_connection_info ci;
    char *tmp = sl_xstrdup(urls->items[i]->str);
    if (amqp_parse_url(tmp, &ci) != AMQP_STATUS_OK)
      sl_diag_add(b->diags, urls->items[i], "urls", "not an AMQP URL (amqp://user:pass@host:port/vhost): %s",
                  urls->items[i]->str);
    else
      any_amqps |= ci.ssl;
    free(tmp);
    l->urls[l->nurls++] = sl_xstrdup(urls->items[i]->str);
  }
  if (!n) sl_diag_add(b->diags, conf, "urls", "name at least one broker URL");
  l->tls = sl_conf_bool(tls, "enabled", 0);
  l->verify = !sl_conf_bool(tls, "skip_cert_verify", 0);
  if (l->tls || any_amqps) l->tls_ctx = sl_tls_conf_client(tls, b->diags);
  return l;
}

static void link_free(sl_amqp_link_t *l) {
  for (unsigned i = 0; i < l->nurls; i++) free(l->urls[i]);
  free(l->urls);
  sl_tls_ctx_free(l->tls_ctx);
  if (l->pipe[0] >= 0) close(l->pipe[0]);
  if (l->pipe[1] >= 0) close(l->pipe[1]);
  pthread_mutex_destroy(&l->mu);
  void (*release)(void *) = l->h.release;
  void *arg = l->arg;
  free(l);
  release(arg);
}

/* The thread or the async handle is gone; the last one frees. */
static void unref(sl_amqp_link_t *l) {
  pthread_mutex_lock(&l->mu);
  int last = --l->refs == 0;
  pthread_mutex_unlock(&l->mu);
  if (last) link_free(l);
}

void sl_amqp_link_lock(sl_amqp_link_t *l) { pthread_mutex_lock(&l->mu); }
void sl_amqp_link_unlock(sl_amqp_link_t *l) { pthread_mutex_unlock(&l->mu); }

void sl_amqp_link_kick(sl_amqp_link_t *l) {
  char c = 1;
  ssize_t r = write(l->pipe[1], &c, 1);   /* full: a wake-up is pending anyway */
  (void)r;
}

void sl_amqp_link_wake(sl_amqp_link_t *l) {
  pthread_mutex_lock(&l->mu);
  if (!l->loop_gone) uv_async_send(&l->async);
  pthread_mutex_unlock(&l->mu);
}

int sl_amqp_link_fail(sl_amqp_link_t *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l->err, sizeof l->err, fmt, ap);
  va_end(ap);
  return -1;
}

int sl_amqp_link_quitting(sl_amqp_link_t *l) {
  pthread_mutex_lock(&l->mu);
  int q = l->quit;
  pthread_mutex_unlock(&l->mu);
  return q;
}

uint64_t sl_amqp_link_gen(sl_amqp_link_t *l) {
  pthread_mutex_lock(&l->mu);
  uint64_t g = l->gen;
  pthread_mutex_unlock(&l->mu);
  return g;
}

int sl_amqp_link_changed(sl_amqp_link_t *l, int *up, char *why, size_t n) {
  pthread_mutex_lock(&l->mu);
  int c = l->connected, changed = c != l->shown_up || (!c && strcmp(l->why, l->shown_why));
  l->shown_up = c;
  snprintf(l->shown_why, sizeof l->shown_why, "%s", l->why);
  pthread_mutex_unlock(&l->mu);
  *up = c;
  snprintf(why, n, "amqp: %s", l->shown_why);
  return changed;
}

static void set_status(sl_amqp_link_t *l, int connected, const char *why) {
  pthread_mutex_lock(&l->mu);
  l->connected = connected;
  if (connected) l->gen++;
  snprintf(l->why, sizeof l->why, "%s", why ? why : "");
  if (!l->loop_gone) uv_async_send(&l->async);
  pthread_mutex_unlock(&l->mu);
}

/* A close from the broker, in words. */
static int closed_by_broker(sl_amqp_link_t *l, const amqp_method_t *m) {
  if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
    const amqp_channel_close_t *c = m->decoded;
    return sl_amqp_link_fail(l, "the broker closed the channel: %.*s", (int)c->reply_text.len,
                             (const char *)c->reply_text.bytes);
  }
  const amqp_connection_close_t *c = m->decoded;
  return sl_amqp_link_fail(l, "the broker closed the connection: %.*s", (int)c->reply_text.len,
                           (const char *)c->reply_text.bytes);
}

int sl_amqp_link_rpc(sl_amqp_link_t *l, amqp_connection_state_t c, const char *what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return 0;
    case AMQP_RESPONSE_NONE: return sl_amqp_link_fail(l, "%s: no reply", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return sl_amqp_link_fail(l, "%s: %s", what, amqp_error_string2(r.library_error));
    default:
      closed_by_broker(l, &r.reply);
      char tmp[sizeof l->err];
      snprintf(tmp, sizeof tmp, "%s", l->err);
      return sl_amqp_link_fail(l, "%s: %s", what, tmp);
  }
}

/* OpenSSL's words for what librabbitmq calls "a SSL error", as
 * " (TLS: ...)", or "". A broker refusing the client certificate does so
 * after the TLS 1.3 handshake, with an alert, or at times a reset that
 * came before it was read: after_handshake says it had finished. */
static const char *tls_why(sl_amqp_link_t *l, int after_handshake, char *buf, size_t n) {
  char r[200];
  if (!l->tls_any) return "";
  if (sl_tls_thread_error(r, sizeof r)) snprintf(buf, n, " (TLS: %s)", r);
  else if (after_handshake)
    snprintf(buf, n, " (the broker ended the connection after the TLS handshake: does it take the client "
                     "certificate?)");
  else
    return "";
  return buf;
}

/* One URL: socket, login, channel 1, the component's setup. */
static amqp_connection_state_t connect_one(sl_amqp_link_t *l, const char *url) {
  char *tmp = sl_xstrdup(url), tw[240];
  struct amqp_connection_info ci;
  amqp_connection_state_t c = NULL;
  if (amqp_parse_url(tmp, &ci) != AMQP_STATUS_OK) {
    sl_amqp_link_fail(l, "%s: not an AMQP URL", url);
    goto out;
  }
  c = amqp_new_connection();
  l->tls_any = ci.ssl || l->tls;
  amqp_socket_t *s = l->tls_any ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
  if (!s) {
    sl_amqp_link_fail(l, "could not make a socket");
    goto fail;
  }
  if (l->tls_any) {
    /* librabbitmq makes a context per socket: it gets the settings of
     * sluice's, built once at load. Its own name check knows no address
     * (IP) names: the context checks the name (sl_tls_ctx_copy). */
    amqp_ssl_socket_set_verify_peer(s, l->verify);
    amqp_ssl_socket_set_verify_hostname(s, 0);
    char *why = NULL;
    if (!l->tls_ctx || sl_tls_ctx_copy(l->tls_ctx, amqp_ssl_socket_get_context(s), &why) != 0) {
      sl_amqp_link_fail(l, "tls: %s", why ? why : "no TLS settings");
      free(why);
      goto fail;
    }
  }
  struct timeval tv = {CONNECT_TIMEOUT_S, 0};
  amqp_set_handshake_timeout(c, &tv);
  int rc = amqp_socket_open_noblock(s, ci.host, ci.port, &tv);
  if (rc != AMQP_STATUS_OK) {
    sl_amqp_link_fail(l, "connecting to %s:%d: %s%s", ci.host, ci.port, amqp_error_string2(rc),
                      tls_why(l, 0, tw, sizeof tw));
    goto fail;
  }
  struct timeval rpc = {RPC_TIMEOUT_S, 0};
  amqp_set_rpc_timeout(c, &rpc);
  /* Benthos (and most clients) read a URL ending in "/" as the vhost "/". */
  amqp_rpc_reply_t r = amqp_login(c, *ci.vhost ? ci.vhost : "/", 0, 131072, HEARTBEAT_S, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
      sl_amqp_link_fail(l, "logging in to %s:%d: %s%s", ci.host, ci.port, amqp_error_string2(r.library_error),
                        tls_why(l, r.library_error == AMQP_STATUS_SSL_ERROR, tw, sizeof tw));
    else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      const amqp_connection_close_t *cl = r.reply.decoded;
      sl_amqp_link_fail(l, "logging in to %s:%d: %.*s", ci.host, ci.port, (int)cl->reply_text.len,
                        (const char *)cl->reply_text.bytes);
    } else
      sl_amqp_link_fail(l, "logging in to %s:%d: refused by the broker", ci.host, ci.port);
    goto fail;
  }
  amqp_channel_open(c, 1);
  if (sl_amqp_link_rpc(l, c, "opening a channel") || l->h.setup(l, c, l->arg)) goto fail;
  free(tmp);
  return c;
fail:
  amqp_destroy_connection(c);
  c = NULL;
out:
  free(tmp);
  return c;
}

static void drain_pipe(sl_amqp_link_t *l) {
  char buf[64];
  while (read(l->pipe[0], buf, sizeof buf) > 0) {
  }
}

/* Waits ms (or until stopped), doing the component's work meanwhile:
 * what it is asked while not connected fails at once. */
static void pause_for(sl_amqp_link_t *l, int ms) {
  uint64_t end = uv_hrtime() / 1000000 + (uint64_t)ms;
  for (;;) {
    l->h.work(l, NULL, l->arg);
    if (sl_amqp_link_quitting(l)) return;
    uint64_t now = uv_hrtime() / 1000000;
    if (now >= end) return;
    struct pollfd p = {l->pipe[0], POLLIN, 0};
    if (poll(&p, 1, (int)(end - now)) > 0) drain_pipe(l);
  }
}

/* Frames and work until the connection fails or the link stops. */
static void serve(sl_amqp_link_t *l, amqp_connection_state_t c) {
  int fd = amqp_socket_get_sockfd(amqp_get_socket(c));
  for (;;) {
    if (sl_amqp_link_quitting(l)) return;
    int room = !l->h.room || l->h.room(l->arg);
    struct pollfd p[2] = {{l->pipe[0], POLLIN, 0}, {fd, room ? POLLIN : 0, 0}};
    int buffered = room && (amqp_data_in_buffer(c) || amqp_frames_enqueued(c));
    /* A bounded wait: heartbeats are sent from inside librabbitmq's reads.
     * OpenSSL may hold records it read past what librabbitmq took, which
     * poll does not see: with TLS the wait is short. */
    int n = poll(p, 2, buffered ? 0 : l->tls_any ? 20 : 1000 * HEARTBEAT_S / 3);
    if (n < 0 && errno != EINTR) {
      sl_amqp_link_fail(l, "poll: %s", strerror(errno));
      return;
    }
    if (n == 0 && !room) {   /* nothing is read meanwhile, which would send it */
      amqp_frame_t hb = {.frame_type = AMQP_FRAME_HEARTBEAT, .channel = 0};
      amqp_send_frame(c, &hb);
    }
    if (p[0].revents) {
      drain_pipe(l);
      if (l->h.work(l, c, l->arg)) return;
    }
    /* Frames already here, a bounded number so that work is not starved. */
    for (int k = 0; room && k < 4096; k++) {
      amqp_frame_t f;
      struct timeval zero = {0, 0};
      int rc = amqp_simple_wait_frame_noblock(c, &f, &zero);
      if (rc == AMQP_STATUS_TIMEOUT) break;
      if (rc != AMQP_STATUS_OK) {
        sl_amqp_link_fail(l, "connection lost: %s", amqp_error_string2(rc));
        return;
      }
      if (f.frame_type == AMQP_FRAME_METHOD &&
          (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        closed_by_broker(l, &f.payload.method);
        return;
      }
      if (l->h.frame(l, c, &f, l->arg)) return;
      amqp_maybe_release_buffers(c);
    }
  }
}

/* The links' threads: each destroys its connection (with TLS, OpenSSL's
 * session and context) after the stream has ended and nothing waits for
 * it; the process's end waits for them (sl_amqp_link_exit). */
static sl_detached_t g_live = SL_DETACHED_INIT("amqp");

static void run(void *arg) {
  sl_amqp_link_t *l = arg;
  int tls = l->tls_ctx != NULL;
  int backoff = BACKOFF_FIRST_MS;
  while (!sl_amqp_link_quitting(l)) {
    amqp_connection_state_t c = NULL;
    for (unsigned i = 0; i < l->nurls && !c && !sl_amqp_link_quitting(l); i++) {
      c = connect_one(l, l->urls[l->next_url]);
      if (!c) l->next_url = (l->next_url + 1) % l->nurls;
    }
    if (c) {
      set_status(l, 1, NULL);
      backoff = BACKOFF_FIRST_MS;
      serve(l, c);
      l->h.lost(l, l->arg);
      /* No orderly close: it waits for the broker, and what the close would
       * settle (unacknowledged deliveries back to the queue) the broker does
       * when the socket goes anyway. */
      amqp_destroy_connection(c);
    }
    if (sl_amqp_link_quitting(l)) break;
    set_status(l, 0, l->err);
    pause_for(l, backoff);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
  unref(l);
  /* This thread's OpenSSL state would go after it returned: now, before
   * the process may exit. */
  if (tls) OPENSSL_thread_stop();
}

static void on_async(uv_async_t *a) {
  sl_amqp_link_t *l = a->data;
  l->h.wake(l->loop_arg);
}

int sl_amqp_link_start(sl_amqp_link_t *l, uv_loop_t *loop) {
  if (pipe(l->pipe) != 0) return -1;
  for (int i = 0; i < 2; i++) {
    fcntl(l->pipe[i], F_SETFL, fcntl(l->pipe[i], F_GETFL) | O_NONBLOCK);
    fcntl(l->pipe[i], F_SETFD, FD_CLOEXEC);
  }
  pthread_mutex_init(&l->mu, NULL);
  snprintf(l->why, sizeof l->why, "connecting");
  snprintf(l->shown_why, sizeof l->shown_why, "connecting");
  uv_async_init(loop, &l->async, on_async);
  l->async.data = l;
  uv_unref((uv_handle_t *)&l->async);   /* the streams decide when the loop ends */
  l->refs = 2;
  if (sl_detached_spawn(&g_live, run, l) == 0) return 0;
  l->refs = 1;   /* the handle only: close releases */
  return -1;
}

static void on_async_closed(uv_handle_t *h) { unref(h->data); }

void sl_amqp_link_close(sl_amqp_link_t *l) {
  if (!l->refs) {   /* never started */
    pthread_mutex_init(&l->mu, NULL);
    link_free(l);
    return;
  }
  pthread_mutex_lock(&l->mu);
  l->quit = 1;
  l->loop_gone = 1;
  pthread_mutex_unlock(&l->mu);
  sl_amqp_link_kick(l);
  uv_close((uv_handle_t *)&l->async, on_async_closed);
}

void sl_amqp_link_exit(void) { sl_detached_wait(&g_live); }
