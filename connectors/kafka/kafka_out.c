/* `kafka` output: produces each message with librdkafka (idempotent,
 * acks=all by default); a batch is acknowledged from the delivery reports of
 * all its messages, and failed when any of them could not be delivered.
 * `max_in_flight` batches are written at once (Benthos' meaning); later ones
 * wait their turn, in order. A batch is handed to librdkafka as far as its
 * queue takes it: when the queue is full the rest waits for delivery reports
 * to make room (the loop goes on meanwhile), so a batch larger than the
 * queue goes out in parts. Each message's outcome is kept: a retry of a
 * failed batch produces only the messages that were not delivered. */
#include "core/batching.h"
#include "core/log.h"
#include "core/kept.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include "store/kafka/kafka_common.h"
#include <stdlib.h>
#include <string.h>

static const char *const partitioners[] = {"murmur2_random", "consistent_random", "fnv1a_random", "random", NULL};
static const char *const ackss[] = {"all", "1", "0", NULL};

static const sl_field_t fields[] = {
  SL_KAFKA_COMMON_FIELDS,
  {"topic", SL_F_STRING, NULL, SL_REQUIRED, "Topic, interpolated per message (`${! meta.kind }-events`).", NULL, NULL},
  {"key", SL_F_STRING, "", 0, "Key, interpolated per message (`${! this.user_id }`); empty: no key.", NULL, NULL},
  {"partitioner", SL_F_ENUM, "murmur2_random", 0,
   "How keys map to partitions: `murmur2_random` is the Java client's (keyless messages spread at random).",
   partitioners, NULL},
  {"acks", SL_F_ENUM, "all", 0, "Replicas that must have a message before it counts as delivered.", ackss, NULL},
  {"idempotent", SL_F_BOOL, "true", 0, "Exactly-once per partition on the producer side (no duplicates from retries).", NULL, NULL},
  {"max_in_flight", SL_F_INT, "64", 0,
   "Batches written at once, as in Benthos: a further batch waits until one of them has all its delivery "
   "reports (1: one batch at a time). How many messages librdkafka itself queues is "
   "`queue.buffering.max.messages` (librdkafka's default, 100000; set it under `librdkafka`): a batch larger "
   "than that goes out in parts as delivery reports make room.", NULL, NULL},
  SL_BATCHING_FIELD,
  {"metadata_headers", SL_F_BOOL, "true", 0, "Send the message's metadata as Kafka headers.", NULL, NULL},
  {0}};

enum { TOPICS_KEPT = 16 };

typedef struct kwrite kwrite_t;

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
  int64_t max_in_flight;     /* batches */
  int64_t active;            /* batches started and not finished */
  int64_t pending;           /* messages waiting for a delivery report */
  kwrite_t *queue, **queue_tail;   /* writes with messages not handed over yet, in order */
  sl_kept_t *kept;           /* failed writes, until retried or forgotten */
  int in_poll, pumping;      /* reentrancy: callbacks may write */
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
} kout_t;

/* A message's outcome so far. */
enum { M_UNSENT, M_QUEUED, M_DONE, M_FAILED };

/* A batch until its last delivery report: librdkafka reads the payloads
 * from its messages' content (no copy: flags 0), and copies keys. Each
 * message's report opaque is its own slot, which points back here. */
struct kwrite {
  sl_kwrite_t kw;            /* first (kept.h); its states are M_* */
  kwrite_t *next;            /* in o->queue */
  kout_t *o;
  kwrite_t **slots;          /* slots[i] == this: message i's opaque */
  uint32_t next_i;           /* messages before it were handed over (or settled) */
  uint32_t open;             /* queued in librdkafka, report to come */
  int started, handed;       /* counted in o->active; every message handed over */
};

