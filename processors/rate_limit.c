/* `rate_limit` processor: lets at most `count` messages through per
 * `interval`; the rest wait (never dropped), which backs up into the input
 * through the stream's max_in_flight. */
#include "core/component.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"count", SL_F_INT, "1000", 0, "Messages allowed per interval.", NULL, NULL},
  {"interval", SL_F_DURATION, "1s", 0, "Length of a window.", NULL, NULL},
  {0}};

typedef struct rl {
  sl_processor_t base;
  int64_t count, interval_ms;
  int64_t tokens;
  uint64_t window_start;
  sl_batch_t *queue;          /* waiting messages, in arrival order */
  uint32_t qhead;
  uv_timer_t timer;
  int timer_init;
} rl_t;

static void refill(rl_t *r) {
  if (!r->timer_init) return;
  uint64_t now = uv_now(r->base.worker->loop);
  if (now - r->window_start >= (uint64_t)r->interval_ms) {
    r->window_start = now;
    r->tokens = r->count;
  }
}

static void on_timer(uv_timer_t *t);

/* Passes on as many waiting messages as the window allows. */
static void release(rl_t *r) {
  refill(r);
  uint32_t avail = r->queue ? r->queue->n - r->qhead : 0;
  uint32_t n = !r->timer_init ? avail : (uint32_t)(r->tokens < avail ? r->tokens : avail);
  if (n) {
    sl_batch_t *out = sl_batch_new(n);
    for (uint32_t i = 0; i < n; i++) sl_batch_push(out, r->queue->msgs[r->qhead + i]);
    r->qhead += n;
    r->tokens -= n;
    if (r->qhead == r->queue->n) {
      sl_batch_free_shell(r->queue);
      r->queue = NULL;
      r->qhead = 0;
    }
    sl_processor_emit(&r->base, out);
  }
  if (r->queue && r->timer_init && !uv_is_active((uv_handle_t *)&r->timer)) {
    uint64_t now = uv_now(r->base.worker->loop);
    uint64_t left = r->window_start + (uint64_t)r->interval_ms > now ? r->window_start + (uint64_t)r->interval_ms - now : 1;
    uv_timer_start(&r->timer, on_timer, left, 0);
  }
}

static void on_timer(uv_timer_t *t) { release(t->data); }

static void rl_process(sl_processor_t *p, sl_batch_t *b) {
  rl_t *r = (rl_t *)p;
  if (!r->queue) {
    r->queue = b;
    r->qhead = 0;
  } else {
    for (uint32_t i = 0; i < b->n; i++) sl_batch_push(r->queue, b->msgs[i]);
    sl_batch_free_shell(b);
  }
  release(r);
}

static void timer_closed(uv_handle_t *h) { free(h->data); }

static void rl_destroy(sl_processor_t *p) {
  rl_t *r = (rl_t *)p;
  if (r->queue) {
    for (uint32_t i = r->qhead; i < r->queue->n; i++) sl_msg_free(r->queue->msgs[i]);
    sl_batch_free_shell(r->queue);
  }
  if (r->timer_init) uv_close((uv_handle_t *)&r->timer, timer_closed);
  else free(r);
}

static const sl_processor_vt vt = {rl_process, NULL, rl_destroy};
static const sl_spec_t spec;

static void *rl_create(sl_build_t *b, const sl_cnode_t *conf) {
  rl_t *r = sl_xcalloc(1, sizeof(*r));
  sl_component_init_processor(&r->base, &vt, &spec, b);
  r->count = sl_conf_int(conf, "count", 1000);
  r->interval_ms = sl_conf_duration_ms(conf, "interval", 1000);
  if (r->count < 1 || r->interval_ms < 1) {
    sl_diag_add(b->diags, conf, "rate_limit", "count and interval must be positive");
    free(r);
    return NULL;
  }
  r->tokens = r->count;
  if (b->worker) {
    uv_timer_init(b->worker->loop, &r->timer);
    r->timer.data = r;
    r->timer_init = 1;
    r->window_start = uv_now(b->worker->loop);
  }
  return r;
}

static const sl_spec_t spec = {
  .name = "rate_limit",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Passes at most `count` messages per `interval`; the rest wait, none are dropped.",
  .desc = "A fixed window per processor (local to this sluice process). Waiting messages keep "
          "their transactions open, so the stream's `max_in_flight` stops the input while the "
          "limit holds. The limit still applies while a finished input or a shutdown drains (within `shutdown_timeout`).",
  .fields = fields,
  .example = "pipeline:\n  processors:\n    - rate_limit: {count: 100, interval: 1s}\n",
  .create = rl_create,
};
SL_REGISTER(spec)
