/* One libmosquitto client driven by the worker's loop: its socket watched by
 * a uv_poll (mosquitto_loop_read/write when it is ready, loop_misc once a
 * second), connected without blocking to the first of `urls` that answers,
 * reconnected with backoff when the connection is lost, its state reported
 * to the stream's readiness and to Benthos' `*_connection_*` counters.
 * The client is put in threaded mode (mosquitto_threaded_set) although no
 * thread runs it: libmosquitto then only queues what it sends (PUBACK
 * included) and the socket is written by mosquitto_loop_write alone, which
 * lets an input hold its acknowledgements until its pipeline acknowledged
 * the messages (sl_mqtt_hold_writes): libmosquitto 2.0.11 (Debian bookworm)
 * has no manual acknowledgement and sends PUBACK before on_message.
 * Ownership: the owner creates it with sl_mqtt_new and ends it with
 * sl_mqtt_free (no callback runs after); callbacks run on the loop, inside
 * the calls into libmosquitto. */
#ifndef SL_MQTT_CONN_H
#define SL_MQTT_CONN_H
#include "core/component.h"
#include "core/metrics.h"
#include "http/hclient_conf.h"
#include <mosquitto.h>
#include <mqtt_protocol.h>

/* The fields the input and the output share (Benthos' names). */
extern const sl_field_t sl_mqtt_will_fields[];
extern const char *const sl_mqtt_versions[];
#define SL_MQTT_COMMON_FIELDS                                                                                   \
  {"urls", SL_F_STRLIST, NULL, SL_REQUIRED,                                                                      \
   "Brokers (`tcp://host:1883`, `mqtt://`, or `ssl://`, `tls://`, `mqtts://` for TLS, port 8883 by default); "   \
   "each connection attempt takes the next one.", NULL, NULL},                                                  \
  {"client_id", SL_F_STRING, "", 0,                                                                              \
   "Client identifier; required with `clean_session: false` (the broker keeps the session under it). Empty: "   \
   "one chosen by the broker (libmosquitto's for MQTT 3.1.1).", NULL, NULL},                                    \
  {"protocol_version", SL_F_ENUM, "3.1.1", 0,                                                                     \
   "MQTT version (sluice adds it: Benthos speaks 3.1.1 only). With `5`, user properties become metadata and " \
   "metadata becomes user properties, and a persistent session is kept for `session_expiry`.",                 \
   sl_mqtt_versions, NULL},                                                                                     \
  {"clean_session", SL_F_BOOL, "true", 0,                                                                        \
   "Start a new session on each connection. `false`: the broker keeps the subscriptions and the QoS 1/2 "       \
   "messages not acknowledged while disconnected, and sends them again on the next connection.", NULL, NULL},  \
  {"session_expiry", SL_F_DURATION, "1h", SL_ADVANCED,                                                           \
   "MQTT 5 only: how long the broker keeps a persistent session after a disconnection (sluice adds it: "        \
   "MQTT 5 ends a session at disconnection unless the client asks).", SL_BOUNDS("0s", "4294967s"), NULL},      \
  {"user", SL_F_STRING, "", 0, "User name, if the broker asks for one.", NULL, NULL},                           \
  {"password", SL_F_STRING, "", 0, "Password (with `user`).", NULL, NULL},                                      \
  {"keepalive", SL_F_INT, "30", 0,                                                                               \
   "Seconds between pings when nothing else is sent. An input holds its acknowledgements (and pings) while "  \
   "its pipeline has messages in flight: one held longer than this is sent again by the broker after a "       \
   "reconnection.", SL_BOUNDS("5", "65535"), NULL},                                                             \
  {"connect_timeout", SL_F_DURATION, "30s", 0, "How long a connection attempt may take until the CONNACK.",      \
   SL_BOUNDS("1ms", ""), NULL},                                                                                \
  {"will", SL_F_OBJECT, NULL, 0, "Last will: published by the broker when the connection is lost uncleanly.",  \
   NULL, sl_mqtt_will_fields},                                                                                  \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS (sluice's OpenSSL context, handed to libmosquitto); `ssl://`, `tls://` " \
   "and `mqtts://` URLs always use it.", NULL, sl_tls_conf_fields}

typedef struct sl_mqtt sl_mqtt_t;

typedef struct sl_mqtt_cbs {
  void (*connected)(void *arg, int session_present);   /* CONNACK accepted */
  void (*lost)(void *arg);                             /* the connection ended; a reconnection follows */
  void (*message)(void *arg, const struct mosquitto_message *m, const mosquitto_property *props);  /* optional */
  /* optional: PUBACK/PUBCOMP (reason: MQTT 5's code, >= 0x80 a refusal), or a QoS 0 written */
  void (*published)(void *arg, int mid, int reason);
  void (*io_done)(void *arg);                          /* optional: after each round of reads */
} sl_mqtt_cbs_t;

/* Checks conf (diagnostics in b->diags) and, unless linting, makes the
 * client (linting: a shell that only sl_mqtt_free takes). NULL on a config
 * error. kind names the metrics (input/output). */
sl_mqtt_t *sl_mqtt_new(sl_build_t *b, const sl_cnode_t *conf, sl_cmkind_t kind, const sl_mqtt_cbs_t *cbs, void *arg);
/* Logs under this stream and label, reports readiness for in or out. */
void sl_mqtt_attach(sl_mqtt_t *c, sl_input_t *in, sl_output_t *out);
void sl_mqtt_start(sl_mqtt_t *c);
struct mosquitto *sl_mqtt_mosq(sl_mqtt_t *c);
int sl_mqtt_v5(const sl_mqtt_t *c);
int sl_mqtt_connected(const sl_mqtt_t *c);
/* hold: nothing is written to the socket until released. */
void sl_mqtt_hold_writes(sl_mqtt_t *c, int hold);
/* pause: the socket is not read until resumed. */
void sl_mqtt_pause_reads(sl_mqtt_t *c, int pause);
/* Call after anything queued a packet outside a callback (a publish). */
void sl_mqtt_kick(sl_mqtt_t *c);
/* Sends DISCONNECT when connected, closes the socket and frees c later. */
void sl_mqtt_free(sl_mqtt_t *c);

#endif