static const char *sname(kout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

static void maybe_closed(kout_t *o) {
  if (o->closed && !o->queue && o->active == 0 && o->pending == 0) {
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    done(&o->base, o->closed_arg);
  }
}

static void kwrite_free(kwrite_t *w) {
  free(w->slots);
  sl_kept_write_free(w);
}

static void settle(kwrite_t *w, uint32_t i, const char *err) {
  w->kw.state[i] = err ? M_FAILED : M_DONE;
  if (err && !w->kw.err) w->kw.err = sl_xstrdup(err);
}

/* Every message handed over and reported: the write's outcome. A failed
 * write is kept, so that its retry sends only what failed. */
static void maybe_finished(kwrite_t *w) {
  if (!w->handed || w->open) return;
  kout_t *o = w->o;
  o->active--;
  w->started = 0;
  if (!w->kw.err) {
    sl_write_cb cb = w->kw.cb;
    void *arg = w->kw.arg;
    sl_batch_t *b = w->kw.b;
    kwrite_free(w);
    cb(&o->base, b, 0, NULL, arg);
    return;
  }
  sl_kept_write_fail(&o->kept, w, M_DONE, &o->base);
}

/* Runs inside rd_kafka_poll, on the loop. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  kout_t *o = opaque;
  kwrite_t **slot = m->_private, *w = *slot;
  o->pending--;
  w->open--;
  if (m->err) sl_output_set_connected(&o->base, 0, rd_kafka_err2str(m->err));
  else sl_output_set_connected(&o->base, 1, NULL);
  settle(w, (uint32_t)(slot - w->slots), m->err ? rd_kafka_err2str(m->err) : NULL);
  maybe_finished(w);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  kout_t *o = opaque;
  sl_logf(SL_LOG_WARN, sname(o), o->base.label, "kafka: %s", reason);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) sl_output_set_connected(&o->base, 0, reason);
}

static void pump(kout_t *o);

/* Reports that are there now (they make room in the queue), then what
 * waits for room or for a turn. */
static void serve(void *arg) {
  kout_t *o = arg;
  o->in_poll = 1;
  rd_kafka_poll(o->rk, 0);
  o->in_poll = 0;
  pump(o);
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
  uint32_t *idx;             /* each one's index in the batch */
  uint32_t n;
} run_t;

/* What librdkafka said about message i (not QUEUE_FULL). */
static void handed(kout_t *o, kwrite_t *w, uint32_t i, rd_kafka_resp_err_t e) {
  if (e) {
    settle(w, i, rd_kafka_err2str(e));   /* not enqueued: no report comes */
    return;
  }
  w->kw.state[i] = M_QUEUED;
  w->open++;
  o->pending++;
}

/* librdkafka's queue had no room for message i. With messages of ours in it,
 * their reports make room: i and what follows wait (returns i). With none,
 * no report will come: the message alone is larger than the queue
 * (queue.buffering.max.kbytes) and fails (returns UINT32_MAX). */
static uint32_t no_room(kout_t *o, kwrite_t *w, uint32_t i) {
  if (o->pending > 0) return i;
  settle(w, i, "larger than librdkafka's queue (queue.buffering.max.kbytes)");
  return UINT32_MAX;
}

/* Hands the run over. Returns the index of the first message that waits for
 * room, or UINT32_MAX; *again: the run was cut short without anything to
 * wait for (the rest goes once more from *again). librdkafka refuses every
 * message after one it has no room for. */
static uint32_t flush_run(kout_t *o, kwrite_t *w, run_t *r, uint32_t *again) {
  uint32_t wait = UINT32_MAX;
  *again = UINT32_MAX;
  if (!r->n) return wait;
  rd_kafka_produce_batch(r->rkt, RD_KAFKA_PARTITION_UA, 0, r->v, (int)r->n);
  for (uint32_t k = 0; k < r->n; k++) {
    if (wait == UINT32_MAX && *again == UINT32_MAX) {
      if (r->v[k].err != RD_KAFKA_RESP_ERR__QUEUE_FULL) handed(o, w, r->idx[k], r->v[k].err);
      else if ((wait = no_room(o, w, r->idx[k])) == UINT32_MAX && k + 1 < r->n) *again = r->idx[k + 1];
    }
    if (r->v[k].key != o->static_key) free(r->v[k].key);
  }
  r->n = 0;
  return wait;
}

/* One pass over w's messages from w->next_i on: 0 once all are handed over,
 * 1 when librdkafka's queue is full (the rest waits for reports), 2 when
 * the pass stopped early and goes again. */
static int produce_pass(kout_t *o, kwrite_t *w) {
  sl_batch_t *b = w->kw.b;
  uint32_t n = b->n - w->next_i;
  run_t run = {NULL, sl_xcalloc(n ? n : 1, sizeof(rd_kafka_message_t)), sl_xcalloc(n ? n : 1, sizeof(uint32_t)), 0};
  uint32_t wait = UINT32_MAX, again = UINT32_MAX;
  for (uint32_t i = w->next_i; i < b->n; i++) {
    if (w->kw.state[i] != M_UNSENT) continue;   /* delivered by an earlier attempt */
    sl_msg_t *m = b->msgs[i];
    char *err = NULL;
    char *topic = eval(o->topic, o->static_topic, m, i, "topic", &err);
    char *key = topic ? eval(o->key, o->static_key, m, i, "key", &err) : NULL;
    rd_kafka_topic_t *rkt = topic && !err ? topic_of(o, topic) : NULL;
    if (topic != o->static_topic) free(topic);
    if (err || !rkt) {
      if (key != o->static_key) free(key);
      settle(w, i, err ? err : "topic: not a valid Kafka topic name");
      free(err);
      continue;
    }
    if (o->headers) sl_kv_load(&m->meta);
    if (rkt != run.rkt || (o->headers && m->meta.n)) wait = flush_run(o, w, &run, &again);
    if (wait != UINT32_MAX || again != UINT32_MAX) {
      if (key != o->static_key) free(key);
      break;
    }
    if (!o->headers || !m->meta.n) {
      run.rkt = rkt;
      run.idx[run.n] = i;
      run.v[run.n++] = (rd_kafka_message_t){.payload = m->content->data, .len = m->content->len,
                                            .key = *key ? key : NULL, .key_len = strlen(key), ._private = &w->slots[i]};
      if (!*key && key != o->static_key) free(key);
      continue;
    }
    rd_kafka_headers_t *hs = rd_kafka_headers_new(m->meta.n);
    for (uint32_t k = 0; k < m->meta.n; k++)
      rd_kafka_header_add(hs, m->meta.v[k].key, -1, m->meta.v[k].val, (ssize_t)m->meta.v[k].vlen);
    rd_kafka_vu_t vu[] = {
      {.vtype = RD_KAFKA_VTYPE_RKT, .u.rkt = rkt},
      {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {m->content->data, m->content->len}},
      {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {*key ? key : NULL, strlen(key)}},
      {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = 0},
      {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hs},
      {.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = &w->slots[i]},
    };
    rd_kafka_resp_err_t e = sl_kafka_produce(o->rk, vu, sizeof(vu) / sizeof(vu[0]));
    if (key != o->static_key) free(key);
    if (e) rd_kafka_headers_destroy(hs);   /* not taken on failure */
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) handed(o, w, i, e);
    else if ((wait = no_room(o, w, i)) != UINT32_MAX) break;
  }
  if (wait == UINT32_MAX && again == UINT32_MAX) wait = flush_run(o, w, &run, &again);
  free(run.v);
  free(run.idx);
  w->next_i = wait != UINT32_MAX ? wait : again != UINT32_MAX ? again : b->n;
  return wait != UINT32_MAX ? 1 : again != UINT32_MAX ? 2 : 0;
}

