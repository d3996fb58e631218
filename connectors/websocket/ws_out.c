/* `websocket` output: messages sent to a WebSocket server, as a client. */
#include "ws_conn.h"
#include "core/xalloc.h"
#include "http/http_ws.h"
#include <stdlib.h>
#include <string.h>

/* Writes wait while the socket holds this much that the server has not taken. */
enum { MAX_QUEUED = 4 << 20 };

static const char *const msg_types[] = {"binary", "text", "auto", NULL};

static const sl_field_t fields[] = {
  SL_WSC_FIELDS,
  {"message_type", SL_F_ENUM, "binary", 0,
   "How messages go: `binary` (as Benthos sends them), `text` (a message that is not UTF-8 fails its "
   "batch rather than break the protocol), or `auto`: as the `websocket_message_type` metadata says (set by "
   "a websocket input or an http_server's WebSocket), binary without it.", msg_types, NULL},
  {0}};

typedef enum { T_BINARY, T_TEXT, T_AUTO } mtype_t;

/* A batch written, or waiting for its turn. */
typedef struct wr {
  struct wr *next;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  uint64_t upto;             /* written when the socket took write number upto */
  int sent;
} wr_t;

typedef struct ws_out {
  sl_output_t base;
  sl_wsc_t *conn;
  mtype_t type;
  wr_t *head, *tail;
  uint64_t done;             /* socket writes of this connection completed */
} ws_out_t;

static void finish(ws_out_t *w, int status, const char *err) {
  wr_t *r = w->head;
  w->head = r->next;
  if (!w->head) w->tail = NULL;
  r->cb(&w->base, r->b, status, err, r->arg);
  free(r);
}

static int is_text(const ws_out_t *w, const sl_msg_t *m) {
  if (w->type != T_AUTO) return w->type == T_TEXT;
  const char *t = sl_kv_get(&m->meta, "websocket_message_type");
  return t && !strcmp(t, "text");
}

/* Sends every batch that may go now, in order. */
static void pump(ws_out_t *w) {
  for (;;) {
    while (w->head && w->head->sent && w->head->upto <= w->done) finish(w, 0, NULL);
    wr_t *r = w->head;
    while (r && r->sent) r = r->next;
    if (!r || !sl_wsc_is_open(w->conn) || sl_wsc_queued(w->conn) > MAX_QUEUED) return;
    sl_batch_t *b = r->b;
    for (uint32_t i = 0; i < b->n; i++) {
      const sl_msg_t *m = b->msgs[i];
      int text = is_text(w, m);
      if (text && !sl_utf8_valid(m->content->data, m->content->len)) {
        /* Only the head can be failed in place: writes complete in order. */
        if (r == w->head) {
          finish(w, -1, "message_type text, but the message is not UTF-8");
          goto next;
        }
        return;
      }
    }
    for (uint32_t i = 0; i < b->n; i++) {
      const sl_msg_t *m = b->msgs[i];
      sl_wsc_send(w->conn, is_text(w, m), m->content->data, m->content->len);
    }
    r->upto = sl_wsc_flush(w->conn);
    r->sent = 1;
    if (!sl_wsc_is_open(w->conn)) return;   /* the flush found the connection gone */
  next:;
  }
}

static void on_opened(void *arg) {
  ws_out_t *w = arg;
  w->done = 0;
  pump(w);
}

static void on_written(void *arg, uint64_t upto) {
  ws_out_t *w = arg;
  w->done = upto;
  pump(w);
}

/* What was handed to the socket but not taken may not have reached the
 * server: those batches fail (the stream re-sends them); the ones not sent
 * yet wait for the next connection. */
static void on_down(void *arg, const char *why) {
  ws_out_t *w = arg;
  char *err = sl_xasprintf("websocket: %s", why);
  while (w->head && w->head->sent) finish(w, -1, err);
  free(err);
}

static int wout_start(sl_output_t *o) {
  sl_wsc_start(((ws_out_t *)o)->conn, NULL, o);
  return 0;
}

