/* `kafka` input: a librdkafka consumer group member. Messages become batches
 * of one partition each, formed by the `batching` policy per partition (as
 * Benthos does) or, without one, of what one turn read; offsets are stored in order per partition, only
 * once the transactions carrying them are acknowledged, and committed every
 * `commit_period` and on revocation; at most `checkpoint_limit` messages per
 * partition are in flight. A revoked partition is handed over (the
 * unassign call librdkafka waits for) only once what it has in flight is
 * acknowledged and committed, or after `revoke_timeout`: then the rest is
 * forgotten and the next owner reads it again (at-least-once). Handing it
 * over at once would let its in-flight messages complete here after the
 * next owner started from the older committed offset: duplicates.
 * No call here waits for a broker: commits are asynchronous (their results
 * come back through the consumer queue, on the loop), and the stream's end
 * commits and leaves the group the same way, bounded by `close_timeout`. */
#include "kafka_in.h"
#include "kafka_lag.h"
#include "core/batching.h"
#include "core/dec.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include "store/kafka/kafka_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const starts[] = {"earliest", "latest", NULL};

static const sl_field_t fields[] = {
  SL_KAFKA_COMMON_FIELDS,
  {"topics", SL_F_STRLIST, "[]", 0, "Topics to consume.", NULL, NULL},
  {"regexp_topics", SL_F_STRLIST, "[]", 0, "Topic patterns (POSIX regular expressions, as `^events-.*`).", NULL, NULL},
  {"consumer_group", SL_F_STRING, NULL, SL_REQUIRED,
   "Consumer group; may use the request context (`${ctx.query.user}`, `$tyk_context.request_data_user`) in a "
   "request-scoped stream.", NULL, NULL},
  {"start_offset", SL_F_ENUM, "earliest", 0, "Where a group without committed offsets starts.", starts, NULL},
  {"checkpoint_limit", SL_F_INT, "1024", 0, "Messages of one partition in flight at most.", NULL, NULL},
  {"commit_period", SL_F_DURATION, "1s", 0, "How often acknowledged offsets are committed.", NULL, NULL},
  {"revoke_timeout", SL_F_DURATION, "10s", SL_ADVANCED,
   "How long revoked partitions wait for their in-flight messages to be acknowledged before they are handed "
   "over; what is still in flight then is read again by the next owner. Keep it below `max.poll.interval.ms`.",
   NULL, NULL},
  {"close_timeout", SL_F_DURATION, "5s", SL_ADVANCED,
   "How long the final commit and leaving the group may take when the stream stops. Past it (brokers "
   "unreachable) the stream ends without them: the group moves the partitions on after `session.timeout.ms` "
   "and the next owner reads what was not committed again. Keep it below `shutdown_timeout`.", NULL, NULL},
  SL_BATCHING_OWN_FIELD,
  {0}};

typedef struct flight {      /* a batch of one partition, until acknowledged */
  struct flight *next;
  struct part *pt;
  int64_t next_offset;       /* to store once it and those before are acked */
  uint32_t n;
  int acked;
} flight_t;

typedef struct part {
  struct part *next;
  char *topic;
  int32_t partition;
  flight_t *head, **tail;
  int64_t in_flight;         /* messages */
  int paused, revoked;
  sl_batch_t *pending;       /* the batch being formed, not emitted yet */
  int64_t pending_bytes;
  uint64_t due;              /* loop time (ms) its `period` ends */
} part_t;