/* Hands w's messages over from w->next_i on: 0 once all are, 1 when
 * librdkafka's queue is full (the rest waits for reports). */
static int produce(kout_t *o, kwrite_t *w) {
  int rc;
  while ((rc = produce_pass(o, w)) == 2) {
  }
  return rc;
}

/* Starts writes in order while fewer than max_in_flight are started, and
 * hands their messages over while librdkafka's queue has room. */
static void pump(kout_t *o) {
  if (o->pumping || !o->rk) return;
  o->pumping = 1;
  while (o->queue) {
    kwrite_t *w = o->queue;
    if (!w->started) {
      if (o->active >= o->max_in_flight) break;
      w->started = 1;
      o->active++;
    }
    if (produce(o, w)) break;   /* reports make room: serve() comes back here */
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    w->next = NULL;
    w->handed = 1;
    maybe_finished(w);
  }
  o->pumping = 0;
}

static void kout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  kout_t *o = (kout_t *)out;
  kwrite_t *w = sl_kept_write(&o->kept, b, sizeof(*w), M_UNSENT, M_DONE, cb, arg);
  w->next_i = 0;
  w->handed = 0;
  if (!w->slots) {   /* new, not a retry */
    w->o = o;
    w->slots = sl_xmalloc((b->n ? b->n : 1) * sizeof(*w->slots));
    for (uint32_t i = 0; i < b->n; i++) w->slots[i] = w;
  }
  *o->queue_tail = w;
  o->queue_tail = &w->next;
  /* From a callback, the pump or the poll that runs it goes on with it. */
  if (!o->in_poll && !o->pumping) serve(o);
}

static void kout_forget(sl_output_t *out, sl_batch_t *b) {
  kwrite_t *w = sl_kept_take(&((kout_t *)out)->kept, b);
  if (w) kwrite_free(w);
}

static void kout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  kout_t *o = (kout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  if (o->rk) serve(o);
  else maybe_closed(o);
}

static void kout_destroy(sl_output_t *out) {
  kout_t *o = (kout_t *)out;
  for (kwrite_t *w; (w = sl_kept_pop(&o->kept));) kwrite_free(w);
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

static const sl_output_vt vt = {kout_start, kout_write, kout_close, kout_destroy, NULL, kout_forget};
static const sl_spec_t spec;

static void *kout_create(sl_build_t *b, const sl_cnode_t *conf) {
  kout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", 64);
  if (o->max_in_flight < 1) o->max_in_flight = 1;
  o->queue_tail = &o->queue;
  const char *defaults[] = {
    "acks", sl_conf_str(conf, "acks", "all"),
    "enable.idempotence", sl_conf_bool(conf, "idempotent", 1) ? "true" : "false",
    "partitioner", sl_conf_str(conf, "partitioner", "murmur2_random"),
    /* librdkafka's own requests: whatever `batching` formed is produced at
     * once, and it packs messages of any batches into requests. */
    "batch.num.messages", "10000",
    "linger.ms", "5",
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
    "`fallback` takes over. A retry of the batch produces only its messages that were not "
    "delivered: what librdkafka already delivered is not sent twice (a `fallback` output, "
    "and the stream's own re-send through the processors once `retry.max_retries` gave up, "
    "get the whole batch). `batching` (Benthos's policy) forms the batches the stream hands "
    "over, each acknowledged as one; librdkafka packs messages into requests on its own "
    "(`batch.num.messages` 10000, `linger.ms` 5: set them under `librdkafka`). `max_in_flight` batches are written at once; when librdkafka's "
    "queue is full, the rest of a batch waits for delivery reports to make room, without "
    "failing and without holding the loop. While the brokers cannot be reached the stream "
    "reports not ready on `/ready`; librdkafka keeps retrying (`message.timeout.ms`).",
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
