/* `mqtt` input: subscribes to `topics` (wildcards allowed) and emits what
 * each round of reads brought as one batch. A QoS 1 message is
 * acknowledged to the broker (PUBACK; for QoS 2 the PUBCOMP, libmosquitto
 * sends PUBREC on receipt: docs/mqtt.md) only once the pipeline
 * acknowledged it: the client's writes are held while messages of
 * the connection are in flight (mqtt_conn.h says how), and released when
 * every one of them is acknowledged, since MQTT acknowledges in order. A
 * connection lost with messages in flight acknowledged none of them: with a
 * persistent session the broker sends them again (at-least-once). */
#include "mqtt_conn.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  SL_MQTT_COMMON_FIELDS,
  {"topics", SL_F_STRLIST, NULL, SL_REQUIRED, "Topics to subscribe to; `+` and `#` wildcards allowed.", NULL, NULL},
  {"qos", SL_F_INT, "1", 0,
   "The QoS subscribed with (the broker sends each message at the lower of this and its publisher's). "
   "A QoS 1 message is acknowledged (PUBACK) once the pipeline acknowledged it; a QoS 2 one is completed "
   "(PUBCOMP) then, but libmosquitto sends its PUBREC on receipt: at most once across a crash.",
   SL_BOUNDS("0", "2"), NULL},
  {"max_in_flight", SL_F_INT, "1024", 0,
   "QoS 1/2 messages read and not yet acknowledged to the broker at most: the input stops reading at this "
   "many until the pipeline acknowledged them (sluice adds it). What comes twice after a crash is at most "
   "this many, plus acknowledgements the broker had not read yet; the broker's own window (Mosquitto's "
   "`max_inflight_messages`) does not bound it: Mosquitto before 2.0.13 (Debian bookworm's 2.0.11) sends up "
   "to that many more for every acknowledgement.",
   SL_BOUNDS("1", "65535"), NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct min {
  sl_input_t base;
  sl_mqtt_t *c;
  char **topics;
  int ntopics, qos;
  sl_batch_t *pending;       /* read in this round */
  int64_t pending_acks;      /* QoS 1/2 messages in it */
  int64_t unacked;           /* QoS 1/2 messages of this connection in the pipeline */
  int64_t held;              /* QoS 1/2 messages read since the acknowledgements were last released */
  int64_t max_in_flight;     /* held at which reading stops */
  uint64_t gen;              /* the connection's number: acks of an older one do nothing */
  int failed;                /* a transaction of this connection failed: nothing is acknowledged */
  int stopped;
} min_t;

typedef struct ack { min_t *in; uint64_t gen; int64_t n; } ack_t;

static const char *sname(min_t *in) { return in->base.stream ? in->base.stream->name : NULL; }

/* Reads stop while the stream takes no more, or max_in_flight messages wait
 * for their acknowledgements: until all of them are released, which needs
 * every one through the pipeline (releasing is all or nothing). */
static void flow(min_t *in) {
  if (!in->stopped && in->c)
    sl_mqtt_pause_reads(in->c, !sl_input_ready(&in->base) || in->held >= in->max_in_flight);
}

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  (void)err;
  ack_t *a = arg;
  min_t *in = a->in;
  if (a->gen == in->gen) {
    in->unacked -= a->n;
    if (status != 0) in->failed = 1;   /* only at shutdown: the broker sends them again */
    if (in->unacked == 0 && !in->failed && in->c) {
      in->held = 0;
      sl_mqtt_hold_writes(in->c, 0);
    }
    flow(in);
  }
  free(a);
}

