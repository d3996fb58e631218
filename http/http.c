/* The HTTP server: one per worker, its route table and dispatch, built-in
 * routes, listening and shutdown, and the `http:` config section. The
 * connection layer is in http_conn.c. */
#include "http_int.h"
#include "http_static.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/section.h"
#include "core/xalloc.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- built-in routes ---------- */

static void ping(sl_http_req_t *r, void *arg) {
  (void)arg;
  sl_http_respond(r, 200, "text/plain", "pong", 4, NULL);
}

static const char *intern(const char *name);

/* Read at each scrape and push: the shared server's and its own-address servers'. */
static void collect_conns(void *arg) {
  int64_t pings = sl_hgroup_pings(arg);
  if (pings) sl_http_count_route(intern("/ping"), 200, pings);
  int64_t n = 0;
  for (sl_http_t *s = arg; s; s = s->own) n += s->nconns + sl_hgroup_conns(s);
  *sl_metric(SL_GAUGE, "sluice_http_connections", "Open HTTP connections (WebSocket and SSE included).", NULL) = n;
}

static void metrics(sl_http_req_t *r, void *arg) {
  (void)arg;
  size_t len;
  char *text = sl_metrics_text(&len);
  sl_http_respond(r, 200, "text/plain; version=0.0.4", text, len, NULL);
  free(text);
}

/* HTTP requests by route and status. Route patterns and owners are
 * interned for good (a request may be answered, a connection dropped, after
 * its route is gone) and series are found once, then kept. */
static char **names_seen;
static size_t nnames_seen;

static const char *intern(const char *name) {
  for (size_t i = 0; i < nnames_seen; i++)
    if (!strcmp(names_seen[i], name)) return names_seen[i];
  names_seen = sl_xrealloc(names_seen, (nnames_seen + 1) * sizeof(*names_seen));
  return names_seen[nnames_seen++] = sl_xstrdup(name);
}

typedef struct rstat { const char *route; int status; int64_t *v; } rstat_t;
static rstat_t *rstats;
static size_t nrstats;

void sl_http_count(const sl_http_req_t *r, int status) { sl_http_count_route(r->route ? r->route : "", status, 1); }

/* route: interned (or ""). */
void sl_http_count_route(const char *route, int status, int64_t n) {
  for (size_t i = 0; i < nrstats; i++)
    if (rstats[i].status == status && rstats[i].route == route) {
      *rstats[i].v += n;
      return;
    }
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  rstats = sl_xrealloc(rstats, (nrstats + 1) * sizeof(*rstats));
  int64_t *v = sl_metric(SL_COUNTER, "sluice_http_requests_total", "HTTP requests answered, by route and status.",
                         "route", route, "status", code, NULL);
  rstats[nrstats++] = (rstat_t){route, status, v};
  *v += n;
}

void sl_http_slow_dropped(const char *stream, const char *label, const char *kind) {
  if (!strcmp(kind, "send_timeout"))
    sl_logf(SL_LOG_WARN, stream, label, "disconnecting a client that took nothing for http.send_timeout");
  else
    sl_logf(SL_LOG_WARN, stream, label, "disconnecting a slow %s client", strcmp(kind, "ws") ? "SSE" : "WebSocket");
  (*sl_metric(SL_COUNTER, "sluice_http_slow_clients_dropped_total",
              "Clients disconnected for not reading: SSE (kind sse) and WebSocket (ws) ones with more than max_buffer "
              "waiting to be sent, any connection that took nothing for http.send_timeout (send_timeout).",
              "stream", stream, "kind", kind, NULL))++;
}

static void ready(sl_http_req_t *r, void *arg) {
  (void)arg;
  char *reasons = sl_health_streams_not_ready();
  json_t *problems = sl_health_problems();
  if (!reasons && !problems) {
    static const char ok[] = "{\"ready\":true}";
    sl_http_respond(r, 200, "application/json", ok, sizeof ok - 1, NULL);
    return;
  }
  char *pj = problems ? json_dumps(problems, JSON_COMPACT) : NULL;
  char *body = sl_xasprintf("{\"ready\":false%s%s%s%s}", reasons ? ",\"streams\":" : "", reasons ? reasons : "",
                            pj ? ",\"problems\":" : "", pj ? pj : "");
  sl_http_respond(r, 503, "application/json", body, strlen(body), NULL);
  free(body);
  free(pj);
  json_decref(problems);
  free(reasons);
}

/* r is rt's: its metrics and its connection's owner say so. */
static void claim(sl_http_req_t *r, const sl_route_t *rt) {
  r->route = intern(rt->pattern);
  if (r->conn) r->conn->owner = intern(rt->owner);
  else if (r->link) r->link->owner = intern(rt->owner);
}

