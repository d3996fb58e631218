/* The Redis client (redis.h): a hiredis async context per connection, its
 * lifetime bounded by the connect, the handshake (AUTH, SELECT) and the
 * disconnect callbacks, and a new one after a backoff when it ends. Every
 * command's callback record is on r->pending, so that sl_redis_free can
 * disarm them: hiredis calls each one once more (with no reply) when it
 * frees its context, which may happen after sl_redis_free returned. */
#include "redis.h"
#include "redis_cluster.h"
#include "redis_reply.h"
#include "redis_tls.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

typedef struct cmd {
  struct cmd *next, *prev;   /* in r->pending */
  sl_redis_t *r;             /* NULL once disarmed */
  sl_redis_cb cb;
  void *arg;
} cmd_t;

typedef struct resolve {     /* a name lookup, outliving the client if it must */
  uv_getaddrinfo_t req;
  sl_redis_t *r;             /* NULL once the client is gone */
} resolve_t;

struct sl_redis {
  uv_loop_t *loop;
  char *host, *port, *user, *password, *db, *addr, *why;
  char *refused;             /* the handshake's refusal, until the connection's end reports it */
  const char *log_stream, *log_component;
  int64_t backoff_min, backoff_max, backoff, connect_timeout;
  int64_t reply_timeout;     /* ms; 0: none */
  uint64_t progress;         /* loop time of the last reply, or of the first command waiting since */
  int waiting;               /* commands sent and not answered */
  const char *dropping;      /* why the connection is being dropped under its commands, or NULL */
  sl_redis_state_cb on_state;
  void *state_arg;
  redisAsyncContext *ac;     /* the connection, or NULL between connections */
  resolve_t *resolving;
  int up, reported;          /* reported: on_state has been told the current state once */
  int handshake;             /* handshake replies still to come */
  uv_timer_t retry, deadline, watch;
  int handles;               /* timers not yet closed */
  int freed;
  cmd_t pending;             /* list head */
  sl_redis_cb sub_cb;
  void *sub_arg;
  char *master;              /* Sentinel master name, or NULL */
  sl_redis_t *sentinel;      /* subscribed to a Sentinel's +switch-master, or NULL */
  char **hosts, **ports;     /* the url list: servers, or Sentinels (host and port are the master's once known) */
  int naddrs, cur;           /* tried in turn from cur */
  int asking;                /* this connection goes to the Sentinel */
  sl_rcluster_t *cluster;    /* kind: cluster: the router this client is, or NULL */
  sl_tls_ctx_t *tls;         /* TLS to each server (the caller's), or NULL */
  sl_rtls_t *tunnel;         /* this connection's TLS, or NULL */
};

static void connect_now(sl_redis_t *r);

/* ---- hiredis on libuv ----
 * Debian's adapter (hiredis/adapters/libuv.h, 0.14) ignores a poll that
 * ends with an error: libuv reports a socket error (a reset when Redis
 * goes away) by stopping the poll and calling back with a status, so the
 * connection was dead and nobody read it to find out. Here an error
 * status is handled as readable: hiredis's read sees the error and ends
 * the connection, which reconnects. */

typedef struct uvev {
  redisAsyncContext *ac;     /* NULL once hiredis cleaned up */
  uv_poll_t poll;
  int events;
} uvev_t;

