/* `batch` processor: gathers messages into batches by count, bytes, age or
 * a Lua check (a Benthos batching policy as a processor). */
#include "core/batching.h"
#include "core/component.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"count", SL_F_INT, "0", 0, "Emit once this many messages are held (0: no count limit).", SL_BOUNDS("0", ""),
   NULL},
  {"byte_size", SL_F_SIZE, "0", 0, "Emit once the held contents reach this many bytes (0: no limit).", NULL, NULL},
  {"period", SL_F_DURATION, "0", 0,
   "Emit what is held this long after the first message of a batch arrived (0: no timer).", NULL, NULL},
  {"check", SL_F_CODE, "", 0,
   "Lua expression evaluated on each arriving message; when true, the batch ending with it is emitted.",
   NULL, NULL},
  {0}};

typedef struct batcher {
  sl_processor_t base;
  sl_batch_policy_t pol;
  sl_lcheck_t *check;
  sl_batch_t *held;
  int64_t bytes;
  uv_timer_t timer;
  int timer_init;
} batcher_t;

static void emit_held(batcher_t *bt) {
  if (bt->timer_init) uv_timer_stop(&bt->timer);
  if (!bt->held) return;
  sl_batch_t *b = bt->held;
  bt->held = NULL;
  bt->bytes = 0;
  sl_processor_emit(&bt->base, b);
}

static void on_period(uv_timer_t *t) { emit_held(t->data); }

static void batch_process(sl_processor_t *p, sl_batch_t *b) {
  batcher_t *bt = (batcher_t *)p;
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    if (!bt->held) {
      bt->held = sl_batch_new(bt->pol.count > 0 && bt->pol.count < 1024 ? (uint32_t)bt->pol.count : 64);
      if (bt->timer_init && bt->pol.period_ms > 0) uv_timer_start(&bt->timer, on_period, (uint64_t)bt->pol.period_ms, 0);
    }
    sl_batch_push(bt->held, m);
    bt->bytes += (int64_t)m->content->len;
    if (sl_lcheck_batch_full(&bt->pol, bt->check, bt->held, bt->bytes)) emit_held(bt);
  }
  sl_batch_free_shell(b);
}

static void batch_flush(sl_processor_t *p) { emit_held((batcher_t *)p); }

static void timer_closed(uv_handle_t *h) { free(h->data); }

static void batch_destroy(sl_processor_t *p) {
  batcher_t *bt = (batcher_t *)p;
  if (bt->held) sl_batch_free(bt->held);
  sl_lcheck_free(bt->check);
  if (bt->timer_init) uv_close((uv_handle_t *)&bt->timer, timer_closed);
  else free(bt);
}

static const sl_processor_vt vt = {batch_process, batch_flush, batch_destroy};
static const sl_spec_t spec;

static void *batch_create(sl_build_t *b, const sl_cnode_t *conf) {
  batcher_t *bt = sl_xcalloc(1, sizeof(*bt));
  sl_component_init_processor(&bt->base, &vt, &spec, b);
  sl_batch_policy_read(conf, &bt->pol);
  int bad = 0;   /* count is validated: within bounds */
  if (*sl_conf_str(conf, "check", "") && !(bt->check = sl_lua_check_field(b->worker, conf, b->diags, "check")))
    bad = 1;
  if (!bad && bt->pol.count <= 0 && bt->pol.byte_size <= 0 && bt->pol.period_ms <= 0 && !bt->check) {
    sl_diag_add(b->diags, conf, "batch", "set at least one of count, byte_size, period or check");
    bad = 1;
  }
  if (bad) {
    sl_lcheck_free(bt->check);
    free(bt);
    return NULL;
  }
  if (bt->pol.count > 1 || bt->pol.byte_size > 0 || bt->check) b->holders++;   /* a period alone lets go */
  if (b->worker) {
    uv_timer_init(b->worker->loop, &bt->timer);
    bt->timer.data = bt;
    bt->timer_init = 1;
  }
  return bt;
}

static const sl_spec_t spec = {
  .name = "batch",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Groups messages into batches by count, size, age or a Lua check.",
  .desc =
    "Messages are held until one of the limits is reached, then passed on as one batch; what "
    "is held is passed on at shutdown or when the input ends. Each message keeps its own "
    "transaction.\n\n"
    "Held messages keep their input transactions open, and the stream admits at most "
    "`max_in_flight` of those: when they are all open and nothing is being written, what is held "
    "is passed on at once, since a larger `count` would never be reached.",
  .fields = fields,
  .example = "pipeline:\n  processors:\n    - batch: {count: 100, period: 1s}\n",
  .create = batch_create,
};
SL_REGISTER(spec)