typedef struct kin {
  sl_input_t base;
  rd_kafka_conf_t *conf;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  sl_kafka_wake_t *wake;
  rd_kafka_topic_partition_list_t *subs;
  /* Without a `batching` policy a batch is what one turn read of a partition,
   * up to txn_max messages; with one it is formed by its triggers. */
  int policy;
  sl_batch_policy_t pol;
  sl_lcheck_t *check;
  int64_t txn_max, checkpoint_limit, commit_ms, revoke_ms, close_ms;
  part_t *parts;
  uv_timer_t commit_timer;
  uv_timer_t revoke_timer;   /* bounds the wait for revoked partitions' acks and commit */
  uv_timer_t close_timer;    /* bounds the final commit and leaving the group */
  uv_timer_t period_timer;   /* the earliest `period` of the partitions' pending batches */
  uv_idle_t more;            /* the queue still holds messages after a turn */
  rd_kafka_topic_partition_list_t *revoking;   /* to unassign once drained and committed */
  int revoke_cooperative;
  int revoke_committing;     /* the revoking partitions wait for their commit */
  int revoke_commits;        /* revocation commits not answered yet */
  int handles, stopped;      /* handles: uv handles initialised and not yet closed */
  /* Closing: the final commit, then leaving the group (consumer_close_queue). */
  int closing, leaving;
  int closed;                /* ended: nothing more is committed */
  int close_ok;              /* the group was left in time: destroying rk does not wait */
  void (*close_done)(sl_input_t *in, void *arg);
  void *close_arg;
  int64_t metas;             /* messages whose metadata source is alive: they keep rk */
  int destroyed;             /* kin_destroy ran; rk goes with the last metadata source */
  int stream_meta;           /* metadata named as the `stream` input's (store.backend kafka) */
} kin_t;

static const char *sname(kin_t *in) { return in->base.stream ? in->base.stream->name : NULL; }

static part_t *part_of(kin_t *in, const char *topic, int32_t p) {
  for (part_t *x = in->parts; x; x = x->next)
    if (x->partition == p && !strcmp(x->topic, topic)) return x;
  part_t *x = sl_xcalloc(1, sizeof(*x));
  x->topic = sl_xstrdup(topic);
  x->partition = p;
  x->tail = &x->head;
  x->next = in->parts;
  in->parts = x;
  return x;
}

/* Forgets what x has in flight: after a revocation the acks still to come
 * store nothing (free_now 0); at the end no ack is left to come (1). A
 * flight already answered (a nack, or an ack behind one) waits for no ack. */
static void forget_flights(part_t *x, int free_now) {
  for (flight_t *f = x->head, *n; f; f = n) {
    n = f->next;
    if (free_now || f->acked) free(f);
    else f->pt = NULL;
  }
  x->head = NULL;
  x->tail = &x->head;
  x->in_flight = 0;
  x->paused = 0;
  x->revoked = 0;
}

static void pause_resume(kin_t *in, part_t *x, int pause) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, x->topic, x->partition);
  if (pause) rd_kafka_pause_partitions(in->rk, l);
  else rd_kafka_resume_partitions(in->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  x->paused = pause;
}

/* A commit that failed is logged: what it covered is read again later. */
static void commit_failed(kin_t *in, rd_kafka_resp_err_t e, const char *what) {
  if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "kafka: %s: %s", what, rd_kafka_err2str(e));
}

static void commit(kin_t *in) {
  if (!in->rk || in->closed) return;
  commit_failed(in, rd_kafka_commit(in->rk, NULL, 1), "commit");   /* async: nothing waits for the broker */
}

static void on_commit_timer(uv_timer_t *t) { commit(t->data); }

static void pump(kin_t *in);

static void handle_ack(kin_t *in, part_t *x);
static void finish_revoke(kin_t *in);
static void on_revoke_timeout(uv_timer_t *t);
static void on_more(uv_idle_t *h);

typedef struct ack { kin_t *in; flight_t *f; } ack_t;

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  (void)err;
  ack_t *a = arg;
  kin_t *in = a->in;
  flight_t *f = a->f;
  free(a);
  if (!f->pt) {   /* its partition was revoked meanwhile: the next owner reads it */
    free(f);
    return;
  }
  /* A failure comes only at shutdown (the stream re-sends until then): it
   * is not stored, so the group reads it again. */
  f->acked = status == 0 ? 1 : -1;
  handle_ack(in, f->pt);
}

/* Stores the offsets of the acknowledged prefix of f's partition. */
static void handle_ack(kin_t *in, part_t *x) {
  int64_t store = -1;
  while (x->head && x->head->acked == 1) {
    flight_t *h = x->head;
    store = h->next_offset;
    x->in_flight -= h->n;
    x->head = h->next;
    if (!x->head) x->tail = &x->head;
    free(h);
  }
  if (store >= 0 && in->rk && !in->closed) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, x->topic, x->partition)->offset = store;
    rd_kafka_offsets_store(in->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
  }
  if (x->paused && !x->revoked && x->in_flight < in->checkpoint_limit) pause_resume(in, x, 0);
  if (in->revoking && x->revoked && !x->head) {
    int busy = 0;
    for (part_t *y = in->parts; y; y = y->next) busy |= y->revoked && y->head;
    if (!busy) finish_revoke(in);
  }
  /* Not pump() here: an output that acks at once would nest emit → ack →
   * pump without end, holding every batch until the recursion unwinds. */
  if (!in->stopped && in->handles) uv_idle_start(&in->more, on_more);
}