static void uvev_poll(uv_poll_t *h, int status, int events) {
  uvev_t *e = h->data;
  if (status) events = UV_READABLE;
  if (e->ac && (events & (UV_READABLE | UV_DISCONNECT))) redisAsyncHandleRead(e->ac);
  if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

/* hiredis asks for writes on every command: a restart of the poll costs
 * libuv an epoll_ctl each time, so only a change restarts it. */
static void uvev_set(uvev_t *e, int events) {
  if (events == e->events) return;
  e->events = events;
  if (events) uv_poll_start(&e->poll, events, uvev_poll);
  else uv_poll_stop(&e->poll);
}

static void uvev_add_read(void *p) { uvev_set(p, ((uvev_t *)p)->events | UV_READABLE); }
static void uvev_del_read(void *p) { uvev_set(p, ((uvev_t *)p)->events & ~UV_READABLE); }
static void uvev_add_write(void *p) { uvev_set(p, ((uvev_t *)p)->events | UV_WRITABLE); }
static void uvev_del_write(void *p) { uvev_set(p, ((uvev_t *)p)->events & ~UV_WRITABLE); }
static void uvev_closed(uv_handle_t *h) { free(h->data); }

static void uvev_cleanup(void *p) {
  uvev_t *e = p;
  e->ac = NULL;
  uv_close((uv_handle_t *)&e->poll, uvev_closed);
}

/* The streams decide when the loop ends: the poll does not keep it. */
static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  uvev_t *e = sl_xcalloc(1, sizeof(*e));
  if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
    free(e);
    return -1;
  }
  uv_unref((uv_handle_t *)&e->poll);
  e->ac = ac;
  e->poll.data = e;
  ac->ev.data = e;
  ac->ev.addRead = uvev_add_read;
  ac->ev.delRead = uvev_del_read;
  ac->ev.addWrite = uvev_add_write;
  ac->ev.delWrite = uvev_del_write;
  ac->ev.cleanup = uvev_cleanup;
  return 0;
}

/* ---- URLs ---- */

static char *url_part(CURLU *u, CURLUPart what, int decode) {
  char *v = NULL;
  if (curl_url_get(u, what, &v, decode ? CURLU_URLDECODE : 0) != CURLUE_OK) return NULL;
  char *out = sl_xstrdup(v);
  curl_free(v);
  return out;
}

/* Splits url into r's parts (r NULL: only checks). */
static int parse_url(const char *url, sl_redis_t *r, char **err) {
  CURLU *u = curl_url();
  int rc = -1;
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *password = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    *err = sl_xasprintf("url %s: not a URL (redis://[[user]:password@]host[:port][/db])", url);
    goto out;
  }
  scheme = url_part(u, CURLUPART_SCHEME, 0);
  if (scheme && !strcmp(scheme, "rediss")) {
    *err = sl_xasprintf("url %s: rediss:// is not taken: write redis:// and tls: {enabled: true}", url);
    goto out;
  }
  if (!scheme || strcmp(scheme, "redis")) {
    *err = sl_xasprintf("url %s: the scheme must be redis://", url);
    goto out;
  }
  host = url_part(u, CURLUPART_HOST, 0);
  port = url_part(u, CURLUPART_PORT, 0);
  path = url_part(u, CURLUPART_PATH, 1);
  user = url_part(u, CURLUPART_USER, 1);
  password = url_part(u, CURLUPART_PASSWORD, 1);
  const char *db = path && path[0] == '/' ? path + 1 : "";
  if (*db && strspn(db, "0123456789") != strlen(db)) {
    *err = sl_xasprintf("url %s: the path is a database number (/0 ... /15), not %s", url, path);
    goto out;
  }
  if (!host || !*host) {
    *err = sl_xasprintf("url %s: no host", url);
    goto out;
  }
  rc = 0;
  if (r) {
    if (host[0] == '[') {   /* an IPv6 literal goes to getaddrinfo without its brackets */
      memmove(host, host + 1, strlen(host));
      host[strcspn(host, "]")] = 0;
    }
    r->host = host;
    r->port = port ? port : sl_xstrdup("6379");
    r->user = user && *user ? user : NULL;
    if (r->user) user = NULL;
    r->password = password;
    r->db = *db ? sl_xstrdup(db) : NULL;
    r->addr = sl_xasprintf("%s:%s", r->host, r->port);
    host = port = password = NULL;
  }
