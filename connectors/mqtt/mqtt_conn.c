/* The MQTT client of an mqtt input or output on the loop (mqtt_conn.h). */
#include "mqtt_conn.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const sl_mqtt_versions[] = {"3.1.1", "5", NULL};

const sl_field_t sl_mqtt_will_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Register a last will.", NULL, NULL},
  {"topic", SL_F_STRING, "", 0, "Its topic.", NULL, NULL},
  {"payload", SL_F_STRING, "", 0, "Its payload.", NULL, NULL},
  {"qos", SL_F_INT, "0", 0, "Its QoS.", SL_BOUNDS("0", "2"), NULL},
  {"retained", SL_F_BOOL, "false", 0, "Whether the broker retains it.", NULL, NULL},
  {0}};

enum { TICK_MS = 1000, BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000, READS_PER_TURN = 4096 };

struct sl_mqtt {
  struct mosquitto *mosq;
  uv_loop_t *loop;
  uv_poll_t *poll;           /* on the current socket; NULL between connections */
  int fd, events;
  uv_timer_t tick;           /* loop_misc: keepalive pings */
  uv_timer_t retry;          /* the next attempt (backoff), or the current one's connect_timeout */
  int handles;
  char **hosts;
  int *ports;
  int nurls, next_url;
  int v5, keepalive, tls;
  sl_tls_ctx_t *tls_ctx;     /* libmosquitto holds a reference while it lives */
  int64_t connect_timeout_ms, backoff_ms;
  sl_mqtt_cbs_t cbs;
  void *arg;
  sl_input_t *in;
  sl_output_t *out;
  char *path;                /* config path, for the metrics */
  int kind;
  int64_t *m_up, *m_lost, *m_failed;
  int connected, attempting, refused, hold, paused, freed, in_io, bye;
  char tls_why[160];         /* OpenSSL's first error on this connection, which libmosquitto only logs */
};

static const char *sname(sl_mqtt_t *c) {
  sl_stream_t *s = c->in ? c->in->stream : c->out ? c->out->stream : NULL;
  return s ? s->name : NULL;
}
static const char *label(sl_mqtt_t *c) { return c->in ? c->in->label : c->out ? c->out->label : NULL; }

static void set_ready(sl_mqtt_t *c, int ok, const char *why) {
  if (c->in) sl_input_set_connected(c->in, ok, why);
  if (c->out) sl_output_set_connected(c->out, ok, why);
}

static void maybe_free(sl_mqtt_t *c) {
  if (!c->freed || c->handles || c->in_io) return;
  if (c->bye) mosquitto_loop_write(c->mosq, 1);   /* the DISCONNECT: a few bytes the socket takes at once */
  if (c->mosq) mosquitto_destroy(c->mosq);
  sl_tls_ctx_free(c->tls_ctx);
  for (int i = 0; i < c->nurls; i++) free(c->hosts[i]);
  free(c->hosts);
  free(c->ports);
  free(c->path);
  free(c);
}

static void handle_closed(uv_handle_t *h) {
  sl_mqtt_t *c = h->data;
  if (h != (uv_handle_t *)&c->tick && h != (uv_handle_t *)&c->retry) free(h);
  c->handles--;
  maybe_free(c);
}

/* Before libmosquitto closes or replaces the socket: a poll must not
 * outlive its descriptor (the number may come back for another socket). */
static void unwatch(sl_mqtt_t *c) {
  if (!c->poll) return;
  uv_close((uv_handle_t *)c->poll, handle_closed);
  c->poll = NULL;
  c->fd = -1;
  c->events = 0;
}

static void on_io(uv_poll_t *p, int status, int events);

/* Watches what the client needs now: reading unless paused, writing when
 * something is queued and not held. */
static void watch(sl_mqtt_t *c) {
  if (c->freed) return;
  int fd = mosquitto_socket(c->mosq);
  if (fd != c->fd) unwatch(c);
  if (fd < 0) return;
  int ev = (c->paused && c->connected ? 0 : UV_READABLE) | (!c->hold && mosquitto_want_write(c->mosq) ? UV_WRITABLE : 0);
  /* A TLS handshake that waits to write says so through want_write; on_io
   * drives it with loop_read whichever way the socket became ready. */
  if (!c->poll) {
    c->poll = sl_xmalloc(sizeof(*c->poll));
    if (uv_poll_init_socket(c->loop, c->poll, fd) != 0) {
      free(c->poll);
      c->poll = NULL;
      return;
    }
    c->poll->data = c;
    c->handles++;
    c->fd = fd;
    c->events = -1;
  }
  if (ev == c->events) return;
  c->events = ev;
  if (ev) uv_poll_start(c->poll, ev, on_io);
  else uv_poll_stop(c->poll);
}

