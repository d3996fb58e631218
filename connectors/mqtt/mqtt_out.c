/* `mqtt` output: publishes each message of a batch to `topic` (evaluated
 * per message) and acknowledges the batch once the broker acknowledged
 * every message of it (PUBACK at QoS 1, PUBCOMP at QoS 2; at QoS 0 once
 * written to the socket). At most `max_in_flight` messages wait for the
 * broker; later ones wait their turn, in order. A QoS 1/2 message in
 * flight when the connection is lost is sent again by libmosquitto after
 * the reconnection; QoS 0 ones fail (the stream's retry policy re-sends).
 * Each message's outcome is kept: a retry of a failed batch publishes only
 * what failed, and a `fallback` gets only those (core/kept.h). */
#include "mqtt_conn.h"
#include "core/kept.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  SL_MQTT_COMMON_FIELDS,
  {"topic", SL_F_STRING, NULL, SL_REQUIRED,
   "Topic, interpolated per message (`sensors/${! meta.device }`); may use the request context "
   "(`${ctx.jwt.sub}`, `$tyk_context.request_data_user`) in a request-scoped stream.", NULL, NULL},
  {"qos", SL_F_INT, "1", 0, "QoS of the messages published.", SL_BOUNDS("0", "2"), NULL},
  {"retained", SL_F_BOOL, "false", 0, "Publish with the retain flag: the broker keeps the last one per topic.",
   NULL, NULL},
  {"max_in_flight", SL_F_INT, NULL, 0,
   "Messages waiting for the broker's acknowledgement at most: 64 unless set, 20 at QoS 2 over MQTT 3.1.1. "
   "A broker takes at most its own number of QoS 2 messages in flight from a client (Mosquitto's "
   "`max_inflight_messages`, 20 by default) and closes the connection of one that sends more, which then "
   "sends them again on every reconnection; an MQTT 5 broker announces its number and the client keeps to it, "
   "an MQTT 3.1.1 one does not: set this at or under it.", SL_BOUNDS("1", "65535"), NULL},
  {"metadata_properties", SL_F_BOOL, "true", 0,
   "MQTT 5: send the message's metadata (but its `mqtt_*` keys) as user properties (sluice adds it).", NULL, NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct mwrite mwrite_t;
typedef struct slot { mwrite_t *w; uint32_t i; } slot_t;

typedef struct mout {
  sl_output_t base;
  sl_mqtt_t *c;
  sl_interp_t *topic;
  char *static_topic;
  int qos, retain, props;
  int64_t max_in_flight, pending;
  slot_t *mids;              /* message id -> its write and message, while the broker has not acknowledged it */
  mwrite_t *queue, **queue_tail;   /* writes with messages not published yet, in order */
  int pumping;
  sl_kept_t *kept;           /* failed writes, until retried or forgotten */
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
} mout_t;

struct mwrite {
  sl_kwrite_t kw;            /* first (kept.h); its states are M_* */
  mwrite_t *next;
  uint32_t next_i;           /* messages before it were published (or failed) */
  uint32_t open;             /* published, acknowledgement to come */
  int queued;                /* in o->queue */
};

enum { M_DONE, M_FAILED, M_WAIT, M_OPEN };

static const char *sname(mout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

static void maybe_closed(mout_t *o) {
  if (o->closed && !o->queue && o->pending == 0) {
    sl_mqtt_free(o->c);   /* DISCONNECT and close, so that the loop ends */
    o->c = NULL;
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    done(&o->base, o->closed_arg);
  }
}

static void fail_msg(mwrite_t *w, uint32_t i, const char *err) {
  w->kw.state[i] = M_FAILED;
  if (!w->kw.err) w->kw.err = sl_xstrdup(err);
}

/* A failed write is kept, so that its retry publishes only what failed. */
static void maybe_finished(mout_t *o, mwrite_t *w) {
  if (w->queued || w->open) return;
  if (w->kw.err) {
    sl_kept_write_fail(&o->kept, w, M_DONE, &o->base);
    return;
  }
  sl_write_cb cb = w->kw.cb;
  void *arg = w->kw.arg;
  sl_batch_t *b = w->kw.b;
  sl_kept_write_free(w);
  cb(&o->base, b, 0, NULL, arg);
}

static void on_published(void *arg, int mid, int reason) {
  mout_t *o = arg;
  slot_t s = o->mids[mid & 0xffff];
  if (!s.w) return;
  o->mids[mid & 0xffff].w = NULL;
  o->pending--;
  s.w->open--;
  if (reason >= 0x80) {
    char *e = sl_xasprintf("mqtt: the broker refused a message: %s", mosquitto_reason_string(reason));
    fail_msg(s.w, s.i, e);
    free(e);
  } else if (s.w->kw.state[s.i] == M_OPEN) {
    s.w->kw.state[s.i] = M_DONE;
  }
  maybe_finished(o, s.w);
}

static mosquitto_property *properties(sl_msg_t *m, char **err) {
  mosquitto_property *p = NULL;
  sl_kv_load(&m->meta);
  for (uint32_t k = 0; k < m->meta.n; k++) {
    const sl_kv_t *kv = &m->meta.v[k];
    if (!strncmp(kv->key, "mqtt_", 5)) continue;
    if (strlen(kv->val) != kv->vlen ||
        mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY, kv->key, kv->val) != MOSQ_ERR_SUCCESS) {
      *err = sl_xasprintf("metadata %s: not a valid MQTT user property (UTF-8 without NUL)", kv->key);
      mosquitto_property_free_all(&p);
      return NULL;
    }
  }
  return p;
}

/* Publishes message i of w; 0, or -1 when the connection is gone (it waits). */
static int publish(mout_t *o, mwrite_t *w, uint32_t i) {
  sl_msg_t *m = w->kw.b->msgs[i];
  char *err = NULL, *e = NULL;
  char *topic = o->static_topic;
  if (!topic) {
    topic = sl_interp_eval(o->topic, m, i, NULL, &e);
    if (!topic) err = sl_xasprintf("topic: %s", e ? e : "evaluation failed");
    free(e);
  }
  mosquitto_property *props = NULL;
  if (topic && o->props) props = properties(m, &err);
  int mid = 0, rc = MOSQ_ERR_SUCCESS;
  if (!err && mosquitto_validate_utf8(topic, (int)strlen(topic)) != MOSQ_ERR_SUCCESS)
    err = sl_xstrdup("mqtt: the topic is not valid UTF-8");
  if (!err) {
    rc = mosquitto_publish_v5(sl_mqtt_mosq(o->c), &mid, topic, (int)m->content->len, m->content->data, o->qos,
                              o->retain, props);
    if (rc == MOSQ_ERR_NO_CONN) {
      mosquitto_property_free_all(&props);
      if (topic != o->static_topic) free(topic);
      return -1;
    }
    if (rc != MOSQ_ERR_SUCCESS)
      err = sl_xasprintf("mqtt: publish to %s: %s", topic,
                         rc == MOSQ_ERR_INVAL ? "not a valid topic name (empty, or a wildcard)" : mosquitto_strerror(rc));
  }
  mosquitto_property_free_all(&props);
  if (topic != o->static_topic) free(topic);
  if (err) {
    fail_msg(w, i, err);
    free(err);
    return 0;
  }
  o->mids[mid & 0xffff] = (slot_t){w, i};
  w->kw.state[i] = M_OPEN;
  o->pending++;
  w->open++;
  return 0;
}

/* Publishes what waits, in order, while connected and under max_in_flight. */
static void pump(mout_t *o) {
  if (o->pumping || !o->c) return;
  o->pumping = 1;
  while (o->queue && sl_mqtt_connected(o->c)) {
    mwrite_t *w = o->queue;
    while (w->next_i < w->kw.b->n && o->pending < o->max_in_flight) {
      if (w->kw.state[w->next_i] == M_WAIT && publish(o, w, w->next_i) != 0) break;
      w->next_i++;
    }
    if (w->next_i < w->kw.b->n) break;
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    w->queued = 0;
    maybe_finished(o, w);
  }
  o->pumping = 0;
  sl_mqtt_kick(o->c);
  maybe_closed(o);   /* last: it may free the client */
}

static void on_connected(void *arg, int session_present) {
  (void)session_present;
  mout_t *o = arg;
  sl_logf(SL_LOG_INFO, sname(o), o->base.label, "mqtt: connected");
  pump(o);
}

/* QoS 0 messages not written yet are gone with the connection; QoS 1/2 ones
 * are sent again by libmosquitto once connected. */
static void on_lost(void *arg) {
  mout_t *o = arg;
  if (o->qos > 0 || o->closed) return;
  for (int mid = 0; mid < 65536; mid++) {
    slot_t s = o->mids[mid];
    if (!s.w) continue;
    fail_msg(s.w, s.i, "mqtt: connection lost before the message was written");
    on_published(o, mid, 0);
  }
}

static void on_io_done(void *arg) { pump(arg); }

static int mout_start(sl_output_t *out) {
  mout_t *o = (mout_t *)out;
  sl_mqtt_attach(o->c, NULL, out);
  mosquitto_int_option(sl_mqtt_mosq(o->c), MOSQ_OPT_SEND_MAXIMUM, (int)o->max_in_flight);
  sl_mqtt_start(o->c);
  return 0;
}

static void mout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  mout_t *o = (mout_t *)out;
  mwrite_t *w = sl_kept_write(&o->kept, b, sizeof(*w), M_WAIT, M_DONE, cb, arg);
  w->next_i = 0;
  w->queued = 1;
  w->next = NULL;
  *o->queue_tail = w;
  o->queue_tail = &w->next;
  pump(o);
}

