/* `redis_streams` input: a consumer of a Redis consumer group. One
 * connection reads (XREADGROUP, blocking up to `timeout`), another
 * acknowledges: an entry is XACKed only once the transaction carrying it
 * completed, so what was read and not acknowledged stays in the group's
 * pending list. On start the consumer first reads its own pending entries
 * (what it had read before a crash: XREADGROUP from 0), then new ones (>);
 * every `claim_idle` it claims other consumers' entries pending that long
 * (XAUTOCLAIM: a consumer that died under another name). With kind:
 * cluster, the streams of each hash slot have a reader of their own (one
 * XREADGROUP names keys of one slot), sent to that slot's master. */
#include "redis_common.h"
#include "clients/redis_slot.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const sl_field_t fields[] = {
  SL_REDIS_FIELDS,
  {"streams", SL_F_STRLIST, NULL, SL_REQUIRED, "Streams to consume.", NULL, NULL},
  {"consumer_group", SL_F_STRING, "sluice", 0, "Consumer group; created when missing (XGROUP CREATE).", NULL, NULL},
  {"client_id", SL_F_STRING, "", 0,
   "Consumer name within the group; empty: the host name. A consumer that restarts under the same name reads "
   "its own pending entries first.", NULL, NULL},
  {"body_key", SL_F_STRING, "body", 0,
   "Field whose value becomes the message's content; every other field becomes metadata. An entry without it "
   "becomes a message with empty content (Benthos skips it, leaving it pending for ever).", NULL, NULL},
  {"create_streams", SL_F_BOOL, "true", 0, "Create missing streams along with the group (MKSTREAM).", NULL, NULL},
  {"start_from_oldest", SL_F_BOOL, "true", 0,
   "A group created here starts at the stream's first entry (else at its end).", NULL, NULL},
  {"limit", SL_F_INT, "10", 0, "Entries per read at most (COUNT); the entries of one stream of a read are one batch.",
   SL_BOUNDS("1", "100000"), NULL},
  {"timeout", SL_F_DURATION, "1s", 0, "How long a read waits for new entries (BLOCK).", NULL, NULL},
  {"commit_period", SL_F_DURATION, "1s", SL_ADVANCED,
   "Accepted for Benthos configs and unused: each batch's entries are XACKed when its transaction completes.",
   NULL, NULL},
  {"claim_idle", SL_F_DURATION, "1m", 0,
   "Entries pending this long with another consumer are claimed and delivered again (XAUTOCLAIM), checked as "
   "often; 0: never. sluice adds it: without it, what a consumer that never comes back had read stays pending.",
   NULL, NULL},
  SL_BATCHING_FIELD,
  {0}};

enum { P_SETUP, P_PENDING, P_LIVE };

typedef struct flight {      /* a batch's entries, until their transaction completes */
  struct flight *next, *prev;
  struct sin *in;
  int stream;
  int state;                 /* F_* */
  char **ids;                /* into idbuf, ID_MAX bytes each, ascending */
  char *idbuf;
  size_t *lens;
  uint32_t n;
} flight_t;

enum { ID_MAX = 48 };

/* In the pipeline, XACK sent, XACK to send again once connected. */
enum { F_OPEN, F_ACKING, F_RESEND };        /* an entry ID: two 20-digit numbers and a dash */

typedef struct reader {       /* the streams one XREADGROUP reads: all of them, or those of one slot (cluster) */
  struct sin *in;
  int phase;                  /* P_PENDING or P_LIVE once the input is set up */
  int reading;                /* reads out (two at most when live) */
  /* The reads out, oldest first (replies come in order): the setup they
   * were sent under and whether they read own pending entries. A reply to
   * a read sent before the latest setup is left alone: the pending read
   * that setup started finds its entries in the pending list. */
  struct { unsigned gen; int pending; } rq[2];
  int rq_head;
} reader_t;

