/* The worker's shared HTTP/1.1 server (llhttp on libuv): limits, keep-alive,
 * pipelining, JSON errors, built-in /ping and /ready, and the route table
 * components register with.
 * Ownership: the server belongs to its worker (SL_SLOT_HTTP). A request
 * belongs to the server until a handler answers it with sl_http_respond,
 * which may happen later, on the same loop; answering frees it. */
#ifndef SL_HTTP_H
#define SL_HTTP_H
#include "core/conf.h"
#include "core/msg.h"
#include "core/worker.h"

struct sl_http_req;
typedef struct sl_http_req {
  char method[16];           /* "GET"; HEAD is routed as GET */
  char *path;                /* after base_path, percent-decoded */
  char *query;               /* raw query string without '?', "" if none (in path's allocation) */
  sl_kvlist_t headers;       /* names lower-cased, in arrival order */
  sl_kvlist_t params;        /* {name} segments of the route */
  sl_bytes_t *body;          /* never NULL */
  char remote_addr[64];      /* "ip:port" */
  char request_id[40];       /* X-Request-Id of the request, or generated */
  struct conn *conn;         /* NULL once the client is gone */
  int head;                  /* HEAD: answered without a body */
  const char *cors;          /* Access-Control-Allow-Origin to send, or NULL */
  /* Set by a handler that keeps r waiting: called if the client leaves
   * first (r stays the handler's to answer, which then only frees it). */
  void (*on_gone)(struct sl_http_req *r, void *arg);
  void *gone_arg;
  char *user;                /* authenticated user (JWT sub, API key owner) */
  int authenticated;         /* an auth accepted it (a JWT without `sub` leaves user NULL) */
  const struct sl_http_auth *auth;   /* the auth that accepted it (its admins and scope claim, http_auth.h) */
  const void *policy;        /* what a route's front check decided, for the handler behind it
                              * (the streams API's access rules, store_access.h) */
  const char *route;         /* the route's pattern (for metrics), NULL when none matched */
  sl_kvlist_t jwt;           /* verified claims, values JSON-encoded */
  struct sl_hlink *link;     /* its connection is on an HTTP worker (http.workers; http_int.h) */
  int stay;                  /* sl_http_req_stay */
} sl_http_req_t;

/* Runs on the loop for every request routed to it; must answer exactly once. */
typedef void (*sl_http_handler)(sl_http_req_t *r, void *arg);
/* Routes r again, as it is (base_path already off), on the live routes of
 * the server it came to, its auth checked anew: for a handler that kept r
 * waiting without taking it in and stops (a config reload replaced it), so
 * that whoever serves r's path now takes it. 0: that route's handler has it
 * (or its auth answered); -1: no route takes it now (or the client is gone),
 * r is still the caller's to answer. */
int sl_http_reroute(sl_http_req_t *r);

/* Routes `pattern` ("/a/{id}/b"; a trailing '/' matches the prefix) for the
 * methods in `methods` (NULL: any) to h. A pattern already taken is a config
 * error naming both owners (diag at `at`). Returns 0 or -1. */
int sl_http_route(sl_worker_t *w, const char *pattern, const sl_cnode_t *methods, sl_http_handler h, void *arg,
                  const char *owner, sl_diags_t *d, const sl_cnode_t *at);
/* The same for GET (and HEAD) only. */
int sl_http_route_get(sl_worker_t *w, const char *pattern, sl_http_handler h, void *arg, const char *owner,
                      sl_diags_t *d, const sl_cnode_t *at);
/* The same for POST only. */
int sl_http_route_post(sl_worker_t *w, const char *pattern, sl_http_handler h, void *arg, const char *owner,
                       sl_diags_t *d, const sl_cnode_t *at);
void sl_http_unroute(sl_worker_t *w, const char *pattern);
/* The same on a server of its own listening on address (Benthos's
 * `http_server.address`): made on first use with the shared server's limits,
 * without its TLS, CORS (sl_http_cors_at), base_path and section auth, serving only the routes
 * given to it (and /ping); it listens, stops and closes with the shared one.
 * address NULL, "" or the shared server's: the shared server. */
int sl_http_route_at(sl_worker_t *w, const char *address, const char *pattern, const sl_cnode_t *methods,
                     sl_http_handler h, void *arg, const char *owner, sl_diags_t *d, const sl_cnode_t *at);
int sl_http_route_get_at(sl_worker_t *w, const char *address, const char *pattern, sl_http_handler h, void *arg,
                         const char *owner, sl_diags_t *d, const sl_cnode_t *at);