static void mout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  mout_t *o = (mout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  maybe_closed(o);
}

static void mout_forget(sl_output_t *out, sl_batch_t *b) {
  mwrite_t *w = sl_kept_take(&((mout_t *)out)->kept, b);
  if (w) sl_kept_write_free(w);
}

static void mout_destroy(sl_output_t *out) {
  mout_t *o = (mout_t *)out;
  for (mwrite_t *w; (w = sl_kept_pop(&o->kept));) sl_kept_write_free(w);
  sl_mqtt_free(o->c);
  free(o->mids);
  free(o->static_topic);
  sl_interp_free(o->topic);
  free(o);
}

static const sl_output_vt vt = {mout_start, mout_write, mout_close, mout_destroy, NULL, mout_forget};
static const sl_spec_t spec;

static void *mout_create(sl_build_t *b, const sl_cnode_t *conf) {
  mout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->queue_tail = &o->queue;
  o->qos = (int)sl_conf_int(conf, "qos", 1);
  o->retain = sl_conf_bool(conf, "retained", 0);
  o->topic = sl_lua_interp_field(b->worker, conf, b->diags, "topic");
  static const sl_mqtt_cbs_t cbs = {on_connected, on_lost, NULL, on_published, on_io_done};
  o->c = sl_mqtt_new(b, conf, SL_CM_OUTPUT, &cbs, o);
  if (!o->topic || !o->c) {
    mout_destroy(&o->base);
    return NULL;
  }
  o->props = sl_mqtt_v5(o->c) && sl_conf_bool(conf, "metadata_properties", 1);
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", o->qos == 2 && !sl_mqtt_v5(o->c) ? 20 : 64);
  o->mids = sl_xcalloc(65536, sizeof(*o->mids));
  char *err = NULL;
  if (sl_interp_is_static(o->topic)) o->static_topic = sl_interp_eval(o->topic, NULL, 0, NULL, &err);
  free(err);
  return o;
}