static void attempt(sl_mqtt_t *c);

static void on_retry(uv_timer_t *t) {
  sl_mqtt_t *c = t->data;
  if (c->attempting) {   /* no CONNACK within connect_timeout */
    sl_logf(SL_LOG_WARN, sname(c), label(c), "mqtt: %s:%d: no CONNACK within connect_timeout",
            c->hosts[(c->next_url + c->nurls - 1) % c->nurls], c->ports[(c->next_url + c->nurls - 1) % c->nurls]);
    set_ready(c, 0, "mqtt: connection attempt timed out");
    (*c->m_failed)++;
  }
  attempt(c);
}

static void retry_later(sl_mqtt_t *c) {
  if (c->freed) return;
  c->attempting = 0;
  uv_timer_start(&c->retry, on_retry, (uint64_t)c->backoff_ms, 0);
  c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* The current attempt ended before MQTT began (the connection or the TLS
 * handshake failed, which libmosquitto reports by no callback): the next
 * URL after the backoff. */
static void attempt_failed(sl_mqtt_t *c, int rc) {
  int i = (c->next_url + c->nurls - 1) % c->nurls;
  const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : c->tls_why[0] ? c->tls_why : mosquitto_strerror(rc);
  char *msg = sl_xasprintf("mqtt: %s:%d: %s%s", c->hosts[i], c->ports[i], c->tls_why[0] ? "TLS: " : "", why);
  sl_logf(SL_LOG_WARN, sname(c), label(c), "%s", msg);
  set_ready(c, 0, msg);
  free(msg);
  (*c->m_failed)++;
  unwatch(c);
  retry_later(c);
}

/* Connects to the next URL without blocking (the TCP connect completes on
 * the poll; a name is resolved by getaddrinfo, as libmosquitto does). */
static void attempt(sl_mqtt_t *c) {
  if (c->freed) return;
  int i = c->next_url++ % c->nurls;
  unwatch(c);
  c->tls_why[0] = 0;
  int rc = mosquitto_connect_async(c->mosq, c->hosts[i], c->ports[i], c->keepalive);
  if (rc != MOSQ_ERR_SUCCESS) {
    attempt_failed(c, rc);
    return;
  }
  c->attempting = 1;
  uv_timer_start(&c->retry, on_retry, (uint64_t)c->connect_timeout_ms, 0);
  watch(c);
}

static void on_connect(struct mosquitto *m, void *arg, int rc, int flags, const mosquitto_property *props) {
  (void)m;
  (void)props;
  sl_mqtt_t *c = arg;
  if (rc != 0) {   /* refused: the socket closes after this callback */
    char *msg = sl_xasprintf("mqtt: connection refused: %s",
                             c->v5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc));
    sl_logf(SL_LOG_WARN, sname(c), label(c), "%s", msg);
    set_ready(c, 0, msg);
    free(msg);
    (*c->m_failed)++;
    c->attempting = 0;   /* on_disconnect schedules the next attempt */
    c->refused = 1;      /* and keeps this reason */
    return;
  }
  uv_timer_stop(&c->retry);
  c->attempting = 0;
  c->connected = 1;
  c->backoff_ms = BACKOFF_MIN_MS;
  (*c->m_up)++;
  set_ready(c, 1, NULL);
  c->cbs.connected(c->arg, flags & 1);
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc, const mosquitto_property *props) {
  (void)m;
  (void)props;
  sl_mqtt_t *c = arg;
  if (c->freed) return;
  const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
  /* A broker refusing a client certificate under TLS 1.3 does so after the
   * handshake: an alert (in tls_why), or at times a bare close. */
  char *msg = c->tls_why[0] ? sl_xasprintf("mqtt: disconnected: TLS: %s", c->tls_why)
              : c->tls && c->attempting
                ? sl_xasprintf("mqtt: disconnected before the CONNACK: %s (does the broker take the client "
                               "certificate?)", why)
                : sl_xasprintf("mqtt: disconnected: %s", why);
  c->tls_why[0] = 0;
  if (c->connected) {
    sl_logf(SL_LOG_WARN, sname(c), label(c), "%s", msg);
    (*c->m_lost)++;
  } else if (c->attempting) {
    (*c->m_failed)++;
  }
  if (!c->refused) set_ready(c, 0, msg);
  c->refused = 0;
  free(msg);
  int was = c->connected;
  c->connected = 0;
  uv_timer_stop(&c->retry);
  retry_later(c);
  if (was) c->cbs.lost(c->arg);
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg, const mosquitto_property *props) {
  (void)m;
  sl_mqtt_t *c = arg;
  if (c->cbs.message && !c->freed) c->cbs.message(c->arg, msg, props);
}