typedef struct sin {
  sl_input_t base;
  sl_rconn_t *rd, *ack;
  char **streams;
  char **ids;                /* per stream, the id of the next pending read */
  int nstreams;
  int *pending_left;         /* per stream: its own pending entries are not all read yet */
  char *group, *client_id, *body_key;
  int create, oldest;
  char limit[16], block[24], idle[24];
  int64_t claim_ms;
  int phase, setups, stopped; /* phase: P_SETUP, or P_PENDING once set up (each reader has its own) */
  reader_t *readers;
  int nreaders;
  int *reader_of;            /* per stream */
  unsigned gen;
  uv_timer_t setup_timer;    /* a failed read sets up again after a pause */
  uv_timer_t resend_timer;   /* XACKs Redis refused go again after a pause */
  int claiming;              /* an XAUTOCLAIM is out */
  int claim_stream;
  char *claim_cursor;
  uv_timer_t claim_timer;
  int handles;               /* timers to close */
  flight_t flights;          /* list head: batches read and not acknowledged to Redis yet */
  int acks_open;
  sl_rargs_t args;
  sl_kv_t *scratch;          /* an entry's metadata before sl_kv_pack */
  size_t scratch_cap;
  void (*close_done)(sl_input_t *in, void *arg);
  void *close_arg;
} sin_t;

static const char *sname(sin_t *in) { return sl_rconn_stream(in->rd); }

static void read_next(sin_t *in);
static void on_setup_timer(uv_timer_t *t);

static void flight_free(flight_t *f) {
  free(f->idbuf);
  free(f->ids);
  free(f->lens);
  free(f);
}

static void unlink_free(flight_t *f) {
  f->prev->next = f->next;
  f->next->prev = f->prev;
  flight_free(f);
}

static void maybe_closed(sin_t *in) {
  if (!in->close_done || in->acks_open) return;
  int resend = 0;
  for (flight_t *f = in->flights.next; f != &in->flights; f = f->next) resend |= f->state == F_RESEND;
  if (resend)
    sl_logf(SL_LOG_WARN, sname(in), in->base.label,
            "redis: some acknowledgements could not be sent: those entries stay pending and come again");
  void (*done)(sl_input_t *, void *) = in->close_done;
  in->close_done = NULL;
  done(&in->base, in->close_arg);
}

/* ---- acknowledgements ---- */

static void send_ack(sin_t *in, flight_t *f);
static void on_resend_timer(uv_timer_t *t);

static void on_acked(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  flight_t *f = arg;
  sin_t *in = f->in;
  in->acks_open--;
  if (!rp || rp->type == REDIS_REPLY_ERROR) {
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "redis: XACK: %s", rp ? rp->str : err);
    f->state = F_RESEND;   /* sent again when the connection is back, or after a pause (LOADING after a restart) */
    if (rp && in->handles) uv_timer_start(&in->resend_timer, on_resend_timer, 1000, 0);
  } else {
    unlink_free(f);
  }
  maybe_closed(in);
}

static void send_ack(sin_t *in, flight_t *f) {
  sl_rargs_reset(&in->args);
  sl_rargs_addz(&in->args, "XACK");
  sl_rargs_addz(&in->args, in->streams[f->stream]);
  sl_rargs_addz(&in->args, in->group);
  for (uint32_t i = 0; i < f->n; i++) sl_rargs_add(&in->args, f->ids[i], f->lens[i]);
  if (sl_rargs_send(in->ack, &in->args, on_acked, f)) {
    f->state = F_RESEND;
    return;
  }
  f->state = F_ACKING;
  in->acks_open++;
}

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  (void)err;
  flight_t *f = arg;
  sin_t *in = f->in;
  /* Not delivered (the stream is stopping): left pending, read again on the next start. */
  if (status != 0) unlink_free(f);
  else send_ack(in, f);
  if (!in->stopped) read_next(in);
}

static void resend(sin_t *in) {
  for (flight_t *f = in->flights.next; f != &in->flights; f = f->next)
    if (f->state == F_RESEND) send_ack(in, f);
}

static void on_resend_timer(uv_timer_t *t) {
  sin_t *in = t->data;
  if (in->ack && sl_redis_up(in->ack->r)) resend(in);
}

static void on_ack_state(sl_rconn_t *c, int up, void *arg) {
  (void)c;
  if (up) resend(arg);
}

/* ---- entries to messages ---- */

