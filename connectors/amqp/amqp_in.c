/* `amqp_0_9` input: consumes a queue (librabbitmq, on the link's thread:
 * amqp_link.c says why a thread). Deliveries cross to the loop, which emits
 * them as batches; a transaction's outcome crosses back as acks (or nacks)
 * of its delivery tags, which the thread sends, a run of consecutive ones
 * as one multiple ack. The broker holds at most `prefetch_count`
 * unacknowledged deliveries, which bounds what waits on the loop; with
 * `auto_ack` (no acks, no prefetch) the thread stops reading the socket
 * while that many wait. Tags belong to a connection: acks of an earlier one
 * are dropped, since the broker requeued its unacknowledged deliveries when
 * it went (they come again: at-least-once). */
#include "amqp_link.h"
#include "core/batching.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sl_field_t queue_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Declare the queue before consuming (it must match an existing one).", NULL, NULL},
  {"durable", SL_F_BOOL, "true", 0, "The queue survives a broker restart.", NULL, NULL},
  {"auto_delete", SL_F_BOOL, "false", 0, "The broker deletes the queue when its last consumer goes.", NULL, NULL},
  {0}};

static const sl_field_t binding_fields[] = {
  {"exchange", SL_F_STRING, NULL, SL_REQUIRED, "Exchange to bind the queue to.", NULL, NULL},
  {"key", SL_F_STRING, "", 0, "Binding key.", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  SL_AMQP_COMMON_FIELDS,
  {"queue", SL_F_STRING, NULL, SL_REQUIRED, "Queue to consume.", NULL, NULL},
  {"queue_declare", SL_F_OBJECT, NULL, 0, "Declare the queue first.", NULL, queue_fields},
  {"bindings_declare", SL_F_OBJLIST, "[]", 0, "Bindings of the queue to declare first.", NULL, binding_fields},
  {"consumer_tag", SL_F_STRING, "", 0, "Consumer tag; empty: the broker picks one.", NULL, NULL},
  {"auto_ack", SL_F_BOOL, "false", 0,
   "The broker counts a message as delivered when it sends it (no acks): faster, and what is in flight is lost "
   "when sluice or the connection goes.", NULL, NULL},
  {"nack_reject_patterns", SL_F_STRLIST, "[]", 0,
   "Regular expressions (POSIX extended) matched against a failed transaction's error: a match rejects the "
   "message (requeue off: the queue's dead-letter exchange gets it, or it is dropped); otherwise it is nacked "
   "back into the queue.", NULL, NULL},
  {"prefetch_count", SL_F_INT, "10", 0, "Unacknowledged deliveries the broker sends at most.",
   SL_BOUNDS("1", "65535"), NULL},
  {"prefetch_size", SL_F_INT, "0", 0, "Unacknowledged bytes the broker sends at most (0: no bound).", NULL, NULL},
  SL_BATCHING_OWN_FIELD,
  {0}};

enum { T_OPEN, T_ACK, T_REQUEUE, T_REJECT, T_SENT };

typedef struct delivery {
  struct delivery *next;
  uint64_t gen;
  amqp_envelope_t env;
} delivery_t;

typedef struct ackop { uint64_t gen, tag; uint8_t what; } ackop_t;

/* What the link's thread reads, apart from the loop's part: the link
 * frees it (sh_free) on whichever thread ends last. */
typedef struct ain_sh {
  sl_amqp_link_t *link;
  char *queue, *tag;
  int declare, durable, auto_delete, auto_ack;
  char **bind_ex, **bind_key;
  uint32_t nbind;
  uint16_t prefetch;
  uint32_t prefetch_size;
  /* under the link's lock */
  delivery_t *in_head, **in_tail;
  uint32_t in_n;             /* deliveries handed to the loop and not emitted yet */
  ackop_t *ops;
  uint32_t nops, capops;
  int flush_asked, flushed;
  /* the thread's: each delivery tag of the connection from base on */
  uint8_t *st;
  uint64_t base;             /* tag of st[0] */
  uint32_t nst, capst, decided;
  uint64_t gen;              /* the connection's number */
} ain_sh_t;

typedef struct ain {
  sl_input_t base;
  ain_sh_t *sh;
  sl_amqp_link_t *link;      /* until destroyed */
  regex_t *reject;
  uint32_t nreject;
  /* Without a `batching` policy a transaction is what has arrived, up to 64
   * deliveries; with one, the batch its triggers form (held in pend). */
  int policy;
  sl_batch_policy_t pol;
  sl_lcheck_t *check;
  sl_batch_t *pend;
  uint64_t *ptags, pgen;
  uint32_t pcap;
  int64_t pbytes;
  uv_timer_t period;
  int period_open;           /* the timer is initialised and not closed yet */
  delivery_t *ready, **ready_tail;
  uint32_t nready;
  int stopped;
  void (*close_done)(sl_input_t *in, void *arg);
  void *close_arg;
  int64_t metas;             /* messages whose metadata source is alive */
  int destroyed;
} ain_t;

static const char *sname(ain_t *a) { return a->base.stream ? a->base.stream->name : NULL; }

static char *bdup(amqp_bytes_t b) {
  char *s = sl_xmalloc(b.len + 1);
  memcpy(s, b.bytes, b.len);
  s[b.len] = 0;
  return s;
}

/* ---- the link's thread ---- */

static int ain_setup(sl_amqp_link_t *l, amqp_connection_state_t c, void *arg) {
  ain_sh_t *a = arg;
  amqp_bytes_t q = amqp_cstring_bytes(a->queue);
  if (a->declare) {
    amqp_queue_declare(c, 1, q, 0, a->durable, 0, a->auto_delete, SL_AMQP_NO_TABLE);
    if (sl_amqp_link_rpc(l, c, "declaring the queue")) return -1;
  }
  for (uint32_t i = 0; i < a->nbind; i++) {
    amqp_queue_bind(c, 1, q, amqp_cstring_bytes(a->bind_ex[i]), amqp_cstring_bytes(a->bind_key[i]), SL_AMQP_NO_TABLE);
    if (sl_amqp_link_rpc(l, c, "binding the queue")) return -1;
  }
  if (!a->auto_ack) {
    amqp_basic_qos(c, 1, a->prefetch_size, a->prefetch, 0);
    if (sl_amqp_link_rpc(l, c, "setting prefetch")) return -1;
  }
  amqp_basic_consume(c, 1, q, amqp_cstring_bytes(a->tag), 0, a->auto_ack, 0, SL_AMQP_NO_TABLE);
  if (sl_amqp_link_rpc(l, c, "consuming")) return -1;
  a->nst = a->decided = 0;
  a->base = 1;
  a->gen = sl_amqp_link_gen(l) + 1;   /* the number this connection gets */
  return 0;
}

static int ain_room(void *arg) {
  ain_sh_t *a = arg;
  sl_amqp_link_lock(a->link);
  int room = a->in_n < a->prefetch;
  sl_amqp_link_unlock(a->link);
  return room;
}

static int ain_frame(sl_amqp_link_t *l, amqp_connection_state_t c, amqp_frame_t *f, void *arg) {
  ain_sh_t *a = arg;
  if (f->frame_type != AMQP_FRAME_METHOD) return 0;
  if (f->payload.method.id == AMQP_BASIC_CANCEL_METHOD)
    return sl_amqp_link_fail(l, "the broker cancelled the consumer (queue deleted?)");
  if (f->payload.method.id != AMQP_BASIC_DELIVER_METHOD) return 0;
  const amqp_basic_deliver_t *d = f->payload.method.decoded;
  delivery_t *x = sl_xcalloc(1, sizeof(*x));
  x->gen = a->gen;
  x->env.channel = f->channel;
  x->env.delivery_tag = d->delivery_tag;
  x->env.redelivered = d->redelivered;
  x->env.consumer_tag = amqp_bytes_malloc_dup(d->consumer_tag);
  x->env.exchange = amqp_bytes_malloc_dup(d->exchange);
  x->env.routing_key = amqp_bytes_malloc_dup(d->routing_key);
  amqp_rpc_reply_t r = amqp_read_message(c, f->channel, &x->env.message, 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_envelope(&x->env);
    free(x);
    return sl_amqp_link_fail(l, "reading a delivery: %s",
                             r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                                               : "unexpected frame");
  }
  if (!a->auto_ack) {   /* tags of a channel run 1, 2, 3...: st[tag - base] */
    if (a->nst == a->capst) {
      a->capst = a->capst ? a->capst * 2 : 64;
      a->st = sl_xrealloc(a->st, a->capst);
    }
    a->st[a->nst++] = T_OPEN;
  }
  /* The loop takes the whole list when woken: a wake-up per message (an
   * eventfd write and a loop turn each) was most of the consumer's cost. */
  sl_amqp_link_lock(l);
  int first = !a->in_head;
  *a->in_tail = x;
  a->in_tail = &x->next;
  a->in_n++;
  sl_amqp_link_unlock(l);
  if (first) sl_amqp_link_wake(l);
  return 0;
}

/* Acks the run of tags from *run to upto (exclusive) as one. */
static int flush_run(sl_amqp_link_t *l, amqp_connection_state_t c, uint64_t *run, uint64_t upto) {
  if (*run == 0) return 0;
  uint64_t last = upto - 1;
  int rc = amqp_basic_ack(c, 1, last, last > *run);
  *run = 0;
  return rc ? sl_amqp_link_fail(l, "acknowledging: %s", amqp_error_string2(rc)) : 0;
}

static int settle_one(sl_amqp_link_t *l, amqp_connection_state_t c, uint64_t tag, uint8_t what) {
  int rc = what == T_ACK ? amqp_basic_ack(c, 1, tag, 0) : amqp_basic_nack(c, 1, tag, 0, what == T_REQUEUE);
  return rc ? sl_amqp_link_fail(l, "acknowledging: %s", amqp_error_string2(rc)) : 0;
}

/* Sends what the loop decided. The decided prefix of the open tags goes as
 * few frames as can be (a run of acks is one multiple ack), and only once
 * it is a quarter of the prefetch window, holds a nack, nothing is open
 * behind it, or the window is nearly full (the broker would wait for it
 * while a batch processor waits for more), or the stream stops (force):
 * an ack frame per small transaction
 * cost the broker more than the delivery (a third of the consumer's rate
 * with small messages). Decisions past an open tag go one by one, so that a
 * slow message does not hold the window shut behind it. */
static int send_acks(sl_amqp_link_t *l, amqp_connection_state_t c, ain_sh_t *a, int force) {
  uint32_t p = 0, nacks = 0;
  while (p < a->nst && a->st[p] != T_OPEN) nacks += a->st[p] == T_REQUEUE || a->st[p] == T_REJECT, p++;
  uint32_t threshold = a->prefetch / 4 ? a->prefetch / 4 : 1;
  uint32_t i = 0;
  if (force || nacks || p == a->nst || p >= threshold || a->nst + threshold >= a->prefetch) {
    uint64_t run = 0;
    for (; i < p; i++) {
      uint64_t tag = a->base + i;
      uint8_t s = a->st[i];
      if (s != T_SENT) a->decided--;
      if (s == T_ACK) {
        if (!run) run = tag;
        continue;
      }
      if (flush_run(l, c, &run, tag)) return -1;
      if (s != T_SENT && settle_one(l, c, tag, s)) return -1;
    }
    if (flush_run(l, c, &run, a->base + i)) return -1;
    memmove(a->st, a->st + i, a->nst - i);
    a->nst -= i;
    a->base += i;
    p = 0;
  }
  for (uint32_t k = p; a->decided > 0 && k < a->nst; k++) {
    if (a->st[k] == T_OPEN || a->st[k] == T_SENT) continue;
    if (settle_one(l, c, a->base + k, a->st[k])) return -1;
    a->st[k] = T_SENT;
    a->decided--;
  }
  return 0;
}

static int ain_work(sl_amqp_link_t *l, amqp_connection_state_t c, void *arg) {
  ain_sh_t *a = arg;
  sl_amqp_link_lock(l);
  ackop_t *ops = a->ops;
  uint32_t n = a->nops;
  a->ops = NULL;
  a->nops = a->capops = 0;
  int flush = a->flush_asked;
  a->flush_asked = 0;
  sl_amqp_link_unlock(l);
  int rc = 0;
  for (uint32_t k = 0; c && k < n; k++) {
    if (ops[k].gen != a->gen || ops[k].tag < a->base || ops[k].tag - a->base >= a->nst) continue;
    uint8_t *s = &a->st[ops[k].tag - a->base];
    if (*s != T_OPEN) continue;
    *s = ops[k].what;
    a->decided++;
  }
  free(ops);
  if (c && (n || flush)) rc = send_acks(l, c, a, flush);
  if (flush) {
    sl_amqp_link_lock(l);
    a->flushed = 1;
    sl_amqp_link_unlock(l);
    sl_amqp_link_wake(l);
  }
  return rc;
}

static void ain_lost(sl_amqp_link_t *l, void *arg) {
  (void)l;
  ain_sh_t *a = arg;
  a->nst = a->decided = 0;
}

static void free_deliveries(delivery_t *x) {
  for (delivery_t *n; x; x = n) {
    n = x->next;
    amqp_destroy_envelope(&x->env);
    free(x);
  }
}

/* Runs on whichever thread lets go of the link last. */
static void sh_free(void *arg) {
  ain_sh_t *a = arg;
  free_deliveries(a->in_head);
  for (uint32_t i = 0; i < a->nbind; i++) {
    free(a->bind_ex[i]);
    free(a->bind_key[i]);
  }
  free(a->bind_ex);
  free(a->bind_key);
  free(a->queue);
  free(a->tag);
  free(a->ops);
  free(a->st);
  free(a);
}

/* ---- the loop ---- */

static void ain_free(ain_t *a);

/* A delivery's metadata is made when the pipeline first reads it, from the
 * envelope the message keeps. */
typedef struct ameta {
  sl_kv_src_t base;
  ain_t *a;
  amqp_envelope_t env;
} ameta_t;

static void add_str(sl_kvlist_t *into, const char *k, amqp_bytes_t v) { sl_kv_add(into, k, v.bytes ? v.bytes : "", v.len); }

static void add_num(sl_kvlist_t *into, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_num(sl_kvlist_t *into, const char *k, const char *fmt, ...) {
  char buf[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  sl_kv_add(into, k, buf, (size_t)n);
}

/* A header's value as text; a nested table as `parent.child` keys. */
static void add_field(sl_kvlist_t *into, const char *key, const amqp_field_value_t *v, int depth) {
  switch (v->kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: add_str(into, key, v->value.bytes); break;
    case AMQP_FIELD_KIND_BOOLEAN: sl_kv_add(into, key, v->value.boolean ? "true" : "false", v->value.boolean ? 4 : 5); break;
    case AMQP_FIELD_KIND_I8: add_num(into, key, "%d", v->value.i8); break;
    case AMQP_FIELD_KIND_U8: add_num(into, key, "%u", v->value.u8); break;
    case AMQP_FIELD_KIND_I16: add_num(into, key, "%d", v->value.i16); break;
    case AMQP_FIELD_KIND_U16: add_num(into, key, "%u", v->value.u16); break;
    case AMQP_FIELD_KIND_I32: add_num(into, key, "%" PRId32, v->value.i32); break;
    case AMQP_FIELD_KIND_U32: add_num(into, key, "%" PRIu32, v->value.u32); break;
    case AMQP_FIELD_KIND_I64: add_num(into, key, "%" PRId64, v->value.i64); break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: add_num(into, key, "%" PRIu64, v->value.u64); break;
    case AMQP_FIELD_KIND_F32: add_num(into, key, "%g", (double)v->value.f32); break;
    case AMQP_FIELD_KIND_F64: add_num(into, key, "%g", v->value.f64); break;
    case AMQP_FIELD_KIND_TABLE:
      if (depth > 8) break;   /* librabbitmq bounds nesting too; past this no keys */
      for (int i = 0; i < v->value.table.num_entries; i++) {
        const amqp_table_entry_t *e = &v->value.table.entries[i];
        char *k = sl_xasprintf("%s.%.*s", key, (int)e->key.len, (const char *)e->key.bytes);
        add_field(into, k, &e->value, depth + 1);
        free(k);
      }
      break;
    default: break;   /* arrays, decimals, void: Benthos gives them no text either */
  }
}

static void ameta_load(sl_kv_src_t *s, sl_kvlist_t *into) {
  const amqp_envelope_t *e = &((ameta_t *)s)->env;
  const amqp_basic_properties_t *p = &e->message.properties;
  static const struct { amqp_flags_t flag; const char *key; size_t off; } strs[] = {
    {AMQP_BASIC_CONTENT_TYPE_FLAG, "amqp_content_type", offsetof(amqp_basic_properties_t, content_type)},
    {AMQP_BASIC_CONTENT_ENCODING_FLAG, "amqp_content_encoding", offsetof(amqp_basic_properties_t, content_encoding)},
    {AMQP_BASIC_CORRELATION_ID_FLAG, "amqp_correlation_id", offsetof(amqp_basic_properties_t, correlation_id)},
    {AMQP_BASIC_REPLY_TO_FLAG, "amqp_reply_to", offsetof(amqp_basic_properties_t, reply_to)},
    {AMQP_BASIC_EXPIRATION_FLAG, "amqp_expiration", offsetof(amqp_basic_properties_t, expiration)},
    {AMQP_BASIC_MESSAGE_ID_FLAG, "amqp_message_id", offsetof(amqp_basic_properties_t, message_id)},
    {AMQP_BASIC_TYPE_FLAG, "amqp_type", offsetof(amqp_basic_properties_t, type)},
    {AMQP_BASIC_USER_ID_FLAG, "amqp_user_id", offsetof(amqp_basic_properties_t, user_id)},
    {AMQP_BASIC_APP_ID_FLAG, "amqp_app_id", offsetof(amqp_basic_properties_t, app_id)},
  };
  for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
    if (p->_flags & strs[i].flag) add_str(into, strs[i].key, *(const amqp_bytes_t *)((const char *)p + strs[i].off));
  if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) add_num(into, "amqp_delivery_mode", "%u", p->delivery_mode);
  if (p->_flags & AMQP_BASIC_PRIORITY_FLAG) add_num(into, "amqp_priority", "%u", p->priority);
  if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) add_num(into, "amqp_timestamp", "%" PRIu64, p->timestamp);
  add_str(into, "amqp_consumer_tag", e->consumer_tag);
  add_num(into, "amqp_delivery_tag", "%" PRIu64, e->delivery_tag);
  sl_kv_add(into, "amqp_redelivered", e->redelivered ? "true" : "false", e->redelivered ? 4 : 5);
  add_str(into, "amqp_exchange", e->exchange);
  add_str(into, "amqp_routing_key", e->routing_key);
  if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
    for (int i = 0; i < p->headers.num_entries; i++) {
      const amqp_table_entry_t *h = &p->headers.entries[i];
      char *k = bdup(h->key);
      add_field(into, k, &h->value, 0);
      free(k);
    }
}

static void ameta_release(sl_kv_src_t *s) {
  ameta_t *m = (ameta_t *)s;
  ain_t *a = m->a;
  amqp_destroy_envelope(&m->env);
  free(m);
  if (--a->metas == 0 && a->destroyed) ain_free(a);
}

/* What a transaction carries: its deliveries' tags. */
typedef struct flight {
  ain_t *a;
  uint64_t gen;
  uint32_t n;
  uint64_t tags[];
} flight_t;

static void post_acks(ain_t *a, const flight_t *f, uint8_t what) {
  ain_sh_t *sh = a->sh;
  sl_amqp_link_lock(a->link);
  int first = !sh->nops;   /* the thread takes them all when woken */
  if (sh->nops + f->n > sh->capops) {
    sh->capops = (sh->nops + f->n) * 2;
    sh->ops = sl_xrealloc(sh->ops, sh->capops * sizeof(ackop_t));
  }
  for (uint32_t i = 0; i < f->n; i++) sh->ops[sh->nops++] = (ackop_t){f->gen, f->tags[i], what};
  sl_amqp_link_unlock(a->link);
  if (first) sl_amqp_link_kick(a->link);
}

static int rejects(ain_t *a, const char *err) {
  for (uint32_t i = 0; err && i < a->nreject; i++)
    if (regexec(&a->reject[i], err, 0, NULL, 0) == 0) return 1;
  return 0;
}

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  flight_t *f = arg;
  ain_t *a = f->a;
  /* A failure while the stream stops is a message handed back, not one the
   * pipeline refused: it stays unacknowledged, and the broker requeues it
   * when the connection closes. */
  if (a->link && !a->sh->auto_ack && (status == 0 || !a->stopped)) {
    int reject = status != 0 && rejects(a, err);
    post_acks(a, f, status == 0 ? T_ACK : reject ? T_REJECT : T_REQUEUE);
    if (status != 0)
      sl_logf(SL_LOG_WARN, sname(a), a->base.label, "amqp: %u message(s) %s: %s", f->n,
              reject ? "rejected" : "requeued", err ? err : "delivery failed");
  }
  free(f);
}