static void emit_pending(kin_t *in, part_t *x) {
  if (!x->pending) return;
  sl_batch_t *b = x->pending;
  x->pending = NULL;
  x->pending_bytes = 0;
  flight_t *f = sl_xcalloc(1, sizeof(*f));
  f->pt = x;
  f->n = b->n;
  f->next_offset = (int64_t)b->msgs[b->n - 1]->seq + 1;   /* seq: the Kafka offset (to_msg) */
  *x->tail = f;
  x->tail = &f->next;
  x->in_flight += b->n;
  if (x->in_flight >= in->checkpoint_limit && !x->paused) pause_resume(in, x, 1);
  ack_t *a = sl_xcalloc(1, sizeof(*a));
  *a = (ack_t){in, f};
  sl_input_emit_retry(&in->base, b, on_txn, a);
}

/* A batch not emitted is not committed: the group reads it again. */
static void drop_pending(part_t *x) {
  if (!x->pending) return;
  sl_batch_free(x->pending);
  x->pending = NULL;
  x->pending_bytes = 0;
}

static void emit_all(kin_t *in) {
  for (part_t *x = in->parts; x; x = x->next) emit_pending(in, x);
}

/* Emits the batches whose `period` ended, and waits for the next to end. */
static void on_period(uv_timer_t *t) {
  kin_t *in = t->data;
  uint64_t now = uv_now(t->loop), next = UINT64_MAX;
  for (part_t *x = in->parts; x; x = x->next) {
    if (x->pending && x->due <= now) emit_pending(in, x);
    if (x->pending && x->due < next) next = x->due;
  }
  if (next != UINT64_MAX) uv_timer_start(t, on_period, next - now, 0);
}

/* Adds m to x's batch and emits the batch once a trigger of the policy (or,
 * without one, txn_max) holds. */
static void add_msg(kin_t *in, part_t *x, sl_msg_t *m) {
  if (!x->pending) {
    x->pending = sl_batch_new(in->policy ? (in->pol.count > 0 && in->pol.count < 1024 ? (uint32_t)in->pol.count : 64)
                                         : (uint32_t)in->txn_max);
    if (in->pol.period_ms > 0 && in->handles) {
      x->due = uv_now(in->base.worker->loop) + (uint64_t)in->pol.period_ms;
      if (!uv_is_active((uv_handle_t *)&in->period_timer))
        uv_timer_start(&in->period_timer, on_period, (uint64_t)in->pol.period_ms, 0);
    }
  }
  sl_batch_push(x->pending, m);
  x->pending_bytes += (int64_t)m->content->len;
  if (in->policy ? sl_lcheck_batch_full(&in->pol, in->check, x->pending, x->pending_bytes)
                 : (int64_t)x->pending->n >= in->txn_max)
    emit_pending(in, x);
}

/* A message's metadata is read from its librdkafka message only when the
 * pipeline first looks at it: formatting numbers and parsing headers
 * (librdkafka allocates a buffer per message to look for them) were half
 * of the consumer's time, and many pipelines never read metadata. The
 * source keeps the librdkafka message, and so the client, alive. */
typedef struct kmeta {
  sl_kv_src_t base;
  rd_kafka_message_t *m;
  kin_t *in;
} kmeta_t;

static void kin_free(kin_t *in);