static void on_publish(struct mosquitto *m, void *arg, int mid, int reason, const mosquitto_property *props) {
  (void)m;
  (void)props;
  sl_mqtt_t *c = arg;
  if (c->cbs.published && !c->freed) c->cbs.published(c->arg, mid, reason);
}

static void on_log(struct mosquitto *m, void *arg, int level, const char *str) {
  (void)m;
  sl_mqtt_t *c = arg;
  if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) sl_logf(SL_LOG_WARN, sname(c), label(c), "mqtt: %s", str);
  /* "OpenSSL Error[0]: error:0A00045C:SSL routines::tlsv13 alert certificate
   * required": the reason, for /ready (a refused client certificate shows
   * only so) */
  const char *reason = strrchr(str, ':');
  if (!c->tls_why[0] && !strncmp(str, "OpenSSL Error", 13) && reason && reason[1])
    snprintf(c->tls_why, sizeof c->tls_why, "%s", reason + 1);
}

/* libmosquitto reads one packet per call and says EAGAIN through errno when
 * the socket had no more; READS_PER_TURN bounds a turn (the poll fires again). */
static void read_all(sl_mqtt_t *c) {
  for (int i = 0; i < READS_PER_TURN && !c->freed && mosquitto_socket(c->mosq) >= 0; i++) {
    if (c->paused && c->connected) break;
    errno = 0;
    int rc = mosquitto_loop_read(c->mosq, 1);
    if (rc == MOSQ_ERR_TLS && c->attempting) {   /* the handshake failed: libmosquitto closed the socket */
      attempt_failed(c, rc);
      break;
    }
    if (rc != MOSQ_ERR_SUCCESS || errno == EAGAIN || errno == EWOULDBLOCK) break;
  }
}

static void on_io(uv_poll_t *p, int status, int events) {
  sl_mqtt_t *c = p->data;
  if (c->freed) return;
  c->in_io = 1;
  if (status < 0) events = UV_READABLE | UV_WRITABLE;   /* an error: the calls below meet it */
  if (events & UV_WRITABLE && !c->hold) mosquitto_loop_write(c->mosq, 1);
  if ((events & UV_READABLE || (c->tls && !c->connected)) && mosquitto_socket(c->mosq) >= 0) read_all(c);
  if (c->cbs.io_done && !c->freed) c->cbs.io_done(c->arg);
  /* What the reads and the owner queued (acknowledgements released, more
   * publishes) goes now rather than after another turn of the loop: the
   * socket takes it or libmosquitto keeps the rest for the poll. */
  if (!c->freed && !c->hold && mosquitto_socket(c->mosq) >= 0 && mosquitto_want_write(c->mosq))
    mosquitto_loop_write(c->mosq, 1);
  c->in_io = 0;
  if (c->freed) maybe_free(c);
  else watch(c);
}

static void on_tick(uv_timer_t *t) {
  sl_mqtt_t *c = t->data;
  if (mosquitto_socket(c->mosq) >= 0) mosquitto_loop_misc(c->mosq);
  watch(c);
}

/* tcp://host:port and its kin; 0, or -1 with why. */
static int parse_url(const char *u, char **host, int *port, int *tls, const char **why) {
  const char *p = strstr(u, "://");
  const char *hs = u;
  *tls = 0;
  if (p) {
    size_t n = (size_t)(p - u);
    if ((n == 3 && !strncasecmp(u, "tcp", 3)) || (n == 4 && !strncasecmp(u, "mqtt", 4))) *tls = 0;
    else if ((n == 3 && (!strncasecmp(u, "ssl", 3) || !strncasecmp(u, "tls", 3))) ||
             (n == 5 && !strncasecmp(u, "mqtts", 5)))
      *tls = 1;
    else {
      *why = "the scheme is not tcp://, mqtt://, ssl://, tls:// or mqtts://";
      return -1;
    }
    hs = p + 3;
  }
  size_t hl = strcspn(hs, "/");
  const char *colon = NULL;
  if (hs[0] == '[') {
    const char *e = memchr(hs, ']', hl);
    if (!e) {
      *why = "an unclosed [";
      return -1;
    }
    colon = e[1] == ':' ? e + 1 : NULL;
    *host = sl_xstrndup(hs + 1, (size_t)(e - hs - 1));
  } else {
    colon = memchr(hs, ':', hl);
    *host = sl_xstrndup(hs, colon ? (size_t)(colon - hs) : hl);
  }
  *port = *tls ? 8883 : 1883;
  if (colon) {
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || end != hs + hl || v < 1 || v > 65535) {
      free(*host);
      *why = "the port is not a number from 1 to 65535";
      return -1;
    }
    *port = (int)v;
  }
  if (!**host) {
    free(*host);
    *why = "no host";
    return -1;
  }
  return 0;
}