/* Entry IDs in order: milliseconds, then sequence. */
static int idcmp(const char *a, const char *b) {
  char *ea, *eb;
  unsigned long long ma = strtoull(a, &ea, 10), mb = strtoull(b, &eb, 10);
  if (ma != mb) return ma < mb ? -1 : 1;
  unsigned long long sa = *ea == '-' ? strtoull(ea + 1, NULL, 10) : 0, sb = *eb == '-' ? strtoull(eb + 1, NULL, 10) : 0;
  return sa < sb ? -1 : sa > sb;
}

/* Whether an entry read again (own pending entries after a reconnection,
 * a claim) is one this input holds already: each flight's IDs ascend. */
static int in_flight(const sin_t *in, int s, const char *id) {
  for (const flight_t *f = in->flights.next; f != &in->flights; f = f->next) {
    if (f->stream != s || !f->n || idcmp(id, f->ids[0]) < 0 || idcmp(id, f->ids[f->n - 1]) > 0) continue;
    uint32_t lo = 0, hi = f->n;
    while (lo < hi) {
      uint32_t mid = (lo + hi) / 2;
      int c = idcmp(f->ids[mid], id);
      if (c == 0) return 1;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
  }
  return 0;
}

/* Emits the entries of one stream ([[id, [field, value, ...]], ...]) as one
 * batch; returns the id of the last one (borrowed from the reply) or NULL. */
static const char *emit_entries(sin_t *in, int s, const redisReply *entries, int skip_in_flight) {
  if (!entries || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) return NULL;
  sl_batch_t *b = sl_batch_new((uint32_t)entries->elements);
  flight_t *f = sl_xcalloc(1, sizeof(*f));
  f->in = in;
  f->stream = s;
  f->ids = sl_xmalloc(entries->elements * sizeof(*f->ids));
  f->lens = sl_xmalloc(entries->elements * sizeof(*f->lens));
  f->idbuf = sl_xmalloc(entries->elements * ID_MAX);
  const char *last = NULL;
  for (size_t k = 0; k < entries->elements; k++) {
    const redisReply *e = entries->element[k];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->type != REDIS_REPLY_STRING) continue;
    const redisReply *id = e->element[0];
    last = id->str;
    if (skip_in_flight && in_flight(in, s, id->str)) continue;
    if (id->len >= ID_MAX) continue;   /* not an entry ID Redis makes */
    f->ids[f->n] = memcpy(f->idbuf + (size_t)f->n * ID_MAX, id->str, id->len + 1);
    f->lens[f->n++] = id->len;
    const redisReply *kv = e->elements > 1 ? e->element[1] : NULL;
    if (!kv || kv->type != REDIS_REPLY_ARRAY) continue;   /* deleted while pending: acknowledged, nothing to say */
    sl_msg_t *m = NULL;
    for (size_t j = 0; j + 1 < kv->elements; j += 2)
      if (kv->element[j]->type == REDIS_REPLY_STRING && !strcmp(kv->element[j]->str, in->body_key)) {
        m = sl_msg_new(kv->element[j + 1]->str, kv->element[j + 1]->len);
        break;
      }
    if (!m) m = sl_msg_new("", 0);
    /* The metadata in one allocation (sl_kv_pack), not one per field. */
    size_t need = kv->elements / 2 + 1;
    if (need > in->scratch_cap) {
      in->scratch_cap = need * 2;
      in->scratch = sl_xrealloc(in->scratch, in->scratch_cap * sizeof(*in->scratch));
    }
    uint32_t nm = 0;
    in->scratch[nm++] = (sl_kv_t){(char *)"redis_stream", id->str, id->len};
    for (size_t j = 0; j + 1 < kv->elements; j += 2) {
      const redisReply *key = kv->element[j], *val = kv->element[j + 1];
      if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING || !strcmp(key->str, in->body_key))
        continue;
      if (strlen(key->str) != key->len) continue;   /* a NUL in a field name: no metadata key can hold it */
      in->scratch[nm++] = (sl_kv_t){key->str, val->str, val->len};
    }
    sl_kv_pack(&m->meta, in->scratch, nm);
    sl_batch_push(b, m);
  }
  if (f->n == 0) {
    flight_free(f);
    sl_batch_free(b);
    return last;
  }
  f->next = in->flights.next;
  f->prev = &in->flights;
  f->next->prev = f;
  in->flights.next = f;
  if (b->n == 0) {   /* only deleted entries: nothing to deliver, acknowledge them */
    sl_batch_free(b);
    send_ack(in, f);
    return last;
  }
  sl_input_emit_retry(&in->base, b, on_txn, f);
  return last;
}