static void kmeta_load(sl_kv_src_t *s, sl_kvlist_t *into) {
  const rd_kafka_message_t *m = ((kmeta_t *)s)->m;
  char num[4][24];
  sl_kv_t kv[38];
  uint32_t n = 0;
  static const char *const names[2][3] = {{"kafka_partition", "kafka_offset", "kafka_key"},
                                          {"stream_partition", "stream_offset", "stream_key"}};
  int sm = ((kmeta_t *)s)->in->stream_meta;
  if (!sm) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    kv[n++] = (sl_kv_t){"kafka_topic", (char *)topic, strlen(topic)};
  }
  kv[n++] = (sl_kv_t){(char *)names[sm][0], num[0], sl_dec(num[0], m->partition)};
  kv[n++] = (sl_kv_t){(char *)names[sm][1], num[1], sl_dec(num[1], m->offset)};
  rd_kafka_timestamp_type_t tt;
  int64_t ts = sm ? -1 : rd_kafka_message_timestamp(m, &tt);
  if (ts >= 0) {
    kv[n++] = (sl_kv_t){"kafka_timestamp_unix", num[2], sl_dec(num[2], ts / 1000)};
    kv[n++] = (sl_kv_t){"kafka_timestamp_ms", num[3], sl_dec(num[3], ts)};
  }
  if (m->key) kv[n++] = (sl_kv_t){(char *)names[sm][2], m->key, m->key_len};
  rd_kafka_headers_t *hs = NULL;
  size_t nh = 0;
  if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR) nh = rd_kafka_header_cnt(hs);
  const char *name;
  const void *val;
  size_t vl, i = 0;
  for (; i < nh && n < 38 && rd_kafka_header_get_all(hs, i, &name, &val, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
    kv[n++] = (sl_kv_t){(char *)name, val ? (char *)val : "", val ? vl : 0};
  sl_kv_pack(into, kv, n);
  for (; i < nh && rd_kafka_header_get_all(hs, i, &name, &val, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
    sl_kv_add(into, name, val ? val : "", val ? vl : 0);
}

static void kmeta_release(sl_kv_src_t *s) {
  kmeta_t *k = (kmeta_t *)s;
  kin_t *in = k->in;
  rd_kafka_message_destroy(k->m);
  free(k);
  if (--in->metas == 0 && in->destroyed) kin_free(in);
}

/* Takes m. */
static sl_msg_t *to_msg(kin_t *in, rd_kafka_message_t *m) {
  sl_msg_t *msg = sl_msg_new(m->payload ? m->payload : "", m->len);
  msg->seq = (uint64_t)m->offset;
  kmeta_t *k = sl_xmalloc(sizeof(*k));
  *k = (kmeta_t){{1, kmeta_load, kmeta_release}, m, in};
  in->metas++;
  sl_kv_defer(&msg->meta, &k->base);
  return msg;
}

static void serve(void *arg);

static void on_more(uv_idle_t *h) {
  uv_idle_stop(h);
  serve(h->data);
}

/* Takes messages from the consumer queue while the stream has room, a turn
 * at a time: the queue wakes us only when it turns non-empty, so a turn that
 * stops with messages left asks the loop for another. */
static void pump(kin_t *in) {
  if (!in->rk || in->stopped) return;
  for (int k = 0;; k++) {
    if (!sl_input_ready(&in->base)) break;   /* resumed by the stream */
    if (k == 4096) {
      if (!in->policy) emit_all(in);
      uv_idle_start(&in->more, on_more);
      return;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(in->rk, 0);
    if (!m) break;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        sl_logf(SL_LOG_WARN, sname(in), in->base.label, "kafka: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    sl_input_set_connected(&in->base, 1, NULL);
    part_t *x = part_of(in, rd_kafka_topic_name(m->rkt), m->partition);
    if (x->revoked) {   /* fetched before the revocation: its next owner reads it */
      rd_kafka_message_destroy(m);
      continue;
    }
    add_msg(in, x, to_msg(in, m));
  }
  if (!in->policy) emit_all(in);
}

static void finish_close(kin_t *in, int ok);

/* Once stopped, the queue still carries the answers to commits, rebalances
 * and the end of the close; messages fetched meanwhile are dropped (not
 * committed: the next owner reads them). The queue wakes us only when it
 * turns non-empty, so each turn empties it, a bounded slice at a time. */
static void serve_stopped(kin_t *in) {
  for (int k = 0;; k++) {
    if (k == 4096) {
      if (in->handles) uv_idle_start(&in->more, on_more);
      return;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(in->rk, 0);
    if (!m) break;
    rd_kafka_message_destroy(m);
  }
  if (in->leaving && !in->closed && rd_kafka_consumer_closed(in->rk)) finish_close(in, 1);
}

static void serve(void *arg) {
  kin_t *in = arg;
  if (!in->rk) return;
  if (in->stopped) serve_stopped(in);
  else pump(in);
}

/* Makes the unassign call librdkafka waits for to go on. */
static void hand_over(kin_t *in) {
  rd_kafka_topic_partition_list_t *l = in->revoking;
  in->revoking = NULL;
  in->revoke_committing = 0;
  if (in->handles) uv_timer_stop(&in->revoke_timer);
  if (in->revoke_cooperative) rd_kafka_incremental_unassign(in->rk, l);
  else rd_kafka_assign(in->rk, NULL);
  rd_kafka_topic_partition_list_destroy(l);
}

/* Runs inside rd_kafka_consumer_poll, on the loop. Answers come in order:
 * the last one answers the commit the revoking partitions wait for. */
static void on_revoke_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                                void *opaque) {
  (void)rk;
  (void)offsets;
  kin_t *in = opaque;
  commit_failed(in, err, "commit on revocation");
  if (--in->revoke_commits == 0 && in->revoking && in->revoke_committing) hand_over(in);
}

/* Forgets what the revoked partitions still have in flight, commits what
 * they acknowledged, and hands them over once that commit is answered (or
 * revoke_timeout passed). While the stream ends, its final commit does. */
static void finish_revoke(kin_t *in) {
  if (in->handles) uv_timer_stop(&in->revoke_timer);
  for (part_t *x = in->parts; x; x = x->next) {
    if (!x->revoked) continue;
    if (x->paused) pause_resume(in, x, 0);   /* a later assignment starts unpaused */
    forget_flights(x, 0);
  }
  if (in->closing || in->closed ||
      rd_kafka_commit_queue(in->rk, NULL, in->q, on_revoke_committed, in) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    hand_over(in);
    return;
  }
  in->revoke_commits++;
  in->revoke_committing = 1;
  if (in->handles) uv_timer_start(&in->revoke_timer, on_revoke_timeout, (uint64_t)in->revoke_ms, 0);
}

static void on_revoke_timeout(uv_timer_t *t) {
  kin_t *in = t->data;
  if (in->revoke_committing) {
    sl_logf(SL_LOG_WARN, sname(in), in->base.label,
            "kafka: revoke_timeout: no answer to the commit; handing partitions over, their next owner may read "
            "some messages again");
    hand_over(in);
    return;
  }
  int64_t n = 0;
  for (part_t *x = in->parts; x; x = x->next) n += x->revoked ? x->in_flight : 0;
  sl_logf(SL_LOG_WARN, sname(in), in->base.label,
          "kafka: revoke_timeout: handing partitions over with %lld message(s) in flight; their next owner reads "
          "them again", (long long)n);
  finish_revoke(in);
}

/* Runs inside rd_kafka_consumer_poll (or rd_kafka_consumer_close), on the loop. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
  kin_t *in = opaque;
  int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    sl_logf(SL_LOG_INFO, sname(in), in->base.label, "kafka: assigned %d partition(s)", parts->cnt);
    sl_input_set_connected(&in->base, 1, NULL);
    if (cooperative) rd_kafka_incremental_assign(rk, parts);
    else rd_kafka_assign(rk, parts);
    return;
  }
  /* Revoked: nothing more of these partitions is emitted; they are handed
   * over once what they have in flight is acknowledged (finish_revoke). */
  if (in->revoking) {   /* a second revocation before the first was handed over */
    if (!in->revoke_committing) finish_revoke(in);
    if (in->revoking) hand_over(in);
  }
  int busy = 0;
  for (int i = 0; i < parts->cnt; i++) {
    part_t *x = part_of(in, parts->elems[i].topic, parts->elems[i].partition);
    x->revoked = 1;
    busy |= x->head != NULL;
    drop_pending(x);   /* never emitted: nothing acks it */
  }
  in->revoking = rd_kafka_topic_partition_list_copy(parts);
  in->revoke_cooperative = cooperative;
  if (busy && !in->stopped && in->handles) {
    sl_logf(SL_LOG_INFO, sname(in), in->base.label,
            "kafka: %d partition(s) revoked; handing them over once their in-flight messages are acknowledged",
            parts->cnt);
    uv_timer_start(&in->revoke_timer, on_revoke_timeout, (uint64_t)in->revoke_ms, 0);
  } else {
    finish_revoke(in);
  }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  kin_t *in = opaque;
  sl_logf(SL_LOG_WARN, sname(in), in->base.label, "kafka: %s", reason);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) sl_input_set_connected(&in->base, 0, reason);
}

static int kin_start(sl_input_t *base) {
  kin_t *in = (kin_t *)base;
  rd_kafka_conf_set_opaque(in->conf, in);
  rd_kafka_conf_set_rebalance_cb(in->conf, on_rebalance);
  rd_kafka_conf_set_error_cb(in->conf, on_error);
  sl_kafka_lag_enable(in->conf);
  char err[512];
  in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, in->conf, err, sizeof err);
  if (!in->rk) {
    sl_logf(SL_LOG_ERROR, sname(in), base->label, "kafka: %s", err);
    return -1;
  }
  in->conf = NULL;
  rd_kafka_poll_set_consumer(in->rk);   /* callbacks and logs come out of consumer_poll */
  rd_kafka_set_log_queue(in->rk, NULL);
  in->q = rd_kafka_queue_get_consumer(in->rk);
  in->wake = sl_kafka_wake_new(base->worker->loop, in->q, serve, in);
  sl_input_set_connected(base, 0, "kafka: waiting for the group to assign partitions");
  rd_kafka_resp_err_t e = rd_kafka_subscribe(in->rk, in->subs);
  if (e) {
    sl_logf(SL_LOG_ERROR, sname(in), base->label, "kafka: subscribe: %s", rd_kafka_err2str(e));
    return -1;
  }
  uv_timer_init(base->worker->loop, &in->commit_timer);
  uv_timer_init(base->worker->loop, &in->revoke_timer);
  uv_timer_init(base->worker->loop, &in->close_timer);
  uv_timer_init(base->worker->loop, &in->period_timer);
  uv_idle_init(base->worker->loop, &in->more);
  in->commit_timer.data = in->revoke_timer.data = in->close_timer.data = in->period_timer.data = in->more.data = in;
  in->handles = 5;
  uv_timer_start(&in->commit_timer, on_commit_timer, (uint64_t)in->commit_ms, (uint64_t)in->commit_ms);
  pump(in);
  return 0;
}

static void kin_resume(sl_input_t *base) { pump((kin_t *)base); }

static void kin_stop(sl_input_t *base) {
  kin_t *in = (kin_t *)base;
  if (in->stopped) return;
  in->stopped = 1;
  if (in->handles) {
    uv_timer_stop(&in->commit_timer);
    uv_timer_stop(&in->period_timer);
    uv_idle_stop(&in->more);
  }
  for (part_t *x = in->parts; x; x = x->next) drop_pending(x);
}

/* A consumer that left its group is destroyed at once. One whose close did
 * not finish (a commit or the leave unanswered) waits in rd_kafka_destroy
 * for librdkafka's own timeouts (session.timeout.ms with the brokers gone):
 * that wait gets a thread of its own, which the process's end waits for,
 * bounded (sl_kafka_destroy_later): over TLS it frees the connections' SSL
 * objects and the SSL_CTX, which OpenSSL's exit cleanup must not race
 * (core/detached.h, issue 16). */
static void destroy_rk(kin_t *in) {
  if (in->close_ok) rd_kafka_destroy_flags(in->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  else sl_kafka_destroy_later(in->rk, NULL, NULL);
}

/* Once the input is destroyed, its handles closed and the last message
 * that may read metadata from the client freed. */
static void kin_free(kin_t *in) {
  if (in->handles || in->metas) return;
  if (in->rk) destroy_rk(in);
  free(in);
}

static void handle_closed(uv_handle_t *h) {
  kin_t *in = h->data;
  in->handles--;
  kin_free(in);
}

static void finish_close(kin_t *in, int ok) {
  if (in->closed) return;
  in->closed = 1;
  in->close_ok = ok;
  if (in->handles) uv_timer_stop(&in->close_timer);
  void (*done)(sl_input_t *, void *) = in->close_done;
  in->close_done = NULL;
  if (done) done(&in->base, in->close_arg);
}

static void leave_group(kin_t *in) {
  if (in->leaving || in->closed) return;
  in->leaving = 1;
  rd_kafka_error_t *e = rd_kafka_consumer_close_queue(in->rk, in->q);
  if (e) {
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "kafka: leaving the group: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    finish_close(in, 0);
    return;
  }
  serve_stopped(in);
}

/* Runs inside rd_kafka_consumer_poll, on the loop. */
static void on_final_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                            void *opaque) {
  (void)rk;
  (void)offsets;
  commit_failed(opaque, err, "final commit");
  leave_group(opaque);
}

static void on_close_timeout(uv_timer_t *t) {
  kin_t *in = t->data;
  sl_logf(SL_LOG_WARN, sname(in), in->base.label,
          "kafka: close_timeout: %s not answered (brokers unreachable?); ending without it: the group moves the "
          "partitions on after session.timeout.ms, and what was not committed is read again",
          in->leaving ? "leaving the group was" : "the final commit was");
  finish_close(in, 0);
}

/* Every transaction has completed: commit what they acknowledged, then leave
 * the group, both through the consumer queue (served on the loop). */
static void kin_close(sl_input_t *base, void (*done)(sl_input_t *, void *), void *arg) {
  kin_t *in = (kin_t *)base;
  kin_stop(base);
  if (!in->rk || !in->handles) {
    done(base, arg);
    return;
  }
  in->close_done = done;
  in->close_arg = arg;
  in->closing = 1;
  uv_timer_stop(&in->revoke_timer);
  uv_timer_start(&in->close_timer, on_close_timeout, (uint64_t)in->close_ms, 0);
  if (in->revoking) hand_over(in);   /* the final commit covers them */
  rd_kafka_resp_err_t e = rd_kafka_commit_queue(in->rk, NULL, in->q, on_final_commit, in);
  if (e) {
    commit_failed(in, e, "final commit");
    leave_group(in);
    return;
  }
  serve_stopped(in);   /* whatever waits in the queue now would hide the answer from the wake */
}

static void kin_destroy(sl_input_t *base) {
  kin_t *in = (kin_t *)base;
  kin_stop(base);
  if (in->rk) {
    in->closed = 1;
    sl_kafka_wake_close(in->wake, in->q);
    rd_kafka_queue_destroy(in->q);
  }
  if (in->conf) rd_kafka_conf_destroy(in->conf);
  if (in->subs) rd_kafka_topic_partition_list_destroy(in->subs);
  sl_lcheck_free(in->check);
  in->check = NULL;
  for (part_t *x = in->parts, *n; x; x = n) {
    n = x->next;
    forget_flights(x, 1);
    free(x->topic);
    free(x);
  }
  in->destroyed = 1;
  if (in->handles) {
    uv_close((uv_handle_t *)&in->commit_timer, handle_closed);
    uv_close((uv_handle_t *)&in->revoke_timer, handle_closed);
    uv_close((uv_handle_t *)&in->close_timer, handle_closed);
    uv_close((uv_handle_t *)&in->period_timer, handle_closed);
    uv_close((uv_handle_t *)&in->more, handle_closed);
  } else {
    kin_free(in);
  }
}

static const sl_input_vt vt = {kin_start, kin_resume, kin_stop, kin_destroy, kin_close, NULL};
static const sl_spec_t spec;

static void *kin_create(sl_build_t *b, const sl_cnode_t *conf) {
  kin_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &vt, &spec, b);
  const sl_cnode_t *bt = sl_cnode_get(conf, "batching");
  in->policy = bt && bt->type == SL_CN_MAP && sl_batch_policy_read(bt, &in->pol);
  if (!in->policy) memset(&in->pol, 0, sizeof in->pol);
  in->txn_max = 64;
  in->checkpoint_limit = sl_conf_int(conf, "checkpoint_limit", 1024);
  in->commit_ms = sl_conf_duration_ms(conf, "commit_period", 1000);
  in->revoke_ms = sl_conf_duration_ms(conf, "revoke_timeout", 10000);
  in->close_ms = sl_conf_duration_ms(conf, "close_timeout", 5000);
  if (in->checkpoint_limit < in->txn_max) in->checkpoint_limit = in->txn_max;
  if (in->checkpoint_limit < in->pol.count) in->checkpoint_limit = in->pol.count;
  if (in->commit_ms < 1) in->commit_ms = 1;
  const char *defaults[] = {
    "group.id", sl_conf_str(conf, "consumer_group", ""),
    "auto.offset.reset", sl_conf_str(conf, "start_offset", "earliest"),
    "enable.auto.commit", "false",
    "enable.auto.offset.store", "false",
    "enable.partition.eof", "false",
    /* librdkafka 2.0 stops fetching for a second whenever its local queue
     * holds queued.min.messages (100,000); memory stays bounded by
     * queued.max.messages.kbytes (64 MiB) either way. */
    "queued.min.messages", "1000000",
    NULL};
  in->conf = sl_kafka_conf(b, conf, defaults);
  in->subs = rd_kafka_topic_partition_list_new(4);
  const char *keys[] = {"topics", "regexp_topics"};
  for (int k = 0; k < 2; k++) {
    const sl_cnode_t *l = sl_cnode_get(conf, keys[k]);
    for (uint32_t i = 0; l && l->type == SL_CN_SEQ && i < l->n; i++) {
      /* librdkafka takes a leading '^' as "this is a pattern". */
      char *t = k && l->items[i]->str[0] != '^' ? sl_xasprintf("^%s", l->items[i]->str) : sl_xstrdup(l->items[i]->str);
      rd_kafka_topic_partition_list_add(in->subs, t, RD_KAFKA_PARTITION_UA);
      free(t);
    }
  }
  if (in->subs->cnt == 0) sl_diag_add(b->diags, conf, "topics", "name at least one topic in `topics` or `regexp_topics`");
  int bad_check = in->policy && *sl_conf_str(bt, "check", "") &&
                  !(in->check = sl_lua_check_field(b->worker, bt, b->diags, "check"));
  if (!in->conf || in->subs->cnt == 0 || bad_check) {
    kin_destroy(&in->base);
    return NULL;
  }
  return in;
}

void sl_kafka_in_stream_meta(sl_input_t *base, int64_t batch_size) {
  kin_t *in = (kin_t *)base;
  in->stream_meta = 1;
  in->txn_max = batch_size < 1 ? 1 : batch_size;
  if (in->checkpoint_limit < in->txn_max) in->checkpoint_limit = in->txn_max;
}

static const sl_spec_t spec = {
  .name = "kafka",
  .kind = SL_KIND_INPUT,
  .summary = "Consumes Kafka topics as a consumer group member (librdkafka), committing only what is acknowledged.",
  .desc =
    "Each message's value is the content; `kafka_key`, `kafka_topic`, `kafka_partition`, "
    "`kafka_offset`, `kafka_timestamp_unix` (`_ms`) and its headers become metadata (a header "
    "repeated in one message reads as its first value), read from the record only when the "
    "pipeline first reads or changes that message's metadata. Offsets "
    "are committed per partition in order, only for acknowledged transactions (a failed "
    "delivery is re-sent by the stream), every `commit_period`, on a rebalance and when the "
    "stream stops. With `checkpoint_limit` messages of a partition in flight the partition is "
    "paused until acks come back. A batch is of one partition and is one transaction: with "
    "`batching` (Benthos's policy), formed per partition by its `count`, `byte_size`, `period` "
    "and `check`, then run through its `processors`; without it, what one turn read of a "
    "partition, up to 64 messages. Messages held in a batch being formed when the partition is "
    "revoked or the stream stops are not committed: the group reads them again. "
    "Until the group assigns partitions (or while the brokers "
    "cannot be reached) the stream reports not ready on `/ready`.\n\n"
    "No call waits for a broker on the event loop: commits are asynchronous, and a stopping "
    "stream commits and leaves the group within `close_timeout`; a consumer that could not "
    "(brokers unreachable) is destroyed on a thread of its own, which the process waits for "
    "before it exits (at most 5 s, shared with the other connectors' threads, then a warning). "
    "Messages handed back "
    "unacknowledged at shutdown (an `http_server` output's held messages) are not committed: "
    "the group reads them again.",
  .fields = fields,
  .example =
    "input:\n"
    "  kafka:\n"
    "    addresses: [localhost:9092]\n"
    "    topics: [completed]\n"
    "    consumer_group: results\n",
  .create = kin_create,
  .batches_itself = 1,
};
SL_REGISTER(spec)
