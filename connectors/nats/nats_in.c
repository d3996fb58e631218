/* `nats` input: a core NATS subscription (wildcards, queue groups). */
#include "nats_input.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  SL_NATS_COMMON_FIELDS,
  {"subject", SL_F_STRING, NULL, SL_REQUIRED,
   "Subject to subscribe to, with wildcards (`orders.*`, `orders.>`); may use the request context "
   "(`${ctx.jwt.sub}`, `$tyk_context.request_data_user`) in a request-scoped stream.", NULL, NULL},
  {"queue", SL_F_STRING, "", 0,
   "Queue group: the subscribers of one group share the subject's messages, each message going to one "
   "of them.", NULL, NULL},
  SL_NATS_BATCH_FIELD,
  SL_BATCHING_FIELD,
  {0}};

static int setup(sl_nats_t *l, natsConnection *nc, void *arg, char **err) {
  sl_nats_sub_t *s = arg;
  natsSubscription *sub = NULL;
  int sync = sl_nats_on_loop(l);
  natsStatus st = sync ? (*s->queue ? natsConnection_QueueSubscribeSync(&sub, nc, s->subject, s->queue)
                                    : natsConnection_SubscribeSync(&sub, nc, s->subject))
                  : *s->queue ? natsConnection_QueueSubscribe(&sub, nc, s->subject, s->queue, sl_nats_on_msg, l)
                              : natsConnection_Subscribe(&sub, nc, s->subject, sl_nats_on_msg, l);
  if (st != NATS_OK) {
    char *e = sl_nats_err(st);
    *err = sl_xasprintf("subscribe to %s: %s", s->subject, e);
    free(e);
    return -1;
  }
  /* cnats's default (65,536 messages) dropped bursts a pipeline absorbs a
   * moment later; the bytes stay bounded at cnats's 64 MiB. */
  natsSubscription_SetPendingLimits(sub, 1 << 19, 64 << 20);
  if (sync) sl_nats_keep_sync(l, sub);
  else sl_nats_keep(l, sub, NULL);
  return 0;
}

static void setup_free(void *arg) {
  sl_nats_sub_free(arg);
  free(arg);
}

static const sl_spec_t spec;

static void *nin_create(sl_build_t *b, const sl_cnode_t *conf) {
  sl_nats_in_t *in = sl_nats_in_new(b, conf, &spec, 0);
  sl_nats_sub_t *s = sl_xcalloc(1, sizeof(*s));
  in->setup_arg = s;
  in->cbs.setup = setup;
  in->cbs.setup_free = setup_free;
  int bad = sl_nats_sub_read(s, b, conf);
  if (!*s->subject) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "subject"), "subject", "not a NATS subject: it is empty");
    bad++;
  }
  if (bad || !in->conf) {
    sl_nats_in_vt.destroy(&in->base);
    return NULL;
  }
  return in;
}

static const sl_spec_t spec = {
  .name = "nats",
  .kind = SL_KIND_INPUT,
  .summary = "Subscribes to a core NATS subject (wildcards, queue groups): at most once.",
  .desc =
    "Each message's payload is the content; `nats_subject`, `nats_reply_subject` (when the "
    "publisher asked for a reply) and its headers (every value of a repeated one) become metadata, "
    "read from the message only when the pipeline first looks at its metadata.\n\n"
    "Core NATS keeps nothing: a message is the subscriber's once the server sent it, so delivery is "
    "at most once. A message the pipeline fails is re-sent by the stream until it is delivered, but "
    "what sluice holds when it is killed is lost, and when the pipeline falls behind, what exceeds "
    "cnats's pending limits (524,288 messages or 64 MiB) is dropped by the client and logged as a slow "
    "consumer. For at-least-once, use `nats_jetstream`.\n\n"
    "The client reconnects without end; meanwhile, and until the first connection, the stream reports "
    "not ready on `/ready` with the reason. Connecting and subscribing run on a thread of the "
    "input's own, never on the event loop; what arrives is read and parsed on the stream's event loop "
    "(cnats's threads with TLS).",
  .fields = fields,
  .example =
    "input:\n"
    "  nats:\n"
    "    urls: [nats://127.0.0.1:4222]\n"
    "    subject: orders.>\n"
    "    queue: workers\n",
  .create = nin_create,
};
SL_REGISTER(spec)