/* ---- reading ---- */

static void on_read(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  reader_t *g = arg;
  sin_t *in = g->in;
  int stale = g->rq[g->rq_head].gen != in->gen, pending = g->rq[g->rq_head].pending;
  g->rq_head = (g->rq_head + 1) % 2;
  g->reading--;
  if (in->stopped || stale) return;   /* what it read stays pending: read again */
  if (!rp || rp->type == REDIS_REPLY_ERROR) {
    if (rp) {   /* NOGROUP after a Redis restart without persistence: set up again, after a pause */
      sl_logf(SL_LOG_WARN, sname(in), in->base.label, "redis: XREADGROUP: %s", rp->str);
      sl_input_set_connected(&in->base, 0, rp->str);
      in->phase = P_SETUP;
      uv_timer_start(&in->setup_timer, on_setup_timer, 1000, 0);
    }
    (void)err;   /* a lost connection: its up state starts reading again */
    return;
  }
  if (rp->type == REDIS_REPLY_ARRAY)
    for (size_t k = 0; k < rp->elements; k++) {
      const redisReply *sr = rp->element[k];
      if (sr->type != REDIS_REPLY_ARRAY || sr->elements < 2) continue;
      int s = 0;
      while (s < in->nstreams && strcmp(in->streams[s], sr->element[0]->str)) s++;
      if (s == in->nstreams) continue;
      const char *last = emit_entries(in, s, sr->element[1], pending);
      if (pending) {
        if (last) {
          free(in->ids[s]);
          in->ids[s] = sl_xstrdup(last);
        } else {
          in->pending_left[s] = 0;
        }
      }
    }
  if (pending) {
    int left = 0;
    for (int s = 0; s < in->nstreams; s++) left |= in->pending_left[s] && &in->readers[in->reader_of[s]] == g;
    if (!left) g->phase = P_LIVE;
  }
  read_next(in);
}

/* While live, a second read waits behind the first in Redis: its reply is
 * on the way while the first one's entries go through the pipeline. */
static void read_one(sin_t *in, reader_t *g) {
  if (g->reading >= (g->phase == P_LIVE ? 2 : 1)) return;
  int mine = 0;
  for (int s = 0; s < in->nstreams; s++) mine += &in->readers[in->reader_of[s]] == g;
  sl_rargs_t *a = &in->args;
  sl_rargs_reset(a);
  sl_rargs_addz(a, "XREADGROUP");
  sl_rargs_addz(a, "GROUP");
  sl_rargs_addz(a, in->group);
  sl_rargs_addz(a, in->client_id);
  sl_rargs_addz(a, "COUNT");
  sl_rargs_addz(a, in->limit);
  int pending = g->phase == P_PENDING;
  if (!pending) {
    sl_rargs_addz(a, "BLOCK");
    sl_rargs_addz(a, in->block);
  }
  sl_rargs_addz(a, "STREAMS");
  for (int s = 0; s < in->nstreams; s++)
    if (&in->readers[in->reader_of[s]] == g && (!pending || in->pending_left[s])) sl_rargs_addz(a, in->streams[s]);
  for (int s = 0; s < in->nstreams; s++)
    if (&in->readers[in->reader_of[s]] != g) continue;
    else if (!pending) sl_rargs_addz(a, ">");
    else if (in->pending_left[s]) sl_rargs_addz(a, in->ids[s]);
  if (mine && sl_rargs_send(in->rd, a, on_read, g) == 0) {
    int k = (g->rq_head + g->reading) % 2;
    g->rq[k].gen = in->gen;
    g->rq[k].pending = pending;
    g->reading++;
  }
}