out:
  free(scheme);
  free(host);
  free(port);
  free(path);
  free(user);
  free(password);
  curl_url_cleanup(u);
  return rc;
}

int sl_redis_url_check(const char *url, char **err) { return parse_url(url, NULL, err); }

int sl_redis_urls(const char *list, char ***urls, char **err) {
  int n = 0;
  *urls = NULL;
  for (const char *p = list;; p++) {
    p += strspn(p, " \t");
    size_t len = strcspn(p, ",");
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    char *u = sl_xstrndup(p, len);
    if (parse_url(u, NULL, err)) {
      free(u);
      while (n) free((*urls)[--n]);
      free(*urls);
      *urls = NULL;
      return -1;
    }
    *urls = sl_xrealloc(*urls, (size_t)(n + 1) * sizeof(**urls));
    (*urls)[n++] = u;
    p = strchr(p, ',');
    if (!p) return n;
  }
}

void sl_redis_url_addr(const char *url, char **host, char **port) {
  sl_redis_t r = {0};
  char *err = NULL;
  if (parse_url(url, &r, &err)) {
    free(err);
    *host = sl_xstrdup("");
    *port = sl_xstrdup("");
    return;
  }
  *host = r.host;
  *port = r.port;
  free(r.user);
  free(r.password);
  free(r.db);
  free(r.addr);
}

/* ---- state ---- */

static void set_state(sl_redis_t *r, int up, const char *why) {
  if (r->reported && r->up == up && (up || (r->why && why && !strcmp(r->why, why)))) return;
  int was_up = r->up;
  r->up = up;
  r->reported = 1;
  free(r->why);
  r->why = up ? NULL : sl_xasprintf("redis %s: %s", r->addr, why);
  if (up) {
    r->backoff = 0;
    sl_logf(SL_LOG_INFO, r->log_stream, r->log_component, "redis %s: connected", r->addr);
  } else if (was_up) {
    sl_logf(SL_LOG_WARN, r->log_stream, r->log_component, "%s", r->why);
  } else {
    sl_logf(SL_LOG_DEBUG, r->log_stream, r->log_component, "%s", r->why);
  }
  if (r->on_state) r->on_state(r, up, r->why, r->state_arg);
}

static void on_retry(uv_timer_t *t) { connect_now(t->data); }

/* The connection ac is over: say so and try again after the backoff. */
/* host and port become the Sentinel's (asking) or the master at ip:port. */
static void aim(sl_redis_t *r, const char *host, const char *port, int asking) {
  char *h = sl_xstrdup(host), *p = sl_xstrdup(port);
  free(r->host);
  free(r->port);
  free(r->addr);
  r->host = h;
  r->port = p;
  r->addr = sl_xasprintf("%s:%s", h, p);
  r->asking = asking;
}