static sl_msg_t *to_msg(ain_t *a, delivery_t *x) {
  amqp_bytes_t body = x->env.message.body;
  sl_msg_t *m = sl_msg_new(body.bytes ? body.bytes : "", body.len);
  m->seq = x->env.delivery_tag;
  /* The envelope moves into the metadata source, without its body. */
  amqp_bytes_free(x->env.message.body);
  x->env.message.body = SL_AMQP_NO_BYTES;
  ameta_t *s = sl_xmalloc(sizeof(*s));
  *s = (ameta_t){{1, ameta_load, ameta_release}, a, x->env};
  a->metas++;
  sl_kv_defer(&m->meta, &s->base);
  free(x);
  return m;
}

/* Emits the batch the policy formed (of one connection's deliveries). */
static void emit_pend(ain_t *a) {
  if (a->period_open) uv_timer_stop(&a->period);
  if (!a->pend) return;
  sl_batch_t *b = a->pend;
  flight_t *f = sl_xmalloc(sizeof(*f) + b->n * sizeof(uint64_t));
  f->a = a;
  f->gen = a->pgen;
  f->n = b->n;
  memcpy(f->tags, a->ptags, b->n * sizeof(uint64_t));
  a->pend = NULL;
  a->pbytes = 0;
  sl_input_emit(&a->base, b, on_txn, f);
}