static void read_next(sin_t *in) {
  if (in->stopped || in->phase == P_SETUP || !sl_redis_up(in->rd->r)) return;
  for (int i = 0; i < in->nreaders; i++)
    if (sl_input_ready(&in->base)) read_one(in, &in->readers[i]);   /* else resume comes back here */
}

/* ---- setup: the group on every stream ---- */

static void on_created(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  (void)err;
  sin_t *in = arg;
  if (!rp) return;   /* the connection went: its next up sets up again */
  if (rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "BUSYGROUP", 9)) {
    sl_logf(SL_LOG_ERROR, sname(in), in->base.label, "redis: XGROUP CREATE: %s", rp->str);
    sl_input_set_connected(&in->base, 0, rp->str);
  }
  if (--in->setups > 0) return;
  /* Own pending entries first, on every connection: what a lost connection
   * took with it (a read Redis answered into the void) is among them. */
  if (in->phase == P_SETUP) {
    in->phase = P_PENDING;
    for (int i = 0; i < in->nreaders; i++) in->readers[i].phase = P_PENDING;
    for (int s = 0; s < in->nstreams; s++) {
      free(in->ids[s]);
      in->ids[s] = sl_xstrdup("0");
      in->pending_left[s] = 1;
    }
  }
  if (sl_redis_up(in->rd->r)) sl_input_set_connected(&in->base, 1, NULL);
  read_next(in);
}

static void set_up(sin_t *in) {
  in->phase = P_SETUP;
  in->setups = 0;
  in->gen++;
  for (int s = 0; s < in->nstreams; s++) {
    sl_rargs_reset(&in->args);
    const char *argv[] = {"XGROUP", "CREATE", in->streams[s], in->group, in->oldest ? "0" : "$", "MKSTREAM"};
    for (int k = 0; k < (in->create ? 6 : 5); k++) sl_rargs_addz(&in->args, argv[k]);
    if (sl_rargs_send(in->rd, &in->args, on_created, in) == 0) in->setups++;
  }
}

static void on_setup_timer(uv_timer_t *t) {
  sin_t *in = t->data;
  if (!in->stopped && sl_redis_up(in->rd->r)) set_up(in);
}

static void on_rd_state(sl_rconn_t *c, int up, void *arg) {
  (void)c;
  sin_t *in = arg;
  if (up && !in->stopped) set_up(in);
}

/* ---- claiming what other consumers left ---- */

static void claim_next(sin_t *in);

static void on_claimed(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  (void)err;
  sin_t *in = arg;
  in->claiming = 0;
  if (in->stopped || !rp) return;
  if (rp->type != REDIS_REPLY_ARRAY || rp->elements < 2 || rp->element[0]->type != REDIS_REPLY_STRING) {
    if (rp->type == REDIS_REPLY_ERROR) sl_logf(SL_LOG_WARN, sname(in), in->base.label, "redis: XAUTOCLAIM: %s", rp->str);
    in->claim_stream = in->nstreams;   /* this round is over */
    return;
  }
  emit_entries(in, in->claim_stream, rp->element[1], 1);
  free(in->claim_cursor);
  in->claim_cursor = sl_xstrdup(rp->element[0]->str);
  if (!strcmp(in->claim_cursor, "0-0")) in->claim_stream++;
  claim_next(in);
}

static void claim_next(sin_t *in) {
  if (in->claiming || in->stopped || in->claim_stream >= in->nstreams || !sl_redis_up(in->ack->r)) return;
  if (!sl_input_ready(&in->base)) return;
  if (!in->claim_cursor) in->claim_cursor = sl_xstrdup("0-0");
  sl_rargs_reset(&in->args);
  const char *argv[] = {"XAUTOCLAIM", in->streams[in->claim_stream], in->group, in->client_id, in->idle,
                        in->claim_cursor, "COUNT", in->limit};
  for (int k = 0; k < 8; k++) sl_rargs_addz(&in->args, argv[k]);
  if (sl_rargs_send(in->ack, &in->args, on_claimed, in) == 0) in->claiming = 1;
}

