/* Internals shared by the HTTP server's files: the server and connection
 * structs, and the seam between the connection layer (http_conn.c: sockets,
 * TLS, parsing, writing, streams) and the server (http.c: routes, dispatch,
 * lifetime, the `http:` section). Not for components: use http.h. */
#ifndef SL_HTTP_INT_H
#define SL_HTTP_INT_H
#include "http.h"
#include "http_auth.h"
#include "http_cors.h"
#include "http_route.h"
#include "http_tls.h"
#include "core/list.h"
#include "core/sbuf.h"
#include "core/xq.h"
#include <llhttp.h>

#define SL_HTTP_RBUF 65536

typedef struct sl_http {
  sl_worker_t *worker;
  int configured;            /* an `http:` section was given */
  int disabled;              /* http.enabled: false */
  char *address;
  char *base_path;           /* "" or "/prefix" without trailing '/' */
  int64_t max_header_bytes, max_body_bytes, read_timeout_ms, idle_timeout_ms, send_timeout_ms, max_connections;
  sl_routes_t routes;
  sl_cors_t cors;
  sl_http_auth_t *auth;      /* the section's, for component routes without their own */
  sl_tls_ctx_t *tls;         /* http.tls, or NULL */
  char *config_dir;          /* for relative static dirs */
  uv_tcp_t listener;
  int listening, stopping;
  sl_dlist_t conns;          /* all open connections (conn_t.node) */
  int64_t nconns;
  uv_timer_t *sweep;         /* send_timeout checks while a connection has bytes waiting
                              * (unref'd: it never keeps the loop alive by itself) */
  int64_t watched;           /* connections with bytes waiting */
  uv_prepare_t *flusher;     /* writes the send queues filled this loop turn (http_sendq.c) */
  struct conn **to_flush;    /* connections whose queue waits for it */
  size_t nto_flush, cap_flush;
  char *rbuf;                /* what its connections read lands in (SL_HTTP_RBUF bytes), once one read */
  struct sl_http *own;       /* servers of their own address (sl_http_route_at), listed from
                                the shared one; each next one from the one before */
  int workers;               /* http.workers: > 1 runs the connections on that many threads */
  struct sl_hgroup *group;   /* the shared server's HTTP workers (http_worker.c), or NULL;
                                on a worker's server: the group it belongs to */
  struct sl_hworker *hw;     /* on a worker's server: its worker; NULL on the engine's loop */
  sl_dlist_t wstreams;       /* on a worker's server: the streams that stay on it (sl_hlink_t.wnode) */
} sl_http_t;

/* A connection's send queue: shared bytes (refs, not copies) and short
 * inline pieces (chunk framing), written with one writev per loop turn.
 * Items are taken from head on; bytes counts what waits. */
typedef struct sl_sendq_item {
  sl_bytes_t *ref;           /* NULL: the bytes are inl */
  uint32_t off, len;         /* what is left of ref->data or inl */
  char inl[16];
} sl_sendq_item_t;

typedef struct sl_sendq {
  sl_sendq_item_t *v;
  uint32_t head, n, cap;
  size_t bytes;
} sl_sendq_t;

