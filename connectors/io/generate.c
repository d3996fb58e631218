/* `generate` input: creates messages from a Lua mapping, on an interval or as
 * fast as the stream accepts them. */
#include "core/component.h"
#include "core/xalloc.h"
#include "lua/faillog.h"
#include <stdlib.h>

/* With interval 0, at most this many batches per loop turn, so that timers,
 * signals and I/O still get their turn when the output acks synchronously. */
enum { BATCHES_PER_TURN = 64 };

static const sl_field_t fields[] = {
  {"mapping", SL_F_CODE, NULL, SL_REQUIRED,
   "Lua run once per generated message, exactly like an inline `lua` processor body, on a "
   "message whose content is empty. `i` is the 1-based sequence number of the message over "
   "the whole run. Return a table (encoded as JSON) or a string to set the content; "
   "`meta` sets metadata; `return deleted()` skips the message (it still counts toward "
   "`count`). A failing mapping flags the message as failed and logs a warning, rate-limited as a "
   "`lua` processor's failures are (see `sluice doc lua`).", NULL, NULL},
  {"count", SL_F_INT, "0", 0,
   "How many messages to generate before the input finishes (then the run exits once they "
   "are delivered). 0 generates forever.", SL_BOUNDS("0", ""), NULL},
  {"interval", SL_F_DURATION, "1s", 0,
   "Time between batches; the first batch is generated at once. A batch that takes longer than "
   "the interval is followed by the next after one turn of the event loop (missed ticks are not "
   "made up). `0` generates as fast as the stream accepts (bounded by the stream's `max_in_flight`).",
   NULL, NULL},
  {"batch_size", SL_F_INT, "1", 0,
   "Messages per batch. A batch is one transaction; with `count` the last batch may be "
   "smaller.", SL_BOUNDS("1", "1000000"), NULL},
  {0},
};

typedef struct gen {
  sl_input_t base;
  sl_lscript_t *script;
  sl_lfaillog_t *log;        /* failures of the mapping; NULL when only linting */
  int64_t count, interval_ms, batch_size;
  int64_t produced;
  uv_timer_t timer;
  uv_idle_t idle;
  int handles;               /* initialised handles not yet closed */
  int owed;                  /* a tick arrived while the stream was full */
  int finished, destroyed;
} gen_t;

static void gen_free(gen_t *g) {
  sl_lfaillog_free(g->log);
  sl_lscript_free(g->script);
  free(g);
}

static void on_closed(uv_handle_t *h) {
  gen_t *g = h->data;
  if (--g->handles == 0 && g->destroyed) gen_free(g);
}

/* Stops producing for good and lets the loop exit. */
static void finish(gen_t *g) {
  if (g->finished) return;
  g->finished = 1;
  if (g->handles) {
    uv_close((uv_handle_t *)&g->timer, on_closed);
    uv_close((uv_handle_t *)&g->idle, on_closed);
  }
}

static void produce(gen_t *g) {
  int64_t n = g->batch_size;
  if (g->count > 0 && g->count - g->produced < n) n = g->count - g->produced;
  sl_batch_t *b = sl_batch_new((uint32_t)n);
  for (int64_t k = 0; k < n; k++) {
    sl_msg_t *m = sl_msg_new("", 0);
    m->seq = (uint64_t)(g->produced + k + 1);
    sl_batch_push(b, m);
  }
  sl_lscript_run(g->script, b, (uint64_t)g->produced + 1, g->log);
  g->produced += n;
  if (b->n) sl_input_emit(&g->base, b, NULL, NULL);
  else sl_batch_free_shell(b);
  if (g->count > 0 && g->produced >= g->count) {
    finish(g);
    sl_input_eof(&g->base);
  }
}

static void on_idle(uv_idle_t *h) {
  gen_t *g = h->data;
  for (int k = 0; k < BATCHES_PER_TURN && !g->finished; k++) {
    if (!sl_input_ready(&g->base)) {
      uv_idle_stop(h);
      return;
    }
    produce(g);
  }
}

