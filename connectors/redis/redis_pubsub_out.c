/* `redis_pubsub` output: PUBLISH of each message to a channel. */
#include "redis_out.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  SL_REDIS_OUT_FIELDS,
  {"channel", SL_F_STRING, NULL, SL_REQUIRED, "Channel, interpolated per message.", NULL, NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct pout {
  sl_rout_t base;
  sl_rtmpl_t channel;
} pout_t;

static int build(sl_rout_t *ro, sl_msg_t *m, uint32_t k, sl_rargs_t *a, char **err) {
  pout_t *o = (pout_t *)ro;
  size_t len = 0;
  char *ch = sl_rtmpl_eval(&o->channel, m, k, &len, err);
  if (!ch) return -1;
  sl_rargs_addz(a, "PUBLISH");
  sl_rargs_own(a, ch, len);
  sl_rargs_add(a, m->content->data, m->content->len);
  return 0;
}

static void pout_destroy(sl_output_t *out) {
  pout_t *o = (pout_t *)out;
  sl_rout_fini(&o->base);
  sl_rtmpl_free(&o->channel);
  free(o);
}

static const sl_output_vt vt = {sl_rout_start, sl_rout_write, sl_rout_close, pout_destroy, sl_rout_stopping, sl_rout_forget};
static const sl_spec_t spec;

static void *pout_create(sl_build_t *b, const sl_cnode_t *conf) {
  pout_t *o = sl_xcalloc(1, sizeof(*o));
  int bad = sl_rout_init(&o->base, &vt, &spec, b, conf, build);
  bad |= sl_rtmpl_init(&o->channel, b, conf, "channel");
  if (bad) {
    pout_destroy(&o->base.base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "redis_pubsub",
  .kind = SL_KIND_OUTPUT,
  .summary = "Publishes messages to Redis channels (PUBLISH): at-most-once for subscribers.",
  .desc =
    "Each message's content is published to `channel`, evaluated per message, and the batch is "
    "acknowledged once Redis replied to every PUBLISH. Redis's pub/sub keeps nothing: a message "
    "reaches only the subscribers connected at that moment, so acknowledged means handed to Redis, "
    "not received by anyone (use `redis_streams` or `redis_list` for delivery that survives a "
    "subscriber's absence).",
  .fields = fields,
  .example =
    "output:\n"
    "  redis_pubsub:\n"
    "    url: redis://localhost:6379\n"
    "    channel: 'events.${! meta.kind }'\n",
  .create = pout_create,
};
SL_REGISTER(spec)