static void on_period(uv_timer_t *t) { emit_pend(t->data); }

/* A held batch is not emitted: its deliveries stay unacknowledged, and the
 * broker requeues them when the connection closes. */
static void drop_pend(ain_t *a) {
  if (a->period_open) uv_timer_stop(&a->period);
  if (a->pend) sl_batch_free(a->pend);
  a->pend = NULL;
  a->pbytes = 0;
}

/* Moves x into the policy's batch, which is emitted once a trigger holds. */
static void hold(ain_t *a, delivery_t *x) {
  if (a->pend && x->gen != a->pgen) drop_pend(a);   /* a lost connection's: the broker sends them again */
  if (!a->pend) {
    a->pend = sl_batch_new(64);
    a->pgen = x->gen;
    if (a->period_open && a->pol.period_ms > 0) uv_timer_start(&a->period, on_period, (uint64_t)a->pol.period_ms, 0);
  }
  if (a->pend->n == a->pcap) {
    a->pcap = a->pcap ? 2 * a->pcap : 64;
    a->ptags = sl_xrealloc(a->ptags, a->pcap * sizeof(uint64_t));
  }
  a->ptags[a->pend->n] = x->env.delivery_tag;
  sl_msg_t *m = to_msg(a, x);
  sl_batch_push(a->pend, m);
  a->pbytes += (int64_t)m->content->len;
  if (sl_lcheck_batch_full(&a->pol, a->check, a->pend, a->pbytes)) emit_pend(a);
}

