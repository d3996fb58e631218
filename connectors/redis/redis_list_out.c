/* `redis_list` output: RPUSH (or LPUSH) of each message to a list. */
#include "redis_out.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>

static const char *const commands[] = {"rpush", "lpush", NULL};

static const sl_field_t fields[] = {
  SL_REDIS_OUT_FIELDS,
  {"key", SL_F_STRING, NULL, SL_REQUIRED, "List key, interpolated per message.", NULL, NULL},
  {"command", SL_F_ENUM, "rpush", 0, "`rpush` appends at the tail (a `redis_list` input with `blpop` reads in order), "
   "`lpush` at the head.", commands, NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct lout {
  sl_rout_t base;
  sl_rtmpl_t key;
  const char *cmd;
} lout_t;

static int build(sl_rout_t *ro, sl_msg_t *m, uint32_t k, sl_rargs_t *a, char **err) {
  lout_t *o = (lout_t *)ro;
  size_t len = 0;
  char *key = sl_rtmpl_eval(&o->key, m, k, &len, err);
  if (!key) return -1;
  sl_rargs_addz(a, o->cmd);
  sl_rargs_own(a, key, len);
  sl_rargs_add(a, m->content->data, m->content->len);
  return 0;
}

static void lout_destroy(sl_output_t *out) {
  lout_t *o = (lout_t *)out;
  sl_rout_fini(&o->base);
  sl_rtmpl_free(&o->key);
  free(o);
}

static const sl_output_vt vt = {sl_rout_start, sl_rout_write, sl_rout_close, lout_destroy, sl_rout_stopping, sl_rout_forget};
static const sl_spec_t spec;

static void *lout_create(sl_build_t *b, const sl_cnode_t *conf) {
  lout_t *o = sl_xcalloc(1, sizeof(*o));
  int bad = sl_rout_init(&o->base, &vt, &spec, b, conf, build);
  bad |= sl_rtmpl_init(&o->key, b, conf, "key");
  o->cmd = strcmp(sl_conf_str(conf, "command", "rpush"), "lpush") ? "RPUSH" : "LPUSH";
  if (bad) {
    lout_destroy(&o->base.base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "redis_list",
  .kind = SL_KIND_OUTPUT,
  .summary = "Pushes messages onto Redis lists (RPUSH or LPUSH), acknowledged once Redis replied.",
  .desc =
    "Each message's content is pushed to `key`, evaluated per message. A batch's pushes are "
    "pipelined; it is acknowledged once every push has its reply, and a retry pushes only what "
    "failed (a push whose reply was lost with the connection may be there twice). While Redis "
    "is down the stream reports not ready on `/ready` with the reason.",
  .fields = fields,
  .example =
    "output:\n"
    "  redis_list:\n"
    "    url: redis://localhost:6379\n"
    "    key: jobs\n",
  .create = lout_create,
};
SL_REGISTER(spec)
