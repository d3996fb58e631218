/* The NATS inputs' shared machinery (nats_input.h). */
#include "nats_input.h"
#include "core/blocks.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sname(sl_nats_in_t *in) { return in->base.stream ? in->base.stream->name : NULL; }

/* A received message, kept while its metadata may be read or (JetStream)
 * until it is acknowledged: each holds a ref. */
typedef struct nmsg {
  sl_kv_src_t base;
  natsMsg *m;
  int js;
} nmsg_t;

static void nmsg_unref(nmsg_t *x) {
  if (--x->base.refs == 0) x->base.release(&x->base);
}

static void add_num(sl_kvlist_t *l, const char *k, uint64_t v) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  sl_kv_add(l, k, buf, (size_t)n);
}

static void nmsg_load(sl_kv_src_t *s, sl_kvlist_t *into) {
  nmsg_t *x = (nmsg_t *)s;
  const char *subj = natsMsg_GetSubject(x->m), *reply = natsMsg_GetReply(x->m);
  sl_kv_add(into, "nats_subject", subj, strlen(subj));
  jsMsgMetaData *md = NULL;
  if (x->js && natsMsg_GetMetaData(&md, x->m) == NATS_OK) {
    add_num(into, "nats_sequence_stream", md->Sequence.Stream);
    add_num(into, "nats_sequence_consumer", md->Sequence.Consumer);
    add_num(into, "nats_num_delivered", md->NumDelivered);
    add_num(into, "nats_num_pending", md->NumPending);
    add_num(into, "nats_timestamp_unix_nano", (uint64_t)md->Timestamp);
    if (md->Domain) sl_kv_add(into, "nats_domain", md->Domain, strlen(md->Domain));
    jsMsgMetaData_Destroy(md);
  } else if (reply && *reply) {
    sl_kv_add(into, "nats_reply_subject", reply, strlen(reply));
  }
  const char **keys = NULL;
  int nk = 0;
  if (natsMsgHeader_Keys(x->m, &keys, &nk) != NATS_OK) return;
  for (int i = 0; i < nk; i++) {
    const char **vals = NULL;
    int nv = 0;
    if (natsMsgHeader_Values(x->m, keys[i], &vals, &nv) != NATS_OK) continue;
    for (int j = 0; j < nv; j++) sl_kv_add(into, keys[i], vals[j], strlen(vals[j]));
    free((void *)vals);
  }
  free((void *)keys);
}

static void nmsg_release(sl_kv_src_t *s) {
  natsMsg_Destroy(((nmsg_t *)s)->m);
  sl_blocks_put(s, sizeof(nmsg_t));
}

typedef struct flight {
  sl_nats_in_t *in;
  uint32_t n;
  nmsg_t *msgs[];
} flight_t;

static void on_txn(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  flight_t *f = arg;
  sl_nats_in_t *in = f->in;
  natsStatus worst = NATS_OK;
  for (uint32_t i = 0; i < f->n; i++) {
    natsStatus s = status == 0 ? natsMsg_Ack(f->msgs[i]->m, NULL)
                               : natsMsg_NakWithDelay(f->msgs[i]->m, in->nak_ms, NULL);
    if (s != NATS_OK) worst = s;
    nmsg_unref(f->msgs[i]);
  }
  if (status != 0)
    sl_logf(SL_LOG_WARN, sname(in), in->base.label, "nats: %u message(s) failed (%s): sent back, redelivered in %lld ms",
            f->n, err ? err : "failed", (long long)in->nak_ms);
  if (worst != NATS_OK)
    sl_logf(SL_LOG_WARN, sname(in), in->base.label,
            "nats: acknowledging: %s (JetStream redelivers what was not acknowledged after ack_wait)",
            natsStatus_GetText(worst));
  free(f);
}

enum { TURN = 4096 };

/* Takes what the queue holds while the stream has room, a bounded turn at a
 * time (another wake continues). */
