/* `redis_streams` output: XADD of each message, its content under
 * `body_key` and its metadata as further fields, trimmed with MAXLEN ~. */
#include "redis_out.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdio.h>
#include <stdlib.h>

static const sl_field_t fields[] = {
  SL_REDIS_OUT_FIELDS,
  {"stream", SL_F_STRING, NULL, SL_REQUIRED, "Stream key, interpolated per message (`events-${! meta.kind }`).",
   NULL, NULL},
  {"body_key", SL_F_STRING, "body", 0, "Field that holds the message's content.", NULL, NULL},
  {"max_length", SL_F_INT, "0", 0,
   "Trims the stream to about this many entries (`MAXLEN ~`, which Redis applies by whole nodes); 0: no trim.",
   SL_BOUNDS("0", ""), NULL},
  {"metadata_fields", SL_F_BOOL, "true", 0,
   "Add the message's metadata as fields of the entry (sluice adds the switch: Benthos always does, minus "
   "`metadata.exclude_prefixes`).", NULL, NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct sout {
  sl_rout_t base;
  sl_rtmpl_t stream;
  char *body_key;
  char maxlen[24];
  int64_t max_length;
  int meta;
} sout_t;

static int build(sl_rout_t *ro, sl_msg_t *m, uint32_t k, sl_rargs_t *a, char **err) {
  sout_t *o = (sout_t *)ro;
  size_t len = 0;
  char *key = sl_rtmpl_eval(&o->stream, m, k, &len, err);
  if (!key) return -1;
  sl_rargs_addz(a, "XADD");
  sl_rargs_own(a, key, len);
  if (o->max_length > 0) {
    sl_rargs_addz(a, "MAXLEN");
    sl_rargs_addz(a, "~");
    sl_rargs_addz(a, o->maxlen);
  }
  sl_rargs_addz(a, "*");
  sl_rargs_addz(a, o->body_key);
  sl_rargs_add(a, m->content->data, m->content->len);
  if (o->meta) sl_rout_meta_args(m, a);
  return 0;
}

static void sout_destroy(sl_output_t *out) {
  sout_t *o = (sout_t *)out;
  sl_rout_fini(&o->base);
  sl_rtmpl_free(&o->stream);
  free(o->body_key);
  free(o);
}

static const sl_output_vt vt = {sl_rout_start, sl_rout_write, sl_rout_close, sout_destroy, sl_rout_stopping, sl_rout_forget};
static const sl_spec_t spec;

static void *sout_create(sl_build_t *b, const sl_cnode_t *conf) {
  sout_t *o = sl_xcalloc(1, sizeof(*o));
  int bad = sl_rout_init(&o->base, &vt, &spec, b, conf, build);
  bad |= sl_rtmpl_init(&o->stream, b, conf, "stream");
  o->body_key = sl_xstrdup(sl_conf_str(conf, "body_key", "body"));
  o->max_length = sl_conf_int(conf, "max_length", 0);
  snprintf(o->maxlen, sizeof o->maxlen, "%lld", (long long)o->max_length);
  o->meta = sl_conf_bool(conf, "metadata_fields", 1);
  if (bad) {
    sout_destroy(&o->base.base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "redis_streams",
  .kind = SL_KIND_OUTPUT,
  .summary = "Appends messages to Redis streams (XADD), acknowledged once Redis replied.",
  .desc =
    "Each message becomes one entry, `XADD <stream> [MAXLEN ~ max_length] * <body_key> <content> "
    "[metadata key value ...]`, with `stream` evaluated per message. The commands of a batch are "
    "pipelined on one connection; the batch is acknowledged when every entry has its ID back, and "
    "fails with Redis's error otherwise (the stream's `retry` policy then sends again only the "
    "entries that failed; an entry whose reply was lost with the connection may have been "
    "written, so it may appear twice: at-least-once). While Redis is down the stream reports not "
    "ready on `/ready` with the reason and the client reconnects with backoff.",
  .fields = fields,
  .example =
    "output:\n"
    "  redis_streams:\n"
    "    url: redis://localhost:6379\n"
    "    stream: events\n"
    "    max_length: 100000\n",
  .create = sout_create,
};
SL_REGISTER(spec)