static int setup(sl_mqtt_t *c, sl_build_t *b, const sl_cnode_t *conf) {
  const char *id = sl_conf_str(conf, "client_id", "");
  c->mosq = mosquitto_new(*id ? id : NULL, sl_conf_bool(conf, "clean_session", 1), c);
  if (!c->mosq) {
    sl_diag_add(b->diags, conf, "client_id", "mqtt: %s", strerror(errno));
    return -1;
  }
  mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, c->v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  mosquitto_threaded_set(c->mosq, true);   /* see mqtt_conn.h: only loop_write writes */
  mosquitto_connect_v5_callback_set(c->mosq, on_connect);
  mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect);
  mosquitto_message_v5_callback_set(c->mosq, on_message);
  mosquitto_publish_v5_callback_set(c->mosq, on_publish);
  mosquitto_log_callback_set(c->mosq, on_log);
  const char *user = sl_conf_str(conf, "user", "");
  if (*user && mosquitto_username_pw_set(c->mosq, user, sl_conf_str(conf, "password", "")) != MOSQ_ERR_SUCCESS) {
    sl_diag_add(b->diags, conf, "user", "mqtt: not accepted by libmosquitto (UTF-8?)");
    return -1;
  }
  const sl_cnode_t *will = sl_cnode_get(conf, "will");
  if (will && sl_conf_bool(will, "enabled", 0)) {
    const char *t = sl_conf_str(will, "topic", ""), *pl = sl_conf_str(will, "payload", "");
    int rc = mosquitto_will_set(c->mosq, t, (int)strlen(pl), pl, (int)sl_conf_int(will, "qos", 0),
                                sl_conf_bool(will, "retained", 0));
    if (rc != MOSQ_ERR_SUCCESS) {
      sl_diag_add(b->diags, will, "will.topic", "mqtt: %s", mosquitto_strerror(rc));
      return -1;
    }
  }
  /* sluice's context as it is (sl_tls_conf_client): no defaults of
   * libmosquitto's over it, which would load CAs and keys from files only */
  if (c->tls_ctx && (mosquitto_int_option(c->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) != MOSQ_ERR_SUCCESS ||
                     mosquitto_void_option(c->mosq, MOSQ_OPT_SSL_CTX, sl_tls_ctx_openssl(c->tls_ctx)) !=
                       MOSQ_ERR_SUCCESS)) {
    sl_diag_add(b->diags, conf, "tls", "mqtt: this libmosquitto has no TLS");
    return -1;
  }
  if (c->v5 && !sl_conf_bool(conf, "clean_session", 1)) {
    /* libmosquitto 2.0 takes CONNECT properties only in its blocking
     * connect: this call stores them and stops at the port (-1) it refuses
     * before connecting; every later (asynchronous) connect sends them. */
    mosquitto_property *props = NULL;
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                 (uint32_t)(sl_conf_duration_ms(conf, "session_expiry", 3600000) / 1000));
    mosquitto_connect_bind_v5(c->mosq, "", -1, c->keepalive, NULL, props);
    mosquitto_property_free_all(&props);
  }
  return 0;
}