static const sl_spec_t spec = {
  .name = "mqtt",
  .kind = SL_KIND_OUTPUT,
  .summary = "Publishes messages to an MQTT broker (libmosquitto), acknowledged from PUBACK/PUBCOMP.",
  .desc =
    "Each message is published with its content as the payload to `topic`, evaluated per message. A batch "
    "is acknowledged once the broker acknowledged every message of it (QoS 1: PUBACK, QoS 2: PUBCOMP; QoS 0: "
    "once written to the socket), and failed with the reason otherwise (a topic that is not valid, a payload "
    "over the broker's maximum, an MQTT 5 refusal), so the stream's `retry` policy or a `fallback` takes "
    "over; its retry publishes only the messages that failed, and a `fallback` gets only those. "
    "`max_in_flight` messages wait for acknowledgements at once. While disconnected the stream "
    "reports not ready on `/ready` with the reason; messages wait (QoS 1/2 ones in flight are sent again "
    "after the reconnection) and the client reconnects with backoff (100 ms doubling to 5 s).",
  .fields = fields,
  .example =
    "output:\n"
    "  mqtt:\n"
    "    urls: [tcp://localhost:1883]\n"
    "    topic: 'alerts/${! meta.mqtt_topic }'\n"
    "    qos: 1\n",
  .create = mout_create,
};
SL_REGISTER(spec)