static void on_claim_timer(uv_timer_t *t) {
  sin_t *in = t->data;
  if (in->claiming) return;
  in->claim_stream = 0;
  free(in->claim_cursor);
  in->claim_cursor = NULL;
  claim_next(in);
}

/* ---- the input ---- */

static int sin_start(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  uv_loop_t *loop = base->worker->loop;
  uv_timer_init(loop, &in->claim_timer);
  uv_timer_init(loop, &in->setup_timer);
  uv_timer_init(loop, &in->resend_timer);
  in->claim_timer.data = in->setup_timer.data = in->resend_timer.data = in;
  uv_unref((uv_handle_t *)&in->claim_timer);
  uv_unref((uv_handle_t *)&in->setup_timer);
  uv_unref((uv_handle_t *)&in->resend_timer);
  in->handles = 3;
  if (in->claim_ms > 0)
    uv_timer_start(&in->claim_timer, on_claim_timer, (uint64_t)in->claim_ms, (uint64_t)in->claim_ms);
  in->claim_stream = in->nstreams;
  if (sl_rconn_start(in->ack, loop) || sl_rconn_start(in->rd, loop)) return -1;
  return 0;
}

static void sin_resume(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  read_next(in);
  claim_next(in);
}

static void sin_stop(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  in->stopped = 1;
  if (in->handles) {
    uv_timer_stop(&in->claim_timer);
    uv_timer_stop(&in->setup_timer);
  }
}

static void sin_close(sl_input_t *base, void (*done)(sl_input_t *, void *), void *arg) {
  sin_t *in = (sin_t *)base;
  in->close_done = done;
  in->close_arg = arg;
  maybe_closed(in);
}

static void sin_free(sin_t *in) {
  for (int s = 0; s < in->nstreams; s++) {
    free(in->streams[s]);
    if (in->ids) free(in->ids[s]);
  }
  free(in->streams);
  free(in->ids);
  free(in->pending_left);
  free(in->readers);
  free(in->reader_of);
  free(in->group);
  free(in->client_id);
  free(in->body_key);
  free(in->claim_cursor);
  while (in->flights.next != &in->flights) unlink_free(in->flights.next);
  sl_rargs_free(&in->args);
  free(in->scratch);
  free(in);
}

static void on_timer_closed(uv_handle_t *h) {
  sin_t *in = h->data;
  if (--in->handles == 0) sin_free(in);
}

static void sin_destroy(sl_input_t *base) {
  sin_t *in = (sin_t *)base;
  /* Freeing the clients drops the callbacks of what is still out (a blocked read, XACKs after a timeout). */
  sl_rconn_free(in->rd);
  sl_rconn_free(in->ack);
  in->rd = in->ack = NULL;
  if (in->handles) {
    uv_close((uv_handle_t *)&in->claim_timer, on_timer_closed);
    uv_close((uv_handle_t *)&in->setup_timer, on_timer_closed);
    uv_close((uv_handle_t *)&in->resend_timer, on_timer_closed);
  } else {
    sin_free(in);
  }
}

static const sl_input_vt vt = {sin_start, sin_resume, sin_stop, sin_destroy, sin_close, NULL};
static const sl_spec_t spec;

