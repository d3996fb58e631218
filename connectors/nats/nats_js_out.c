/* `nats_jetstream` output: publishes to a JetStream stream; a batch is
 * written once the stream acknowledged (PubAck) every message of it.
 * `max_in_flight` messages wait for their PubAck at once; later ones wait
 * their turn, in order. A PubAck comes on cnats's thread and reaches the
 * loop through the link's queue; the message it answers is found by its
 * pointer. */
#include "nats_output.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include "core/blocks.h"
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

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
typedef struct slot {
  UT_hash_handle hh;
  natsMsg *m;                /* the key: cnats hands it back with the PubAck */
  jwrite_t *w;
} slot_t;

typedef struct jout {
  sl_nats_out_t c;
  int64_t max_in_flight, ack_ms, pending;
  slot_t *slots;
  jwrite_t *queue, **queue_tail;   /* writes with messages not published yet, in order */
  int pumping;
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

typedef struct js_setup { int64_t max_pending; } js_setup_t;

static void ack_handler(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *link) {
  (void)js;
  const char *err = NULL;
  char buf[256];
  if (!pa) {
    snprintf(buf, sizeof buf, "nats: PubAck: %s", pae && pae->ErrText ? pae->ErrText : pae ? natsStatus_GetText(pae->Err) : "none");
    err = buf;
  }
  sl_nats_push_ack(link, m, err);
}

/* On the link's thread: the context whose PubAcks come to the queue. */
static int setup(sl_nats_t *l, natsConnection *nc, void *arg, char **err) {
  js_setup_t *s = arg;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.AckHandler = ack_handler;
  jo.PublishAsync.AckHandlerClosure = l;
  jo.PublishAsync.MaxPending = s->max_pending;   /* above max_in_flight: a publish never stalls */
  jsCtx *js = NULL;
  natsStatus st = natsConnection_JetStream(&js, nc, &jo);
  if (st != NATS_OK) {
    char *e = sl_nats_err(st);
    *err = sl_xasprintf("JetStream context: %s", e);
    free(e);
    return -1;
  }
  sl_nats_keep(l, NULL, js);
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

/* Publishes from the queue's head while fewer than max_in_flight wait. */
static void pump(jout_t *o) {
  if (o->pumping) return;
  jsCtx *js = o->c.link ? sl_nats_js(o->c.link) : NULL;
  o->pumping = 1;
  while (o->queue) {
    jwrite_t *w = o->queue;
    if (!js) break;   /* not set up yet: on_up comes back here */
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = o->ack_ms;
    for (; w->next_i < w->b->n && o->pending < o->max_in_flight; w->next_i++) {
      char *e = NULL;
      natsMsg *nm = sl_nats_out_msg(&o->c, w->b->msgs[w->next_i], w->next_i, &e);
      if (!nm) {
        fail(w, e);
        continue;
      }
      slot_t *s = sl_blocks_get(sizeof(*s));   /* one per message: no malloc */
      s->m = nm;
      s->w = w;
      HASH_ADD_PTR(o->slots, m, s);
      natsStatus st = js_PublishMsgAsync(js, &nm, &po);
      if (st != NATS_OK) {
        HASH_DEL(o->slots, s);
        sl_blocks_put(s, sizeof(*s));
        if (nm) natsMsg_Destroy(nm);   /* not taken */
        char *t = sl_nats_err(st);
        fail(w, sl_xasprintf("nats: publish: %s", t));
        free(t);
        continue;
      }
      w->open++;
      o->pending++;
    }
    if (w->next_i < w->b->n) break;   /* PubAcks make room: wake comes back here */
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    w->handed = 1;
    maybe_finished(o, w);
  }
  o->pumping = 0;
  maybe_closed(o);
}

/* PubAcks (and their failures) that came. */
static void wake(void *arg) {
  jout_t *o = arg;
  sl_nats_item_t items[256];
  int k;
  while ((k = sl_nats_take(o->c.link, items, 256)) > 0) {
    for (int i = 0; i < k; i++) {
      slot_t *s = NULL;
      natsMsg *m = items[i].m;
      HASH_FIND_PTR(o->slots, &m, s);
      if (s) {
        HASH_DEL(o->slots, s);
        jwrite_t *w = s->w;
        sl_blocks_put(s, sizeof(*s));
        o->pending--;
        w->open--;
        /* Readiness follows the connection (the link), not one PubAck:
         * a timeout of a publish made while disconnected may come after
         * later ones succeeded. */
        if (items[i].err) {
          fail(w, items[i].err);
          items[i].err = NULL;
        }
        maybe_finished(o, w);
      }
      free(items[i].err);
      natsMsg_Destroy(m);
    }
  }
  pump(o);
}

static void on_up(sl_nats_out_t *c) { pump((jout_t *)c); }

/* Writes that never started wait for a server that a shutdown will not
 * bring: the stream hands their batches back. */
static void jout_stopping(sl_output_t *base) {
  jout_t *o = (jout_t *)base;
  if (o->c.link && sl_nats_js(o->c.link)) return;
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
  ((jout_t *)base)->c.on_up = on_up;
  return sl_nats_out_start((sl_nats_out_t *)base, wake, 0);
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

static void jout_destroy(sl_output_t *base) {
  jout_t *o = (jout_t *)base;
  slot_t *s, *t;
  HASH_ITER(hh, o->slots, s, t) {   /* a PubAck that never came: cnats frees the message */
    HASH_DEL(o->slots, s);
    sl_blocks_put(s, sizeof(*s));
  }
  sl_nats_out_free(&o->c);
}

static const sl_output_vt vt = {jout_start, jout_write, jout_close, jout_destroy, jout_stopping, NULL};
static const sl_spec_t spec;

static void setup_free(void *arg) { free(arg); }

static void *jout_create(sl_build_t *b, const sl_cnode_t *conf) {
  jout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->c.base, &vt, &spec, b);
  o->queue_tail = &o->queue;
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", 1024);
  o->ack_ms = sl_conf_duration_ms(conf, "ack_timeout", 5000);
  js_setup_t *s = sl_xmalloc(sizeof(*s));
  s->max_pending = o->max_in_flight + 64;
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
