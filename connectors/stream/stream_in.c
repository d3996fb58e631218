/* `stream` input: reads a stream of the embedded store from a durable
 * cursor (a consumer group or a subscriber), woken by appends. Offsets are
 * committed only once the transactions carrying them are acknowledged, in
 * order per partition; a failed delivery is re-sent, so nothing is lost
 * (at-least-once: after a crash, what was not committed comes again). */
#include "kafka_stream_in.h"
#include "core/component.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include "store/embedded/store.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCHES_PER_TURN = 64 };

static const sl_field_t fields[] = {
  {"name", SL_F_STRING, NULL, SL_REQUIRED, "The stream's name (created when missing).", NULL, NULL},
  {"group", SL_F_STRING, "", 0,
   "Consumer group whose committed offsets this input resumes from and commits to. Empty: `subscriber`, or "
   "else a group named after this pipeline stream.", NULL, NULL},
  {"subscriber", SL_F_STRING, "", 0, "A subscriber cursor (as `/stream/{name}/consume/{subscriber}`) instead of a group.",
   NULL, NULL},
  {"start", SL_F_STRING, "earliest", 0,
   "Where a cursor without committed offsets starts: `earliest`, `latest` or an offset.", NULL, NULL},
  {"batch_size", SL_F_INT, "64", 0, "Records per batch (one transaction).", NULL, NULL},
  {"until_end", SL_F_BOOL, "false", 0,
   "Read what the stream holds when the input starts, then finish (a replay or backfill run that "
   "exits once everything is delivered and committed), instead of waiting for new records.", NULL, NULL},
  {"commit_period", SL_F_DURATION, "100ms", 0,
   "How often acknowledged offsets are written (durably); also at shutdown.", NULL, NULL},
  {0}};

typedef struct flight {
  struct flight *next;
  uint64_t end;              /* next offset after the batch */
  int acked;
} flight_t;

typedef struct sin {
  sl_input_t base;
  char *name, *kind, *cursor, *start;
  int64_t batch_size, commit_ms;
  int until_end;
  uint64_t *stop_at;          /* until_end: the end of each partition at start */
  uint64_t *first;            /* where reading started, per partition */
  sl_sstream_t *s;
  int P;
  unsigned rr;
  uint64_t *pos, *commit, *saved;
  flight_t **head, ***tail;   /* per partition, in emit order */
  sl_swatch_t watch;
  uv_idle_t idle;
  uv_timer_t timer;
  int handles, stopped, destroyed;
} sin_t;

typedef struct ack { sin_t *in; int p; flight_t *f; } ack_t;

static const char *sname(sin_t *in) { return in->base.stream ? in->base.stream->name : NULL; }

static void save(sin_t *in) {
  if (!in->s || sl_sstream_deleted(in->s)) return;
  int changed = 0;
  for (int p = 0; p < in->P; p++) changed |= in->commit[p] != in->saved[p];
  if (!changed) return;
  char *err = NULL;
  if (sl_sstream_set_cursor(in->s, in->kind, in->cursor, in->commit, &err) != 0) {
    sl_logf(SL_LOG_ERROR, sname(in), in->base.label, "offsets not committed: %s", err);
    free(err);
    return;
  }
  memcpy(in->saved, in->commit, (size_t)in->P * sizeof(uint64_t));
}

static void on_ack(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  ack_t *a = arg;
  sin_t *in = a->in;
  if (status != 0) {
    /* Only at shutdown (the stream re-sends until then): not committed,
     * so it comes again at the next start. */
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "not delivered, left uncommitted: %s", err ? err : "");
    free(a);
    return;
  }
  a->f->acked = 1;
  while (in->head[a->p] && in->head[a->p]->acked) {
    flight_t *f = in->head[a->p];
    in->commit[a->p] = f->end;
    in->head[a->p] = f->next;
    if (!in->head[a->p]) in->tail[a->p] = &in->head[a->p];
    free(f);
  }
  free(a);
}