static void *sin_create(sl_build_t *b, const sl_cnode_t *conf) {
  sin_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &vt, &spec, b);
  in->flights.next = in->flights.prev = &in->flights;
  const sl_cnode_t *sl = sl_cnode_get(conf, "streams");
  in->nstreams = sl ? (int)sl->n : 0;
  in->streams = sl_xcalloc((size_t)in->nstreams + 1, sizeof(char *));
  in->ids = sl_xcalloc((size_t)in->nstreams + 1, sizeof(char *));
  in->pending_left = sl_xcalloc((size_t)in->nstreams + 1, sizeof(int));
  for (int s = 0; s < in->nstreams; s++) {
    in->streams[s] = sl_xstrdup(sl->items[s]->str ? sl->items[s]->str : "");
    in->ids[s] = sl_xstrdup("0");
    in->pending_left[s] = 1;
  }
  in->group = sl_xstrdup(sl_conf_str(conf, "consumer_group", "sluice"));
  const char *cid = sl_conf_str(conf, "client_id", "");
  char host[256] = "sluice";
  if (!*cid && gethostname(host, sizeof host - 1) == 0) cid = host;
  in->client_id = sl_xstrdup(*cid ? cid : "sluice");
  in->body_key = sl_xstrdup(sl_conf_str(conf, "body_key", "body"));
  in->create = sl_conf_bool(conf, "create_streams", 1);
  in->oldest = sl_conf_bool(conf, "start_from_oldest", 1);
  snprintf(in->limit, sizeof in->limit, "%lld", (long long)sl_conf_int(conf, "limit", 10));
  snprintf(in->block, sizeof in->block, "%lld", (long long)sl_conf_duration_ms(conf, "timeout", 1000));
  in->claim_ms = sl_conf_duration_ms(conf, "claim_idle", 60000);
  snprintf(in->idle, sizeof in->idle, "%lld", (long long)in->claim_ms);
  in->rd = sl_rconn_new(b, conf, &in->base, NULL, on_rd_state, in);
  in->ack = in->rd ? sl_rconn_new(b, conf, &in->base, NULL, on_ack_state, in) : NULL;
  if (!in->ack) {
    sl_rconn_free(in->rd);
    sin_free(in);
    return NULL;
  }
  in->ack->quiet = 1;
  if (in->rd->reply_timeout > 0) in->rd->reply_timeout += sl_conf_duration_ms(conf, "timeout", 1000);
  if (in->nstreams == 0) {
    sl_diag_add(b->diags, sl ? sl : conf, "streams", "at least one stream is needed");
    sin_destroy(&in->base);
    return NULL;
  }
  /* a reader per slot in a cluster (one read names keys of one slot), else one */
  in->reader_of = sl_xcalloc((size_t)in->nstreams, sizeof(int));
  in->readers = sl_xcalloc((size_t)in->nstreams, sizeof(reader_t));
  int *slots = sl_xcalloc((size_t)in->nstreams, sizeof(int));
  for (int s = 0; s < in->nstreams; s++) {
    int slot = in->rd->cluster ? sl_redis_key_slot(in->streams[s], strlen(in->streams[s])) : 0, g = 0;
    while (g < in->nreaders && slots[g] != slot) g++;
    if (g == in->nreaders) {
      slots[in->nreaders] = slot;
      in->readers[in->nreaders++].in = in;
    }
    in->reader_of[s] = g;
  }
  free(slots);
  return in;
}

static const sl_spec_t spec = {
  .name = "redis_streams",
  .kind = SL_KIND_INPUT,
  .summary = "Reads Redis streams as a member of a consumer group (XREADGROUP), acknowledging (XACK) "
             "only what was delivered.",
  .desc =
    "The group is created on each stream when missing (`XGROUP CREATE ... MKSTREAM`). Each read "
    "takes up to `limit` new entries (`>`), waiting up to `timeout` for them; the entries of one "
    "stream become one batch, each entry one message: the `body_key` field is the content, the "
    "other fields are metadata, and `redis_stream` is the entry's ID (Benthos' name). With `kind: "
    "cluster`, the streams of each hash slot are read by a read of their own on that slot's master.\n\n"
    "An entry is acknowledged (XACK) only once its batch was delivered by the output or "
    "deliberately dropped. Until then it is in the group's pending list: if sluice is killed, on "
    "the next start the consumer (same `client_id`) reads its own pending entries first, from the "
    "oldest, then new ones; pending entries of other consumers idle for `claim_idle` are claimed "
    "(XAUTOCLAIM) and delivered again. At-least-once: an entry whose XACK was lost with a crash "
    "comes again.\n\n"
    "While Redis is down the stream reports not ready on `/ready` with the reason, and the "
    "client reconnects with backoff; acknowledgements that could not be sent are sent on "
    "reconnection.",
  .fields = fields,
  .example =
    "input:\n"
    "  redis_streams:\n"
    "    url: redis://localhost:6379\n"
    "    streams: [events]\n"
    "    consumer_group: workers\n"
    "    client_id: worker-1\n",
  .create = sin_create,
};
SL_REGISTER(spec)