static void on_tick(uv_timer_t *t) {
  gen_t *g = t->data;
  if (sl_input_ready(&g->base)) {
    produce(g);
    /* The next tick is due one interval after this one was; libuv would
     * measure the wait from the loop time cached before the work above,
     * stretching the period by the time the batch took (a broadcast to
     * many clients, say). */
    uv_update_time(t->loop);
    /* A tick that took longer than the interval is due again at once, and
     * libuv's timer phase would run it again and again, never reaching the
     * loop's I/O and prepare handles (requests, the HTTP workers' hand-off):
     * the next one waits for one turn of the loop instead. */
    if (uv_timer_get_due_in(t) == 0) uv_timer_start(t, on_tick, 1, (uint64_t)g->interval_ms);
    return;
  }
  /* Like a blocked ticker: one tick is kept, the rest are not accumulated. */
  g->owed = 1;
  uv_timer_stop(t);
}

static int gen_start(sl_input_t *in) {
  gen_t *g = (gen_t *)in;
  uv_loop_t *loop = in->worker->loop;
  uv_timer_init(loop, &g->timer);
  uv_idle_init(loop, &g->idle);
  g->timer.data = g->idle.data = g;
  g->handles = 2;
  if (g->interval_ms > 0) uv_timer_start(&g->timer, on_tick, 0, (uint64_t)g->interval_ms);
  else uv_idle_start(&g->idle, on_idle);
  return 0;
}

static void gen_resume(sl_input_t *in) {
  gen_t *g = (gen_t *)in;
  if (g->finished) return;
  if (g->interval_ms == 0) {
    uv_idle_start(&g->idle, on_idle);
  } else if (g->owed) {
    g->owed = 0;
    produce(g);
    if (!g->finished)
      uv_timer_start(&g->timer, on_tick, (uint64_t)g->interval_ms, (uint64_t)g->interval_ms);
  }
}

static void gen_stop(sl_input_t *in) { finish((gen_t *)in); }

static void gen_destroy(sl_input_t *in) {
  gen_t *g = (gen_t *)in;
  finish(g);
  if (g->handles) g->destroyed = 1;   /* the last on_closed frees */
  else gen_free(g);
}

static const sl_input_vt vt = {gen_start, gen_resume, gen_stop, gen_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *gen_create(sl_build_t *b, const sl_cnode_t *conf) {
  gen_t *g = sl_xcalloc(1, sizeof(*g));
  sl_component_init_input(&g->base, &vt, &spec, b);
  g->count = sl_conf_int(conf, "count", 0);
  g->interval_ms = sl_conf_duration_ms(conf, "interval", 1000);
  g->batch_size = sl_conf_int(conf, "batch_size", 1);   /* validated: within bounds */
  g->script = sl_lua_script_field(b->worker, conf, b->diags, "mapping");
  if (!g->script) {
    gen_free(g);
    return NULL;
  }
  if (b->worker && !b->lint_only) g->log = sl_lfaillog_new(b->worker->loop, b->stream_name, &g->base.label);
  return g;
}

static const sl_spec_t spec = {
  .name = "generate",
  .kind = SL_KIND_INPUT,
  .summary = "Generates messages from a Lua mapping, on an interval or as fast as possible.",
  .desc =
    "Creates `batch_size` messages every `interval`, each filled by running `mapping` on an "
    "empty message with `i` (1, 2, 3, ... over the whole run) in scope. With `count` the "
    "input finishes after that many messages and the run exits once they are delivered.\n\n"
    "Generation never outruns the stream: while `max_in_flight` transactions are open it "
    "waits (a tick that falls in that wait is delivered when room frees up; further ticks "
    "are not queued).",
  .fields = fields,
  .example =
    "input:\n"
    "  generate:\n"
    "    count: 3\n"
    "    interval: 0\n"
    "    mapping: 'return { n = i, id = uuid_v4() }'\n",
  .create = gen_create,
};
SL_REGISTER(spec)
