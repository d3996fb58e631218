#include "http_ws.h"
#include "core/xalloc.h"
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

/* wslay's event context costs about 8.5 KiB (two fixed 4 KiB frame buffers),
 * most of an idle connection. So it exists only while wslay has work: it is
 * made for a whole received frame or a message to send, and dropped again
 * once wslay holds nothing (see release_idle). wslay reads whole frames only
 * (see mark_whole_frames), so that between calls no part of a frame is left
 * inside it; the rest waits in `in`. */
struct sl_ws {
  wslay_event_context_ptr ctx;        /* NULL while idle */
  sl_http_stream_t *st;
  sl_ws_handlers_t h;
  void *arg;
  char *in; size_t in_len, in_off;    /* received bytes wslay has not read */
  size_t in_ready;                    /* in[in_off, in_ready) is what wslay may read */
  size_t frame_end;                   /* end of the frame wslay is being given (see recv_cb) */
  int paused;                         /* sl_ws_pause: no further frame is given to wslay */
  int held;                           /* paused with over PAUSED_UNREAD waiting: the socket is not read */
  size_t max_message;
  int frag;                           /* the frames read leave a fragmented message open */
  int refused;                        /* close code for a frame refused from its header, or 0 */
  const char *refused_why;
  uv_timer_t ping;
  int ping_init;
  int in_wslay;                       /* inside wslay_event_recv/send */
  int close_code;                     /* sl_ws_close asked during a callback */
  int done;                           /* transport gone or closed by us */
  int gone;                           /* the peer's transport went away */
  size_t max_buffer;
  int slow;
  uint64_t last_rx;                   /* loop time of the last bytes from the peer */
  int64_t silent_limit_ms;
  uv_loop_t *loop;
};

/* A paused connection still reads (so that a client leaving is noticed)
 * until this much waits unread; then its socket is not read either. */
enum { PAUSED_UNREAD = 64 << 10 };

int sl_utf8_valid(const void *p, size_t n) {
  const unsigned char *s = p;
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user);
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user);
static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user);