static void wout_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  ws_out_t *w = (ws_out_t *)o;
  wr_t *r = sl_xcalloc(1, sizeof(*r));
  *r = (wr_t){NULL, b, cb, arg, 0, 0};
  if (w->tail) w->tail->next = r;
  else w->head = r;
  w->tail = r;
  pump(w);
}

static void wout_stopping(sl_output_t *o) {
  ws_out_t *w = (ws_out_t *)o;
  /* Unsent batches wait for a connection a shutdown will not bring, unless it is up. */
  if (sl_wsc_is_open(w->conn)) return;
  while (w->head && !w->head->sent) finish(w, SL_WRITE_ABANDONED, "websocket: not connected at shutdown");
}

typedef struct closing {
  sl_output_t *o;
  void (*done)(sl_output_t *, void *);
  void *arg;
} closing_t;

static void closed(void *arg) {
  closing_t k = *(closing_t *)arg;
  free(arg);
  k.done(k.o, k.arg);
}

static void wout_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  closing_t *k = sl_xmalloc(sizeof(*k));
  *k = (closing_t){o, done, arg};
  sl_wsc_stop(((ws_out_t *)o)->conn, closed, k);
}

static void wout_destroy(sl_output_t *o) {
  ws_out_t *w = (ws_out_t *)o;
  sl_wsc_free(w->conn);
  /* Nothing is left: the stream destroys an output after its last write. */
  while (w->head) {
    wr_t *r = w->head;
    w->head = r->next;
    free(r);
  }
  free(w);
}

static const sl_output_vt vt = {wout_start, wout_write, wout_close, wout_destroy, wout_stopping, NULL};
static const sl_spec_t spec;

static void *wout_create(sl_build_t *b, const sl_cnode_t *conf) {
  ws_out_t *w = sl_xcalloc(1, sizeof(*w));
  sl_component_init_output(&w->base, &vt, &spec, b);
  static const sl_wsc_cbs_t cbs = {on_opened, NULL, NULL, on_written, on_down};
  const char *t = sl_conf_str(conf, "message_type", "binary");
  w->type = !strcmp(t, "text") ? T_TEXT : !strcmp(t, "auto") ? T_AUTO : T_BINARY;
  w->conn = sl_wsc_new(b, conf, SL_CM_OUTPUT, &cbs, w);
  if (!w->conn) {
    free(w);
    return NULL;
  }
  return w;
}

static const sl_spec_t spec = {
  .name = "websocket",
  .kind = SL_KIND_OUTPUT,
  .summary = "Connects to a WebSocket server and sends it every message.",
  .desc =
    "A WebSocket client (RFC 6455): it connects to `url` (`wss://` with TLS), sends each message as one "
    "WebSocket message (`message_type`), answers pings and sends its own (`ping_interval`), and reconnects "
    "with backoff (100 ms doubling to 5 s); `/ready` says why it is not connected (the server's close code "
    "and reason, a refused connection, a failed TLS verification).\n\n"
    "**Delivery.** WebSocket has no acknowledgement at the application level, so a batch counts as "
    "delivered once its frames were written to the socket (the kernel took them): at-least-once up to the "
    "socket. A batch whose bytes were still waiting in the socket when the connection ended fails and is "
    "re-sent by the stream on the next connection; bytes the kernel took but the server never read are lost "
    "with the connection. Batches wait (they are not failed) while the client connects.\n\n"
    "**Backpressure.** While the socket holds 4 MiB the server has not read, further batches wait, so a "
    "server that stops reading holds the stream at `max_in_flight` instead of growing memory.\n\n"
    "Metrics are Benthos': `output_sent` and the rest, plus `output_connection_up`, `output_connection_lost` "
    "and `output_connection_failed`.",
  .fields = fields,
  .example =
    "output:\n"
    "  websocket:\n"
    "    url: ws://127.0.0.1:8080/ingest\n"
    "    message_type: text\n",
  .create = wout_create,
};
SL_REGISTER(spec)