/* Built-in routes and static files are public; component routes need the
 * route's auth, else the section's. Then the handler answers. */
static void pass(const sl_http_t *s, sl_http_req_t *r, const sl_route_t *rt) {
  const sl_http_auth_t *auth = rt->auth ? rt->auth
                               : strcmp(rt->owner, "sluice") && strcmp(rt->owner, "http.static") ? s->auth : NULL;
  if (auth && sl_http_auth_check(auth, r) != 0) return;
  ((sl_http_handler)rt->handler)(r, rt->arg);
}

/* Routes a request the connection layer has read: base_path, CORS, the
 * route table, auth, then the handler (which answers). */
void sl_http_serve(sl_http_t *s, sl_http_req_t *r) {
  size_t bl = strlen(s->base_path);
  if (bl) {
    if (strncmp(r->path, s->base_path, bl) != 0 || (r->path[bl] != '/' && r->path[bl] != 0)) {
      sl_http_error(r, 404, "not found");
      return;
    }
    memmove(r->path, r->path + bl, strlen(r->path + bl) + 1);
    if (!r->path[0]) strcpy(r->path, "/");
  }
  const char *origin = sl_kv_get(&r->headers, "origin");
  r->cors = sl_cors_allow(&s->cors, origin);
  int method_ok;
  const sl_route_t *rt = sl_routes_match(&s->routes, r->method, r->path, &r->params, &method_ok);
  if (strcmp(r->method, "OPTIONS") == 0 && rt) {
    sl_kvlist_t h = {0};
    if (origin && sl_kv_get(&r->headers, "access-control-request-method")) {
      /* A CORS preflight: allowed origins get the policy, others a refusal. */
      const char *allow = r->cors;
      r->cors = NULL;
      if (!allow) {
        sl_http_error(r, 403, "origin not allowed");
        return;
      }
      sl_cors_preflight(&s->cors, allow, &h);
    } else {
      sl_kv_add(&h, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", 44);
    }
    sl_http_respond(r, 204, NULL, NULL, 0, &h);
    sl_kv_clear(&h);
    return;
  }
  if (!rt) {
    sl_http_error(r, 404, "not found");
    return;
  }
  claim(r, rt);
  if (!method_ok) {
    sl_kvlist_t h = {0};
    char allow[256] = "";
    for (char **m = rt->methods; m && *m; m++) {
      size_t used = strlen(allow);
      snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", *m);
    }
    sl_kv_add(&h, "Allow", allow, strlen(allow));
    char *e = sl_xasprintf("{\"error\":\"method %s not allowed\",\"status\":405}", r->method);
    sl_http_respond(r, 405, "application/json", e, strlen(e), &h);
    free(e);
    sl_kv_clear(&h);
    return;
  }
  pass(s, r, rt);
}

int sl_http_reroute(sl_http_req_t *r) {
  sl_http_t *s = r->conn ? r->conn->srv : r->link ? r->link->srv : NULL;
  if (!s) return -1;
  sl_kv_clear(&r->params);
  int method_ok;
  const sl_route_t *rt = sl_routes_match(&s->routes, r->method, r->path, &r->params, &method_ok);
  if (!rt || !method_ok) return -1;
  /* Who the first route's auth let in is for the new route's to say (and
   * that auth goes with the instance it belonged to). */
  free(r->user);
  r->user = NULL;
  r->authenticated = 0;
  r->auth = NULL;
  r->policy = NULL;
  sl_kv_clear(&r->jwt);
  claim(r, rt);
  pass(s, r, rt);
  return 0;
}

/* ---------- server lifetime ---------- */

static void srv_free(void *p) {
  sl_http_t *s = p;
  if (s->own) srv_free(s->own);
  sl_metrics_collector_remove(collect_conns, s);
  sl_http_sweep_free(s);
  for (unsigned i = 0; i < s->routes.n; i++)
    if (s->routes.v[i].handler == (void (*)(void *, void *))sl_http_static_serve) sl_http_static_free(s->routes.v[i].arg);
  sl_routes_free(&s->routes);
  sl_cors_free(&s->cors);
  sl_http_auth_free(s->auth);
  sl_tls_ctx_free(s->tls);
  free(s->config_dir);
  free(s->address);
  free(s->base_path);
  free(s);
}

/* A server with the built-in /ping; the shared one (not own) also serves
 * /ready and /metrics. Limits are the shared server's (its defaults, or the
 * `http:` section's once applied). */
static sl_http_t *srv_new(sl_worker_t *w, const sl_http_t *shared, const char *address) {
  sl_http_t *s = sl_xcalloc(1, sizeof(*s));
  s->worker = w;
  s->address = sl_xstrdup(address);
  s->base_path = sl_xstrdup("");
  s->max_header_bytes = shared ? shared->max_header_bytes : 16 * 1024;
  s->max_body_bytes = shared ? shared->max_body_bytes : 8 * 1024 * 1024;
  s->read_timeout_ms = shared ? shared->read_timeout_ms : 10000;
  s->idle_timeout_ms = shared ? shared->idle_timeout_ms : 60000;
  s->send_timeout_ms = shared ? shared->send_timeout_ms : 60000;
  s->max_connections = shared ? shared->max_connections : 10000;
  const char *env = getenv("SLUICE_HTTP_WORKERS");
  s->workers = env ? atoi(env) : -1;
  if (s->workers < 0) s->workers = (int)uv_available_parallelism();
  if (shared) {
    s->configured = 1;
    s->routes.unit = shared->routes.unit;
    s->routes.staging = shared->routes.staging;
  }
  sl_http_sweep_init(s);
  sl_http_settings_init();
  sl_route_t r = {.pattern = "/ping", .handler = (void (*)(void *, void *))ping, .arg = s, .owner = "sluice"};
  sl_routes_add(&s->routes, &r);
  return s;
}

sl_http_t *sl_http_worker_srv(sl_worker_t *w, sl_http_t *shared) {
  sl_http_t *s = srv_new(w, shared, shared->address);
  free(s->base_path);
  s->base_path = sl_xstrdup(shared->base_path);
  s->tls = shared->tls;   /* borrowed: an SSL_CTX serves sessions on any thread */
  return s;
}

void sl_http_worker_srv_free(sl_http_t *s) {
  s->tls = NULL;
  srv_free(s);
}

static sl_http_t *server(sl_worker_t *w) {
  if (!w->slot[SL_SLOT_HTTP]) {
    sl_http_t *s = srv_new(w, NULL, "0.0.0.0:4195");
    w->slot[SL_SLOT_HTTP] = s;
    w->slot_free[SL_SLOT_HTTP] = srv_free;
    sl_metrics_collector_add(collect_conns, s);
    sl_route_t r = {.pattern = "/ready", .handler = (void (*)(void *, void *))ready, .arg = s, .owner = "sluice"};
    sl_routes_add(&s->routes, &r);
    r.pattern = "/metrics";
    r.handler = (void (*)(void *, void *))metrics;
    sl_routes_add(&s->routes, &r);
  }
  return w->slot[SL_SLOT_HTTP];
}

/* 0, or -1 with a diag naming who already serves pattern. */
static int route_conflict(const sl_route_t *taken, const char *pattern, sl_diags_t *d, const sl_cnode_t *at) {
  if (!taken) return 0;
  int builtin = strcmp(taken->owner, "sluice") == 0;
  sl_diag_add(d, at, "path", "%s is already served by %s%s%s", pattern, builtin ? "sluice itself" : "stream \"",
              builtin ? "" : taken->owner, builtin ? "" : "\"");
  return -1;
}

/* The server at address: the shared one for NULL or "" (or its own address). */
static sl_http_t *server_at(sl_worker_t *w, const char *address) {
  sl_http_t *s = server(w);
  if (!address || !*address || !strcmp(address, s->address)) return s;
  sl_http_t **pp = &s->own;
  for (; *pp; pp = &(*pp)->own)
    if (!strcmp((*pp)->address, address)) return *pp;
  return *pp = srv_new(w, s, address);
}

void sl_http_cors_at(sl_worker_t *w, const char *address, const sl_cnode_t *cors) {
  sl_cors_configure(&server_at(w, address)->cors, cors);
}

int sl_http_route(sl_worker_t *w, const char *pattern, const sl_cnode_t *methods, sl_http_handler h, void *arg,
                  const char *owner, sl_diags_t *d, const sl_cnode_t *at) {
  return sl_http_route_at(w, NULL, pattern, methods, h, arg, owner, d, at);
}

int sl_http_route_at(sl_worker_t *w, const char *address, const char *pattern, const sl_cnode_t *methods,
                     sl_http_handler h, void *arg, const char *owner, sl_diags_t *d, const sl_cnode_t *at) {
  sl_http_t *s = server_at(w, address);
  char *ms[32] = {0};
  unsigned n = 0;
  for (uint32_t i = 0; methods && i < methods->n && n < 31; i++) ms[n++] = methods->items[i]->str;
  sl_route_t r = {.pattern = (char *)pattern, .methods = methods ? ms : NULL,
                  .handler = (void (*)(void *, void *))h, .arg = arg, .owner = (char *)owner};
  return route_conflict(sl_routes_add(&s->routes, &r), pattern, d, at);
}

/* `sluice lint` builds components without a server; their paths meet here
 * instead, so conflicts are lint errors too (one lint per process). */
static sl_routes_t g_lint_routes;

static void lint_routes_free(void) { sl_routes_free(&g_lint_routes); }

void sl_http_lint_reset(void) { sl_routes_free(&g_lint_routes); }

int sl_http_lint_route(const char *pattern, const char *owner, sl_diags_t *d, const sl_cnode_t *at) {
  if (!g_lint_routes.n) {
    sl_route_t builtin = {.pattern = "/ping", .owner = "sluice"};
    sl_routes_add(&g_lint_routes, &builtin);
    builtin.pattern = "/ready";
    sl_routes_add(&g_lint_routes, &builtin);
    builtin.pattern = "/metrics";
    sl_routes_add(&g_lint_routes, &builtin);
    static int registered;
    if (!registered++) atexit(lint_routes_free);
  }
  sl_route_t r = {.pattern = (char *)pattern, .owner = (char *)owner};
  return route_conflict(sl_routes_add(&g_lint_routes, &r), pattern, d, at);
}

void sl_http_route_auth(sl_worker_t *w, const char *pattern, const void *auth) {
  sl_http_route_auth_at(w, NULL, pattern, auth);
}

void sl_http_route_auth_at(sl_worker_t *w, const char *address, const char *pattern, const void *auth) {
  sl_routes_set_auth(&server_at(w, address)->routes, pattern, auth);
}

/* Reloads stage and hand over the routes of every server alike. */
void sl_http_route_unit(sl_worker_t *w, uint64_t unit, int staging) {
  for (sl_http_t *s = server(w); s; s = s->own) {
    s->routes.unit = unit;
    s->routes.staging = staging;
  }
}

void sl_http_route_outgoing(sl_worker_t *w, uint64_t unit, int on) {
  for (sl_http_t *s = w->slot[SL_SLOT_HTTP]; s; s = s->own) sl_routes_mark_outgoing(&s->routes, unit, on);
}

void sl_http_route_handover(sl_worker_t *w) {
  for (sl_http_t *s = w->slot[SL_SLOT_HTTP]; s; s = s->own) sl_routes_handover(&s->routes);
}

int sl_http_route_get(sl_worker_t *w, const char *pattern, sl_http_handler h, void *arg, const char *owner,
                      sl_diags_t *d, const sl_cnode_t *at) {
  return sl_http_route_get_at(w, NULL, pattern, h, arg, owner, d, at);
}

static int route_one_at(sl_worker_t *w, const char *address, const char *method, const char *pattern,
                        sl_http_handler h, void *arg, const char *owner, sl_diags_t *d, const sl_cnode_t *at) {
  sl_cnode_t m = {.type = SL_CN_SCALAR, .str = (char *)method, .len = strlen(method)};
  sl_cnode_t *items[] = {&m};
  sl_cnode_t methods = {.type = SL_CN_SEQ, .items = items, .n = 1};
  return sl_http_route_at(w, address, pattern, &methods, h, arg, owner, d, at);
}

int sl_http_route_get_at(sl_worker_t *w, const char *address, const char *pattern, sl_http_handler h, void *arg,
                         const char *owner, sl_diags_t *d, const sl_cnode_t *at) {
  return route_one_at(w, address, "GET", pattern, h, arg, owner, d, at);
}

int sl_http_route_post(sl_worker_t *w, const char *pattern, sl_http_handler h, void *arg, const char *owner,
                       sl_diags_t *d, const sl_cnode_t *at) {
  return route_one_at(w, NULL, "POST", pattern, h, arg, owner, d, at);
}

void sl_http_unroute(sl_worker_t *w, const char *pattern) { sl_http_unroute_at(w, NULL, pattern); }

void sl_http_unroute_at(sl_worker_t *w, const char *address, const char *pattern) {
  if (w->slot[SL_SLOT_HTTP]) sl_routes_remove(&server_at(w, address)->routes, pattern);
}

static int loopback(const struct sockaddr_storage *sa) {
  if (sa->ss_family == AF_INET) return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* A reachable address serving the APIs that read and change data without
 * auth: said loudly at start, since nothing else would tell. */
static void warn_open_apis(const sl_http_t *s, const struct sockaddr_storage *sa) {
  if (s->auth || loopback(sa)) return;
  static const char *const risks[] = {"read, publish to, create and delete every stream (/stream/)",
                                      "run pipelines of their own (/streams)",
                                      "reload the config and read its status (/admin/reload, /admin/status)"};
  int open[3] = {0};
  for (unsigned i = 0; i < s->routes.n; i++) {
    const sl_route_t *rt = &s->routes.v[i];
    if (rt->auth) continue;
    open[0] |= !strcmp(rt->owner, "store.api") && !strcmp(rt->pattern, "/stream/");
    open[1] |= !strcmp(rt->owner, "streams API");
    open[2] |= !strcmp(rt->owner, "admin");
  }
  const char *parts[3];
  int n = 0;
  for (int i = 0; i < 3; i++)
    if (open[i]) parts[n++] = risks[i];
  if (!n) return;
  char list[512] = "";
  for (int i = 0; i < n; i++) {
    size_t used = strlen(list);
    snprintf(list + used, sizeof list - used, "%s%s", !i ? "" : i == n - 1 ? " and " : ", ", parts[i]);
  }
  sl_warn("http: %s is not a loopback address and there is no http.auth: anyone who reaches it may %s; "
          "set http.auth (with its admin list), or listen on 127.0.0.1", s->address, list);
}

int sl_http_wanted(sl_worker_t *w) {
  sl_http_t *s = w->slot[SL_SLOT_HTTP];
  if (!s || s->disabled) return 0;
  /* Without an http: section, listen only when a component routed a path. */
  int routed = 0;
  for (unsigned i = 0; i < s->routes.n; i++) routed |= strcmp(s->routes.v[i].owner, "sluice") != 0;
  return s->configured || routed;
}

/* s listens on address; with reuseport other sockets may listen on it too
 * (each HTTP worker's: the kernel spreads connections over them). */
int sl_http_listen_on(sl_http_t *s, const char *address, int reuseport) {
  struct sockaddr_storage sa;
  const char *why;
  if (sl_parse_address(address, &sa, &why) != 0) {
    sl_error("http: bad address \"%s\": %s", address, why);
    return -1;
  }
  uv_tcp_init_ex(s->worker->loop, &s->listener, sa.ss_family);
  s->listener.data = s;
  uv_os_fd_t fd;
  int one = 1, rc = 0;
  if (reuseport && uv_fileno((uv_handle_t *)&s->listener, &fd) == 0 &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    rc = uv_translate_sys_error(errno);
  if (rc == 0) rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 511, sl_http_on_connection);
  if (rc != 0) {
    sl_error("http: cannot listen on %s: %s", address, uv_strerror(rc));
    uv_close((uv_handle_t *)&s->listener, NULL);
    return -1;
  }
  s->listening = 1;
  return 0;
}

/* The shared server listens on its workers' loops when it has workers
 * (it then serves their requests), else on its own. */
static int listen_one(sl_http_t *s) {
  struct sockaddr_storage sa;
  const char *why;
  int grouped = s->workers > 1 && s == s->worker->slot[SL_SLOT_HTTP];
  if (grouped ? sl_hgroup_start(s) : sl_http_listen_on(s, s->address, 0)) return -1;
  s->listening = 1;
  char workers[32] = "";
  if (grouped) snprintf(workers, sizeof workers, " (%d workers)", s->workers);
  sl_info("http: listening on %s%s%s%s", s->tls ? "https://" : "", s->address, s->base_path, workers);
  if (sl_parse_address(s->address, &sa, &why) == 0) warn_open_apis(s, &sa);
  return 0;
}

/* The shared server when wanted, and each server of its own address that
 * has not listened yet (a reload may have added one). */
int sl_http_listen(sl_worker_t *w) {
  sl_http_t *s = w->slot[SL_SLOT_HTTP];
  if (!s) return 0;
  int rc = !s->listening && sl_http_wanted(w) ? listen_one(s) : 0;
  for (sl_http_t *o = s->own; o && rc == 0; o = o->own)
    if (!o->listening && !o->stopping) rc = listen_one(o);
  return rc;
}

int sl_http_port(sl_worker_t *w) {
  sl_http_t *s = w->slot[SL_SLOT_HTTP];
  struct sockaddr_storage sa;
  int len = sizeof sa;
  if (s && s->group) return sl_hgroup_port(s);
  if (!s || !s->listening || uv_tcp_getsockname(&s->listener, (struct sockaddr *)&sa, &len) != 0) return -1;
  return ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port : ((struct sockaddr_in6 *)&sa)->sin6_port);
}

void sl_http_srv_stop(sl_http_t *s) {
  s->stopping = 1;
  if (s->listening && (s->hw || !s->group)) {
    sl_fd_closing((uv_handle_t *)&s->listener);
    uv_close((uv_handle_t *)&s->listener, NULL);
  }
  s->listening = 0;
  /* Idle keep-alive connections go now; busy ones close after their answer.
   * A streamed one (WebSocket, SSE) is its owner's to end: it says goodbye
   * (a 1001 close frame, the last chunk) before the engine's end closes
   * whatever is left (sl_http_close), so a client that never reads holds
   * nothing up. */
  for (conn_t *c = SL_DLIST_FIRST(&s->conns, conn_t, node), *next; c; c = next) {
    next = SL_DLIST_NEXT(c, conn_t, node);
    if (sl_http_conn_idle(c) && !c->stream) sl_http_conn_close(c);
  }
}

void sl_http_stop(sl_worker_t *w) {
  for (sl_http_t *s = w->slot[SL_SLOT_HTTP]; s; s = s->own) {
    if (s->group && !s->stopping) sl_hgroup_stop(s);
    sl_http_srv_stop(s);
  }
}

void sl_http_close(sl_worker_t *w) {
  sl_http_stop(w);
  for (sl_http_t *s = w->slot[SL_SLOT_HTTP]; s; s = s->own) {
    sl_hgroup_close(s);
    while (s->conns.first) sl_http_conn_close(SL_DLIST_FIRST(&s->conns, conn_t, node));
  }
}

/* ---------- the `http:` section ---------- */

static const sl_field_t cors_fields[] = {
  {"allowed_origins", SL_F_STRLIST, "[]", 0,
   "Origins allowed to call (`https://app.example.com`), or `*`. Empty: CORS off.", NULL, NULL},
  {"allowed_methods", SL_F_STRLIST, "[GET, HEAD, POST, PUT, PATCH, DELETE]", 0, "Methods a preflight allows.",
   NULL, NULL},
  {"allowed_headers", SL_F_STRLIST, "[Content-Type, Authorization, X-Request-Id]", 0,
   "Request headers a preflight allows.", NULL, NULL},
  {"max_age", SL_F_DURATION, "10m", 0, "How long browsers may cache a preflight answer.", NULL, NULL},
  {0}};

static const sl_field_t tls_fields[] = {
  {"cert_file", SL_F_STRING, NULL, SL_REQUIRED, "Certificate chain (PEM), relative to the config file.", NULL, NULL},
  {"key_file", SL_F_STRING, NULL, SL_REQUIRED, "Private key (PEM), relative to the config file.", NULL, NULL},
  {0}};

static const sl_field_t static_fields[] = {
  {"path", SL_F_STRING, NULL, SL_REQUIRED, "URL prefix, e.g. `/ui`.", NULL, NULL},
  {"dir", SL_F_STRING, NULL, SL_REQUIRED, "Directory served under it.", NULL, NULL},
  {0}};

static const sl_field_t http_fields[] = {
  {"enabled", SL_F_BOOL, "true", 0,
   "`false`: no server at all, not even `/ping` and `/metrics` (Benthos's `http.enabled`); a config that "
   "serves a path (an `http_server` input or output, `streams_api`, `console`) is then an error.", NULL, NULL},
  {"address", SL_F_ADDRESS, "0.0.0.0:4195", 0, "host:port to listen on; the host is an IPv4 address, `localhost` or an IPv6 address in brackets "
   "(`[::]:4195`), empty for every IPv4 interface.", NULL, NULL},
  {"base_path", SL_F_STRING, "", 0,
   "Prefix stripped from every request path before routing (like Tyk's listen path); "
   "requests outside it get 404.", NULL, NULL},
  {"max_header_bytes", SL_F_SIZE, "16KiB", 0, "Request line plus headers beyond this get 431.", NULL, NULL},
  {"max_body_bytes", SL_F_SIZE, "8MiB", 0, "Request bodies beyond this get 413.", NULL, NULL},
  {"read_timeout", SL_F_DURATION, "10s", 0,
   "A request (headers and body) not fully received within this, counted from its first byte however slowly "
   "the rest trickles in, gets 408 and the connection closes. 0: never.", NULL, NULL},
  {"idle_timeout", SL_F_DURATION, "60s", 0,
   "Connections with no request for this long after their last answer (or since they opened) are closed; empty "
   "lines sent between requests do not restart it. 0: never.", NULL, NULL},
  {"send_timeout", SL_F_DURATION, "60s", 0,
   "A connection with bytes waiting to be sent that takes none of them for this long is reset (no WebSocket "
   "close frame: it reads nothing) and counted in `sluice_http_slow_clients_dropped_total{kind=\"send_timeout\"}`. "
   "Counted from the last bytes the client took, not per answer: a slow reader of a large answer or a long "
   "stream stays while it reads, and an idle SSE or WebSocket client (nothing to send) is never closed by it. "
   "0: never.", NULL, NULL},
  {"max_connections", SL_F_INT, "10000", 0, "Connections beyond this are answered 503 and closed.", NULL, NULL},
  {"workers", SL_F_INT, "-1", 0,
   "Threads that accept, read, parse and answer connections, each with its own loop and its own listener on "
   "`address` (SO_REUSEPORT: the kernel spreads new connections); the handlers behind the routes (inputs, the "
   "store, admin) still run on the engine's loop, where a request crosses and its answer crosses back. A "
   "connection that turns into a stream moves to the engine's loop, except an `http_server` output's SSE and "
   "WebSocket subscribers: they stay, and each worker writes the broadcast to its own. `-1` (the default): "
   "one per core (a one-core machine: none). 1: no threads, the connections live on the engine's loop. "
   "Absent, the environment's `SLUICE_HTTP_WORKERS` sets it. Servers of a component's own `address` stay on "
   "the engine's loop. See "
   "docs/http.md \"Workers\".", NULL, NULL},
  {"tls", SL_F_OBJECT, NULL, 0, "Serve HTTPS (and wss://): TLS 1.2 or later via OpenSSL.", NULL, tls_fields},
  {"cors", SL_F_OBJECT, NULL, 0, "Cross-origin requests from browsers.", NULL, cors_fields},
  {"auth", SL_F_OBJECT, NULL, 0,
   "Authentication required on every path but `/ping`, `/ready`, `/metrics` and static files: components' paths "
   "(a component's own `auth` replaces it there), the streams API, `/openapi.json`, and the control APIs "
   "(`/admin/*`, `/streams`), which also need the admin scope (`admin`, `scope_claim`). Failures get 401 with "
   "`WWW-Authenticate`, missing claims and scopes 403 (docs/security.md).",
   NULL, sl_http_server_auth_fields},
  {"streams_api", SL_F_BOOL, "false", 0,
   "Serve the streams management API (`/streams`, as in `sluice streams`) next to the config's own "
   "streams; see docs/reload-and-streams-mode.md.", NULL, NULL},
  {"console", SL_F_BOOL, "false", 0,
   "Serve the browser console at `/console/` (docs/console.md): streams with live charts, event streams, a Lua "
   "playground and a config editor. Its page is code built into the binary, public like static files; "
   "everything it shows or changes goes through `/admin/status`, `/streams` (turned on with it), `/stream/` and "
   "`/console/run`, which need the admin scope when `auth` is set.", NULL, NULL},
  {"streams_api_max_body", SL_F_SIZE, "256KiB", 0,
   "Bodies of the streams API (a stream's config, or the whole set) beyond this get 413 before they are "
   "parsed; what is within it is parsed and checked off the event loop.", NULL, NULL},
  {"streams_dir", SL_F_STRING, "", 0,
   "Directory where streams created over the streams API are kept (`{id}.yaml`) and loaded from at "
   "start. Empty: they live in memory only.", NULL, NULL},
  {"static", SL_F_OBJLIST, "[]", 0,
   "Directories served as files: `GET path/...` reads `dir/...` (relative to the config file). Content "
   "types by extension, `ETag`/`If-None-Match` (304), `index.html` for directories; nothing outside "
   "`dir` is reachable (`..`, encoded slashes and symlinks leading out are refused).", NULL, static_fields},
  {0}};

static int http_apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  if (!node) return 0;
  sl_http_t *s = server(w);
  s->disabled = !sl_conf_bool(node, "enabled", 1);
  s->configured = !s->disabled;
  free(s->address);
  s->address = sl_xstrdup(sl_conf_str(node, "address", "0.0.0.0:4195"));
  const char *bp = sl_conf_str(node, "base_path", "");
  size_t bl = strlen(bp);
  while (bl && bp[bl - 1] == '/') bl--;
  free(s->base_path);
  s->base_path = bl && bp[0] != '/' ? sl_xasprintf("/%.*s", (int)bl, bp) : sl_xstrndup(bp, bl);
  s->max_header_bytes = sl_conf_size(node, "max_header_bytes", s->max_header_bytes);
  s->max_body_bytes = sl_conf_size(node, "max_body_bytes", s->max_body_bytes);
  s->read_timeout_ms = sl_conf_duration_ms(node, "read_timeout", s->read_timeout_ms);
  s->idle_timeout_ms = sl_conf_duration_ms(node, "idle_timeout", s->idle_timeout_ms);
  s->send_timeout_ms = sl_conf_duration_ms(node, "send_timeout", s->send_timeout_ms);
  s->max_connections = sl_conf_int(node, "max_connections", s->max_connections);
  const sl_cnode_t *wn = sl_cnode_get(node, "workers");
  if (wn && !wn->synthetic) s->workers = (int)sl_conf_int(node, "workers", 1);
  if (s->workers < 0) s->workers = (int)uv_available_parallelism();
  sl_cors_configure(&s->cors, sl_cnode_get(node, "cors"));
  const sl_cnode_t *tls = sl_cnode_get(node, "tls");
  if (tls) {
    char *cert = sl_conf_path(node->file, sl_conf_str(tls, "cert_file", ""));
    char *key = sl_conf_path(node->file, sl_conf_str(tls, "key_file", ""));
    char *err = NULL;
    sl_tls_ctx_free(s->tls);
    s->tls = sl_tls_ctx_new(cert, key, &err);
    if (!s->tls) {
      sl_diag_add(d, tls, "http.tls", "%s", err);
      free(err);
    }
    free(cert);
    free(key);
    if (!s->tls) return -1;
  }
  const sl_cnode_t *auth = sl_cnode_get(node, "auth");
  if (auth) {
    sl_http_auth_free(s->auth);
    s->auth = sl_http_auth_new(auth, node->file, d);
  }
  const sl_cnode_t *st = sl_cnode_get(node, "static");
  int rc = 0;
  for (uint32_t i = 0; st && st->type == SL_CN_SEQ && i < st->n; i++) {
    const sl_cnode_t *m = st->items[i];
    const char *path = sl_conf_str(m, "path", "/");
    size_t pl = strlen(path);
    while (pl && path[pl - 1] == '/') pl--;
    char *prefix = sl_xasprintf("%s%.*s/", path[0] == '/' ? "" : "/", (int)pl, path);
    void *mount = sl_http_static_new(prefix, sl_conf_str(m, "dir", "."), node->file, d, sl_cnode_get(m, "dir"));
    if (!mount) {
      free(prefix);
      rc = -1;
      continue;
    }
    static const char *const get[] = {"GET", NULL};
    sl_route_t r = {.pattern = prefix, .methods = (char **)get, .handler = (void (*)(void *, void *))sl_http_static_serve,
                    .arg = mount, .owner = "http.static"};
    const sl_route_t *taken = sl_routes_add(&s->routes, &r);
    if (taken) {
      sl_diag_add(d, sl_cnode_get(m, "path"), "http.static.path", "%s is already served by %s", prefix, taken->owner);
      sl_http_static_free(mount);
      rc = -1;
    }
    free(prefix);
  }
  return rc;
}