static void on_connected(void *arg, int session_present) {
  min_t *in = arg;
  struct mosquitto *m = sl_mqtt_mosq(in->c);
  int rc = mosquitto_subscribe_multiple(m, NULL, in->ntopics, in->topics, in->qos, 0, NULL);
  if (rc != MOSQ_ERR_SUCCESS)
    sl_logf(SL_LOG_ERROR, sname(in), in->base.label, "mqtt: subscribe: %s", mosquitto_strerror(rc));
  else
    sl_logf(SL_LOG_INFO, sname(in), in->base.label, "mqtt: connected%s, subscribed to %d topic(s)",
            session_present ? " (session resumed)" : "", in->ntopics);
}

static void on_lost(void *arg) {
  min_t *in = arg;
  in->gen++;
  in->unacked = 0;
  in->held = 0;
  in->failed = 0;
  sl_mqtt_hold_writes(in->c, 0);
  flow(in);
}

static void on_message(void *arg, const struct mosquitto_message *mm, const mosquitto_property *props) {
  min_t *in = arg;
  if (in->stopped) {
    /* Read after the stream stopped taking messages: its acknowledgement is
     * queued already, so nothing more may be written on this connection. */
    if (mm->qos > 0) {
      in->failed = 1;
      sl_mqtt_hold_writes(in->c, 1);
    }
    return;
  }
  sl_msg_t *m = sl_msg_new(mm->payload, (size_t)(mm->payloadlen > 0 ? mm->payloadlen : 0));
  char qos[4], mid[12];
  snprintf(qos, sizeof qos, "%d", mm->qos);
  snprintf(mid, sizeof mid, "%d", mm->mid);
  sl_kv_t kv[5] = {
    {"mqtt_topic", mm->topic, strlen(mm->topic)},
    {"mqtt_qos", qos, strlen(qos)},
    {"mqtt_retained", mm->retain ? "true" : "false", mm->retain ? 4 : 5},
    {"mqtt_duplicate", "false", 5},   /* libmosquitto does not pass the DUP flag on */
    {"mqtt_message_id", mid, strlen(mid)},
  };
  sl_kv_pack(&m->meta, kv, 5);
  for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
    char *k = NULL, *v = NULL;
    if (mosquitto_property_identifier(p) == MQTT_PROP_USER_PROPERTY &&
        mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, false))
      sl_kv_add(&m->meta, k, v, strlen(v));
    free(k);
    free(v);
  }
  if (!in->pending) in->pending = sl_batch_new(64);
  sl_batch_push(in->pending, m);
  if (mm->qos > 0) {
    in->pending_acks++;
    if (++in->held >= in->max_in_flight) sl_mqtt_pause_reads(in->c, 1);   /* before the next read */
  }
}

/* After a round of reads: what it brought goes out as one transaction. */
static void on_io_done(void *arg) {
  min_t *in = arg;
  if (in->pending) {
    sl_batch_t *b = in->pending;
    ack_t *a = sl_xmalloc(sizeof(*a));
    *a = (ack_t){in, in->gen, in->pending_acks};
    in->pending = NULL;
    if (a->n) {
      in->unacked += a->n;   /* before the emit: an ack may come inside it */
      sl_mqtt_hold_writes(in->c, 1);
    }
    in->pending_acks = 0;
    sl_input_emit(&in->base, b, on_txn, a);
  }
  flow(in);
}

static int min_start(sl_input_t *base) {
  min_t *in = (min_t *)base;
  sl_mqtt_attach(in->c, base, NULL);
  sl_mqtt_start(in->c);
  return 0;
}

static void min_resume(sl_input_t *base) { flow((min_t *)base); }

static void min_stop(sl_input_t *base) {
  min_t *in = (min_t *)base;
  in->stopped = 1;
  if (in->c) sl_mqtt_pause_reads(in->c, 1);
}

/* Every transaction completed: DISCONNECT and close, so that the loop ends. */
static void min_close(sl_input_t *base, void (*done)(sl_input_t *, void *), void *arg) {
  min_t *in = (min_t *)base;
  sl_mqtt_free(in->c);
  in->c = NULL;
  done(base, arg);
}

