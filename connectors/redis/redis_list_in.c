/* `redis_list` input: at-least-once reads of a list. Each element is moved
 * atomically into a processing list (LMOVE, or BLMOVE when the list is
 * empty) and removed from there (LREM) only once its transaction completed;
 * on start, what a killed process left in the processing list goes back to
 * the head of the list, in order, to be read again. One connection moves
 * (BLMOVE blocks it), another removes. */
#include "redis_common.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const commands[] = {"blpop", "brpop", NULL};

static const sl_field_t fields[] = {
  SL_REDIS_FIELDS,
  {"key", SL_F_STRING, NULL, SL_REQUIRED, "List to read.", NULL, NULL},
  {"command", SL_F_ENUM, "blpop", 0,
   "Which end is read: `blpop` the head (in order with an `rpush` writer), `brpop` the tail. The elements are "
   "moved (BLMOVE), not popped: the names are Benthos'.", commands, NULL},
  {"timeout", SL_F_DURATION, "5s", 0, "How long one BLMOVE waits for an element.", NULL, NULL},
  {"processing_key", SL_F_STRING, "", 0,
   "List holding the elements read and not yet acknowledged; empty: `<key>-processing` (`{<key>}-processing` "
   "with kind: cluster unless key has a {hash tag}: both lists must share a slot). sluice adds it for "
   "at-least-once: give each consumer of one list its own, since a start moves everything in it back.",
   NULL, NULL},
  {"limit", SL_F_INT, "64", 0, "Elements moved per round trip (pipelined LMOVEs) at most; one batch (sluice adds it).",
   SL_BOUNDS("1", "100000"), NULL},
  SL_BATCHING_FIELD,
  {0}};

/* Moves everything from KEYS[1] (processing) back to the head of KEYS[2],
 * newest first, so that the oldest ends up first: one atomic step. */
static const char requeue[] =
  "local n = 0 while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', ARGV[1]) do n = n + 1 end return n";

typedef struct flight {
  struct lin *in;
  sl_bytes_t **vals;
  uint32_t n, open;
} flight_t;

typedef struct lin {
  sl_input_t base;
  sl_rconn_t *rd, *ack;
  char *key, *proc;
  const char *from;          /* LEFT or RIGHT */
  char timeout[24];
  int64_t limit;
  int requeued, moving, stopped, open_moves;
  sl_batch_t *filling;       /* elements of the moves out */
  int acks_open;
  void (*close_done)(sl_input_t *in, void *arg);
  void *close_arg;
} lin_t;

static const char *sname(lin_t *in) { return sl_rconn_stream(in->rd); }

static void move_next(lin_t *in);

static void maybe_closed(lin_t *in) {
  if (!in->close_done || in->acks_open) return;
  void (*done)(sl_input_t *, void *) = in->close_done;
  in->close_done = NULL;
  done(&in->base, in->close_arg);
}

static void flight_done(flight_t *f) {
  for (uint32_t i = 0; i < f->n; i++) sl_bytes_unref(f->vals[i]);
  free(f->vals);
  free(f);
}

static void on_removed(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  flight_t *f = arg;
  lin_t *in = f->in;
  if (!rp || rp->type == REDIS_REPLY_ERROR)   /* left in the processing list: moved back on the next start */
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "redis: LREM: %s", rp ? rp->str : err);
  in->acks_open--;
  if (--f->open == 0) flight_done(f);
  maybe_closed(in);
}

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  (void)err;
  flight_t *f = arg;
  lin_t *in = f->in;
  if (status == 0)
    for (uint32_t i = 0; i < f->n; i++) {
      const char *argv[] = {"LREM", in->proc, "1", f->vals[i]->data};
      size_t lens[] = {4, strlen(in->proc), 1, f->vals[i]->len};
      if (sl_redis_command(in->ack->r, on_removed, f, 4, argv, lens) == 0) {
        f->open++;
        in->acks_open++;
      } else {
        sl_logf(SL_LOG_WARN, sname(in), in->base.label, "redis: LREM: %s", sl_redis_why(in->ack->r));
      }
    }
  if (f->open == 0) flight_done(f);
  move_next(in);
}

