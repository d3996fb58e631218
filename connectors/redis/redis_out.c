/* The redis_* outputs' write path (redis_out.h). */
#include "redis_out.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

enum { M_UNSENT, M_SENT, M_DONE, M_FAILED };

struct sl_rwrite {
  sl_kwrite_t kw;            /* first (kept.h); its states are M_* */
  sl_rwrite_t *next;         /* in o->queue */
  sl_rout_t *o;
  sl_rwrite_t **slots;       /* slots[i] == this: message i's reply argument */
  uint32_t open;             /* replies to come */
  int sending;               /* still sending: replies come later, never during */
};

static void rwrite_free(sl_rwrite_t *w) {
  free(w->slots);
  sl_kept_write_free(w);
}

static void settle(sl_rwrite_t *w, uint32_t i, const char *err) {
  w->kw.state[i] = err ? M_FAILED : M_DONE;
  if (err && !w->kw.err) w->kw.err = sl_xstrdup(err);
}

static void pump(sl_rout_t *o);

static void maybe_closed(sl_rout_t *o) {
  if (o->closed && !o->queue && o->active == 0) {
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    done(&o->base, o->closed_arg);
  }
}

/* Every reply is in: the write's outcome. A failed write is kept so that
 * its retry sends only what failed. */
static void finished(sl_rwrite_t *w) {
  sl_rout_t *o = w->o;
  o->active--;
  if (!w->kw.err) {
    sl_write_cb cb = w->kw.cb;
    void *arg = w->kw.arg;
    sl_batch_t *b = w->kw.b;
    rwrite_free(w);
    cb(&o->base, b, 0, NULL, arg);
  } else {
    sl_kept_write_fail(&o->kept, w, M_DONE, &o->base);
  }
  pump(o);
  maybe_closed(o);
}

static void on_reply(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  sl_rwrite_t **slot = arg, *w = *slot;
  uint32_t i = (uint32_t)(slot - w->slots);
  if (!rp) settle(w, i, err);
  else if (rp->type == REDIS_REPLY_ERROR) settle(w, i, rp->str);
  else settle(w, i, NULL);
  if (--w->open == 0 && !w->sending) finished(w);
}

/* Sends every message of w not delivered yet. */
static void send_all(sl_rout_t *o, sl_rwrite_t *w) {
  sl_batch_t *b = w->kw.b;
  w->sending = 1;
  for (uint32_t i = 0; i < b->n; i++) {
    if (w->kw.state[i] == M_DONE) continue;
    char *err = NULL;
    sl_rargs_reset(&o->args);
    if (o->build(o, b->msgs[i], i, &o->args, &err)) {
      settle(w, i, err);
      free(err);
      continue;
    }
    if (sl_rargs_send(o->conn, &o->args, on_reply, &w->slots[i])) {
      const char *why = sl_redis_why(o->conn->r);
      settle(w, i, why ? why : "redis: not connected");
      continue;
    }
    w->kw.state[i] = M_SENT;
    w->open++;
  }
  sl_rargs_reset(&o->args);
  w->sending = 0;
  if (w->open == 0) finished(w);
}

/* Writes wait while Redis is down (the stream's max_in_flight bounds them):
 * failing them at once would spend the retry policy on the outage. */
static void pump(sl_rout_t *o) {
  int up = o->conn->r && sl_redis_up(o->conn->r);
  while (o->queue && !up && o->stopping) {
    sl_rwrite_t *w = o->queue;
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    sl_write_cb cb = w->kw.cb;
    void *arg = w->kw.arg;
    sl_batch_t *b = w->kw.b;
    rwrite_free(w);
    cb(&o->base, b, SL_WRITE_ABANDONED, o->conn->r ? sl_redis_why(o->conn->r) : "redis: not connected", arg);
    if (!o->queue) maybe_closed(o);
  }
  while (o->queue && o->active < o->max_in_flight && up) {
    sl_rwrite_t *w = o->queue;
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    w->next = NULL;
    o->active++;
    send_all(o, w);
  }
}

void sl_rout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sl_rout_t *o = (sl_rout_t *)out;
  sl_rwrite_t *w = sl_kept_write(&o->kept, b, sizeof(*w), M_UNSENT, M_DONE, cb, arg);
  if (!w->slots) {   /* new, not a retry */
    w->o = o;
    w->slots = sl_xmalloc((b->n ? b->n : 1) * sizeof(*w->slots));
    for (uint32_t i = 0; i < b->n; i++) w->slots[i] = w;
  }
  *o->queue_tail = w;
  o->queue_tail = &w->next;
  pump(o);
}

void sl_rout_forget(sl_output_t *out, sl_batch_t *b) {
  sl_rwrite_t *w = sl_kept_take(&((sl_rout_t *)out)->kept, b);
  if (w) rwrite_free(w);
}

void sl_rout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  sl_rout_t *o = (sl_rout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  maybe_closed(o);
}

static void on_state(sl_rconn_t *c, int up, void *arg) {
  (void)c;
  if (up) pump(arg);
}

/* The stream stops: writes waiting for Redis to come back end now, and so
 * do those that come later (retries) while it is down. */
void sl_rout_stopping(sl_output_t *out) {
  sl_rout_t *o = (sl_rout_t *)out;
  o->stopping = 1;
  pump(o);
}

int sl_rout_start(sl_output_t *out) {
  sl_rout_t *o = (sl_rout_t *)out;
  return sl_rconn_start(o->conn, out->worker->loop);
}

int sl_rout_init(sl_rout_t *o, const sl_output_vt *vt, const sl_spec_t *s, sl_build_t *b, const sl_cnode_t *conf,
                 sl_rout_build build) {
  sl_component_init_output(&o->base, vt, s, b);
  o->build = build;
  o->queue_tail = &o->queue;
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", 64);
  o->conn = sl_rconn_new(b, conf, NULL, &o->base, on_state, o);
  return o->conn ? 0 : -1;
}

void sl_rout_fini(sl_rout_t *o) {
  for (sl_rwrite_t *w; (w = sl_kept_pop(&o->kept));) rwrite_free(w);
  sl_rconn_free(o->conn);
  sl_rargs_free(&o->args);
}

void sl_rout_meta_args(sl_msg_t *m, sl_rargs_t *a) {
  sl_kv_load(&m->meta);
  for (uint32_t k = 0; k < m->meta.n; k++) {
    sl_rargs_addz(a, m->meta.v[k].key);
    sl_rargs_add(a, m->meta.v[k].val, m->meta.v[k].vlen);
  }
}