static wslay_event_context_ptr ctx_of(sl_ws_t *ws) {
  if (!ws->ctx) {
    static const struct wslay_event_callbacks cb = {recv_cb, send_cb, NULL, NULL, NULL, NULL, on_msg};
    if (wslay_event_context_server_init(&ws->ctx, &cb, ws) != 0) {
      fprintf(stderr, "sluice: out of memory for a WebSocket context\n");
      abort();
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
  }
  return ws->ctx;
}

/* Drops the context when nothing in it would be lost: no part of a frame
 * (wslay read all it was given, and is only given whole frames), no open
 * fragmented message, nothing left to send, no close begun. The next frame
 * or message starts from a fresh one exactly as from this one. */
static void release_idle(sl_ws_t *ws) {
  wslay_event_context_ptr ctx = ws->ctx;
  if (!ctx || ws->in_wslay || ws->frag || ws->refused || ws->in_off != ws->in_ready) return;
  if (wslay_event_get_queued_msg_count(ctx) || wslay_event_want_write(ctx) || !wslay_event_get_read_enabled(ctx) ||
      !wslay_event_get_write_enabled(ctx))
    return;
  wslay_event_context_free(ctx);
  ws->ctx = NULL;
}

/* The length of a frame's header (0: fewer than avail bytes hold it) and
 * of its payload. */
static size_t frame_head(const unsigned char *h, size_t avail, uint64_t *len) {
  if (avail < 2) return 0;
  unsigned len7 = h[1] & 0x7f;
  size_t hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
  if (avail < hl) return 0;
  *len = len7;
  if (len7 == 126) {
    *len = (uint64_t)h[2] << 8 | h[3];
  } else if (len7 == 127) {
    *len = 0;
    for (int k = 2; k < 10; k++) *len = *len << 8 | h[k];
  }
  return hl;
}

/* Advances in_ready over the whole frames received, parsing only each
 * header (2-14 bytes) for the frame's length and whether it ends a message.
 * A frame refused from its header alone (longer than max_message, a length
 * not in its shortest form or with its top bit set, a control frame that is
 * fragmented or over 125 bytes) stops the reading there: the frames before
 * it are read, then the connection closes with a code (wslay would close
 * these without one), and waiting for the whole frame would buffer whatever
 * length the peer claims. */
static void mark_whole_frames(sl_ws_t *ws) {
  while (!ws->refused) {
    size_t avail = ws->in_len - ws->in_ready;
    if (avail < 2) return;
    const unsigned char *h = (const unsigned char *)ws->in + ws->in_ready;
    uint64_t len;
    size_t hl = frame_head(h, avail, &len);
    if (!hl) return;
    unsigned len7 = h[1] & 0x7f;
    int fin = h[0] >> 7, opcode = h[0] & 0x0f;
    if (wslay_is_ctrl_frame(opcode) && (!fin || len > 125)) {
      ws->refused = WSLAY_CODE_PROTOCOL_ERROR;
      ws->refused_why = "control frame fragmented or over 125 bytes";
    } else if ((len7 == 126 && len < 126) || (len7 == 127 && (len < 65536 || len >> 63))) {
      ws->refused = WSLAY_CODE_PROTOCOL_ERROR;
      ws->refused_why = "frame length not in its shortest form, or over 2^63";
    } else if (len > ws->max_message) {
      ws->refused = WSLAY_CODE_MESSAGE_TOO_BIG;
      ws->refused_why = "message too big";
    }
    if (ws->refused || avail - hl < len) return;
    /* Control frames may come between fragments without ending the message. */
    if (!wslay_is_ctrl_frame(opcode)) ws->frag = !fin;
    ws->in_ready += hl + (size_t)len;
  }
}

/* Keeps only what wslay has not read: an idle connection holds no buffer. */
static void compact_in(sl_ws_t *ws) {
  size_t rest = ws->in_len - ws->in_off;
  if (!rest) {
    free(ws->in);
    ws->in = NULL;
  } else if (ws->in_off) {
    memmove(ws->in, ws->in + ws->in_off, rest);
  }
  ws->in_ready -= ws->in_off;
  ws->frame_end -= ws->in_off;
  ws->in_len = rest;
  ws->in_off = 0;
}

static void ping_closed(uv_handle_t *h) { free(h->data); }

/* Frees ws; the transport is already gone or being closed. */
static void ws_free(sl_ws_t *ws) {
  wslay_event_context_free(ws->ctx);
  free(ws->in);
  if (ws->ping_init) {
    uv_timer_stop(&ws->ping);
    uv_close((uv_handle_t *)&ws->ping, ping_closed);
  } else {
    free(ws);
  }
}

ssize_t sl_ws_recv_from(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, const char *in, size_t *off, size_t end) {
  size_t avail = end - *off;
  if (!avail) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = avail < len ? avail : len;
  memcpy(buf, in + *off, n);
  *off += n;
  return (ssize_t)n;
}

/* wslay is given one frame at a time: it reads ahead as far as it is
 * given, and a message it has read it delivers, so a pause asked for by the
 * message before would not stop the ones after it. */
static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
  (void)flags;
  sl_ws_t *ws = user;
  if (ws->in_off == ws->frame_end && ws->in_off < ws->in_ready && !ws->paused) {
    uint64_t plen;
    size_t hl = frame_head((const unsigned char *)ws->in + ws->in_off, ws->in_ready - ws->in_off, &plen);
    ws->frame_end = ws->in_off + hl + (size_t)plen;
  }
  return sl_ws_recv_from(ctx, buf, len, ws->in, &ws->in_off, ws->frame_end);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
  (void)flags;
  sl_ws_t *ws = user;
  int rc = ws->done ? -1 : sl_http_stream_write(ws->st, data, len, ws->max_buffer);
  if (rc < 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  if (rc > 0) ws->slow = 1;
  return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user) {
  sl_ws_t *ws = user;
  if (a->opcode == WSLAY_TEXT_FRAME) {
    if (!sl_utf8_valid(a->msg, a->msg_length)) {
      static const char why[] = "text message is not UTF-8";
      wslay_event_queue_close(ctx, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, (const uint8_t *)why, sizeof why - 1);
      return;
    }
    if (ws->h.on_message && !ws->close_code) ws->h.on_message(ws, 1, (const char *)a->msg, a->msg_length, ws->arg);
  } else if (a->opcode == WSLAY_BINARY_FRAME) {
    if (ws->h.on_message && !ws->close_code) ws->h.on_message(ws, 0, (const char *)a->msg, a->msg_length, ws->arg);
  }
}

/* After wslay ran: finish a close asked for meanwhile, notice that the
 * closing handshake is over, or drop the context if idle. Returns 1 when ws
 * was freed. */
static int settle(sl_ws_t *ws) {
  if (ws->close_code) {
    ws->done = 1;
    sl_http_stream_close(ws->st);
    if (ws->gone && ws->h.on_close) ws->h.on_close(ws, ws->arg);
    ws_free(ws);
    return 1;
  }
  if (!ws->done && !wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx)) {
    /* Close frames exchanged (or a protocol error): the connection ends. */
    ws->done = 1;
    sl_http_stream_close(ws->st);
    if (ws->h.on_close) ws->h.on_close(ws, ws->arg);
    ws_free(ws);
    return 1;
  }
  release_idle(ws);
  return 0;
}

/* A held connection is read again once it is no longer paused. */
static void unhold(sl_ws_t *ws) {
  if (!ws->held || ws->paused) return;
  ws->held = 0;
  if (ws->loop) ws->last_rx = uv_now(ws->loop);   /* its pongs waited unread */
  sl_http_stream_hold(ws->st, 0);
}