/* The first `http_server` component under n, or NULL. */
static const sl_cnode_t *find_server_use(const sl_cnode_t *n, uint32_t *at) {
  for (uint32_t i = 0; n && i < n->n; i++) {
    if (n->type == SL_CN_MAP && !strcmp(n->keys[i], "http_server")) {
      *at = i;
      return n;
    }
    const sl_cnode_t *r = find_server_use(n->items[i], at);
    if (r) return r;
  }
  return NULL;
}

static int http_check(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  int errs = sl_http_auth_lint(sl_cnode_get(node, "auth"), d);
  if (sl_conf_bool(node, "enabled", 1)) return errs;
  uint32_t at = 0;
  const sl_cnode_t *use = find_server_use(root, &at);
  if (use) {
    sl_cnode_t pos = sl_cnode_key_pos(use, at);
    sl_diag_add(d, &pos, "http_server", "serves HTTP, but http.enabled is false");
    errs++;
  }
  for (const char *const *k = (const char *const[]){"streams_api", "console", NULL}; *k; k++) {
    if (!sl_conf_bool(node, *k, 0)) continue;
    char key[32];
    snprintf(key, sizeof key, "http.%s", *k);
    sl_diag_add(d, sl_cnode_get(node, *k), key, "needs the server, but http.enabled is false");
    errs++;
  }
  return errs;
}

static const sl_section_t http_section = {
  .name = "http",
  .desc = "The HTTP server shared by every stream of the process. Built-in routes: `GET /ping` "
          "(`pong`), `GET /ready` (200 when every stream is connected and the store found no damage, else 503 "
          "with the reasons: `streams`, `problems`; see docs/durability.md) and "
          "`GET /metrics` (Prometheus text: Benthos' `input_received`, `processor_sent`, "
          "`output_latency_ns`… by stream, label and path, and sluice's own; see docs/observability.md), "
          "`GET /admin/status` and `POST /admin/reload` (admins only when `auth` is set; see "
          "docs/reload-and-streams-mode.md). "
          "Without this section the server starts only when a component serves a path. Errors are "
          "JSON: `{\"error\": \"...\", \"status\": N}`.",
  .fields = http_fields,
  .apply = http_apply,
  .check = http_check,
};
SL_REGISTER_SECTION(http_section)