/* Emits what has arrived while the stream has room, a batch at a time
 * (deliveries of one connection per batch). */
static void pump(ain_t *a) {
  while (a->policy && a->ready && !a->stopped && sl_input_ready(&a->base)) {
    delivery_t *x = a->ready;
    a->ready = x->next;
    if (!a->ready) a->ready_tail = &a->ready;
    sl_amqp_link_lock(a->link);
    a->sh->in_n--;
    sl_amqp_link_unlock(a->link);
    hold(a, x);
  }
  while (!a->policy && a->ready && !a->stopped && sl_input_ready(&a->base)) {
    uint32_t n = 0;
    for (delivery_t *x = a->ready; x && n < 64 && x->gen == a->ready->gen; x = x->next) n++;
    sl_batch_t *b = sl_batch_new(n);
    flight_t *f = sl_xmalloc(sizeof(*f) + n * sizeof(uint64_t));
    f->a = a;
    f->gen = a->ready->gen;
    f->n = n;
    for (uint32_t i = 0; i < n; i++) {
      delivery_t *x = a->ready;
      a->ready = x->next;
      f->tags[i] = x->env.delivery_tag;
      sl_batch_push(b, to_msg(a, x));
    }
    if (!a->ready) a->ready_tail = &a->ready;
    sl_amqp_link_lock(a->link);
    a->sh->in_n -= n;
    sl_amqp_link_unlock(a->link);
    if (a->sh->auto_ack) sl_amqp_link_kick(a->link);   /* room again: the thread may read */
    sl_input_emit(&a->base, b, on_txn, f);
  }
}