static void headers_to_meta(sl_msg_t *m, const sl_record_t *r) {
  if (!r->headers_len) return;
  json_t *h = json_loadb(r->headers, r->headers_len, 0, NULL);
  const char *k;
  json_t *v;
  json_object_foreach(h, k, v) {
    char *b;
    size_t bl;
    if (json_is_string(v)) {
      sl_kv_set(&m->meta, k, json_string_value(v), json_string_length(v));
    } else if (sl_json_header_bytes(v, &b, &bl) == 0) {   /* bytes that are not UTF-8 */
      sl_kv_set(&m->meta, k, b, bl);
      free(b);
    }
  }
  json_decref(h);
}

typedef struct fill { sl_batch_t *b; int p; } fill_t;

static int to_msg(const sl_record_t *r, void *arg) {
  fill_t *f = arg;
  sl_msg_t *m = sl_msg_new(r->value, r->value_len);
  headers_to_meta(m, r);
  char num[32];
  int n = snprintf(num, sizeof num, "%llu", (unsigned long long)r->offset);
  sl_kv_set(&m->meta, "stream_offset", num, (size_t)n);
  n = snprintf(num, sizeof num, "%d", f->p);
  sl_kv_set(&m->meta, "stream_partition", num, (size_t)n);
  if (r->event_len) sl_kv_set(&m->meta, "event", r->event, r->event_len);
  if (r->key_len) sl_kv_set(&m->meta, "stream_key", r->key, r->key_len);
  m->seq = r->offset;
  sl_batch_push(f->b, m);
  return 0;
}

static void sin_stop(sl_input_t *base);

/* Emits what there is, as far as the stream takes it. */
static void pump(uv_idle_t *h) {
  sin_t *in = h->data;
  uv_idle_stop(h);
  if (in->stopped || !in->s) return;
  if (sl_sstream_deleted(in->s)) {
    sl_input_set_connected(&in->base, 0, "the stream was deleted");
    return;
  }
  for (int turn = 0; turn < BATCHES_PER_TURN && sl_input_ready(&in->base); turn++) {
    int emitted = 0;
    for (int k = 0; k < in->P && !emitted; k++) {
      int p = (int)(in->rr++ % (unsigned)in->P);
      uint64_t want = (uint64_t)in->batch_size;
      if (in->until_end) want = in->pos[p] >= in->stop_at[p] ? 0 : in->stop_at[p] - in->pos[p] < want ? in->stop_at[p] - in->pos[p] : want;
      if (!want) continue;
      fill_t f = {sl_batch_new((uint32_t)want), p};
      char *err = NULL;
      int64_t n = sl_sstream_read(in->s, p, in->pos[p], (size_t)want, 4 << 20, to_msg, &f, &err);
      if (n < 0) {
        sl_logf(SL_LOG_ERROR, sname(in), in->base.label, "%s", err);
        sl_input_set_connected(&in->base, 0, err);
        free(err);
        sl_batch_free(f.b);
        return;
      }
      if (n == 0) {
        sl_batch_free(f.b);
        continue;
      }
      in->pos[p] += (uint64_t)n;
      flight_t *fl = sl_xcalloc(1, sizeof(*fl));
      fl->end = in->pos[p];
      *in->tail[p] = fl;
      in->tail[p] = &fl->next;
      ack_t *a = sl_xcalloc(1, sizeof(*a));
      *a = (ack_t){in, p, fl};
      sl_input_emit_retry(&in->base, f.b, on_ack, a);
      emitted = 1;
    }
    if (!emitted) {
      if (in->until_end) {
        sin_stop(&in->base);   /* the final commit comes with destroy */
        sl_input_eof(&in->base);
      }
      return;   /* caught up: the next append wakes us */
    }
  }
  if (sl_input_ready(&in->base)) uv_idle_start(&in->idle, pump);
}

static void kick(sin_t *in) {
  if (!in->stopped && in->handles) uv_idle_start(&in->idle, pump);
}