static void min_destroy(sl_input_t *base) {
  min_t *in = (min_t *)base;
  sl_mqtt_free(in->c);
  if (in->pending) sl_batch_free(in->pending);
  for (int i = 0; i < in->ntopics; i++) free(in->topics[i]);
  free(in->topics);
  free(in);
}

static const sl_input_vt vt = {min_start, min_resume, min_stop, min_destroy, min_close, NULL};
static const sl_spec_t spec;

static void *min_create(sl_build_t *b, const sl_cnode_t *conf) {
  min_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &vt, &spec, b);
  in->qos = (int)sl_conf_int(conf, "qos", 1);
  in->max_in_flight = sl_conf_int(conf, "max_in_flight", 1024);
  const sl_cnode_t *l = sl_cnode_get(conf, "topics");
  int bad = 0;
  for (uint32_t i = 0; l && l->type == SL_CN_SEQ && i < l->n; i++) {
    if (mosquitto_sub_topic_check(l->items[i]->str) != MOSQ_ERR_SUCCESS ||
        mosquitto_validate_utf8(l->items[i]->str, (int)strlen(l->items[i]->str)) != MOSQ_ERR_SUCCESS) {
      sl_diag_add(b->diags, l->items[i], "topics", "not a valid MQTT topic filter: %s", l->items[i]->str);
      bad = 1;
      continue;
    }
    in->topics = sl_xrealloc(in->topics, (i + 1) * sizeof(*in->topics));
    in->topics[in->ntopics++] = sl_xstrdup(l->items[i]->str);
  }
  if (!bad && !in->ntopics) {
    sl_diag_add(b->diags, l ? l : conf, "topics", "name at least one topic");
    bad = 1;
  }
  static const sl_mqtt_cbs_t cbs = {on_connected, on_lost, on_message, NULL, on_io_done};
  in->c = sl_mqtt_new(b, conf, SL_CM_INPUT, &cbs, in);
  if (bad || !in->c) {
    min_destroy(&in->base);
    return NULL;
  }
  return in;
}

static const sl_spec_t spec = {
  .name = "mqtt",
  .kind = SL_KIND_INPUT,
  .summary = "Subscribes to MQTT topics (libmosquitto), acknowledging QoS 1 messages only once processed.",
  .desc =
    "Field and metadata names are Benthos'. Each message carries `mqtt_topic`, `mqtt_qos`, `mqtt_retained`, "
    "`mqtt_duplicate` and `mqtt_message_id` as metadata, and with `protocol_version: 5` its user properties. "
    "A QoS 1 or 2 message is acknowledged to the broker only after the pipeline acknowledged it (delivered "
    "by the output, or deliberately dropped): the client holds what it would send (acknowledgements in order, "
    "and pings) while messages of the connection are in flight, so a crash or a lost connection leaves them "
    "unacknowledged and, with `clean_session: false` and a `client_id`, the broker sends them again: at "
    "most `max_in_flight` of them were read, so at most that many come twice. QoS 2 is at most once across a "
    "crash or a stop: libmosquitto (2.0) sends PUBREC on receipt and delivers the message only at the broker's PUBREL, after which the broker keeps only its id, "
    "so what was between the two is lost, never duplicated (docs/mqtt.md); `qos: 1` is at-least-once, QoS 2 "
    "publishes included (the broker downgrades them). `mqtt_duplicate` is always `false`: libmosquitto does not pass the flag on. "
    "While disconnected the stream reports not ready on `/ready` with the reason, and reconnects with "
    "backoff (100 ms doubling to 5 s), taking the next of `urls` each time.",
  .fields = fields,
  .example =
    "input:\n"
    "  mqtt:\n"
    "    urls: [tcp://localhost:1883]\n"
    "    topics: [sensors/+/temperature]\n"
    "    client_id: sluice-sensors\n"
    "    clean_session: false\n"
    "    qos: 1\n",
  .create = min_create,
};
SL_REGISTER(spec)