static void ain_wake(void *arg) {
  ain_t *a = arg;
  ain_sh_t *sh = a->sh;
  int up;
  char why[600];
  if (sl_amqp_link_changed(a->link, &up, why, sizeof why)) {
    if (up) sl_logf(SL_LOG_INFO, sname(a), a->base.label, "amqp: consuming %s", sh->queue);
    else sl_logf(SL_LOG_WARN, sname(a), a->base.label, "%s", why);
    sl_input_set_connected(&a->base, up, up ? NULL : why);
  }
  sl_amqp_link_lock(a->link);
  delivery_t *head = sh->in_head;
  delivery_t **tail = sh->in_tail;
  sh->in_head = NULL;
  sh->in_tail = &sh->in_head;
  int flushed = sh->flushed;
  sh->flushed = 0;
  sl_amqp_link_unlock(a->link);
  if (head) {
    *a->ready_tail = head;
    a->ready_tail = tail;
  }
  pump(a);
  if (flushed && a->close_done) {
    void (*done)(sl_input_t *, void *) = a->close_done;
    a->close_done = NULL;
    done(&a->base, a->close_arg);
  }
}

static void ain_free(ain_t *a) {
  if (a->metas || a->period_open) return;
  for (uint32_t i = 0; i < a->nreject; i++) regfree(&a->reject[i]);
  free(a->reject);
  free(a);
}

