/* `nats_jetstream` input: a JetStream push consumer (durable or not) with
 * explicit acks, acknowledged only once the pipeline delivered. */
#include "nats_input.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>

static const char *const delivers[] = {"all", "last", "last_per_subject", "new", NULL};

static const sl_field_t fields[] = {
  SL_NATS_COMMON_FIELDS,
  {"subject", SL_F_STRING, "", 0,
   "Subject to consume, with wildcards; the stream holding it is looked up unless `stream` names it. "
   "May use the request context in a request-scoped stream.", NULL, NULL},
  {"queue", SL_F_STRING, "", 0,
   "Deliver group: the members of one group share the consumer's messages (without `durable`, it "
   "names the durable consumer too).", NULL, NULL},
  {"stream", SL_F_STRING, "", 0, "The stream to consume (with `bind`, required).", NULL, NULL},
  {"durable", SL_F_STRING, "", 0,
   "Durable consumer name: it keeps its position on the server across restarts. Empty: an "
   "ephemeral consumer, gone when sluice disconnects.", NULL, NULL},
  {"bind", SL_F_BOOL, "false", 0,
   "Use the existing consumer `durable` of `stream` (a push consumer, or a pull consumer with "
   "`pull`) as it is configured on the server, creating nothing: `deliver`, `ack_wait` and "
   "`max_ack_pending` are then the consumer's.", NULL, NULL},
  {"pull", SL_F_BOOL, "false", 0,
   "A pull consumer: sluice fetches up to `batch_count` messages at a time whenever it has room, "
   "instead of the server pushing them, and looks again every 50 ms while there is nothing (sluice "
   "adds it: Benthos's input is a push consumer). Any "
   "number of sluice processes pulling from one `durable` share its messages, each to one of "
   "them, without a deliver group (`queue` is for push consumers).", NULL, NULL},
  {"deliver", SL_F_ENUM, "all", 0, "Where a new consumer starts.", delivers, NULL},
  {"ack_wait", SL_F_DURATION, "30s", 0,
   "How long the server waits for an acknowledgement before it delivers a message again.",
   SL_BOUNDS("1ms", ""), NULL},
  {"max_ack_pending", SL_F_INT, "1024", 0,
   "Messages delivered and not acknowledged at most: the server sends no more until acks come back.",
   SL_BOUNDS("1", ""), NULL},
  {"nak_delay", SL_F_DURATION, "1s", 0,
   "A message whose transaction failed (after the output's retries, or refused by "
   "`reject_errored`) is sent back with a nak asking the server to deliver it again after this "
   "(sluice's; Benthos naks without delay).", SL_BOUNDS("0", ""), NULL},
  SL_NATS_BATCH_FIELD,
  SL_BATCHING_FIELD,
  {0}};

typedef struct js_setup {
  sl_nats_sub_t sub;         /* first: setup_free frees it through sl_nats_sub_free */
  char *stream, *durable;
  int bind, pull;
  jsDeliverPolicy deliver;
  int64_t ack_wait_ms, max_ack_pending, fetch;
  natsSubscription *pulling;   /* a pull consumer's, once set up (the link destroys it) */
} js_setup_t;

/* On the link's thread: JetStream's API calls wait for their replies. */
static int setup(sl_nats_t *l, natsConnection *nc, void *arg, char **err) {
  js_setup_t *s = arg;
  jsCtx *js = sl_nats_js(l);
  natsStatus st = NATS_OK;
  if (!js) {
    st = natsConnection_JetStream(&js, nc, NULL);
    if (st == NATS_OK) sl_nats_keep(l, NULL, js);
  }
  natsSubscription *sub = NULL;
  jsErrCode ec = 0;
  if (st == NATS_OK) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.ManualAck = true;
    if (*s->stream) so.Stream = s->stream;
    if (*s->sub.queue) so.Queue = s->sub.queue;
    if (*s->durable) so.Config.Durable = s->durable;
    if (s->bind) {
      /* cnats refuses to bind when a setting asked for differs from the
       * consumer's: the server's settings are the ones that count */
      so.Consumer = s->durable;
    } else {
      so.Config.AckPolicy = js_AckExplicit;
      so.Config.DeliverPolicy = s->deliver;
      so.Config.AckWait = s->ack_wait_ms * 1000000;
      so.Config.MaxAckPending = s->max_ack_pending;
    }
    const char *subject = *s->sub.subject ? s->sub.subject : NULL;
    st = s->pull           ? js_PullSubscribe(&sub, js, subject, *s->durable ? s->durable : NULL, NULL, &so, &ec)
         : sl_nats_on_loop(l) ? js_SubscribeSync(&sub, js, subject, NULL, &so, &ec)
                              : js_Subscribe(&sub, js, subject, sl_nats_on_msg, l, NULL, &so, &ec);
  }
  if (st != NATS_OK) {
    char *e = sl_nats_err(st);
    *err = sl_xasprintf("JetStream consumer on %s: %s", *s->sub.subject ? s->sub.subject : s->stream, e);
    free(e);
    return -1;
  }
  if (!s->pull && sl_nats_on_loop(l)) sl_nats_keep_sync(l, sub);
  else sl_nats_keep(l, sub, NULL);
  s->pulling = sub;
  return 0;
}

/* One fetch of up to batch messages, handed to the queue: the server
 * answers at once (no_wait) with what it has; the second is only the
 * client's bound on waiting for that answer. */
