/* `redis_pubsub` input: SUBSCRIBE (or PSUBSCRIBE) to channels; each
 * message is a batch of one. At-most-once: Redis keeps nothing for a
 * subscriber, so what is published while the connection is down, or while
 * the stream is full and `buffer` is too, is not seen. */
#include "redis_common.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  SL_REDIS_FIELDS,
  {"channels", SL_F_STRLIST, NULL, SL_REQUIRED, "Channels (or patterns) to subscribe to.", NULL, NULL},
  {"use_patterns", SL_F_BOOL, "false", 0, "The channels are glob patterns (PSUBSCRIBE).", NULL, NULL},
  {"buffer", SL_F_INT, "1024", 0,
   "Messages kept while the stream has `max_in_flight` transactions open; past it messages are dropped and "
   "counted in `input_redis_pubsub_dropped` (sluice adds it: a subscriber cannot pause Redis).",
   SL_BOUNDS("0", "10000000"), NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct pin {
  sl_input_t base;
  sl_rconn_t *conn;
  sl_rargs_t sub;            /* the SUBSCRIBE command, sent on every connection */
  int stopped;
  sl_batch_t *held;          /* messages waiting for room in the stream */
  int64_t buffer, dropped_logged;
  int64_t *dropped;
} pin_t;

static void flush_held(pin_t *in) {
  while (in->held && in->held->n && sl_input_ready(&in->base)) {
    sl_batch_t *one = sl_batch_new(1);
    sl_batch_push(one, in->held->msgs[0]);
    memmove(in->held->msgs, in->held->msgs + 1, (in->held->n - 1) * sizeof(*in->held->msgs));
    in->held->n--;
    sl_input_emit(&in->base, one, NULL, NULL);
  }
}

static void on_message(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  (void)err;
  pin_t *in = arg;
  if (in->stopped || rp->type != REDIS_REPLY_ARRAY || rp->elements < 3) return;
  const redisReply *kind = rp->element[0];
  int pattern = kind->type == REDIS_REPLY_STRING && !strcmp(kind->str, "pmessage");
  if (!pattern && (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message"))) return;   /* confirmations */
  if (pattern && rp->elements < 4) return;
  const redisReply *ch = rp->element[pattern ? 2 : 1], *payload = rp->element[pattern ? 3 : 2];
  sl_msg_t *m = sl_msg_new(payload->str, payload->len);
  sl_kv_add(&m->meta, "redis_pubsub_channel", ch->str, ch->len);
  if (pattern) sl_kv_add(&m->meta, "redis_pubsub_pattern", rp->element[1]->str, rp->element[1]->len);
  if (!in->held && sl_input_ready(&in->base)) {
    sl_batch_t *b = sl_batch_new(1);
    sl_batch_push(b, m);
    sl_input_emit(&in->base, b, NULL, NULL);
    return;
  }
  if (!in->held) in->held = sl_batch_new(16);
  if ((int64_t)in->held->n >= in->buffer) {
    sl_msg_free(m);
    if (in->dropped) (*in->dropped)++;
    if (in->dropped_logged++ % 10000 == 0)
      sl_logf(SL_LOG_WARN, sl_rconn_stream(in->conn), in->base.label,
              "redis: the stream is full and the buffer too: pub/sub messages dropped");
    return;
  }
  sl_batch_push(in->held, m);
}

static void on_state(sl_rconn_t *c, int up, void *arg) {
  pin_t *in = arg;
  if (up && !in->stopped) sl_redis_subscribe(c->r, on_message, in, in->sub.n, in->sub.v, in->sub.len);
}

static int pin_start(sl_input_t *base) {
  pin_t *in = (pin_t *)base;
  in->dropped = sl_metric(SL_COUNTER, "input_redis_pubsub_dropped",
                          "Pub/sub messages dropped while the stream and the input's buffer were full.", "stream",
                          in->conn->series_stream, "label", base->label, "path", in->conn->series_path, NULL);
  return sl_rconn_start(in->conn, base->worker->loop);
}

static void pin_resume(sl_input_t *base) { flush_held((pin_t *)base); }
static void pin_stop(sl_input_t *base) { ((pin_t *)base)->stopped = 1; }

static void pin_destroy(sl_input_t *base) {
  pin_t *in = (pin_t *)base;
  sl_rconn_free(in->conn);
  if (in->held) sl_batch_free(in->held);
  sl_rargs_free(&in->sub);
  free(in);
}

static const sl_input_vt vt = {pin_start, pin_resume, pin_stop, pin_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *pin_create(sl_build_t *b, const sl_cnode_t *conf) {
  pin_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &vt, &spec, b);
  in->buffer = sl_conf_int(conf, "buffer", 1024);
  const sl_cnode_t *chs = sl_cnode_get(conf, "channels");
  sl_rargs_addz(&in->sub, sl_conf_bool(conf, "use_patterns", 0) ? "PSUBSCRIBE" : "SUBSCRIBE");
  for (uint32_t i = 0; chs && i < chs->n; i++)
    if (chs->items[i]->str) sl_rargs_own(&in->sub, sl_xstrdup(chs->items[i]->str), chs->items[i]->len);
  in->conn = sl_rconn_new(b, conf, &in->base, NULL, on_state, in);
  if (!in->conn || in->sub.n < 2) {
    if (in->conn) sl_diag_add(b->diags, chs ? chs : conf, "channels", "at least one channel is needed");
    pin_destroy(&in->base);
    return NULL;
  }
  return in;
}

static const sl_spec_t spec = {
  .name = "redis_pubsub",
  .kind = SL_KIND_INPUT,
  .summary = "Subscribes to Redis channels or patterns: at-most-once.",
  .desc =
    "Each message published to a subscribed channel becomes a batch of one message, with "
    "metadata `redis_pubsub_channel` (and `redis_pubsub_pattern` for a pattern subscription). "
    "Redis pub/sub keeps nothing: a message published while the connection is down (the client "
    "reconnects with backoff and subscribes again; `/ready` says why meanwhile) is never seen, "
    "and nothing is acknowledged to Redis, so a message in flight when sluice stops is lost: "
    "at-most-once. While the stream has `max_in_flight` transactions open, up to `buffer` "
    "messages wait; past that they are dropped, counted and logged. Use `redis_streams` or "
    "`redis_list` when messages must survive.",
  .fields = fields,
  .example =
    "input:\n"
    "  redis_pubsub:\n"
    "    url: redis://localhost:6379\n"
    "    channels: ['events.*']\n"
    "    use_patterns: true\n",
  .create = pin_create,
};
SL_REGISTER(spec)