static const sl_amqp_hooks_t hooks = {ain_setup, ain_frame, ain_room, ain_work, ain_lost, ain_wake, sh_free};

static int ain_start(sl_input_t *in) {
  ain_t *a = (ain_t *)in;
  sl_input_set_connected(in, 0, "amqp: connecting");
  if (a->pol.period_ms > 0) {
    uv_timer_init(in->worker->loop, &a->period);
    a->period.data = a;
    a->period_open = 1;
  }
  return sl_amqp_link_start(a->link, in->worker->loop);
}

static void ain_resume(sl_input_t *in) { pump((ain_t *)in); }

static void ain_stop(sl_input_t *in) {
  ((ain_t *)in)->stopped = 1;
  drop_pend((ain_t *)in);
}

static void period_closed(uv_handle_t *h) {
  ain_t *a = h->data;
  a->period_open = 0;
  ain_free(a);
}

/* Every transaction has completed: the acks they posted go out before the
 * connection closes (what is not acknowledged then, the broker requeues). */
static void ain_close(sl_input_t *in, void (*done)(sl_input_t *, void *), void *arg) {
  ain_t *a = (ain_t *)in;
  a->stopped = 1;
  drop_pend(a);
  if (a->sh->auto_ack) {
    done(in, arg);
    return;
  }
  a->close_done = done;
  a->close_arg = arg;
  sl_amqp_link_lock(a->link);
  a->sh->flush_asked = 1;
  sl_amqp_link_unlock(a->link);
  sl_amqp_link_kick(a->link);
}