typedef struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;          /* read_timeout while a request arrives, idle_timeout between requests */
  uint64_t deadline;         /* loop time it ends at, 0 when stopped (arm_timer) */
  uint64_t wired;            /* bytes handed to uv_write so far */
  uint64_t taken;            /* of which the socket had taken at the last sweep */
  uint64_t taken_at;         /* loop time when the socket last took some */
  int watched;               /* bytes wait: the sweep looks at it */
  int reset;                 /* close with a RST: what waits is dropped, kernel buffers too */
  const char *owner;         /* owner of the route last served (interned), for metrics */
  llhttp_t parser;
  sl_http_t *srv;
  sl_dnode_t node;           /* in srv->conns */
  sl_http_req_t *req;        /* being parsed */
  sl_http_req_t *busy;       /* parsed, with a handler: the parser is paused */
  sl_sbuf_t url, field, value;   /* of the request being parsed (kept for the next) */
  sl_sbuf_t hdrs;            /* its header lines so far, "name\0value\0" each */
  size_t *hvlen;             /* their values' lengths */
  sl_kv_t *hkv;              /* room for them as a list (pack_headers) */
  uint32_t nh, hcap;
  int in_value;
  char *body; size_t body_len, body_cap;
  size_t header_bytes;
  int error_status;          /* set by a callback that refused the request */
  const char *error_msg;
  /* Bytes read and not yet parsed: in[in_off, in_len). Requests are parsed
   * one at a time, each once the one before it is answered, so what a client
   * pipelines waits here; reading pauses while more than a bound waits. */
  char *in; size_t in_off, in_len;
  const char *exec_at;       /* the bytes llhttp_execute is parsing */
  char last_byte;            /* the byte parsed just before exec_at */
  int draining;              /* inside drain(): an answer given there does not recurse */
  int reading;               /* uv_read_start is in effect */
  int eof;                   /* the client half-closed: what it sent whole is answered, then we close */
  int hosts;                 /* Host header lines of the request */
  int keep_alive, closing, handles;
  int writes;                /* uv_write requests in flight */
  struct sl_http_stream *stream;   /* the connection carries a streamed answer */
  sl_sendq_t sendq;          /* shared bytes waiting for the flusher (streams only) */
  size_t flush_at;           /* 1 + its index in srv->to_flush, 0 when not listed */
  sl_tls_t *tls;             /* the session, when the server speaks TLS */
  int finished;              /* no further request: a streamed or taken-over answer ended,
                              * or an answer closes the connection; input is ignored */
  struct sl_hlink *link;     /* on a worker: the request handed to the engine's loop */
  struct sl_hmsg *moving;    /* on a worker: the connection moves to the engine's loop once its writes are done */
  char remote[64];
} conn_t;

/* Connection layer. */
void sl_http_settings_init(void);                          /* llhttp callbacks, once */
void sl_http_on_connection(uv_stream_t *listener, int status);   /* accept (listener->data is the server) */
void sl_http_conn_close(conn_t *c);
void sl_http_sweep_init(sl_http_t *s);                     /* s->sweep, on s's loop */
void sl_http_sweep_free(sl_http_t *s);                     /* and s->rbuf */
int sl_http_conn_idle(const conn_t *c);                    /* no request in progress, nothing to write */

/* A whole file, NUL-terminated (*len without it), or NULL; the caller frees
 * it (auth.jwt's public key, the client's jwt private key). */
char *sl_http_read_file(const char *path, size_t *len);

/* Send queues (http_sendq.c): push takes a ref of b (NULL: inline bytes,
 * at most 16); gather fills up to max buffers from the head; consume drops
 * n written bytes; clear unrefs everything. */
void sl_sendq_push(sl_sendq_t *q, sl_bytes_t *b, const void *inl, size_t len);
int sl_sendq_gather(const sl_sendq_t *q, uv_buf_t *bufs, int max);
void sl_sendq_consume(sl_sendq_t *q, size_t n);
void sl_sendq_clear(sl_sendq_t *q);
/* Moves every item of q to out (q is empty after; out's buffers stay put). */
void sl_sendq_take(sl_sendq_t *q, sl_sendq_t *out);

/* HTTP workers (http_worker.c). A request whose connection is on a worker
 * crosses to the engine's loop under a link that both sides hold (atomic
 * refs); each side reads only its own end: the worker c, the engine r. */
typedef struct sl_hlink {
  int refs;                  /* atomic */
  struct sl_hworker *hw;
  conn_t *c;                 /* worker side: the connection, NULL once it closed or moved */
  sl_http_req_t *r;          /* engine side: the request until answered */
  sl_http_t *srv;            /* engine side: the shared server that serves it */
  const char *owner;         /* engine side: its route's owner (interned for good), for the worker's metrics */
  struct sl_http_stream *st; /* engine side: a stream waiting for the connection to move over,
                              * or one whose connection stays on the worker (sl_http_req_stay) */
  /* Worker side, for a stream that stays: its end there (NULL once the
   * engine closed it), the worker's list of them, and fan membership. */
  struct sl_http_stream *wst;
  sl_dnode_t wnode;
  struct sl_fan_site *site;  /* the fan it receives, or NULL */
  sl_dnode_t fnode;          /* in its site's members */
  size_t max_buffer;
  int slow;                  /* reported slow: fan events skip it */
} sl_hlink_t;