static void pump(sl_nats_in_t *in) {
  if (in->stopped || !in->link) return;
  sl_nats_item_t items[256];
  int max = in->batch_count < 256 ? (int)in->batch_count : 256;
  for (int total = 0; sl_input_ready(&in->base);) {
    if (total >= TURN) {
      sl_nats_rewake(in->link);
      return;
    }
    int k = sl_nats_take(in->link, items, max);
    if (!k) return;
    total += k;
    sl_batch_t *b = sl_batch_new((uint32_t)k);
    flight_t *f = NULL;
    if (in->js) {
      f = sl_xmalloc(sizeof(*f) + (size_t)k * sizeof(nmsg_t *));
      f->in = in;
      f->n = (uint32_t)k;
    }
    for (int i = 0; i < k; i++) {
      natsMsg *m = items[i].m;
      const char *d = natsMsg_GetData(m);
      sl_msg_t *msg = sl_msg_new(d ? d : "", (size_t)natsMsg_GetDataLength(m));
      nmsg_t *x = sl_blocks_get(sizeof(*x));   /* as the message's own struct: no malloc per message */
      *x = (nmsg_t){{1, nmsg_load, nmsg_release}, m, in->js};
      if (f) {
        x->base.refs++;
        f->msgs[i] = x;
      }
      sl_kv_defer(&msg->meta, &x->base);
      sl_batch_push(b, msg);
    }
    sl_input_set_connected(&in->base, 1, NULL);
    /* JetStream sends a failed batch again itself (the nak); core NATS
     * cannot, so the stream re-sends it until it is delivered. */
    if (f) sl_input_emit(&in->base, b, on_txn, f);
    else sl_input_emit_retry(&in->base, b, NULL, NULL);
  }
}

static void on_wake(void *arg) { pump(arg); }

static void on_state(void *arg, int up, const char *why) {
  sl_nats_in_t *in = arg;
  if (up) sl_logf(SL_LOG_INFO, sname(in), in->base.label, "nats: connected and subscribed");
  else sl_logf(strstr(why, "connecting") ? SL_LOG_INFO : SL_LOG_WARN, sname(in), in->base.label, "%s", why);
  sl_input_set_connected(&in->base, up, why);
}

static int in_start(sl_input_t *base) {
  sl_nats_in_t *in = (sl_nats_in_t *)base;
  in->cbs.wake = on_wake;
  in->cbs.state = on_state;
  in->cbs.on_loop = 1;
  in->cbs.stream = sname(in);
  in->cbs.label = base->label;
  sl_input_set_connected(base, 0, "nats: connecting");
  in->link = sl_nats_new(base->worker->loop, in->conf, &in->cbs, in, in->setup_arg, (int)in->queue_max);
  in->conf = NULL;
  in->setup_arg = NULL;
  return in->link ? 0 : -1;
}

static void in_resume(sl_input_t *base) { pump((sl_nats_in_t *)base); }

static void in_stop(sl_input_t *base) { ((sl_nats_in_t *)base)->stopped = 1; }

/* Every transaction has completed: what their acks wrote goes out and the
 * connection ends before the stream does (messages still queued are not
 * acknowledged: JetStream sends them again after ack_wait). */
static void ended(void *who, void *arg) {
  sl_nats_in_t *in = who;
  in->closed(&in->base, arg);
}

static void in_close(sl_input_t *base, void (*done)(sl_input_t *, void *), void *arg) {
  sl_nats_in_t *in = (sl_nats_in_t *)base;
  in->stopped = 1;
  in->closed = done;
  if (!in->link) done(base, arg);
  else sl_nats_end(in->link, ended, in, arg);
}

static void in_destroy(sl_input_t *base) {
  sl_nats_in_t *in = (sl_nats_in_t *)base;
  sl_nats_close(in->link);
  sl_nats_conf_free(in->conf);
  if (in->setup_arg && in->cbs.setup_free) in->cbs.setup_free(in->setup_arg);
  free(in);
}

const sl_input_vt sl_nats_in_vt = {in_start, in_resume, in_stop, in_destroy, in_close, NULL};

int sl_nats_sub_read(sl_nats_sub_t *s, sl_build_t *b, const sl_cnode_t *conf) {
  s->subject = sl_xstrdup(sl_conf_str(conf, "subject", ""));
  s->queue = sl_xstrdup(sl_conf_str(conf, "queue", ""));
  int bad = 0;
  if (*s->subject && !sl_nats_subject_ok(s->subject, 1)) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "subject"), "subject", "not a NATS subject: %s", s->subject);
    bad++;
  }
  if (*s->queue && !sl_nats_subject_ok(s->queue, 0)) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "queue"), "queue", "not a queue group name: %s", s->queue);
    bad++;
  }
  return bad;
}

void sl_nats_sub_free(sl_nats_sub_t *s) {
  free(s->subject);
  free(s->queue);
}

sl_nats_in_t *sl_nats_in_new(sl_build_t *b, const sl_cnode_t *conf, const sl_spec_t *spec, int js) {
  sl_nats_in_t *in = sl_xcalloc(1, sizeof(*in));
  sl_component_init_input(&in->base, &sl_nats_in_vt, spec, b);
  in->conf = sl_nats_conf(b, conf);
  in->js = js;
  in->batch_count = sl_conf_int(conf, "batch_count", 64);
  in->nak_ms = sl_conf_duration_ms(conf, "nak_delay", 1000);
  in->queue_max = in->batch_count * 8 > 1024 ? in->batch_count * 8 : 1024;
  return in;
}