static void ain_destroy(sl_input_t *in) {
  ain_t *a = (ain_t *)in;
  free_deliveries(a->ready);
  a->ready = NULL;
  drop_pend(a);
  sl_amqp_link_close(a->link);   /* the thread lets go of sh when it ends */
  a->link = NULL;
  a->destroyed = 1;
  free(a->ptags);
  a->ptags = NULL;
  sl_lcheck_free(a->check);
  a->check = NULL;
  if (a->period_open) uv_close((uv_handle_t *)&a->period, period_closed);
  else ain_free(a);
}

static const sl_input_vt vt = {ain_start, ain_resume, ain_stop, ain_destroy, ain_close, NULL};
static const sl_spec_t spec;

static void *ain_create(sl_build_t *b, const sl_cnode_t *conf) {
  ain_t *a = sl_xcalloc(1, sizeof(*a));
  ain_sh_t *sh = a->sh = sl_xcalloc(1, sizeof(*sh));
  sl_component_init_input(&a->base, &vt, &spec, b);
  a->ready_tail = &a->ready;
  sh->in_tail = &sh->in_head;
  sh->queue = sl_xstrdup(sl_conf_str(conf, "queue", ""));
  sh->tag = sl_xstrdup(sl_conf_str(conf, "consumer_tag", ""));
  const sl_cnode_t *qd = sl_cnode_get(conf, "queue_declare");
  sh->declare = sl_conf_bool(qd, "enabled", 0);
  sh->durable = sl_conf_bool(qd, "durable", 1);
  sh->auto_delete = sl_conf_bool(qd, "auto_delete", 0);
  sh->auto_ack = sl_conf_bool(conf, "auto_ack", 0);
  sh->prefetch = (uint16_t)sl_conf_int(conf, "prefetch_count", 10);
  sh->prefetch_size = (uint32_t)sl_conf_int(conf, "prefetch_size", 0);
  const sl_cnode_t *bt = sl_cnode_get(conf, "batching");
  a->policy = bt && bt->type == SL_CN_MAP && sl_batch_policy_read(bt, &a->pol);
  if (!a->policy) memset(&a->pol, 0, sizeof a->pol);
  const sl_cnode_t *binds = sl_cnode_get(conf, "bindings_declare");
  uint32_t nb = binds && binds->type == SL_CN_SEQ ? binds->n : 0;
  sh->bind_ex = sl_xcalloc(nb + 1, sizeof(char *));
  sh->bind_key = sl_xcalloc(nb + 1, sizeof(char *));
  for (; sh->nbind < nb; sh->nbind++) {
    sh->bind_ex[sh->nbind] = sl_xstrdup(sl_conf_str(binds->items[sh->nbind], "exchange", ""));
    sh->bind_key[sh->nbind] = sl_xstrdup(sl_conf_str(binds->items[sh->nbind], "key", ""));
  }
  const sl_cnode_t *pats = sl_cnode_get(conf, "nack_reject_patterns");
  uint32_t np = pats && pats->type == SL_CN_SEQ ? pats->n : 0;
  a->reject = sl_xcalloc(np + 1, sizeof(regex_t));
  int bad = 0;
  for (uint32_t i = 0; i < np; i++) {
    if (regcomp(&a->reject[a->nreject], pats->items[i]->str, REG_EXTENDED | REG_NOSUB) != 0) {
      sl_diag_add(b->diags, pats->items[i], "nack_reject_patterns", "not a regular expression: %s",
                  pats->items[i]->str);
      bad = 1;
      continue;
    }
    a->nreject++;
  }
  if (a->policy && *sl_conf_str(bt, "check", "") && !(a->check = sl_lua_check_field(b->worker, bt, b->diags, "check")))
    bad = 1;
  if (!sh->queue[0]) {
    sl_diag_add(b->diags, conf, "queue", "name the queue to consume");
    bad = 1;
  }
  unsigned before = b->diags->n;
  a->link = sh->link = sl_amqp_link_new(b, conf, &hooks, sh, a);
  if (bad || b->diags->n != before) {
    ain_destroy(&a->base);
    return NULL;
  }
  return a;
}