static void on_wake(sl_swatch_t *w) { kick((sin_t *)((char *)w - offsetof(sin_t, watch))); }

static void on_commit_timer(uv_timer_t *t) { save(t->data); }

static int sin_start(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  sl_store_t *st = sl_store_of(base->worker);
  if (!st) return -1;
  in->s = sl_store_find(st, in->name);
  const char *bad = in->s ? sl_sstream_cursor_problem(in->s, in->kind, in->cursor) : sl_store_broken(st, in->name);
  if (bad) {
    /* Not from a guessed position: not at all, until the operator acts. */
    sl_logf(SL_LOG_ERROR, sname(in), base->label, "stream %s: %s", in->name, bad);
    sl_input_set_connected(base, 0, bad);
    in->s = NULL;
    return in->until_end ? -1 : 0;
  }
  if (!in->s) {
    sl_sconf_t c = sl_store_defaults(st);
    char *err = NULL;
    if (sl_store_create(st, in->name, &c, &in->s, &err) >= 300) {
      sl_logf(SL_LOG_ERROR, sname(in), base->label, "stream %s: %s", in->name, err);
      free(err);
      return -1;
    }
  }
  in->P = sl_sstream_conf(in->s)->partitions;
  in->pos = sl_xcalloc((size_t)in->P, sizeof(uint64_t));
  in->commit = sl_xcalloc((size_t)in->P, sizeof(uint64_t));
  in->saved = sl_xcalloc((size_t)in->P, sizeof(uint64_t));
  in->head = sl_xcalloc((size_t)in->P, sizeof(*in->head));
  in->tail = sl_xcalloc((size_t)in->P, sizeof(*in->tail));
  in->stop_at = sl_xcalloc((size_t)in->P, sizeof(uint64_t));
  in->first = sl_xcalloc((size_t)in->P, sizeof(uint64_t));
  const uint64_t *c = sl_sstream_cursor(in->s, in->kind, in->cursor);
  for (int p = 0; p < in->P; p++) {
    uint64_t lo = sl_sstream_start(in->s, p), hi = sl_sstream_end(in->s, p), at;
    if (c) at = c[p];
    else if (!strcmp(in->start, "latest")) at = hi;
    else if (!strcmp(in->start, "earliest")) at = lo;
    else at = strtoull(in->start, NULL, 10);
    if (at < lo) {
      sl_logf(SL_LOG_WARN, sname(in), base->label, "offset %llu of partition %d is gone (retention); from %llu",
              (unsigned long long)at, p, (unsigned long long)lo);
      at = lo;
    }
    if (at > hi) at = hi;
    in->pos[p] = in->commit[p] = at;
    in->saved[p] = c ? c[p] : UINT64_MAX;
    in->stop_at[p] = hi;
    in->first[p] = at;
    in->tail[p] = &in->head[p];
  }
  uv_idle_init(base->worker->loop, &in->idle);
  uv_timer_init(base->worker->loop, &in->timer);
  in->idle.data = in->timer.data = in;
  in->handles = 2;
  uv_timer_start(&in->timer, on_commit_timer, (uint64_t)in->commit_ms, (uint64_t)in->commit_ms);
  in->watch.wake = on_wake;
  sl_sstream_watch(in->s, &in->watch);
  kick(in);
  return 0;
}

static void sin_resume(sl_input_t *base) { kick((sin_t *)base); }

static void sin_stop(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  in->stopped = 1;
  /* Acks still arriving are committed by the final save in sin_destroy;
   * a running timer would keep the loop from ending. */
  if (in->handles) {
    uv_idle_stop(&in->idle);
    uv_timer_stop(&in->timer);
  }
  if (in->s && !sl_sstream_deleted(in->s)) sl_sstream_unwatch(in->s, &in->watch);
}