static void lost(sl_redis_t *r, const char *why) {
  r->ac = NULL;
  sl_rtls_free(r->tunnel);
  r->tunnel = NULL;
  r->handshake = 0;
  uv_timer_stop(&r->deadline);
  if (r->freed) return;
  set_state(r, 0, r->refused ? r->refused : why);   /* a refused handshake is the reason, not the close after it */
  /* the next of the list (a Sentinel down, or one that does not know the master); from the master, the same
     Sentinel is asked again where the master is now */
  if (r->naddrs > 1 && (!r->master || r->asking)) r->cur = (r->cur + 1) % r->naddrs;
  if (r->naddrs > 1 || r->master) aim(r, r->hosts[r->cur], r->ports[r->cur], r->master != NULL);
  free(r->refused);
  r->refused = NULL;
  r->backoff = r->backoff ? r->backoff * 2 : r->backoff_min;
  if (r->backoff > r->backoff_max) r->backoff = r->backoff_max;
  uv_timer_start(&r->retry, on_retry, (uint64_t)r->backoff, 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  sl_redis_t *r = ac->data;
  if (!r || r->ac != ac) return;
  if (status != REDIS_OK) lost(r, ac->errstr[0] ? ac->errstr : "connect failed");
  else if (!r->handshake) {
    uv_timer_stop(&r->deadline);
    set_state(r, 1, NULL);
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  sl_redis_t *r = ac->data;
  (void)status;
  if (!r || r->ac != ac) return;
  lost(r, ac->err && ac->errstr[0] ? ac->errstr : "connection closed");
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata) {
  sl_redis_t *r = ac->data;
  redisReply *rp = reply;
  const char *what = privdata;
  if (!r || r->ac != ac || !rp) return;   /* the connection's end says why */
  if (rp->type == REDIS_REPLY_ERROR) {
    free(r->refused);
    r->refused = sl_xasprintf("%s: %s", what, rp->str);
    r->handshake = 0;
    redisAsyncDisconnect(ac);   /* ends through on_disconnect, which retries and says why */
    return;
  }
  if (--r->handshake == 0 && (ac->c.flags & REDIS_CONNECTED)) {
    uv_timer_stop(&r->deadline);
    set_state(r, 1, NULL);
  }
}


/* The Sentinel's answer: [ip, port] of the master, then the connection
 * goes there; nil (no such master) or an error is a refused handshake. */
static void on_sentinel(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)privdata;
  sl_redis_t *r = ac->data;
  redisReply *rp = reply;
  if (!r || r->ac != ac || !rp) return;   /* the connection's end says why */
  if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 && rp->element[0]->type == REDIS_REPLY_STRING &&
      rp->element[1]->type == REDIS_REPLY_STRING) {
    ac->data = NULL;   /* its end is no loss: the master is next */
    r->ac = NULL;
    sl_rtls_free(r->tunnel);
    r->tunnel = NULL;
    r->handshake = 0;
    uv_timer_stop(&r->deadline);
    redisAsyncDisconnect(ac);
    aim(r, rp->element[0]->str, rp->element[1]->str, 0);
    connect_now(r);
    return;
  }
  free(r->refused);
  r->refused = sl_xasprintf("Sentinel %s has no master %s%s%s", r->addr, r->master,
                            rp->type == REDIS_REPLY_ERROR ? ": " : "", rp->type == REDIS_REPLY_ERROR ? rp->str : "");
  r->handshake = 0;
  redisAsyncDisconnect(ac);   /* ends through on_disconnect, which retries and says why */
}

/* Connect and handshake took too long (a server that accepts and says
 * nothing): drop the connection, which retries. */
static void on_deadline(uv_timer_t *t) {
  sl_redis_t *r = t->data;
  redisAsyncContext *ac = r->ac;
  if (!ac && !r->tunnel) return;
  if (ac) {
    ac->data = NULL;   /* its callbacks see no client: lost() below is the only end */
    redisAsyncFree(ac);
  }
  lost(r, ac ? "connect timed out" : "connect or TLS handshake timed out");
}

/* hiredis to ip (or to the TLS tunnel's socket path). */
static void open_ac(sl_redis_t *r, const char *ip, const char *path) {
  redisAsyncContext *ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(ip, atoi(r->port));
  if (!ac) {
    lost(r, "out of memory");
    return;
  }
  if (ac->err) {
    char *why = sl_xstrdup(ac->errstr);
    redisAsyncFree(ac);
    lost(r, why);
    free(why);
    return;
  }
  ac->data = r;
  r->ac = ac;
  ac->c.reader->fn = &sl_redis_reply_fns;
  if (uvev_attach(ac, r->loop)) {
    ac->data = NULL;
    redisAsyncFree(ac);
    lost(r, "cannot watch the socket");
    return;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (r->asking) {
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", r->master};
    r->handshake++;
    redisAsyncCommandArgv(ac, on_sentinel, NULL, 3, argv, NULL);
    uv_timer_start(&r->deadline, on_deadline, (uint64_t)r->connect_timeout, 0);
    return;
  }
  /* Queued before anything else: they go out first once connected. */
  if (r->password) {
    const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
    r->handshake++;
    redisAsyncCommandArgv(ac, on_handshake, (void *)"AUTH", r->user ? 3 : 2, argv, NULL);
  }
  if (r->db) {
    const char *argv[2] = {"SELECT", r->db};
    r->handshake++;
    redisAsyncCommandArgv(ac, on_handshake, (void *)"SELECT", 2, argv, NULL);
  }
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)r->connect_timeout, 0);
}

