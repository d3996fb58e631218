/* `nats_jetstream` output: publishes to a JetStream stream; a batch is
 * written once the stream acknowledged (PubAck) every message of it.
 * A JetStream publish is a core publish with a reply subject: each message
 * goes out with its own reply subject under one inbox that the output
 * subscribes to, and the PubAck (or the server's error) comes back there,
 * through the link's queue; the socket is on the loop unless TLS.
 * cnats's js_PublishAsync did the same through a message made and freed
 * per publish, a map under its lock and a thread of its own: about half of
 * the output's CPU per message (bench/RESULTS.md).
 * `max_in_flight` messages wait for their PubAck at once, in a ring by
 * their sequence; later ones wait their turn, in order. */
#include "nats_output.h"
#include "core/dec.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  SL_NATS_OUT_FIELDS,
  {"max_in_flight", SL_F_INT, "1024", 0,
   "Messages published and waiting for their PubAck at most.", SL_BOUNDS("1", "1000000"), NULL},
  {"ack_timeout", SL_F_DURATION, "5s", 0,
   "How long a publish waits for its PubAck before it fails (and is retried: the stream may then "
   "hold it twice).", SL_BOUNDS("1ms", ""), NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct jwrite jwrite_t;
typedef struct slot {        /* a publish waiting for its PubAck */
  jwrite_t *w;               /* NULL: free */
  uint64_t seq;              /* its reply subject's number */
  uint64_t deadline;         /* loop time (ms) when it fails */
} slot_t;

typedef struct jout {
  sl_nats_out_t c;
  int64_t max_in_flight, ack_ms, pending;
  slot_t *ring;              /* max_in_flight slots, sequence seq at seq % max_in_flight */
  uint64_t next_seq;         /* the next publish's */
  uint64_t oldest;           /* every sequence before it is settled */
  char *inbox;               /* replies come to <inbox>.<seq> */
  size_t inbox_len;
  jwrite_t *queue, **queue_tail;   /* writes with messages not published yet, in order */
  int pumping;
  uv_timer_t timer;          /* the oldest waiting publish's deadline */
  int timer_init;
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
} jout_t;

struct jwrite {
  jwrite_t *next;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  uint32_t next_i;           /* messages before it were published (or failed) */
  uint32_t open;             /* PubAcks to come */
  int handed;
  char *err;
};

typedef struct js_setup { char *replies; int pending; } js_setup_t;   /* <inbox>.*, reply messages held */

/* On the link's thread: the inbox subscription the PubAcks come to,
 * through the link's queue. Not a synchronous one drained on the loop: its
 * natsSubscription_NextMsg turns a "no responders" answer into a status
 * and frees the message, which says which publish it answered. */
static int setup(sl_nats_t *l, natsConnection *nc, void *arg, char **err) {
  js_setup_t *s = arg;
  natsSubscription *sub = NULL;
  natsStatus st = natsConnection_Subscribe(&sub, nc, s->replies, sl_nats_on_msg, l);
  if (st != NATS_OK) {
    char *e = sl_nats_err(st);
    *err = sl_xasprintf("subscribe to %s: %s", s->replies, e);
    free(e);
    return -1;
  }
  /* cnats's default (65,536) would drop PubAcks of a larger window */
  natsSubscription_SetPendingLimits(sub, s->pending, -1);
  sl_nats_keep(l, sub, NULL);
  return 0;
}

static void maybe_closed(jout_t *o) {
  if (o->closed && !o->queue && o->pending == 0) {
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    sl_nats_out_end(&o->c, done, o->closed_arg);
  }
}

static void fail(jwrite_t *w, char *err) {
  if (!w->err) w->err = err;
  else free(err);
}

static void maybe_finished(jout_t *o, jwrite_t *w) {
  if (!w->handed || w->open) return;
  char *err = w->err;
  sl_write_cb cb = w->cb;
  void *arg = w->arg;
  sl_batch_t *b = w->b;
  free(w);
  cb(&o->c.base, b, err ? -1 : 0, err, arg);
  free(err);
}

/* The publish in s is answered (err NULL: stored; else malloc'd, why not). */
static void settle(jout_t *o, slot_t *s, char *err) {
  jwrite_t *w = s->w;
  s->w = NULL;
  if (!--o->pending) uv_timer_stop(&o->timer);   /* it would hold the loop at the end */
  w->open--;
  if (err) fail(w, err);
  maybe_finished(o, w);
}

static void on_timer(uv_timer_t *t);

/* Fails the publishes past their deadline (their sequences are in the
 * order of their deadlines) and arms the timer for the next one. */
static void expire(jout_t *o) {
  uint64_t now = uv_now(o->timer.loop);
  for (; o->oldest < o->next_seq; o->oldest++) {
    slot_t *s = &o->ring[o->oldest % (uint64_t)o->max_in_flight];
    if (!s->w || s->seq != o->oldest) continue;   /* answered */
    if (s->deadline > now) {
      uv_timer_start(&o->timer, on_timer, s->deadline - now, 0);
      return;
    }
    settle(o, s, sl_xasprintf("nats: PubAck: none within ack_timeout (%" PRId64 " ms)", o->ack_ms));
  }
  uv_timer_stop(&o->timer);
}

/* Publishes from the queue's head while fewer than max_in_flight wait. */
static void pump(jout_t *o) {
  if (o->pumping) return;
  natsConnection *nc = o->c.link ? sl_nats_conn_set_up(o->c.link) : NULL;
  char reply[96];
  memcpy(reply, o->inbox, o->inbox_len);
  reply[o->inbox_len] = '.';
  uint64_t deadline = uv_now(o->timer.loop) + (uint64_t)o->ack_ms;
  o->pumping = 1;
  while (o->queue && nc) {   /* not set up yet: on_up comes back here */
    jwrite_t *w = o->queue;
    for (; w->next_i < w->b->n && o->pending < o->max_in_flight; w->next_i++) {
      slot_t *s = &o->ring[o->next_seq % (uint64_t)o->max_in_flight];
      if (s->w) break;   /* an older publish still waits there: its answer or deadline comes back here */
      reply[o->inbox_len + 1 + sl_dec_u64(reply + o->inbox_len + 1, o->next_seq)] = 0;
      char *e = NULL;
      natsStatus st = sl_nats_out_publish(&o->c, nc, w->b->msgs[w->next_i], w->next_i, reply, &e);
      if (st != NATS_OK) {
        char *t = sl_nats_err(st);
        e = sl_xasprintf("nats: publish: %s", t);
        free(t);
      }
      if (e) {
        fail(w, e);
        continue;
      }
      *s = (slot_t){w, o->next_seq++, deadline};
      w->open++;
      o->pending++;
    }
    if (w->next_i < w->b->n) break;
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    w->handed = 1;
    maybe_finished(o, w);
  }
  o->pumping = 0;
  /* within ack_timeout: expire then sets it to the oldest's deadline */
  if (o->pending && !uv_is_active((uv_handle_t *)&o->timer)) uv_timer_start(&o->timer, on_timer, (uint64_t)o->ack_ms, 0);
  maybe_closed(o);
}

/* A PubAck's verdict: NULL (stored) or why not (malloc'd). */
static char *puback_err(natsMsg *m) {
  if (natsMsg_IsNoResponders(m)) return sl_xasprintf("nats: PubAck: %s", natsStatus_GetText(NATS_NO_RESPONDERS));
  const char *d = natsMsg_GetData(m);
  size_t n = (size_t)natsMsg_GetDataLength(m);
  /* the server's every success, `{"stream":"S","seq":N...}`, without parsing it */
  static const char ok[] = "{\"stream\":";
  if (d && n > sizeof ok && !memcmp(d, ok, sizeof ok - 1) && !memmem(d, n, "\"error\"", 7)) return NULL;
  json_t *j = d ? json_loadb(d, n, 0, NULL) : NULL;
  json_t *e = json_object_get(j, "error");
  const char *desc = json_string_value(json_object_get(e, "description"));
  char *err = NULL;
  if (desc) err = sl_xasprintf("nats: PubAck: %s (%" JSON_INTEGER_FORMAT ")", desc,
                               json_integer_value(json_object_get(e, "err_code")));
  else if (e || !json_is_integer(json_object_get(j, "seq")))
    err = sl_xasprintf("nats: PubAck: not one: %.*s", n > 200 ? 200 : (int)n, d ? d : "");
  json_decref(j);
  return err;
}

static void on_reply(jout_t *o, natsMsg *m) {
  const char *subj = natsMsg_GetSubject(m);
  if (strncmp(subj, o->inbox, o->inbox_len) || subj[o->inbox_len] != '.') return;
  char *end;
  uint64_t seq = strtoull(subj + o->inbox_len + 1, &end, 10);
  slot_t *s = &o->ring[seq % (uint64_t)o->max_in_flight];
  if (*end || !s->w || s->seq != seq) return;   /* late: its deadline failed it */
  settle(o, s, puback_err(m));
}

/* PubAcks that came. */
static void wake(void *arg) {
  jout_t *o = arg;
  sl_nats_item_t items[256];
  int k;
  while ((k = sl_nats_take(o->c.link, items, 256)) > 0) {
    for (int i = 0; i < k; i++) {
      if (items[i].m) on_reply(o, items[i].m);
      natsMsg_Destroy(items[i].m);
    }
  }
  pump(o);
}

static void on_timer(uv_timer_t *t) {
  jout_t *o = t->data;
  expire(o);
  pump(o);
}

static void on_up(sl_nats_out_t *c) { pump((jout_t *)c); }

/* Writes that never started wait for a server that a shutdown will not
 * bring: the stream hands their batches back. */
static void jout_stopping(sl_output_t *base) {
  jout_t *o = (jout_t *)base;
  if (o->c.link && sl_nats_conn_set_up(o->c.link)) return;
  while (o->queue) {
    jwrite_t *w = o->queue;
    o->queue = w->next;
    sl_write_cb cb = w->cb;
    void *arg = w->arg;
    sl_batch_t *b = w->b;
    free(w->err);
    free(w);
    cb(base, b, SL_WRITE_ABANDONED, "nats: not connected", arg);
  }
  o->queue_tail = &o->queue;
  maybe_closed(o);
}

static int jout_start(sl_output_t *base) {
  jout_t *o = (jout_t *)base;
  o->c.on_up = on_up;
  o->c.cbs.on_loop = 1;
  uv_timer_init(base->worker->loop, &o->timer);
  o->timer.data = o;
  o->timer_init = 1;
  natsInbox *inbox = NULL;
  if (natsInbox_Create(&inbox) != NATS_OK) return -1;
  o->inbox = sl_xstrdup(inbox);   /* "_INBOX." and a NUID */
  o->inbox_len = strlen(o->inbox);
  natsInbox_Destroy(inbox);
  ((js_setup_t *)o->c.setup_arg)->replies = sl_xasprintf("%s.*", o->inbox);
  return sl_nats_out_start(&o->c, wake, (int)o->max_in_flight + 64);
}

static void jout_write(sl_output_t *base, sl_batch_t *b, sl_write_cb cb, void *arg) {
  jout_t *o = (jout_t *)base;
  jwrite_t *w = sl_xcalloc(1, sizeof(*w));
  w->b = b;
  w->cb = cb;
  w->arg = arg;
  *o->queue_tail = w;
  o->queue_tail = &w->next;
  pump(o);
}

static void jout_close(sl_output_t *base, void (*done)(sl_output_t *, void *), void *arg) {
  jout_t *o = (jout_t *)base;
  o->closed = done;
  o->closed_arg = arg;
  maybe_closed(o);
}

/* A PubAck that never came leaves nothing behind: the slots are the ring's. */
static void jout_free(uv_handle_t *h) {
  jout_t *o = h->data;
  free(o->ring);
  free(o->inbox);
  sl_nats_out_free(&o->c);
}

static void jout_destroy(sl_output_t *base) {
  jout_t *o = (jout_t *)base;
  o->timer.data = o;
  if (o->timer_init) uv_close((uv_handle_t *)&o->timer, jout_free);
  else jout_free((uv_handle_t *)&o->timer);
}

static const sl_output_vt vt = {jout_start, jout_write, jout_close, jout_destroy, jout_stopping, NULL};
static const sl_spec_t spec;

static void setup_free(void *arg) {
  js_setup_t *s = arg;
  free(s->replies);
  free(s);
}

static void *jout_create(sl_build_t *b, const sl_cnode_t *conf) {
  jout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->c.base, &vt, &spec, b);
  o->queue_tail = &o->queue;
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", 1024);
  o->ack_ms = sl_conf_duration_ms(conf, "ack_timeout", 5000);
  o->ring = sl_xcalloc((size_t)o->max_in_flight, sizeof(*o->ring));
  js_setup_t *s = sl_xcalloc(1, sizeof(*s));
  s->pending = (int)o->max_in_flight + 64;
  o->c.setup_arg = s;
  o->c.cbs.setup = setup;
  o->c.cbs.setup_free = setup_free;
  if (sl_nats_out_init(&o->c, b, conf)) {
    jout_destroy(&o->c.base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "nats_jetstream",
  .kind = SL_KIND_OUTPUT,
  .summary = "Publishes to JetStream, acknowledged from the stream's PubAcks: at least once.",
  .desc =
    "Each message is published to `subject` (evaluated per message; a stream must capture it) "
    "with `headers` and the metadata `metadata.include_prefixes` selects as headers. A batch is "
    "acknowledged once the stream acknowledged every message of it (its PubAck: the message is "
    "stored), and failed with the reason otherwise (no stream for the subject, a PubAck that did "
    "not come within `ack_timeout`, the server's limits), so the stream's `retry` policy or a "
    "`fallback` takes over; a retry publishes the whole batch again, so the stream may hold a "
    "message twice after a timeout. Up to `max_in_flight` messages wait for their PubAck at once; "
    "the rest waits for room, without holding the loop. Until the first connection, writes wait "
    "for it; while the server cannot be reached the stream reports not ready on `/ready`, and "
    "cnats reconnects without end (publishes meanwhile time out and are retried).",
  .fields = fields,
  .example =
    "output:\n"
    "  nats_jetstream:\n"
    "    urls: [nats://127.0.0.1:4222]\n"
    "    subject: 'orders.${! meta.region }'\n",
  .create = jout_create,
};
SL_REGISTER(spec)