void sl_http_unroute_at(sl_worker_t *w, const char *address, const char *pattern);
/* Sets the CORS policy of the server of its own at address (a component's
 * Benthos `cors`: its allowed_origins, http.cors's other defaults; NULL:
 * none); the last component built on an address sets it. */
void sl_http_cors_at(sl_worker_t *w, const char *address, const sl_cnode_t *cors);
void sl_http_route_auth_at(sl_worker_t *w, const char *address, const char *pattern, const void *auth);
/* The same conflict check for `sluice lint`, which has no server. */
int sl_http_lint_route(const char *pattern, const char *owner, sl_diags_t *d, const sl_cnode_t *at);
/* Forgets the paths linted so far: a running process lints one stream at a
 * time (request-scoped templates, reloads), its real routes are checked live. */
void sl_http_lint_reset(void);
/* Requests on pattern must pass auth (an sl_http_auth_t the caller keeps
 * alive while routed) instead of the http section's `auth`. */
void sl_http_route_auth(sl_worker_t *w, const char *pattern, const void *auth);

/* Config reload (see http_route.h): routes added, removed or given auth
 * from now on belong to stream instance `unit` (0: none); with staging they
 * wait for sl_http_route_handover. Outgoing marks let a staged route take a
 * pattern from the unit it replaces; the handover retires them. */
void sl_http_route_unit(sl_worker_t *w, uint64_t unit, int staging);
void sl_http_route_outgoing(sl_worker_t *w, uint64_t unit, int on);
void sl_http_route_handover(sl_worker_t *w);

/* The status line's reason phrase of status ("" for unregistered codes). */
const char *sl_http_reason(int status);
/* Bytes a slow client may have waiting to be sent: over it a push client is
 * dropped (the http_server output's default max_buffer, the WebSocket echo)
 * and a durable stream's live reader pauses (store/store_live.c). */
#define SL_HTTP_MAX_BUFFER ((size_t)1 << 20)

/* Logs and counts (sluice_http_slow_clients_dropped_total{stream, kind}) a
 * client about to be dropped for not reading: kind "ws" or "sse" for more
 * than its max_buffer waiting, "send_timeout" for taking nothing for
 * http.send_timeout. The caller closes it (WebSocket over max_buffer: 1008). */
void sl_http_slow_dropped(const char *stream, const char *label, const char *kind);

/* Answers r (headers: extra header pairs, may be NULL) and frees it. */
void sl_http_respond(sl_http_req_t *r, int status, const char *content_type, const void *body, size_t len,
                     const sl_kvlist_t *headers);
/* May a browser page from r's Origin use this server (http.cors)? Requests
 * without Origin, and servers without an allowlist, are allowed. */
int sl_http_origin_allowed(const sl_http_req_t *r);
/* {"error": msg, "status": status} as a new string (caller frees). */
char *sl_http_error_body(int status, const char *msg);
/* Answers with {"error": msg, "status": status}. */
void sl_http_error(sl_http_req_t *r, int status, const char *msg);

/* A streamed answer (SSE, chunked): opened from a request, written to as
 * long as the client stays. Ownership: the opener owns the stream and must
 * call sl_http_stream_close once; on_close (may be NULL) runs when the client
 * leaves first, after which writes fail. */
typedef struct sl_http_stream sl_http_stream_t;
sl_http_stream_t *sl_http_stream_open(sl_http_req_t *r, int status, const char *content_type,
                                      const sl_kvlist_t *headers, void (*on_close)(void *arg), void *arg);
/* The same for server-sent events: 200, text/event-stream, not cached nor
 * buffered by proxies. */
sl_http_stream_t *sl_http_sse_open(sl_http_req_t *r, void (*on_close)(void *arg), void *arg);
/* Takes the connection over (WebSocket): writes `head` (the 101 answer),
 * then every byte the client sends goes to on_data and writes are raw. */
sl_http_stream_t *sl_http_takeover(sl_http_req_t *r, const void *head, size_t len,
                                   void (*on_data)(void *arg, const char *p, size_t n),
                                   void (*on_close)(void *arg), void *arg);
/* 0 written, -1 the client is gone, 1 written but the client is slow (more
 * than max_buffer bytes wait in its socket buffer). */