/* What crosses: requests, answers, moves of a connection, and the rest;
 * for a stream that stays on its worker: the client's bytes (HM_RAW), its
 * leaving (HM_SGONE), slowness (HM_SLOW) and the end of a write mark
 * (HM_WRITTEN) one way, its opening, writes, marks (HM_SMARK), close, fan
 * joins and fan events the other. */
enum { HM_REQ, HM_GONE, HM_MOVED, HM_DROPPED, HM_RAW, HM_SGONE, HM_SLOW, HM_WRITTEN,
       HM_RESP, HM_MOVE, HM_STOP, HM_CLOSE, HM_STREAM, HM_SDATA, HM_SCLOSE, HM_JOIN, HM_FAN, HM_SMARK };
typedef struct sl_hmsg {
  sl_xq_node_t node;         /* first: messages cross in an sl_xq */
  int kind;
  sl_hlink_t *link;
  sl_http_req_t *r;          /* HM_REQ */
  int status, head, keep_alive;       /* HM_RESP, HM_WRITTEN: status; HM_MOVED: keep_alive */
  char *ctype, *body, *cors;          /* HM_RESP (copies); HM_MOVED: body is what the client sent after the request */
  size_t len;
  sl_kvlist_t headers;
  char request_id[40];
  int fd;                    /* HM_MOVED: a dup of the socket, -1 when the client left first */
  sl_tls_t *tls;             /* HM_MOVED: the session */
  char remote[64];
  const char *owner;         /* HM_RESP, HM_MOVED, HM_DROPPED: the route's owner (interned) */
  /* HM_STREAM: body is the answer's head, raw a taken-over connection;
   * HM_SDATA, HM_FAN: bytes the message owns (copies made for this worker,
   * so that their refs are never shared between threads); HM_FAN: for each,
   * the fan part on this worker it goes to (a fan ref each); HM_JOIN: that
   * part (a fan ref); HM_SDATA, HM_JOIN: the slow bound. */
  int raw;
  sl_bytes_t **bytes;
  struct sl_fan_site **sites;
  uint32_t nbytes, capbytes;
  struct sl_fan_site *site;
  size_t max_buffer;
} sl_hmsg_t;

/* Starts s->workers threads, each listening on s->address (SO_REUSEPORT). */
int sl_hgroup_start(sl_http_t *s);
void sl_hgroup_stop(sl_http_t *s);
void sl_hgroup_close(sl_http_t *s);           /* stops and joins the threads */
int sl_hgroup_port(const sl_http_t *s);
int64_t sl_hgroup_conns(const sl_http_t *s);
/* Worker side: sends m to the engine's loop / engine side: to m->link's worker. */
void sl_hgroup_to_engine(sl_http_t *ws, sl_hmsg_t *m);
void sl_hlink_send(sl_hlink_t *l, sl_hmsg_t *m);
void sl_hlink_unref(sl_hlink_t *l);
sl_hmsg_t *sl_hmsg_new(int kind, sl_hlink_t *l);
void sl_hmsg_free(sl_hmsg_t *m);
int sl_hgroup_admit(sl_http_t *ws, int delta);
/* Worker side: a GET /ping answered on the worker; engine side: how many since the last call. */
void sl_hgroup_pinged(sl_http_t *ws);
int64_t sl_hgroup_pings(sl_http_t *s);   /* worker side: +1 on accept (0: over max_connections), -1 on close */

/* Engine side: m goes to l's worker after what was sent before. A fan's
 * event (copy, for site, with a fan ref) joins the HM_FAN at the end of
 * what goes to the worker this turn, or starts one: one message per worker
 * per turn for the events of every fan, unless other messages come between. */
void sl_hmsg_add_bytes(sl_hmsg_t *m, sl_bytes_t *b);   /* takes the caller's ref */
void sl_hgroup_fan(struct sl_hworker *hw, struct sl_fan_site *site, sl_bytes_t *copy);
/* Worker side: tells the engine about l (HM_RAW, HM_SGONE, HM_SLOW). */
void sl_hlink_tell(sl_hlink_t *l, sl_hmsg_t *m);
/* sluice_http_worker_streams{worker}: streams that stay on l's worker. */
void sl_hlink_streams(sl_hlink_t *l, int delta);