static void emit(lin_t *in) {
  sl_batch_t *b = in->filling;
  in->filling = NULL;
  if (!b || b->n == 0) {
    if (b) sl_batch_free(b);
    return;
  }
  flight_t *f = sl_xcalloc(1, sizeof(*f));
  f->in = in;
  f->n = b->n;
  f->vals = sl_xmalloc(b->n * sizeof(*f->vals));
  for (uint32_t i = 0; i < b->n; i++) f->vals[i] = sl_bytes_ref(b->msgs[i]->content);
  sl_input_emit_retry(&in->base, b, on_txn, f);
}

static void on_moved(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  (void)err;
  lin_t *in = arg;
  int blocking = in->open_moves < 0;
  in->open_moves = blocking ? 0 : in->open_moves - 1;
  if (rp && rp->type == REDIS_REPLY_STRING) {
    sl_msg_t *m = sl_msg_new(rp->str, rp->len);
    sl_kv_add(&m->meta, "redis_key", in->key, strlen(in->key));
    if (!in->filling) in->filling = sl_batch_new(8);
    sl_batch_push(in->filling, m);
  } else if (rp && rp->type == REDIS_REPLY_ERROR) {
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "redis: LMOVE: %s", rp->str);
  }
  if (in->open_moves > 0) return;
  in->moving = 0;
  int got = in->filling && in->filling->n;
  /* Read but not emitted when stopping: the elements wait in the processing list for the next start. */
  if (in->stopped) {
    if (in->filling) sl_batch_free(in->filling);
    in->filling = NULL;
    return;
  }
  emit(in);
  if (!rp || rp->type == REDIS_REPLY_ERROR) return;   /* the next up (or the next ack) reads on */
  in->moving = 0;
  if (got || blocking) move_next(in);
  else {   /* the list was empty: wait on it */
    const char *argv[] = {"BLMOVE", in->key, in->proc, in->from, "RIGHT", in->timeout};
    size_t lens[6];
    for (int k = 0; k < 6; k++) lens[k] = strlen(argv[k]);
    if (sl_redis_command(in->rd->r, on_moved, in, 6, argv, lens) == 0) {
      in->moving = 1;
      in->open_moves = -1;
    }
  }
}

static void move_next(lin_t *in) {
  if (in->moving || in->stopped || !in->requeued || !sl_redis_up(in->rd->r) || !sl_input_ready(&in->base)) return;
  const char *argv[] = {"LMOVE", in->key, in->proc, in->from, "RIGHT"};
  size_t lens[5];
  for (int k = 0; k < 5; k++) lens[k] = strlen(argv[k]);
  for (int64_t i = 0; i < in->limit; i++) {
    if (sl_redis_command(in->rd->r, on_moved, in, 5, argv, lens)) break;
    in->open_moves++;
  }
  in->moving = in->open_moves > 0;
}

static void on_requeued(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  lin_t *in = arg;
  if (!rp || rp->type == REDIS_REPLY_ERROR) {
    const char *why = rp ? rp->str : err;
    sl_logf(SL_LOG_ERROR, sname(in), in->base.label, "redis: moving %s back to %s: %s", in->proc, in->key, why);
    sl_input_set_connected(&in->base, 0, why);
    return;   /* tried again on the next connection */
  }
  if (rp->type == REDIS_REPLY_INTEGER && rp->integer > 0)
    sl_logf(SL_LOG_INFO, sname(in), in->base.label, "redis: %lld element(s) of %s not acknowledged before moved back to %s",
            (long long)rp->integer, in->proc, in->key);
  in->requeued = 1;
  move_next(in);
}

static void on_rd_state(sl_rconn_t *c, int up, void *arg) {
  (void)c;
  lin_t *in = arg;
  in->moving = 0;
  in->open_moves = 0;
  if (!up || in->stopped) return;
  if (in->requeued) {
    move_next(in);
    return;
  }
  /* Only at the first connection: later, what is in the processing list is this process's, in flight. */
  const char *argv[] = {"EVAL", requeue, "2", in->proc, in->key, !strcmp(in->from, "LEFT") ? "LEFT" : "RIGHT"};
  size_t lens[6];
  for (int k = 0; k < 6; k++) lens[k] = strlen(argv[k]);
  sl_redis_command(in->rd->r, on_requeued, in, 6, argv, lens);
}

