/* The WebSocket client connection of a websocket input or output (RFC 6455,
 * framing by wslay): resolve, connect, TLS (wss://), the upgrade handshake,
 * pings, the close handshake, and reconnecting with backoff; it reports
 * readiness and Benthos' connection metrics for its component.
 * Ownership: the component owns the connection (sl_wsc_new .. sl_wsc_free);
 * callbacks run on the loop and never after sl_wsc_free. */
#ifndef SL_WS_CONN_H
#define SL_WS_CONN_H
#include "core/component.h"
#include "core/metrics.h"
#include "http/hclient_conf.h"
#include "http/hclient_oauth1.h"

typedef struct sl_wsc sl_wsc_t;

typedef struct sl_wsc_cbs {
  /* Upgraded: messages may be sent. */
  void (*opened)(void *arg);
  /* A whole message (inputs; NULL for outputs). p is valid during the call. */
  void (*message)(void *arg, int text, const uint8_t *p, size_t n);
  /* The messages of one read from the socket have all been given (inputs). */
  void (*read_end)(void *arg);
  /* Socket writes up to number `upto` (sl_wsc_flush) reached the kernel. */
  void (*written)(void *arg, uint64_t upto);
  /* The connection is gone (why in words): writes not yet written never will be. */
  void (*down)(void *arg, const char *why);
} sl_wsc_cbs_t;

/* The fields every websocket component has (url, tls, basic_auth, limits). */
#define SL_WSC_FIELDS                                                                                          \
  {"url", SL_F_STRING, NULL, SL_REQUIRED,                                                                      \
   "`ws://host[:port]/path?query` or `wss://…` (TLS). May use the request context (`${ctx.query.user}`, "     \
   "`$tyk_context.request_data_user`) in a request-scoped stream.", NULL, NULL},                              \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS for `wss://` URLs (or a `ws://` one with `enabled`).", NULL,             \
   sl_wsc_tls_fields},                                                                                         \
  {"basic_auth", SL_F_OBJECT, NULL, 0, "HTTP basic authentication of the upgrade request.", NULL,              \
   sl_hconf_basic_fields},                                                                                        \
  {"jwt", SL_F_OBJECT, NULL, 0, "A JSON Web Token signed once with `private_key_file` and sent as "           \
   "`Authorization: Bearer <token>` on every upgrade request (Benthos's `jwt`).", NULL, sl_hconf_jwt_fields},   \
  {"oauth", SL_F_OBJECT, NULL, 0, "OAuth 1.0a (Benthos's `oauth`): each upgrade request is signed anew "       \
   "(HMAC-SHA1, over GET, the URL and its query's parameters).", NULL, sl_hconf_oauth_fields},               \
  {"proxy_url", SL_F_STRING, "", 0, "An HTTP proxy to reach the server through (Benthos's `proxy_url`): "      \
   "`http://[user:password@]host[:port]`, a tunnel asked for with CONNECT (its user info as "                \
   "`Proxy-Authorization: Basic`); a `wss://` URL's TLS runs end to end inside it. An `https://` proxy is "    \
   "refused.", NULL, NULL},                                                                                    \
  {"max_message_size", SL_F_SIZE, "32MiB", 0,                                                                  \
   "A larger message from the server (its frame header claims more, or its fragments add up to more) closes " \
   "the connection with 1009 before it is read; then the client reconnects.", NULL, NULL},                    \
  {"ping_interval", SL_F_DURATION, "30s", SL_ADVANCED,                                                         \
   "Sends a ping this often, and drops a server silent for three intervals (sluice adds it: a dead peer "    \
   "behind a NAT is otherwise noticed only by TCP, after many minutes). 0 turns pings off.", NULL, NULL},     \
  {"connect_timeout", SL_F_DURATION, "10s", SL_ADVANCED,                                                       \
   "How long resolving, connecting, TLS and the upgrade may take together.", NULL, NULL}

extern const sl_field_t sl_wsc_tls_fields[];

/* NULL with diags. In a lint run nothing is started. */
sl_wsc_t *sl_wsc_new(sl_build_t *b, const sl_cnode_t *conf, sl_cmkind_t kind, const sl_wsc_cbs_t *cbs, void *arg);
/* Begins connecting for in or out (one of them; attached to its stream). */
void sl_wsc_start(sl_wsc_t *c, sl_input_t *in, sl_output_t *out);
int sl_wsc_is_open(const sl_wsc_t *c);
/* Queues a message (copied). 0, or -1 when not open. */
int sl_wsc_send(sl_wsc_t *c, int text, const void *p, size_t n);
/* Writes what is queued to the socket; returns the number of the last
 * socket write so far (0: none yet), for cbs->written. */
uint64_t sl_wsc_flush(sl_wsc_t *c);
/* Bytes handed to the socket that it has not taken yet. */
size_t sl_wsc_queued(const sl_wsc_t *c);
/* Stops (1) or resumes (0) reading from the server: backpressure. */
void sl_wsc_pause(sl_wsc_t *c, int pause);
/* Ends the connection with the close handshake (1000) and stops
 * reconnecting; done (may be NULL) runs once the socket is closed. */
void sl_wsc_stop(sl_wsc_t *c, void (*done)(void *arg), void *arg);
/* Stops if needed, and frees once every handle is closed. */
void sl_wsc_free(sl_wsc_t *c);

#endif
