/* WebSocket connections (RFC 6455, framing by wslay) on the HTTP server:
 * upgrade handshake, text/binary messages, UTF-8 checks, size limit (1009),
 * pings, close codes.
 * Ownership: the accepting handler owns the sl_ws_t until it calls
 * sl_ws_close, or until on_close runs (the peer left); either frees it. */
#ifndef SL_HTTP_WS_H
#define SL_HTTP_WS_H
#include "http.h"
#include <wslay/wslay.h>

typedef struct sl_ws sl_ws_t;

typedef struct sl_ws_handlers {
  /* May be NULL. Frames that came with the upgrade request reach it before
   * sl_ws_accept returns: it gets ws as an argument for that. */
  void (*on_message)(sl_ws_t *ws, int text, const char *p, size_t n, void *arg);
  void (*on_close)(sl_ws_t *ws, void *arg);   /* the peer left; ws is freed after this returns */
} sl_ws_handlers_t;

/* RFC 3629 UTF-8 (text frames must be; else the close code is 1007). */
int sl_utf8_valid(const void *p, size_t n);

/* Is r a WebSocket upgrade request? */
int sl_ws_is_upgrade(const sl_http_req_t *r);
/* Answers r with 101 and returns the connection, or answers 400 (426 for a
 * version other than 13) and returns NULL when r is not a valid upgrade (or
 * the client left at once, in which case on_close may already have run).
 * The server pings every ping_interval_ms and drops a peer silent for three
 * intervals. */
sl_ws_t *sl_ws_accept(sl_http_req_t *r, const sl_ws_handlers_t *h, void *arg, size_t max_message,
                      int64_t ping_interval_ms, sl_worker_t *w);
/* Queues a message; 0 sent, 1 sent but the peer is slow (max_buffer bytes
 * wait), -1 the connection is closing. */
int sl_ws_send(sl_ws_t *ws, int text, const void *p, size_t n, size_t max_buffer);
/* A whole text or binary message as one server frame (unmasked), formatted
 * once to be sent to many connections (refs = 1, the caller unrefs). */
sl_bytes_t *sl_ws_frame(int text, const void *p, size_t n);
/* Queues a frame from sl_ws_frame (a ref, not a copy; see
 * sl_http_stream_send); returns as sl_ws_send. */
int sl_ws_send_frame(sl_ws_t *ws, sl_bytes_t *frame, size_t max_buffer);
/* The stream under ws (sl_http_stream_on_slow, sl_http_fan_join). */
sl_http_stream_t *sl_ws_stream(const sl_ws_t *ws);
/* Bytes waiting to be sent (SIZE_MAX once closing). */
size_t sl_ws_queued(const sl_ws_t *ws);
/* sl_http_stream_on_drain for the connection under ws. */
void sl_ws_on_drain(sl_ws_t *ws, size_t below, void (*cb)(void *arg), void *arg);
/* Delivers no further message until sl_ws_resume (the one being delivered
 * may ask: the frames after it wait, control frames too); past a bound the
 * client's bytes wait unread in the kernel. Pings still go out. */
void sl_ws_pause(sl_ws_t *ws);
/* Delivers what waited, in order (on_message may pause again, or the
 * connection end: on_close runs), then reads the client again. */
void sl_ws_resume(sl_ws_t *ws);
/* Sends a close frame with code and frees ws (no on_close follows). */
void sl_ws_close(sl_ws_t *ws, int code, const char *reason);
/* The body of a wslay recv callback (server and client side): copies up to
 * len bytes of in[*off, end) to buf and advances *off; with none left it
 * sets WSLAY_ERR_WOULDBLOCK and returns -1. */
ssize_t sl_ws_recv_from(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, const char *in, size_t *off, size_t end);

#endif