/* Frames the whole frames received; 1 when that ended (and freed) ws. */
static int process(sl_ws_t *ws) {
  mark_whole_frames(ws);
  if (ws->paused || (ws->in_ready == ws->in_off && !ws->refused)) return 0;
  ws->in_wslay = 1;
  wslay_event_context_ptr ctx = ctx_of(ws);
  if (ws->in_ready > ws->in_off) wslay_event_recv(ctx);
  if (ws->refused && !ws->paused && wslay_event_get_read_enabled(ctx)) {
    /* What answers the frames before (pongs) goes first: a close queued
     * with it would be sent before it, and nothing after the close. */
    wslay_event_send(ctx);
    wslay_event_queue_close(ctx, (uint16_t)ws->refused, (const uint8_t *)ws->refused_why, strlen(ws->refused_why));
    wslay_event_shutdown_read(ctx);
  }
  wslay_event_send(ctx);
  ws->in_wslay = 0;
  if (settle(ws)) return 1;
  compact_in(ws);
  unhold(ws);
  return 0;
}

static void on_data(void *arg, const char *p, size_t n) {
  sl_ws_t *ws = arg;
  if (ws->done) return;
  if (ws->loop) ws->last_rx = uv_now(ws->loop);
  ws->in = sl_xrealloc(ws->in, ws->in_len + n);
  memcpy(ws->in + ws->in_len, p, n);
  ws->in_len += n;
  /* Frames that came with the upgrade request wait until accept returns. */
  if (ws->st && process(ws)) return;
  if (ws->paused && !ws->held && ws->in_len - ws->in_off > PAUSED_UNREAD) {
    ws->held = 1;
    sl_http_stream_hold(ws->st, 1);
  }
}

static void on_transport_gone(void *arg) {
  sl_ws_t *ws = arg;
  if (ws->done) return;
  ws->done = 1;
  ws->gone = 1;
  if (ws->in_wslay) {
    /* Inside wslay: the send callback will fail and settle() frees. */
    ws->close_code = ws->close_code ? ws->close_code : WSLAY_CODE_ABNORMAL_CLOSURE;
    return;
  }
  sl_http_stream_close(ws->st);
  if (ws->h.on_close) ws->h.on_close(ws, ws->arg);
  ws_free(ws);
}

static void on_ping(uv_timer_t *t) {
  sl_ws_t *ws = t->data;
  if (ws->done) return;
  /* A held peer's pongs wait unread: it is not silent for all we know. */
  if (!ws->held && uv_now(ws->loop) - ws->last_rx > (uint64_t)ws->silent_limit_ms) {
    /* No pong nor anything else for three ping intervals: the peer is gone. */
    ws->in_wslay = 1;
    static const char why[] = "no pong";
    wslay_event_queue_close(ctx_of(ws), WSLAY_CODE_GOING_AWAY, (const uint8_t *)why, sizeof why - 1);
    wslay_event_send(ws->ctx);
    ws->in_wslay = 0;
    ws->gone = 1;
    ws->close_code = WSLAY_CODE_GOING_AWAY;
    settle(ws);
    return;
  }
  struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"", 0};
  wslay_event_queue_msg(ctx_of(ws), &m);
  ws->in_wslay = 1;
  wslay_event_send(ws->ctx);
  ws->in_wslay = 0;
  settle(ws);
}

static int header_has(const sl_http_req_t *r, const char *name, const char *token) {
  const char *v = sl_kv_get(&r->headers, name);
  if (!v) return 0;
  size_t tl = strlen(token);
  for (const char *p = v; *p; p++)
    if (strncasecmp(p, token, tl) == 0) return 1;
  return 0;
}

int sl_ws_is_upgrade(const sl_http_req_t *r) { return header_has(r, "upgrade", "websocket"); }