/* The tunnel is up (path) or ended (why): before hiredis connected, that is
 * the connection's end; after, hiredis reads the end and the reason is
 * TLS's, not "connection closed". */
static void on_tunnel(sl_rtls_t *t, const char *path, const char *why, void *arg) {
  sl_redis_t *r = arg;
  if (r->tunnel != t) return;
  if (path) {
    open_ac(r, NULL, path);
  } else if (!r->ac) {
    lost(r, why);
  } else if (!r->refused) {
    r->refused = sl_xstrdup(why);
  }
}

static void open_ip(sl_redis_t *r, const char *ip) {
  if (!r->tls) {
    open_ac(r, ip, NULL);
    return;
  }
  char *err = NULL;
  if (!(r->tunnel = sl_rtls_new(r->loop, r->tls, r->host, ip, atoi(r->port), on_tunnel, r, &err))) {
    lost(r, err);
    free(err);
    return;
  }
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)r->connect_timeout, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  resolve_t *q = req->data;
  sl_redis_t *r = q->r;
  char ip[64] = "";
  if (status == 0 && res) {
    if (res->ai_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
    else uv_ip4_name((struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
  }
  uv_freeaddrinfo(res);
  free(q);
  if (!r) return;
  r->resolving = NULL;
  if (!*ip) {
    char *why = sl_xasprintf("cannot resolve %s: %s", r->host, status ? uv_strerror(status) : "no address");
    lost(r, why);
    free(why);
    return;
  }
  open_ip(r, ip);
}

/* Names resolve off the loop (hiredis 0.14 would call getaddrinfo on it). */
static void connect_now(sl_redis_t *r) {
  if (r->freed || r->ac || r->tunnel || r->resolving) return;
  resolve_t *q = sl_xcalloc(1, sizeof(*q));
  q->r = r;
  q->req.data = q;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  r->resolving = q;
  int rc = uv_getaddrinfo(r->loop, &q->req, on_resolved, r->host, NULL, &hints);
  if (rc) {
    r->resolving = NULL;
    free(q);
    lost(r, uv_strerror(rc));
  }
}

/* A Redis that accepts and stops answering (stopped, swapping, a network
 * that drops packets) would hold every command for ever: past
 * reply_timeout without a reply the connection is dropped, which fails
 * what waits and reconnects. */
static void on_watch(uv_timer_t *t) {
  sl_redis_t *r = t->data;
  if (!r->ac || !r->waiting || uv_now(r->loop) - r->progress < (uint64_t)r->reply_timeout) return;
  redisAsyncContext *ac = r->ac;
  char *why = sl_xasprintf("no reply within %lld ms", (long long)r->reply_timeout);
  ac->data = NULL;   /* lost() below is the only end */
  r->dropping = why;
  redisAsyncFree(ac);   /* waiting commands get their error now: why */
  r->dropping = NULL;
  r->waiting = 0;
  lost(r, why);
  free(why);
}

/* "+switch-master <name> <old ip> <old port> <new ip> <new port>" for our
 * master: the connection to the old one ends, the next asks again (the old
 * master keeps taking writes until the Sentinels make it a replica). */
static void on_switch(sl_redis_t *s, redisReply *rp, const char *err, void *arg) {
  (void)s;
  sl_redis_t *r = arg;
  if (err || !rp || rp->type != REDIS_REPLY_ARRAY || rp->elements != 3 || rp->element[2]->type != REDIS_REPLY_STRING)
    return;   /* the subscription's confirmation */
  const char *msg = rp->element[2]->str;
  size_t n = strlen(r->master);
  if (strncmp(msg, r->master, n) || msg[n] != ' ' || r->asking || !r->ac) return;
  sl_logf(SL_LOG_INFO, r->log_stream, r->log_component, "redis: Sentinel switched master %s", msg);
  redisAsyncDisconnect(r->ac);
}

static void on_sentinel_state(sl_redis_t *s, int up, const char *why, void *arg) {
  (void)why;
  if (!up) return;
  const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
  sl_redis_subscribe(s, on_switch, arg, 2, argv, NULL);
}

sl_redis_t *sl_redis_new(uv_loop_t *loop, const sl_redis_opts_t *o, char **err) {
  sl_redis_t *r = sl_xcalloc(1, sizeof(*r));
  if (o->cluster) {
    if (!(r->cluster = sl_rcluster_new(r, loop, o, err))) {
      free(r);
      return NULL;
    }
    return r;
  }
  char **urls = NULL;
  int n = sl_redis_urls(o->url, &urls, err);
  if (n < 0 || parse_url(urls[0], r, err)) {
    free(r);
    return NULL;
  }
  r->naddrs = n;
  r->hosts = sl_xcalloc((size_t)n, sizeof(char *));
  r->ports = sl_xcalloc((size_t)n, sizeof(char *));
  for (int i = 0; i < n; i++) {
    sl_redis_url_addr(urls[i], &r->hosts[i], &r->ports[i]);
    free(urls[i]);
  }
  free(urls);
  if (o->sentinel_master && *o->sentinel_master) {
    r->master = sl_xstrdup(o->sentinel_master);
    r->asking = 1;
  }
  if (r->master) {
    sl_redis_opts_t so = *o;
    so.sentinel_master = NULL;
    so.reply_timeout_ms = 0;   /* it only listens */
    so.on_state = on_sentinel_state;
    so.state_arg = r;
    so.log_component = o->log_component;
    r->sentinel = sl_redis_new(loop, &so, err);   /* the URL parsed above */
  }
  r->loop = loop;
  r->tls = o->tls;
  r->log_stream = o->log_stream;
  r->log_component = o->log_component;
  r->backoff_min = o->backoff_min_ms > 0 ? o->backoff_min_ms : 100;
  r->backoff_max = o->backoff_max_ms > 0 ? o->backoff_max_ms : 5000;
  if (r->backoff_max < r->backoff_min) r->backoff_max = r->backoff_min;
  r->connect_timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
  r->reply_timeout = o->reply_timeout_ms;
  r->on_state = o->on_state;
  r->state_arg = o->state_arg;
  r->pending.next = r->pending.prev = &r->pending;
  uv_timer_init(loop, &r->retry);
  uv_timer_init(loop, &r->deadline);
  r->retry.data = r->deadline.data = r;
  uv_unref((uv_handle_t *)&r->retry);
  uv_unref((uv_handle_t *)&r->deadline);
  uv_timer_init(loop, &r->watch);
  r->watch.data = r;
  uv_unref((uv_handle_t *)&r->watch);
  r->handles = 3;
  if (r->reply_timeout > 0) {
    uint64_t every = (uint64_t)(r->reply_timeout / 4 > 50 ? r->reply_timeout / 4 : 50);
    uv_timer_start(&r->watch, on_watch, every, every);
  }
  set_state(r, 0, "connecting");
  connect_now(r);
  return r;
}

/* ---- commands ---- */

static int usable(const sl_redis_t *r);

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  cmd_t *c = privdata;
  sl_redis_t *r = c->r;
  if (r) {
    r->waiting--;
    r->progress = uv_now(r->loop);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    const char *err = reply ? NULL : r->dropping ? r->dropping : ac->err && ac->errstr[0] ? ac->errstr : "connection lost";
    c->cb(r, reply, err, c->arg);
    redisReply *rp = reply;
    /* a failover made this server a replica: ask the Sentinel again */
    if (r->master && !r->freed && rp && rp->type == REDIS_REPLY_ERROR && !strncmp(rp->str, "READONLY", 8) && r->ac == ac &&
        usable(r))
      redisAsyncDisconnect(ac);
  }
  free(c);
}

static int usable(const sl_redis_t *r) {
  return r->ac && !(r->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) && !r->ac->err;
}

int sl_redis_command(sl_redis_t *r, sl_redis_cb cb, void *arg, int argc, const char **argv, const size_t *lens) {
  if (r->cluster) return sl_rcluster_command(r->cluster, cb, arg, argc, argv, lens);
  if (!usable(r)) return -1;
  cmd_t *c = sl_xmalloc(sizeof(*c));
  *c = (cmd_t){r->pending.next, &r->pending, r, cb, arg};
  if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
    free(c);
    return -1;
  }
  c->next->prev = c;
  r->pending.next = c;
  if (r->waiting++ == 0) r->progress = uv_now(r->loop);
  return 0;
}