sl_mqtt_t *sl_mqtt_new(sl_build_t *b, const sl_cnode_t *conf, sl_cmkind_t kind, const sl_mqtt_cbs_t *cbs, void *arg) {
  static int inited;
  if (!inited) {
    mosquitto_lib_init();
    inited = 1;
  }
  sl_mqtt_t *c = sl_xcalloc(1, sizeof(*c));
  c->cbs = *cbs;
  c->arg = arg;
  c->fd = -1;
  c->kind = kind;
  c->path = sl_xstrdup(b->path ? b->path : "");
  c->v5 = !strcmp(sl_conf_str(conf, "protocol_version", "3.1.1"), "5");
  c->keepalive = (int)sl_conf_int(conf, "keepalive", 30);
  c->connect_timeout_ms = sl_conf_duration_ms(conf, "connect_timeout", 30000);
  c->backoff_ms = BACKOFF_MIN_MS;
  int bad = 0;
  const sl_cnode_t *urls = sl_cnode_get(conf, "urls");
  for (uint32_t i = 0; urls && urls->type == SL_CN_SEQ && i < urls->n; i++) {
    char *host;
    int port, tls;
    const char *why = NULL;
    if (parse_url(urls->items[i]->str, &host, &port, &tls, &why) != 0) {
      sl_diag_add(b->diags, urls->items[i], "urls", "not a broker URL (%s): %s", why, urls->items[i]->str);
      bad = 1;
      continue;
    }
    c->hosts = sl_xrealloc(c->hosts, (size_t)(c->nurls + 1) * sizeof(*c->hosts));
    c->ports = sl_xrealloc(c->ports, (size_t)(c->nurls + 1) * sizeof(*c->ports));
    c->hosts[c->nurls] = host;
    c->ports[c->nurls++] = port;
    c->tls |= tls;
  }
  if (!bad && !c->nurls) {
    sl_diag_add(b->diags, urls ? urls : conf, "urls", "name at least one broker");
    bad = 1;
  }
  if (!sl_conf_bool(conf, "clean_session", 1) && !*sl_conf_str(conf, "client_id", "")) {
    sl_diag_add(b->diags, conf, "client_id", "a persistent session (clean_session: false) needs a client_id");
    bad = 1;
  }
  const sl_cnode_t *tls = sl_cnode_get(conf, "tls");
  if (sl_conf_bool(tls, "enabled", 0)) c->tls = 1;
  if (!bad && c->tls && !(c->tls_ctx = sl_tls_conf_client(tls, b->diags))) bad = 1;
  if (!bad && (b->lint_only || !b->worker)) return c;   /* linting: nothing made, sl_mqtt_free frees it */
  if (bad || setup(c, b, conf) != 0) {
    c->freed = 1;
    maybe_free(c);
    return NULL;
  }
  c->loop = b->worker->loop;
  uv_timer_init(c->loop, &c->tick);
  uv_timer_init(c->loop, &c->retry);
  c->tick.data = c->retry.data = c;
  c->handles = 2;
  return c;
}

void sl_mqtt_attach(sl_mqtt_t *c, sl_input_t *in, sl_output_t *out) {
  c->in = in;
  c->out = out;
  sl_stream_t *s = in ? in->stream : out ? out->stream : NULL;
  sl_connmetrics_t m;
  sl_connmetrics_init(&m, c->kind, s ? s->name : "", label(c), c->path);
  c->m_up = m.up;
  c->m_lost = m.lost;
  c->m_failed = m.failed;
}

void sl_mqtt_start(sl_mqtt_t *c) {
  set_ready(c, 0, "mqtt: connecting");
  uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
  attempt(c);
}

struct mosquitto *sl_mqtt_mosq(sl_mqtt_t *c) { return c->mosq; }
int sl_mqtt_v5(const sl_mqtt_t *c) { return c->v5; }
int sl_mqtt_connected(const sl_mqtt_t *c) { return c->connected; }

void sl_mqtt_hold_writes(sl_mqtt_t *c, int hold) {
  if (c->hold == hold) return;
  c->hold = hold;
  if (c->in_io) return;   /* on_io writes what was released before it returns */
  /* Released: the acknowledgements go now (a few bytes the socket takes at
   * once), not after a turn of the loop in which a read could queue new
   * ones behind them and hold them again. */
  if (!hold && !c->freed && mosquitto_socket(c->mosq) >= 0 && mosquitto_want_write(c->mosq))
    mosquitto_loop_write(c->mosq, 1);
  watch(c);
}

void sl_mqtt_pause_reads(sl_mqtt_t *c, int pause) {
  if (c->paused == pause) return;
  c->paused = pause;
  if (!c->in_io) watch(c);
}

void sl_mqtt_kick(sl_mqtt_t *c) {
  if (!c->in_io) watch(c);
}

void sl_mqtt_free(sl_mqtt_t *c) {
  if (!c) return;
  /* A DISCONNECT, so that the broker drops the will: queued behind what is
   * queued already, written once the handles are closed, outside any call
   * into libmosquitto. Not while writes are held: a connection that
   * acknowledged nothing it holds ends as lost. */
  c->bye = c->mosq && c->connected && !c->hold && mosquitto_disconnect(c->mosq) == MOSQ_ERR_SUCCESS;
  c->freed = 1;
  unwatch(c);
  if (c->loop) {
    uv_close((uv_handle_t *)&c->tick, handle_closed);
    uv_close((uv_handle_t *)&c->retry, handle_closed);
  }
  maybe_free(c);
}