static void sin_free(sin_t *in) {
  for (int p = 0; in->head && p < in->P; p++)
    for (flight_t *f = in->head[p], *n; f; f = n) {
      n = f->next;
      free(f);
    }
  free(in->head);
  free(in->tail);
  free(in->pos);
  free(in->commit);
  free(in->saved);
  free(in->stop_at);
  free(in->first);
  free(in->name);
  free(in->kind);
  free(in->cursor);
  free(in->start);
  free(in);
}

static void on_closed(uv_handle_t *h) {
  sin_t *in = h->data;
  if (--in->handles == 0) sin_free(in);
}

static void sin_destroy(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  sin_stop(base);
  save(in);   /* every transaction has completed: the final commit */
  if (!in->handles) {
    sin_free(in);
    return;
  }
  uv_close((uv_handle_t *)&in->idle, on_closed);
  uv_close((uv_handle_t *)&in->timer, on_closed);
}

static const sl_spec_t spec;

/* ---------- replays for one consumer ---------- */

typedef struct replay {
  sin_t *in;
  uint64_t *pos, *to;
  int n, p;
  char *token;
  void (*done)(void *arg);
  void *arg;
} replay_t;

static void replay_next(replay_t *r);

static void replay_acked(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  (void)status;
  (void)err;   /* a replayed batch that fails is not retried: the client asks again */
  replay_next(arg);
}

typedef struct rfill { sl_batch_t *b; int p; const char *token; } rfill_t;

static int replay_msg(const sl_record_t *r, void *arg) {
  rfill_t *f = arg;
  fill_t plain = {f->b, f->p};
  to_msg(r, &plain);
  sl_msg_t *m = f->b->msgs[f->b->n - 1];
  sl_kv_set(&m->meta, SL_REPLAY_META, f->token, strlen(f->token));
  return 0;
}

/* Emits the next batch of the replay (the previous one has completed), or
 * ends it. */
static void replay_next(replay_t *r) {
  sin_t *in = r->in;
  while (r->p < r->n && !in->stopped && in->s && !sl_sstream_deleted(in->s)) {
    int p = r->p;
    if (r->pos[p] >= r->to[p]) {
      r->p++;
      continue;
    }
    uint64_t want = r->to[p] - r->pos[p];
    if (want > (uint64_t)in->batch_size) want = (uint64_t)in->batch_size;
    rfill_t f = {sl_batch_new((uint32_t)want), p, r->token};
    char *err = NULL;
    int64_t got = sl_sstream_read(in->s, p, r->pos[p], (size_t)want, 4 << 20, replay_msg, &f, &err);
    if (got <= 0) {
      if (got < 0) sl_logf(SL_LOG_WARN, sname(in), in->base.label, "replay stopped: %s", err);
      free(err);
      sl_batch_free(f.b);
      r->p++;
      continue;
    }
    r->pos[p] += (uint64_t)got;
    sl_input_emit(&in->base, f.b, replay_acked, r);
    return;
  }
  r->done(r->arg);
  free(r->pos);
  free(r->to);
  free(r->token);
  free(r);
}

static int sin_partitions(const sl_input_t *in) { return ((const sin_t *)in)->P; }
static uint64_t sin_first(const sl_input_t *in, int p) { return ((const sin_t *)in)->first[p]; }
static uint64_t sin_end(const sl_input_t *in, int p) { return sl_sstream_end(((const sin_t *)in)->s, p); }

static void sin_replay(sl_input_t *base, const uint64_t *from, const uint64_t *to, int n, const char *token,
                       void (*done)(void *arg), void *arg) {
  sin_t *in = (sin_t *)base;
  replay_t *r = sl_xcalloc(1, sizeof(*r));
  r->in = in;
  r->n = n < in->P ? n : in->P;
  r->pos = sl_xcalloc((size_t)(r->n ? r->n : 1), sizeof(uint64_t));
  r->to = sl_xcalloc((size_t)(r->n ? r->n : 1), sizeof(uint64_t));
  for (int p = 0; p < r->n; p++) {
    uint64_t lo = sl_sstream_start(in->s, p);
    r->pos[p] = from[p] < lo ? lo : from[p];
    r->to[p] = to[p];
  }
  r->token = sl_xstrdup(token);
  r->done = done;
  r->arg = arg;
  replay_next(r);
}

