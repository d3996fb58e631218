/* `nats` output: publishes to core NATS; a batch counts as written once
 * cnats took it into its buffer (at most once). */
#include "nats_output.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include "core/lazy_nats.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  SL_NATS_OUT_FIELDS,
  SL_BATCHING_FIELD,
  {0}};

typedef struct waiting { struct waiting *next; sl_batch_t *b; sl_write_cb cb; void *arg; } waiting_t;

typedef struct nout {
  sl_nats_out_t c;
  waiting_t *waiting, **waiting_tail;   /* writes before the first connection, in order */
} nout_t;

static void wake(void *arg) { (void)arg; }

static void nout_write(sl_output_t *base, sl_batch_t *b, sl_write_cb cb, void *arg);

/* Connected: the writes that waited for it go out, in order. */
static void on_up(sl_nats_out_t *c) {
  nout_t *o = (nout_t *)c;
  waiting_t *w = o->waiting;
  o->waiting = NULL;
  o->waiting_tail = &o->waiting;
  while (w) {
    waiting_t *n = w->next;
    nout_write(&c->base, w->b, w->cb, w->arg);
    free(w);
    w = n;
  }
}

static int nout_start(sl_output_t *base) {
  ((nout_t *)base)->c.on_up = on_up;
  return sl_nats_out_start((sl_nats_out_t *)base, wake, 0);
}

/* Writes still waiting for a first connection that a shutdown will not
 * bring: the stream hands their batches back. */
static void nout_stopping(sl_output_t *base) {
  nout_t *o = (nout_t *)base;
  waiting_t *w = o->waiting;
  o->waiting = NULL;
  o->waiting_tail = &o->waiting;
  while (w) {
    waiting_t *n = w->next;
    w->cb(base, w->b, SL_WRITE_ABANDONED, "nats: not connected", w->arg);
    free(w);
    w = n;
  }
}

static char *publish_err(natsStatus s) {
  char *t = sl_nats_err(s);
  char *e = sl_xasprintf("nats: publish: %s", t);
  free(t);
  return e;
}

static void nout_write(sl_output_t *base, sl_batch_t *b, sl_write_cb cb, void *arg) {
  nout_t *no = (nout_t *)base;
  sl_nats_out_t *o = &no->c;
  natsConnection *nc = o->link ? sl_nats_conn(o->link) : NULL;
  if (!nc) {   /* cnats has not made the connection yet (it buffers once it has) */
    waiting_t *w = sl_xmalloc(sizeof(*w));
    *w = (waiting_t){NULL, b, cb, arg};
    *no->waiting_tail = w;
    no->waiting_tail = &w->next;
    return;
  }
  char *err = NULL;
  if (o->static_ok && !o->nheaders && !*o->prefixes) {
    /* A subject checked when built and nothing else to add: the batch goes
     * to cnats in one loop, its publish reached once rather than through the
     * lazy loader's forwarder per message (callgrind: 86 instructions of
     * 1,367 per 100 B message less, bench/RESULTS.md). */
    natsStatus (*publish)(natsConnection *, const char *, const void *, int) = sl_lib_nats()->natsConnection_Publish;
    for (uint32_t i = 0; i < b->n; i++) {
      const sl_bytes_t *c = b->msgs[i]->content;
      natsStatus s = publish(nc, o->static_subject, c->data, (int)c->len);
      if (s != NATS_OK && !err) err = publish_err(s);
    }
  } else {
    for (uint32_t i = 0; i < b->n; i++) {
      char *e = NULL;
      natsStatus s = sl_nats_out_publish(o, nc, b->msgs[i], i, NULL, &e);
      if (s != NATS_OK) e = publish_err(s);
      if (e && !err) err = e;
      else free(e);
    }
  }
  cb(base, b, err ? -1 : 0, err, arg);
  free(err);
}

/* What cnats buffered goes to the server before the stream ends. */
static void nout_close(sl_output_t *base, void (*done)(sl_output_t *, void *), void *arg) {
  nout_stopping(base);
  sl_nats_out_end((sl_nats_out_t *)base, done, arg);
}

static void nout_destroy(sl_output_t *base) { sl_nats_out_free((sl_nats_out_t *)base); }

static const sl_output_vt vt = {nout_start, nout_write, nout_close, nout_destroy, nout_stopping, NULL};
static const sl_spec_t spec;

static void *nout_create(sl_build_t *b, const sl_cnode_t *conf) {
  nout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->c.base, &vt, &spec, b);
  o->waiting_tail = &o->waiting;
  if (sl_nats_out_init(&o->c, b, conf)) {
    nout_destroy(&o->c.base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "nats",
  .kind = SL_KIND_OUTPUT,
  .summary = "Publishes to core NATS subjects: at most once.",
  .desc =
    "Each message is published with its content as the payload to `subject`, evaluated per "
    "message, with `headers` and the metadata `metadata.include_prefixes` selects as headers. "
    "Core NATS has no acknowledgement: a batch counts as written once cnats took it into its "
    "buffer, which is flushed to the server as it goes and when the stream stops. Writes wait for "
    "the first connection; later, while the "
    "connection is down cnats keeps up to 8 MiB of publishes for the reconnect; past that, writes "
    "fail and the stream's `retry` takes over. A message larger than the server's `max_payload`, "
    "or whose subject is not one to publish to, fails with the reason. For publishes the server "
    "acknowledges, use `nats_jetstream`.",
  .fields = fields,
  .example =
    "output:\n"
    "  nats:\n"
    "    urls: [nats://127.0.0.1:4222]\n"
    "    subject: 'results.${! meta.user }'\n",
  .create = nout_create,
};
SL_REGISTER(spec)