static int lin_start(sl_input_t *base) {
  lin_t *in = (lin_t *)base;
  uv_loop_t *loop = base->worker->loop;
  return sl_rconn_start(in->ack, loop) || sl_rconn_start(in->rd, loop) ? -1 : 0;
}

static void lin_resume(sl_input_t *base) { move_next((lin_t *)base); }
static void lin_stop(sl_input_t *base) { ((lin_t *)base)->stopped = 1; }

static void lin_close(sl_input_t *base, void (*done)(sl_input_t *, void *), void *arg) {
  lin_t *in = (lin_t *)base;
  in->close_done = done;
  in->close_arg = arg;
  maybe_closed(in);
}

static void lin_destroy(sl_input_t *base) {
  lin_t *in = (lin_t *)base;
  sl_rconn_free(in->rd);
  sl_rconn_free(in->ack);
  if (in->filling) sl_batch_free(in->filling);
  free(in->key);
  free(in->proc);
  free(in);
}

static const sl_input_vt vt = {lin_start, lin_resume, lin_stop, lin_destroy, lin_close, NULL};
static const sl_spec_t spec;

static void *lin_create(sl_build_t *b, const sl_cnode_t *conf) {
  lin_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &vt, &spec, b);
  in->key = sl_xstrdup(sl_conf_str(conf, "key", ""));
  const char *p = sl_conf_str(conf, "processing_key", "");
  /* in a cluster both lists must share a slot (one LMOVE): the default takes the key's slot */
  const char *open = strchr(in->key, '{'), *close = open ? strchr(open, '}') : NULL;
  int tagged = close && close > open + 1;
  in->proc = *p ? sl_xstrdup(p)
                : sl_xasprintf(sl_redis_conf_cluster(conf) && !tagged ? "{%s}-processing" : "%s-processing", in->key);
  in->from = strcmp(sl_conf_str(conf, "command", "blpop"), "brpop") ? "LEFT" : "RIGHT";
  int64_t ms = sl_conf_duration_ms(conf, "timeout", 5000);
  snprintf(in->timeout, sizeof in->timeout, "%.3f", (double)ms / 1000.0);
  in->limit = sl_conf_int(conf, "limit", 64);
  in->rd = sl_rconn_new(b, conf, &in->base, NULL, on_rd_state, in);
  in->ack = in->rd ? sl_rconn_new(b, conf, &in->base, NULL, NULL, NULL) : NULL;
  if (!in->ack) {
    lin_destroy(&in->base);
    return NULL;
  }
  in->ack->quiet = 1;
  if (in->rd->reply_timeout > 0) in->rd->reply_timeout += ms;
  if (!strcmp(in->key, in->proc)) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "processing_key"), "processing_key", "must differ from key");
    lin_destroy(&in->base);
    return NULL;
  }
  const char *both[2] = {in->key, in->proc};
  if (sl_rconn_one_slot(b, in->rd, sl_cnode_get(conf, "processing_key"), "processing_key", both, 2)) {
    lin_destroy(&in->base);
    return NULL;
  }
  return in;
}

static const sl_spec_t spec = {
  .name = "redis_list",
  .kind = SL_KIND_INPUT,
  .summary = "Reads a Redis list at least once: elements are moved to a processing list (BLMOVE) and "
             "removed from it (LREM) once delivered.",
  .desc =
    "Benthos pops elements (BLPOP), so one that was popped and not delivered when the process "
    "died is lost. sluice moves each element atomically into `processing_key` (LMOVE, pipelined "
    "`limit` at a time; BLMOVE waiting up to `timeout` when the list is empty), emits what one "
    "round moved as one batch, and removes an element from the processing list (LREM) only once "
    "its batch was delivered or deliberately dropped. On start, whatever a previous run left in "
    "the processing list goes back to the head of the list in its order (one atomic script) and "
    "is read again: at-least-once. Metadata: `redis_key`. While Redis is down the stream reports "
    "not ready on `/ready` with the reason; the client reconnects with backoff.",
  .fields = fields,
  .example =
    "input:\n"
    "  redis_list:\n"
    "    url: redis://localhost:6379\n"
    "    key: jobs\n",
  .create = lin_create,
};
SL_REGISTER(spec)