static const sl_spec_t spec = {
  .name = "amqp_0_9",
  .kind = SL_KIND_INPUT,
  .summary = "Consumes an AMQP 0.9.1 queue (RabbitMQ), acknowledging each message once its transaction completes.",
  .desc =
    "Each delivery's body is the content; its properties become `amqp_content_type`, "
    "`amqp_content_encoding`, `amqp_delivery_mode`, `amqp_priority`, `amqp_correlation_id`, "
    "`amqp_reply_to`, `amqp_expiration`, `amqp_message_id`, `amqp_timestamp`, `amqp_type`, "
    "`amqp_user_id`, `amqp_app_id`, with `amqp_consumer_tag`, `amqp_delivery_tag`, "
    "`amqp_redelivered`, `amqp_exchange`, `amqp_routing_key` and every header (a nested table as "
    "`parent.child`), as Benthos names them.\n\n"
    "A delivery is acknowledged to the broker only when its transaction completes (every "
    "output delivered it, or it was deliberately dropped). A transaction that failed once the "
    "stream's `retry` gave up is nacked: requeued, or rejected (to the queue's dead-letter "
    "exchange, if it has one) when its error matches `nack_reject_patterns`. A transaction is "
    "the batch `batching` (Benthos's policy: `count`, `byte_size`, `period`, `check`, then its "
    "`processors`) forms, acknowledged together (`batching: {count: 1}`: each delivery alone, as "
    "Benthos does without a policy); without one, what has arrived, up to 64 deliveries. A "
    "batch being formed holds its deliveries unacknowledged: keep `count` within "
    "`prefetch_count`. At most "
    "`prefetch_count` deliveries are unacknowledged at once. When the connection drops, the "
    "broker requeues what was unacknowledged; the input reconnects with backoff (100 ms "
    "doubling to 5 s, each URL in turn), and `/ready` reports the stream not ready with the "
    "reason meanwhile (also when the broker is absent at start). On a stop, the acks of "
    "completed transactions are sent before the connection closes; what was still in flight "
    "is requeued by the broker.\n\n"
    "librabbitmq blocks, so each amqp_0_9 component runs its connection on a thread of its "
    "own; the event loop never waits for the broker.",
  .fields = fields,
  .example =
    "input:\n"
    "  amqp_0_9:\n"
    "    urls: [amqp://guest:guest@localhost:5672/]\n"
    "    queue: jobs\n"
    "    prefetch_count: 100\n",
  .create = ain_create,
  .batches_itself = 1,
};
SL_REGISTER(spec)
