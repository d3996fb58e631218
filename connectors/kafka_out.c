/* `kafka` output: produces each message with librdkafka (idempotent,
 * acks=all by default); a batch is acknowledged from the delivery reports of
 * all its messages, and failed when any of them could not be delivered. */
#include "kafka_common.h"
#include "../core/log.h"
#include "../core/stream.h"
#include "../core/xalloc.h"
#include "../lua/lhost.h"
#include <stdlib.h>
#include <string.h>

static const char *const partitioners[] = {"murmur2_random", "consistent_random", "fnv1a_random", "random", NULL};
static const char *const ackss[] = {"all", "1", "0", NULL};

static const sl_field_t batching_fields[] = {
  {"count", SL_F_INT, "10000", 0, "Messages per request at most (`batch.num.messages`).", NULL, NULL},
  {"period", SL_F_DURATION, "5ms", 0, "How long a message may wait for others to fill a request (`linger.ms`).", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  SL_KAFKA_COMMON_FIELDS,
  {"topic", SL_F_STRING, NULL, SL_REQUIRED, "Topic, interpolated per message (`${! meta.kind }-events`).", NULL, NULL},
  {"key", SL_F_STRING, "", 0, "Key, interpolated per message (`${! this.user_id }`); empty: no key.", NULL, NULL},
  {"partitioner", SL_F_ENUM, "murmur2_random", 0,
   "How keys map to partitions: `murmur2_random` is the Java client's (keyless messages spread at random).",
   partitioners, NULL},
  {"acks", SL_F_ENUM, "all", 0, "Replicas that must have a message before it counts as delivered.", ackss, NULL},
  {"idempotent", SL_F_BOOL, "true", 0, "Exactly-once per partition on the producer side (no duplicates from retries).", NULL, NULL},
  {"max_in_flight", SL_F_INT, "1000000", 0, "Messages waiting for delivery reports at most (`queue.buffering.max.messages`).", NULL, NULL},
  {"batching", SL_F_OBJECT, NULL, 0, "How librdkafka groups messages into requests.", NULL, batching_fields},
  {"metadata_headers", SL_F_BOOL, "true", 0, "Send the message's metadata as Kafka headers.", NULL, NULL},
  {0}};

enum { TOPICS_KEPT = 16 };

typedef struct kout {
  sl_output_t base;
  rd_kafka_conf_t *conf;     /* until start */
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  sl_kafka_wake_t *wake;
  sl_interp_t *topic, *key;
  char *static_topic, *static_key;   /* evaluated once when they name nothing per message */
  /* Handles of the topics produced to (the TOPICS_KEPT most recent): a
   * topic named per message cost a lookup under a lock each time, and the
   * first messages after start-up waited ~1 s (the demo's p99). */
  rd_kafka_topic_t *rkts[TOPICS_KEPT];
  unsigned nrkts, next_rkt;
  int headers;
  int64_t pending;           /* messages waiting for a delivery report */
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
} kout_t;

/* A batch until its last delivery report: librdkafka reads the payloads
 * from its messages' content (no copy: flags 0), and copies keys. */
typedef struct kwrite {
  kout_t *o;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  uint32_t left;
  char *err;
} kwrite_t;

static const char *sname(kout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

static void maybe_closed(kout_t *o) {
  if (o->closed && o->pending == 0) {
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    done(&o->base, o->closed_arg);
  }
}

static void one_done(kwrite_t *w, const char *err) {
  if (err && !w->err) w->err = sl_xstrdup(err);
  if (--w->left > 0) return;
  kout_t *o = w->o;
  w->cb(&o->base, w->b, w->err ? -1 : 0, w->err, w->arg);
  free(w->err);
  free(w);
}

/* Runs inside rd_kafka_poll, on the loop. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  kout_t *o = opaque;
  o->pending--;
  if (m->err) sl_output_set_connected(&o->base, 0, rd_kafka_err2str(m->err));
  else sl_output_set_connected(&o->base, 1, NULL);
  one_done(m->_private, m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  kout_t *o = opaque;
  sl_logf(SL_LOG_WARN, sname(o), o->base.label, "kafka: %s", reason);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) sl_output_set_connected(&o->base, 0, reason);
}

static void serve(void *arg) {
  kout_t *o = arg;
  rd_kafka_poll(o->rk, 0);
  maybe_closed(o);
}

static int kout_start(sl_output_t *out) {
  kout_t *o = (kout_t *)out;
  rd_kafka_conf_set_opaque(o->conf, o);
  rd_kafka_conf_set_dr_msg_cb(o->conf, on_delivery);
  rd_kafka_conf_set_error_cb(o->conf, on_error);
  char err[512];
  o->rk = rd_kafka_new(RD_KAFKA_PRODUCER, o->conf, err, sizeof err);
  if (!o->rk) {
    sl_logf(SL_LOG_ERROR, sname(o), out->label, "kafka: %s", err);
    return -1;
  }
  o->conf = NULL;   /* owned by rk now */
  o->q = rd_kafka_queue_get_main(o->rk);
  rd_kafka_set_log_queue(o->rk, NULL);   /* logs through the main queue too */
  o->wake = sl_kafka_wake_new(out->worker->loop, o->q, serve, o);
  return o->wake ? 0 : -1;
}

static char *eval(sl_interp_t *i, const char *fixed, sl_msg_t *m, uint32_t k, const char *what, char **err) {
  if (fixed) return (char *)fixed;
  char *e = NULL;
  char *v = sl_interp_eval(i, m, k, NULL, &e);
  if (!v) *err = sl_xasprintf("%s: %s", what, e ? e : "evaluation failed");
  free(e);
  return v;
}

static rd_kafka_topic_t *topic_of(kout_t *o, const char *name) {
  for (unsigned i = 0; i < o->nrkts; i++)
    if (!strcmp(rd_kafka_topic_name(o->rkts[i]), name)) return o->rkts[i];
  rd_kafka_topic_t *t = rd_kafka_topic_new(o->rk, name, NULL);   /* NULL: an invalid name */
  if (!t) return NULL;
  unsigned i = o->nrkts < TOPICS_KEPT ? o->nrkts++ : o->next_rkt++ % TOPICS_KEPT;
  if (o->rkts[i]) rd_kafka_topic_destroy(o->rkts[i]);
  return o->rkts[i] = t;
}

/* Consecutive messages without headers for one topic go to librdkafka as a
 * run: one clock read and one topic lock per run instead of per message
 * (a fifth of the producer's time). */
typedef struct run {
  rd_kafka_topic_t *rkt;
  rd_kafka_message_t *v;     /* payload, key and opaque of each */
  uint32_t n;
} run_t;

static void flush_run(kout_t *o, kwrite_t *w, run_t *r) {
  if (!r->n) return;
  rd_kafka_produce_batch(r->rkt, RD_KAFKA_PARTITION_UA, 0, r->v, (int)r->n);
  for (uint32_t i = 0; i < r->n; i++) {
    if (r->v[i].err) one_done(w, rd_kafka_err2str(r->v[i].err));   /* not enqueued: no report comes */
    else o->pending++;
    if (r->v[i].key != o->static_key) free(r->v[i].key);
  }
  r->n = 0;
}

static void kout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  kout_t *o = (kout_t *)out;
  kwrite_t *w = sl_xcalloc(1, sizeof(*w));
  *w = (kwrite_t){o, b, cb, arg, b->n + 1, NULL};   /* +1: held until every message is handed over */
  run_t run = {NULL, sl_xcalloc(b->n ? b->n : 1, sizeof(rd_kafka_message_t)), 0};
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    char *err = NULL;
    char *topic = eval(o->topic, o->static_topic, m, i, "topic", &err);
    char *key = topic ? eval(o->key, o->static_key, m, i, "key", &err) : NULL;
    rd_kafka_topic_t *rkt = topic && !err ? topic_of(o, topic) : NULL;
    if (topic != o->static_topic) free(topic);
    if (err || !rkt) {
      if (key != o->static_key) free(key);
      one_done(w, err ? err : "topic: not a valid Kafka topic name");
      free(err);
      continue;
    }
    if (o->headers) sl_kv_load(&m->meta);
    if (rkt != run.rkt || (o->headers && m->meta.n)) flush_run(o, w, &run);
    if (!o->headers || !m->meta.n) {
      run.rkt = rkt;
      run.v[run.n++] = (rd_kafka_message_t){.payload = m->content->data, .len = m->content->len,
                                            .key = *key ? key : NULL, .key_len = strlen(key), ._private = w};
      if (!*key && key != o->static_key) free(key);
      continue;
    }
    rd_kafka_headers_t *hs = rd_kafka_headers_new(m->meta.n);
    for (uint32_t k = 0; k < m->meta.n; k++)
      rd_kafka_header_add(hs, m->meta.v[k].key, -1, m->meta.v[k].val, (ssize_t)m->meta.v[k].vlen);
    rd_kafka_resp_err_t e = rd_kafka_producev(
      o->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE(m->content->data, m->content->len),
      RD_KAFKA_V_KEY((*key ? key : NULL), strlen(key)), RD_KAFKA_V_MSGFLAGS(0),
      RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
    if (key != o->static_key) free(key);
    if (e) {
      rd_kafka_headers_destroy(hs);   /* not taken on failure */
      one_done(w, rd_kafka_err2str(e));
      continue;
    }
    o->pending++;
  }
  flush_run(o, w, &run);
  free(run.v);
  one_done(w, NULL);
  /* Reports that are already there (an unknown topic, say) come now. */
  rd_kafka_poll(o->rk, 0);
}