static const sl_replay_vt replay_vt = {sin_partitions, sin_first, sin_end, sin_replay};
static const sl_input_vt vt = {sin_start, sin_resume, sin_stop, sin_destroy, NULL, &replay_vt};

static void *sin_create(sl_build_t *b, const sl_cnode_t *conf) {
  sin_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &vt, &spec, b);
  in->name = sl_xstrdup(sl_conf_str(conf, "name", ""));
  const char *group = sl_conf_str(conf, "group", ""), *sub = sl_conf_str(conf, "subscriber", "");
  in->kind = sl_xstrdup(*group || !*sub ? "group" : "subscriber");
  in->cursor = *group ? sl_xstrdup(group) : *sub ? sl_xstrdup(sub) : sl_xasprintf("sluice-%s", b->stream_name);
  if (!*group && !*sub)   /* a request-scoped instance is named like `out{alice}` */
    for (char *c = in->cursor; *c; c++)
      if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c)) *c = '_';
  in->start = sl_xstrdup(sl_conf_str(conf, "start", "earliest"));
  in->batch_size = sl_conf_int(conf, "batch_size", 64);
  in->commit_ms = sl_conf_duration_ms(conf, "commit_period", 100);
  in->until_end = sl_conf_bool(conf, "until_end", 0);
  if (in->commit_ms < 1) in->commit_ms = 1;
  const char *bad = !sl_store_valid_name(in->name) ? "name"
                    : !sl_store_valid_name(in->cursor) ? (*group ? "group" : "subscriber")
                    : in->batch_size < 1 ? "batch_size"
                    : (strcmp(in->start, "earliest") && strcmp(in->start, "latest") &&
                       strspn(in->start, "0123456789") != strlen(in->start)) ? "start" : NULL;
  if (*group && *sub) bad = "subscriber";
  if (bad) {
    sl_diag_add(b->diags, sl_cnode_get(conf, bad) ? sl_cnode_get(conf, bad) : conf, bad,
                !strcmp(bad, "start") ? "start is earliest, latest or an offset"
                : !strcmp(bad, "batch_size") ? "batch_size must be at least 1"
                : *group && *sub ? "set `group` or `subscriber`, not both"
                : "names are 1-200 letters, digits, '.', '_' or '-', not starting with '.'");
    sin_free(in);
    return NULL;
  }
  sl_ks_t *ks = b->worker ? b->worker->slot[SL_SLOT_KSTORE] : NULL;
  if (ks) {   /* store.backend kafka (what it cannot do, store/kafka/kafka_store_conf.c refuses) */
    sl_input_t *k = sl_ks_stream_input(ks, b, conf, in->name, in->cursor, in->start, in->batch_size, in->commit_ms);
    sin_free(in);
    return k;
  }
  return in;
}

static const sl_spec_t spec = {
  .name = "stream",
  .kind = SL_KIND_INPUT,
  .summary = "Reads a durable stream (embedded store or Kafka topic), resuming from committed offsets.",
  .desc =
    "Each record becomes a message: the value as content, the headers as metadata, plus "
    "`stream_offset`, `stream_partition`, `stream_key` and `event` (the record's event name). "
    "New records wake the input at once. Offsets are committed per partition in order, only "
    "for acknowledged transactions, every `commit_period` and at shutdown; a failed delivery "
    "is re-sent by the stream, so a record is processed at least once. With "
    "`store.backend: kafka` it is a member of the Kafka consumer group `group` on the stream's "
    "topic (the streams API's group of that name), with the same metadata; `subscriber`, "
    "`until_end` and a numeric `start` need the embedded store.",
  .fields = fields,
  .example =
    "input:\n"
    "  stream:\n"
    "    name: jobs\n"
    "    group: workers\n",
  .create = sin_create,
};
SL_REGISTER(spec)