static natsStatus fetch(sl_nats_t *l, js_setup_t *s, int batch) {
  natsMsgList list = {0};
  jsFetchRequest r;
  jsFetchRequest_Init(&r);
  r.Batch = batch;
  r.NoWait = true;
  r.Expires = 1000000000;
  natsStatus st = natsSubscription_FetchRequest(&list, s->pulling, &r);
  for (int i = 0; i < list.Count; i++) {
    sl_nats_on_msg(NULL, NULL, list.Msgs[i], l);
    list.Msgs[i] = NULL;
  }
  natsMsgList_Destroy(&list);
  return st;
}

/* On the link's thread, a pull consumer's turn: what the server has, up to
 * batch_count; when it has nothing, the next look comes 50 ms later. Answers
 * to a fetch cnats stopped waiting for (its second ran out on a loaded
 * machine) wait in the subscription, and cnats 3.4.1's fetch writes past its
 * array when more than half a batch waits there: those are taken one at a
 * time first. */
static int pump(sl_nats_t *l, void *arg) {
  js_setup_t *s = arg;
  int waiting = 0;
  while (natsSubscription_GetPending(s->pulling, &waiting, NULL) == NATS_OK && waiting > 0) {
    natsStatus st = fetch(l, s, 1);
    if (st != NATS_OK && st != NATS_TIMEOUT && st != NATS_NOT_FOUND) return 1000;
  }
  natsStatus st = fetch(l, s, (int)s->fetch);
  if (st == NATS_OK) return 0;
  return st == NATS_TIMEOUT || st == NATS_NOT_FOUND ? 50 : 1000;
}

static void setup_free(void *arg) {
  js_setup_t *s = arg;
  sl_nats_sub_free(&s->sub);
  free(s->stream);
  free(s->durable);
  free(s);
}

static const sl_spec_t spec;

static void *jin_create(sl_build_t *b, const sl_cnode_t *conf) {
  sl_nats_in_t *in = sl_nats_in_new(b, conf, &spec, 1);
  js_setup_t *s = sl_xcalloc(1, sizeof(*s));
  s->stream = sl_xstrdup(sl_conf_str(conf, "stream", ""));
  s->durable = sl_xstrdup(sl_conf_str(conf, "durable", ""));
  s->bind = sl_conf_bool(conf, "bind", 0);
  s->pull = sl_conf_bool(conf, "pull", 0);
  s->fetch = sl_conf_int(conf, "batch_count", 64);
  const char *d = sl_conf_str(conf, "deliver", "all");
  s->deliver = !strcmp(d, "last") ? js_DeliverLast
               : !strcmp(d, "last_per_subject") ? js_DeliverLastPerSubject
               : !strcmp(d, "new") ? js_DeliverNew : js_DeliverAll;
  s->ack_wait_ms = sl_conf_duration_ms(conf, "ack_wait", 30000);
  s->max_ack_pending = sl_conf_int(conf, "max_ack_pending", 1024);
  in->setup_arg = s;
  in->cbs.setup = setup;
  in->cbs.setup_free = setup_free;
  if (s->pull) in->cbs.pump = pump;
  int bad = sl_nats_sub_read(&s->sub, b, conf);
  if (!*s->sub.subject && !(s->bind && *s->stream)) {
    sl_diag_add(b->diags, conf, "subject", "name a `subject`, or `bind` to a `durable` consumer of a `stream`");
    bad = 1;
  }
  if (s->bind && (!*s->stream || !*s->durable)) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "bind"), "bind", "`bind` needs `stream` and `durable`");
    bad = 1;
  }
  if (s->pull && *s->sub.queue) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "queue"), "queue",
                "a deliver group is for push consumers: processes pulling from one `durable` share it already");
    bad = 1;
  }
  if (bad || !in->conf) {
    sl_nats_in_vt.destroy(&in->base);
    return NULL;
  }
  return in;
}

static const sl_spec_t spec = {
  .name = "nats_jetstream",
  .kind = SL_KIND_INPUT,
  .summary = "Consumes a JetStream stream with explicit acks: at least once.",
  .desc =
    "A push consumer on `subject` (durable when `durable` is set, shared by a deliver group with "
    "`queue`) delivers up to `max_ack_pending` messages not yet acknowledged; with `pull`, sluice "
    "fetches them in batches from a pull consumer instead. Each message is "
    "acknowledged to the server only once the transaction carrying it completed (every output "
    "delivered it or it was deliberately dropped); a failed transaction's messages get a nak and "
    "come again after `nak_delay`. What sluice held unacknowledged when it stopped or was killed is "
    "delivered again by the server after `ack_wait`, to this consumer or another member of its "
    "group: nothing acknowledged is lost, duplicates are possible (at least once).\n\n"
    "Metadata: `nats_subject`, `nats_sequence_stream`, `nats_sequence_consumer`, "
    "`nats_num_delivered` (above 1: a redelivery), `nats_num_pending`, `nats_timestamp_unix_nano`, "
    "`nats_domain` when there is one, and the message's headers.\n\n"
    "Until the server is reachable and the consumer exists (the stream may be created later) the "
    "stream reports not ready on `/ready` with the reason, and sluice keeps trying every second; "
    "JetStream's API calls run on a thread of the input's own, never on the event loop; what arrives "
    "is read and parsed on the stream's event loop (cnats's threads with TLS).",
  .fields = fields,
  .example =
    "input:\n"
    "  nats_jetstream:\n"
    "    urls: [nats://127.0.0.1:4222]\n"
    "    subject: orders.>\n"
    "    durable: billing\n"
    "    ack_wait: 30s\n",
  .create = jin_create,
};
SL_REGISTER(spec)