/* hiredis files a subscription's callback under each channel and calls it
 * for each of them when the context ends: the record is the client itself,
 * found through ac->data, which outlives no client. */
static void on_message(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)privdata;
  sl_redis_t *r = ac->data;
  if (r && r->sub_cb && reply) r->sub_cb(r, reply, NULL, r->sub_arg);
}

int sl_redis_subscribe(sl_redis_t *r, sl_redis_cb cb, void *arg, int argc, const char **argv, const size_t *lens) {
  if (r->cluster) return sl_rcluster_subscribe(r->cluster, cb, arg, argc, argv, lens);
  if (!usable(r)) return -1;
  r->sub_cb = cb;
  r->sub_arg = arg;
  return redisAsyncCommandArgv(r->ac, on_message, NULL, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

int sl_redis_up(const sl_redis_t *r) { return r->cluster ? sl_rcluster_up(r->cluster) : r->up; }
const char *sl_redis_why(const sl_redis_t *r) { return r->cluster ? sl_rcluster_why(r->cluster) : r->why; }
const char *sl_redis_addr(const sl_redis_t *r) { return r->cluster ? sl_rcluster_addr(r->cluster) : r->addr; }

/* ---- the end ---- */

static void really_free(sl_redis_t *r) {
  free(r->host);
  free(r->port);
  free(r->user);
  free(r->password);
  free(r->db);
  free(r->addr);
  free(r->why);
  free(r->refused);
  free(r->master);
  for (int i = 0; i < r->naddrs; i++) {
    free(r->hosts[i]);
    free(r->ports[i]);
  }
  free(r->hosts);
  free(r->ports);
  free(r);
}

static void on_timer_closed(uv_handle_t *h) {
  sl_redis_t *r = h->data;
  if (--r->handles == 0) really_free(r);
}

void sl_redis_free(sl_redis_t *r) {
  if (!r) return;
  if (r->cluster) {
    sl_rcluster_free(r->cluster);
    free(r);
    return;
  }
  r->freed = 1;
  sl_redis_free(r->sentinel);
  for (cmd_t *c = r->pending.next; c != &r->pending; c = c->next) c->r = NULL;
  r->pending.next = r->pending.prev = &r->pending;
  if (r->resolving) r->resolving->r = NULL;
  sl_rtls_free(r->tunnel);
  r->tunnel = NULL;
  if (r->ac) {
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);   /* inside one of its callbacks hiredis frees it on return */
  }
  uv_close((uv_handle_t *)&r->retry, on_timer_closed);
  uv_close((uv_handle_t *)&r->deadline, on_timer_closed);
  uv_close((uv_handle_t *)&r->watch, on_timer_closed);
}