sl_ws_t *sl_ws_accept(sl_http_req_t *r, const sl_ws_handlers_t *h, void *arg, size_t max_message,
                      int64_t ping_interval_ms, sl_worker_t *w) {
  const char *key = sl_kv_get(&r->headers, "sec-websocket-key");
  const char *version = sl_kv_get(&r->headers, "sec-websocket-version");
  if (!sl_ws_is_upgrade(r) || !header_has(r, "connection", "upgrade") || !key || strlen(key) != 24) {
    sl_http_error(r, 400, "expected a WebSocket upgrade");
    return NULL;
  }
  if (!sl_http_origin_allowed(r)) {
    sl_http_error(r, 403, "origin not allowed");
    return NULL;
  }
  if (!version || strcmp(version, "13") != 0) {
    sl_kvlist_t vh = {0};
    sl_kv_add(&vh, "Sec-WebSocket-Version", "13", 2);
    char *body = sl_http_error_body(426, "unsupported WebSocket version (13 is)");
    sl_http_respond(r, 426, "application/json", body, strlen(body), &vh);
    free(body);
    sl_kv_clear(&vh);
    return NULL;
  }
  char material[128];
  snprintf(material, sizeof material, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)material, strlen(material), digest);
  unsigned char accept[64];
  EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: %s\r\nX-Request-Id: %s\r\n\r\n", accept, r->request_id);
  sl_ws_t *ws = sl_xcalloc(1, sizeof(*ws));
  ws->h = *h;
  ws->arg = arg;
  ws->max_buffer = SL_HTTP_MAX_BUFFER;
  ws->max_message = max_message;
  if (w && ping_interval_ms > 0) {
    ws->loop = w->loop;
    ws->last_rx = uv_now(w->loop);
    ws->silent_limit_ms = 3 * ping_interval_ms;
    uv_timer_init(w->loop, &ws->ping);
    ws->ping.data = ws;
    ws->ping_init = 1;
    uv_timer_start(&ws->ping, on_ping, (uint64_t)ping_interval_ms, (uint64_t)ping_interval_ms);
  }
  sl_http_stream_t *st = sl_http_takeover(r, head, (size_t)hl, on_data, on_transport_gone, ws);
  if (ws->done) {
    /* The client was already gone. */
    sl_http_stream_close(st);
    ws_free(ws);
    return NULL;
  }
  ws->st = st;
  if (ws->in_len && process(ws)) return NULL;
  return ws;
}

int sl_ws_send(sl_ws_t *ws, int text, const void *p, size_t n, size_t max_buffer) {
  if (ws->done || ws->close_code) return -1;
  struct wslay_event_msg m = {text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, p, n};
  if (wslay_event_queue_msg(ctx_of(ws), &m) != 0) return -1;
  ws->max_buffer = max_buffer;
  ws->slow = 0;
  int nested = ws->in_wslay;
  ws->in_wslay = 1;
  wslay_event_send(ws->ctx);
  ws->in_wslay = nested;
  if (ws->done) return -1;
  release_idle(ws);
  return ws->slow;
}

sl_bytes_t *sl_ws_frame(int text, const void *p, size_t n) {
  unsigned char h[10];
  size_t hl = 2;
  h[0] = 0x80 | (text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME);
  if (n < 126) {
    h[1] = (unsigned char)n;
  } else if (n < 65536) {
    h[1] = 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    hl = 4;
  } else {
    h[1] = 127;
    for (int k = 0; k < 8; k++) h[2 + k] = (unsigned char)((uint64_t)n >> (56 - 8 * k));
    hl = 10;
  }
  char *f = sl_xmalloc(hl + n);
  memcpy(f, h, hl);
  memcpy(f + hl, p, n);
  sl_bytes_t *b = sl_bytes_new(f, hl + n);
  free(f);
  return b;
}

int sl_ws_send_frame(sl_ws_t *ws, sl_bytes_t *frame, size_t max_buffer) {
  /* wslay keeps no part of a frame between calls (the transport takes all
   * it is given), so a frame of our own never lands inside one of its. */
  if (ws->done || ws->close_code || (ws->ctx && wslay_event_get_close_sent(ws->ctx))) return -1;
  int rc = sl_http_stream_send(ws->st, frame, max_buffer);
  return rc < 0 ? -1 : rc;
}

sl_http_stream_t *sl_ws_stream(const sl_ws_t *ws) { return ws->st; }

size_t sl_ws_queued(const sl_ws_t *ws) { return ws->done || ws->close_code ? SIZE_MAX : sl_http_stream_queued(ws->st); }

void sl_ws_on_drain(sl_ws_t *ws, size_t below, void (*cb)(void *arg), void *arg) {
  if (!ws->done) sl_http_stream_on_drain(ws->st, below, cb, arg);
}

void sl_ws_pause(sl_ws_t *ws) { ws->paused = 1; }

void sl_ws_resume(sl_ws_t *ws) {
  if (!ws->paused) return;
  ws->paused = 0;
  /* Inside wslay (a message's handler resumed it at once): wslay asks for
   * the next frame itself, and process() reads on after it. */
  if (ws->done || ws->in_wslay || !ws->st || process(ws)) return;
  unhold(ws);
}

void sl_ws_close(sl_ws_t *ws, int code, const char *reason) {
  if (!ws->done) {
    wslay_event_queue_close(ctx_of(ws), (uint16_t)code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    int nested = ws->in_wslay;
    ws->in_wslay = 1;
    wslay_event_send(ws->ctx);
    ws->in_wslay = nested;
  }
  ws->h.on_close = NULL;
  if (ws->in_wslay) {
    ws->close_code = code;   /* freed by settle() once wslay returns */
    return;
  }
  ws->done = 1;
  sl_http_stream_close(ws->st);
  ws_free(ws);
}