int sl_http_stream_write(sl_http_stream_t *s, const void *data, size_t len, size_t max_buffer);
/* The same for bytes many streams share (a broadcast formats each event
 * once): queues a ref of b, not a copy, and the queue goes out with one
 * writev before the loop next waits, whatever was queued this turn; "slow"
 * counts what waits in the queue too. Writes made with sl_http_stream_write
 * and closes follow what is queued. */
int sl_http_stream_send(sl_http_stream_t *s, sl_bytes_t *b, size_t max_buffer);
void sl_http_stream_close(sl_http_stream_t *s);
/* Bytes waiting in the socket buffer (SIZE_MAX once the client is gone):
 * lets a reader that got 1 from a write know when to go on. */
size_t sl_http_stream_queued(const sl_http_stream_t *s);
/* hold 1: no further bytes are read from s's client (the kernel keeps
 * them, then TCP holds the client back) until hold 0; a client that leaves
 * meanwhile is not noticed. For streams on this loop: one that stays on a
 * worker (sl_http_req_stay) is read as before. */
void sl_http_stream_hold(sl_http_stream_t *s, int hold);
/* Calls cb(arg, 0) once every byte written or sent to s before this call
 * was taken by its socket (the kernel has it: the process dying loses it no
 * more), or cb(arg, -1) once the client left or s was closed first. Exactly
 * once, in the order asked, perhaps from inside this call or a later call on
 * s (a send, a close): cb must not use s. */
void sl_http_stream_when_written(sl_http_stream_t *s, void (*cb)(void *arg, int status), void *arg);
/* Calls cb(arg) once, when a write completes leaving at most `below` bytes
 * in the socket buffer (a slow reader's wake-up, instead of polling); a later
 * call replaces it, cb NULL cancels. Never after the client left. */
void sl_http_stream_on_drain(sl_http_stream_t *s, size_t below, void (*cb)(void *arg), void *arg);

/* The stream r opens (SSE, WebSocket) stays on the HTTP worker that
 * accepted its connection instead of moving to the engine's loop: writes and
 * closes cross to it in order, sl_http_stream_queued is 0 and on_drain never
 * runs, and a reader more than max_buffer behind is reported to on_slow (a
 * write returns 0). Without HTTP workers this changes nothing. */
void sl_http_req_stay(sl_http_req_t *r);
/* cb(arg) once when s's reader is found too slow (streams that stay on a
 * worker; the others tell it from a write's return code). */
void sl_http_stream_on_slow(sl_http_stream_t *s, void (*cb)(void *arg), void *arg);

/* A fan: the same bytes to many streams, written by the HTTP workers their
 * connections stay on. A send hands each worker with members one copy of
 * the bytes (one message per worker for a loop turn's events), which the
 * worker queues for each of its members; a member more than its max_buffer
 * behind is skipped from then on and reported to its on_slow. Members that
 * are not on a worker are not joined: their owner writes to them itself.
 * Ownership: the creator frees the fan; a member leaves when its stream is
 * closed. Engine's loop only. */
typedef struct sl_http_fan sl_http_fan_t;
sl_http_fan_t *sl_http_fan_new(void);
void sl_http_fan_free(sl_http_fan_t *f);
/* 1: s joined (it gets every later send, after what was written to it
 * before); 0: s is not on a worker, or its client left. */
int sl_http_fan_join(sl_http_fan_t *f, sl_http_stream_t *s, size_t max_buffer);
int sl_http_fan_members(const sl_http_fan_t *f);
void sl_http_fan_send(sl_http_fan_t *f, const sl_bytes_t *b);

/* The decoded value of query parameter name in r (caller frees), or NULL. */
char *sl_http_query(const sl_http_req_t *r, const char *name);

/* The request context of r (refs = 1, no reply; caller unrefs). */
sl_ctx_t *sl_http_ctx_new(const sl_http_req_t *r);

/* Decodes n bytes of application/x-www-form-urlencoded text ('+' is a space,
 * %XX a byte) into a new NUL-terminated string (caller frees). */
char *sl_http_form_decode(const char *s, size_t n, size_t *out_len);

/* Engine hooks: listen once streams are built (when the config has an
 * `http:` section or a route); stop accepting at shutdown; close everything. */
int sl_http_listen(sl_worker_t *w);
/* Will sl_http_listen listen (an `http:` section, or a component's route)? */
int sl_http_wanted(sl_worker_t *w);
void sl_http_stop(sl_worker_t *w);
/* The port the server listens on (useful with address port 0), or -1. */
int sl_http_port(sl_worker_t *w);
void sl_http_close(sl_worker_t *w);

#endif