/* Fans (http_fan.c): a fan's part on one worker: the links of its members
 * there (worker side). The worker's handlers: */
void sl_fan_site_join(struct sl_fan_site *site, sl_hlink_t *l, size_t max_buffer);   /* takes the message's fan ref */
void sl_fan_site_leave(sl_hlink_t *l);
void sl_fan_site_send(sl_hmsg_t *m);   /* HM_FAN */
/* Engine side: the stream of a member closed. */
void sl_fan_site_left(struct sl_fan_site *site);
void sl_fan_site_unref(struct sl_fan_site *site);   /* a message's ref of the fan */
/* Engine side: the link of a stream that stays on a worker (NULL: it does
 * not, or its client left), and the fan part it joined (left at its close). */
sl_hlink_t *sl_http_stream_link(const sl_http_stream_t *st);
void sl_http_stream_set_site(sl_http_stream_t *st, struct sl_fan_site *site);

/* Connection layer for the workers. */
void sl_http_conn_answer(conn_t *c, const sl_hmsg_t *m);        /* HM_RESP on the worker */
void sl_http_conn_move(conn_t *c, sl_hmsg_t *m);                /* HM_MOVE on the worker */
void sl_http_conn_adopt(sl_http_t *s, sl_hmsg_t *m);            /* HM_MOVED on the engine's loop */
/* A stream that stays on its worker: the worker's handlers (HM_STREAM,
 * HM_SDATA, HM_SMARK, HM_SCLOSE; at the worker's close every one left) and
 * the engine's (HM_RAW, HM_SGONE, HM_SLOW, HM_WRITTEN). */
void sl_http_wstream_open(sl_http_t *ws, sl_hmsg_t *m);
/* As sl_http_stream_send; framed: b goes as it is, even to a chunked stream
 * (a chunk made once for every client by sl_http_chunk). */
int sl_http_wstream_send(sl_hlink_t *l, sl_bytes_t *b, int framed, size_t max_buffer);
int sl_http_wstream_chunked(const sl_hlink_t *l);   /* its stream frames what it sends as chunks */
sl_bytes_t *sl_http_chunk(const sl_bytes_t *b);     /* b as one HTTP chunk (new bytes, refs = 1) */
void sl_http_wstream_mark(sl_hlink_t *l);
void sl_http_wstream_close(sl_http_t *ws, sl_hlink_t *l);
void sl_http_wstreams_close(sl_http_t *ws);
void sl_http_rstream_news(sl_hmsg_t *m);
void sl_http_req_free(sl_http_req_t *r);
/* A worker's server like the shared one (limits, TLS), on w's loop. */
sl_http_t *sl_http_worker_srv(sl_worker_t *w, sl_http_t *shared);
void sl_http_worker_srv_free(sl_http_t *s);
int sl_http_listen_on(sl_http_t *s, const char *address, int reuseport);
void sl_http_srv_stop(sl_http_t *s);           /* stops accepting, closes idle connections (streams: their owners) */

/* ThreadSanitizer does not see libuv close a socket (a raw syscall): told
 * before a handle closes, a descriptor number that another loop's thread
 * reuses (HTTP workers accept, close and move sockets) is no race. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SL_TSAN_FDS 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(SL_TSAN_FDS)
#include <sanitizer/linux_syscall_hooks.h>
static inline void sl_fd_closing(uv_handle_t *h) {
  uv_os_fd_t fd;
  if (uv_fileno(h, &fd) == 0) __sanitizer_syscall_pre_close(fd);
}
#else
static inline void sl_fd_closing(uv_handle_t *h) { (void)h; }
#endif

/* Server. */
void sl_http_serve(sl_http_t *s, sl_http_req_t *r);
void sl_http_count(const sl_http_req_t *r, int status);   /* sluice_http_requests_total */
void sl_http_count_route(const char *route, int status, int64_t n);   /* route interned */

#endif
