/* `websocket` input: messages a WebSocket server sends, as a client. */
#include "ws_conn.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static const char *const msg_types[] = {"binary", "text", NULL};

static const sl_field_t fields[] = {
  SL_WSC_FIELDS,
  {"open_message", SL_F_STRING, "", 0,
   "Sent to the server each time a connection opens (a subscription request, say); empty: nothing.", NULL, NULL},
  {"open_message_type", SL_F_ENUM, "binary", 0, "Whether `open_message` goes as a binary or a text message.",
   msg_types, NULL},
  {0}};

typedef struct ws_in {
  sl_input_t base;
  sl_wsc_t *conn;
  char *open_message;
  int open_text;
  sl_batch_t *pending;       /* the messages of one read, emitted as one batch */
} ws_in_t;

static void on_opened(void *arg) {
  ws_in_t *w = arg;
  if (*w->open_message) sl_wsc_send(w->conn, w->open_text, w->open_message, strlen(w->open_message));
}

static void on_message(void *arg, int text, const uint8_t *p, size_t n) {
  ws_in_t *w = arg;
  sl_msg_t *m = sl_msg_new(p, n);
  sl_kv_add(&m->meta, "websocket_message_type", text ? "text" : "binary", text ? 4 : 6);
  if (!w->pending) w->pending = sl_batch_new(8);
  sl_batch_push(w->pending, m);
}

/* The end of a read: what it brought goes out as one transaction, and
 * reading waits while the stream is full. */
static void on_read_end(void *arg) {
  ws_in_t *w = arg;
  if (w->pending) {
    sl_batch_t *b = w->pending;
    w->pending = NULL;
    sl_input_emit(&w->base, b, NULL, NULL);
  }
  if (!sl_input_ready(&w->base)) sl_wsc_pause(w->conn, 1);
}

static int win_start(sl_input_t *in) {
  ws_in_t *w = (ws_in_t *)in;
  sl_wsc_start(w->conn, in, NULL);
  return 0;
}

static void win_resume(sl_input_t *in) { sl_wsc_pause(((ws_in_t *)in)->conn, 0); }

static void win_stop(sl_input_t *in) { sl_wsc_stop(((ws_in_t *)in)->conn, NULL, NULL); }

static void win_destroy(sl_input_t *in) {
  ws_in_t *w = (ws_in_t *)in;
  sl_wsc_free(w->conn);
  sl_batch_free(w->pending);
  free(w->open_message);
  free(w);
}

static const sl_input_vt vt = {win_start, win_resume, win_stop, win_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *win_create(sl_build_t *b, const sl_cnode_t *conf) {
  ws_in_t *w = sl_xcalloc(1, sizeof(*w));
  sl_component_init_input(&w->base, &vt, &spec, b);
  static const sl_wsc_cbs_t cbs = {on_opened, on_message, on_read_end, NULL, NULL};
  w->conn = sl_wsc_new(b, conf, SL_CM_INPUT, &cbs, w);
  w->open_message = sl_xstrdup(sl_conf_str(conf, "open_message", ""));
  w->open_text = strcmp(sl_conf_str(conf, "open_message_type", "binary"), "text") == 0;
  if (!w->conn) {
    win_destroy(&w->base);
    return NULL;
  }
  return w;
}

static const sl_spec_t spec = {
  .name = "websocket",
  .kind = SL_KIND_INPUT,
  .summary = "Connects to a WebSocket server and reads the messages it sends.",
  .desc =
    "A WebSocket client (RFC 6455): it connects to `url` (`wss://` with TLS), sends `open_message` on every "
    "connection, answers the server's pings and sends its own (`ping_interval`), and reconnects with backoff "
    "(100 ms doubling to 5 s) whenever the connection ends: the server closed it (`/ready` gives its close "
    "code and reason), the network failed, or the server broke the protocol (a bad opcode or masked frame "
    "closes with 1002, a text message that is not UTF-8 with 1007, a message over `max_message_size` with "
    "1009, before its payload is read).\n\n"
    "Each message carries `websocket_message_type` (`text` or `binary`) as metadata. The messages of one read "
    "from the socket form one batch. While the stream is at `max_in_flight` the client stops reading, so "
    "the server's writes back up (TCP backpressure) instead of memory growing.\n\n"
    "WebSocket has no acknowledgement at the application level: a message is taken from the server when it "
    "is read, and one the pipeline fails is re-sent through the pipeline by the stream's retry policy; one "
    "read but not yet delivered when sluice is killed is lost.\n\n"
    "Metrics are Benthos': `input_received` and the rest, plus `input_connection_up`, "
    "`input_connection_lost` and `input_connection_failed`.",
  .fields = fields,
  .example =
    "input:\n"
    "  websocket:\n"
    "    url: wss://feed.example.com/ticks\n"
    "    open_message: '{\"subscribe\": \"prices\"}'\n"
    "    open_message_type: text\n",
  .create = win_create,
};
SL_REGISTER(spec)