static void kout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  kout_t *o = (kout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  if (o->rk) rd_kafka_poll(o->rk, 0);
  maybe_closed(o);
}

static void kout_destroy(sl_output_t *out) {
  kout_t *o = (kout_t *)out;
  if (o->wake) sl_kafka_wake_close(o->wake, o->q);
  if (o->q) rd_kafka_queue_destroy(o->q);
  for (unsigned i = 0; i < o->nrkts; i++) rd_kafka_topic_destroy(o->rkts[i]);
  if (o->rk) rd_kafka_destroy(o->rk);
  free(o->static_topic);
  free(o->static_key);
  if (o->conf) rd_kafka_conf_destroy(o->conf);
  sl_interp_free(o->topic);
  sl_interp_free(o->key);
  free(o);
}

static const sl_output_vt vt = {kout_start, kout_write, kout_close, kout_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *kout_create(sl_build_t *b, const sl_cnode_t *conf) {
  kout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  const sl_cnode_t *batching = sl_cnode_get(conf, "batching");
  char count[24], linger[24], inflight[24];
  snprintf(count, sizeof count, "%lld", (long long)sl_conf_int(batching, "count", 10000));
  snprintf(linger, sizeof linger, "%lld", (long long)sl_conf_duration_ms(batching, "period", 5));
  snprintf(inflight, sizeof inflight, "%lld", (long long)sl_conf_int(conf, "max_in_flight", 1000000));
  const char *defaults[] = {
    "acks", sl_conf_str(conf, "acks", "all"),
    "enable.idempotence", sl_conf_bool(conf, "idempotent", 1) ? "true" : "false",
    "partitioner", sl_conf_str(conf, "partitioner", "murmur2_random"),
    "batch.num.messages", count,
    "linger.ms", linger,
    "queue.buffering.max.messages", inflight,
    NULL};
  o->conf = sl_kafka_conf(b, conf, defaults);
  o->topic = sl_lua_interp_field(b->worker, conf, b->diags, "topic");
  o->key = sl_lua_interp_field(b->worker, conf, b->diags, "key");
  o->headers = sl_conf_bool(conf, "metadata_headers", 1);
  if (!o->conf || !o->topic || !o->key) {
    kout_destroy(&o->base);
    return NULL;
  }
  char *err = NULL;
  if (sl_interp_is_static(o->topic)) o->static_topic = sl_interp_eval(o->topic, NULL, 0, NULL, &err);
  free(err);
  err = NULL;
  if (sl_interp_is_static(o->key)) o->static_key = sl_interp_eval(o->key, NULL, 0, NULL, &err);
  free(err);
  return o;
}

static const sl_spec_t spec = {
  .name = "kafka",
  .kind = SL_KIND_OUTPUT,
  .summary = "Produces messages to Kafka (librdkafka), acknowledged from delivery reports.",
  .desc =
    "Each message is produced with its content as the value, `key` and `topic` evaluated per "
    "message and its metadata as headers. A batch is acknowledged once every message of it "
    "has a successful delivery report (with `acks: all`, once every in-sync replica has it), "
    "and failed with librdkafka's reason otherwise, so the stream's `retry` policy or a "
    "`fallback` takes over. While the brokers cannot be reached the stream reports not ready "
    "on `/ready`; librdkafka keeps retrying.",
  .fields = fields,
  .example =
    "output:\n"
    "  kafka:\n"
    "    addresses: [localhost:9092]\n"
    "    topic: jobs\n"
    "    key: '${! this.user_id }'\n",
  .create = kout_create,
};
SL_REGISTER(spec)
