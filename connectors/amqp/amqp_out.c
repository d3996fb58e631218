/* `amqp_0_9` output: publishes each message with publisher confirms
 * (librabbitmq, on the link's thread: amqp_link.c says why a thread). The
 * loop evaluates each message's exchange, key and properties and copies its
 * metadata into headers; the thread publishes them in order and settles
 * each one from the broker's basic.ack or basic.nack (a multiple one
 * settles every earlier message). A `mandatory` message the broker could
 * not route comes back as a basic.return before its ack; the return names
 * no sequence number, so it is matched to the first unsettled message of
 * the same exchange, key and body (returns come in publish order), which
 * then fails. A batch is acknowledged once every message of it is
 * confirmed, and failed otherwise; its retry publishes only what was not
 * confirmed. What waits for a confirm when the connection drops fails (and
 * is published again by the retry: at-least-once); while there is no
 * connection a write fails at once, so the stream's retry backs off. */
#include "amqp_link.h"
#include "core/log.h"
#include "core/kept.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include "core/batching.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const exchange_types[] = {"direct", "fanout", "topic", "headers", "x-custom", NULL};

static const sl_field_t exchange_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Declare the exchange before publishing (it must match an existing one).", NULL,
   NULL},
  {"type", SL_F_ENUM, "direct", 0, "Exchange type.", exchange_types, NULL},
  {"durable", SL_F_BOOL, "true", 0, "The exchange survives a broker restart.", NULL, NULL},
  {0}};

static const sl_field_t metadata_fields[] = {
  {"exclude_prefixes", SL_F_STRLIST, "[]", 0, "Metadata keys starting with any of these are not sent as headers.",
   NULL, NULL},
  {0}};

/* The per-message strings, in this order in pub_t.v. */
enum { P_EXCHANGE, P_KEY, P_PRIORITY, P_CONTENT_TYPE, P_CONTENT_ENCODING, P_CORRELATION_ID, P_REPLY_TO, P_EXPIRATION,
       P_MESSAGE_ID, P_TYPE, P_USER_ID, P_APP_ID, NP };

static const struct { const char *field; amqp_flags_t flag; size_t off; } props_of[NP] = {
  [P_EXCHANGE] = {"exchange", 0, 0},
  [P_KEY] = {"key", 0, 0},
  [P_PRIORITY] = {"priority", 0, 0},
  [P_CONTENT_TYPE] = {"content_type", AMQP_BASIC_CONTENT_TYPE_FLAG, offsetof(amqp_basic_properties_t, content_type)},
  [P_CONTENT_ENCODING] = {"content_encoding", AMQP_BASIC_CONTENT_ENCODING_FLAG,
                          offsetof(amqp_basic_properties_t, content_encoding)},
  [P_CORRELATION_ID] = {"correlation_id", AMQP_BASIC_CORRELATION_ID_FLAG,
                        offsetof(amqp_basic_properties_t, correlation_id)},
  [P_REPLY_TO] = {"reply_to", AMQP_BASIC_REPLY_TO_FLAG, offsetof(amqp_basic_properties_t, reply_to)},
  [P_EXPIRATION] = {"expiration", AMQP_BASIC_EXPIRATION_FLAG, offsetof(amqp_basic_properties_t, expiration)},
  [P_MESSAGE_ID] = {"message_id", AMQP_BASIC_MESSAGE_ID_FLAG, offsetof(amqp_basic_properties_t, message_id)},
  [P_TYPE] = {"type", AMQP_BASIC_TYPE_FLAG, offsetof(amqp_basic_properties_t, type)},
  [P_USER_ID] = {"user_id", AMQP_BASIC_USER_ID_FLAG, offsetof(amqp_basic_properties_t, user_id)},
  [P_APP_ID] = {"app_id", AMQP_BASIC_APP_ID_FLAG, offsetof(amqp_basic_properties_t, app_id)},
};

static const sl_field_t fields[] = {
  SL_AMQP_COMMON_FIELDS,
  {"exchange", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP,
   "Exchange to publish to, interpolated per message (`\"\"`: the default exchange, which routes by queue name).",
   NULL, NULL},
  {"exchange_declare", SL_F_OBJECT, NULL, 0, "Declare the exchange first (a fixed `exchange` only).", NULL,
   exchange_fields},
  {"key", SL_F_STRING, "", SL_INTERP, "Routing key, interpolated per message (`${! meta.amqp_routing_key }`).", NULL,
   NULL},
  {"type", SL_F_STRING, "", SL_INTERP, "The `type` property, interpolated.", NULL, NULL},
  {"content_type", SL_F_STRING, "application/octet-stream", SL_INTERP, "The `content_type` property, interpolated.",
   NULL, NULL},
  {"content_encoding", SL_F_STRING, "", SL_INTERP, "The `content_encoding` property, interpolated.", NULL, NULL},
  {"correlation_id", SL_F_STRING, "", SL_INTERP, "The `correlation_id` property, interpolated.", NULL, NULL},
  {"reply_to", SL_F_STRING, "", SL_INTERP, "The `reply_to` property, interpolated.", NULL, NULL},
  {"expiration", SL_F_STRING, "", SL_INTERP, "The `expiration` property (milliseconds, as text), interpolated.", NULL,
   NULL},
  {"message_id", SL_F_STRING, "", SL_INTERP, "The `message_id` property, interpolated.", NULL, NULL},
  {"user_id", SL_F_STRING, "", SL_INTERP,
   "The `user_id` property, interpolated (RabbitMQ refuses one that is not the connection's user).", NULL, NULL},
  {"app_id", SL_F_STRING, "", SL_INTERP, "The `app_id` property, interpolated.", NULL, NULL},
  {"priority", SL_F_STRING, "", SL_INTERP, "The `priority` property (0 to 255), interpolated; empty: none.", NULL,
   NULL},
  {"metadata", SL_F_OBJECT, NULL, 0, "Which metadata becomes headers (all of it by default).", NULL, metadata_fields},
  {"persistent", SL_F_BOOL, "false", 0, "Delivery mode 2: a durable queue keeps the message across broker restarts.",
   NULL, NULL},
  {"mandatory", SL_F_BOOL, "false", 0,
   "The broker returns a message no queue takes; its batch then fails (retried, or to a `fallback`).", NULL, NULL},
  {"immediate", SL_F_BOOL, "false", 0,
   "The AMQP 0.9.1 immediate flag, kept for Benthos configs: RabbitMQ does not implement it and closes the "
   "connection.", NULL, NULL},
  {"max_in_flight", SL_F_INT, "64", 0,
   "Batches published and waiting for confirms at once, as in Benthos; a further batch waits its turn.",
   SL_BOUNDS("1", "65536"), NULL},
  SL_BATCHING_FIELD,
  {0}};

typedef struct owrite owrite_t;

/* A message to publish. Built on the loop; the thread reads it while it is
 * posted or awaits its confirm, and hands it back through a result. */
typedef struct pub {
  owrite_t *w;
  uint32_t i;
  char *v[NP];               /* owned unless it is the output's fixed value */
  amqp_basic_properties_t props;
  amqp_table_entry_t *hdrs;
  char *err;                 /* evaluation failed: never posted */
} pub_t;

typedef struct result { pub_t *p; char *err; } result_t;
typedef struct pend { pub_t *p; char *ret; int done; } pend_t;

/* What the link's thread reads; freed by the link (sh_free). */
typedef struct aout_sh {
  sl_amqp_link_t *link;
  char *declare_exchange, *declare_type;
  int declare_durable, mandatory, immediate;
  /* under the link's lock */
  pub_t **post;
  uint32_t npost, cappost;
  result_t *res;
  uint32_t nres, capres;
  /* the thread's: published, awaiting confirms, seq base + index */
  pend_t *pend;
  uint32_t npend, cappend;
  uint64_t base;
} aout_sh_t;

enum { M_UNSENT, M_POSTED, M_DONE, M_FAILED };

struct owrite {
  sl_kwrite_t kw;            /* first (kept.h); its states are M_* */
  owrite_t *next;
  pub_t *pubs;
  uint32_t open;
  int started;
};

typedef struct aout {
  sl_output_t base;
  aout_sh_t *sh;
  sl_amqp_link_t *link;
  sl_interp_t *in[NP];
  char *fixed[NP];           /* the value of a field that names nothing per message */
  char **exclude;            /* NULL-terminated */
  int persistent;
  int64_t max_in_flight, active;
  owrite_t *queue, **queue_tail;
  sl_kept_t *kept;           /* failed writes, until retried or forgotten */
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
} aout_t;

static const char *sname(aout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

/* ---- the link's thread ---- */

static int aout_setup(sl_amqp_link_t *l, amqp_connection_state_t c, void *arg) {
  aout_sh_t *o = arg;
  if (o->declare_exchange) {
    amqp_exchange_declare(c, 1, amqp_cstring_bytes(o->declare_exchange), amqp_cstring_bytes(o->declare_type), 0,
                          o->declare_durable, 0, 0, SL_AMQP_NO_TABLE);
    if (sl_amqp_link_rpc(l, c, "declaring the exchange")) return -1;
  }
  amqp_confirm_select(c, 1);
  if (sl_amqp_link_rpc(l, c, "selecting publisher confirms")) return -1;
  o->base = 1;   /* the channel numbers publishes from 1 */
  o->npend = 0;
  return 0;
}

static void result(aout_sh_t *o, pub_t *p, const char *err) {
  sl_amqp_link_lock(o->link);
  int first = !o->nres;   /* the loop takes them all when woken */
  if (o->nres == o->capres) {
    o->capres = o->capres ? o->capres * 2 : 256;
    o->res = sl_xrealloc(o->res, o->capres * sizeof(result_t));
  }
  o->res[o->nres++] = (result_t){p, err ? sl_xstrdup(err) : NULL};
  sl_amqp_link_unlock(o->link);
  if (first) sl_amqp_link_wake(o->link);
}

/* Settles seq (and every earlier one when multiple); err NULL: confirmed. */
static void settle(aout_sh_t *o, uint64_t seq, int multiple, const char *err) {
  if (seq < o->base) return;
  uint64_t last = seq - o->base;
  for (uint64_t k = multiple ? 0 : last; k <= last && k < o->npend; k++) {
    pend_t *e = &o->pend[k];
    if (e->done) continue;
    e->done = 1;
    result(o, e->p, e->ret ? e->ret : err);
    free(e->ret);
    e->ret = NULL;
  }
  uint32_t i = 0;
  while (i < o->npend && o->pend[i].done) i++;
  memmove(o->pend, o->pend + i, (o->npend - i) * sizeof(pend_t));
  o->npend -= i;
  o->base += i;
}

static int same(amqp_bytes_t a, const char *b, size_t n) { return a.len == n && (!n || !memcmp(a.bytes, b, n)); }

/* A basic.return: the first unsettled message it can be fails. */
static int on_return(sl_amqp_link_t *l, amqp_connection_state_t c, amqp_frame_t *f, aout_sh_t *o) {
  const amqp_basic_return_t *r = f->payload.method.decoded;
  char *why = sl_xasprintf("returned by the broker: %.*s (%u)", (int)r->reply_text.len,
                           (const char *)r->reply_text.bytes, r->reply_code);
  amqp_bytes_t ex = amqp_bytes_malloc_dup(r->exchange), key = amqp_bytes_malloc_dup(r->routing_key);
  amqp_message_t m;
  amqp_rpc_reply_t rr = amqp_read_message(c, f->channel, &m, 0);
  int rc = 0;
  if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
    rc = sl_amqp_link_fail(l, "reading a returned message: %s",
                           rr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(rr.library_error)
                                                                              : "unexpected frame");
  } else {
    for (uint32_t k = 0; k < o->npend; k++) {
      pend_t *e = &o->pend[k];
      const sl_bytes_t *body = e->p->w->kw.b->msgs[e->p->i]->content;
      if (e->done || e->ret || !same(ex, e->p->v[P_EXCHANGE], strlen(e->p->v[P_EXCHANGE])) ||
          !same(key, e->p->v[P_KEY], strlen(e->p->v[P_KEY])) || !same(m.body, body->data, body->len))
        continue;
      e->ret = why;
      why = NULL;
      break;
    }
    amqp_destroy_message(&m);
  }
  free(why);
  amqp_bytes_free(ex);
  amqp_bytes_free(key);
  return rc;
}

static int aout_frame(sl_amqp_link_t *l, amqp_connection_state_t c, amqp_frame_t *f, void *arg) {
  aout_sh_t *o = arg;
  if (f->frame_type != AMQP_FRAME_METHOD) return 0;
  switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const amqp_basic_ack_t *a = f->payload.method.decoded;
      settle(o, a->delivery_tag, a->multiple, NULL);
      return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
      const amqp_basic_nack_t *a = f->payload.method.decoded;
      settle(o, a->delivery_tag, a->multiple, "refused by the broker (basic.nack)");
      return 0;
    }
    case AMQP_BASIC_RETURN_METHOD: return on_return(l, c, f, o);
    default: return 0;
  }
}

static int aout_work(sl_amqp_link_t *l, amqp_connection_state_t c, void *arg) {
  aout_sh_t *o = arg;
  sl_amqp_link_lock(l);
  pub_t **post = o->post;
  uint32_t n = o->npost;
  o->post = NULL;
  o->npost = o->cappost = 0;
  sl_amqp_link_unlock(l);
  int rc = 0;
  uint32_t k = 0;
  for (; c && k < n; k++) {
    pub_t *p = post[k];
    const sl_bytes_t *body = p->w->kw.b->msgs[p->i]->content;
    int e = amqp_basic_publish(c, 1, amqp_cstring_bytes(p->v[P_EXCHANGE]), amqp_cstring_bytes(p->v[P_KEY]),
                               o->mandatory, o->immediate, &p->props, sl_amqp_bytes(body->data, body->len));
    if (e != AMQP_STATUS_OK) {
      rc = sl_amqp_link_fail(l, "publishing: %s", amqp_error_string2(e));
      break;
    }
    if (o->npend == o->cappend) {
      o->cappend = o->cappend ? o->cappend * 2 : 256;
      o->pend = sl_xrealloc(o->pend, o->cappend * sizeof(pend_t));
    }
    o->pend[o->npend++] = (pend_t){p, NULL, 0};
  }
  if (k < n) {   /* not published: no connection, or it failed */
    char why[512];
    snprintf(why, sizeof why, "not connected to the broker%s", c ? "" : " (reconnecting)");
    for (; k < n; k++) result(o, post[k], why);
  }
  free(post);
  return rc;
}

static void aout_lost(sl_amqp_link_t *l, void *arg) {
  (void)l;
  aout_sh_t *o = arg;
  for (uint32_t k = 0; k < o->npend; k++) {
    if (!o->pend[k].done)
      result(o, o->pend[k].p, o->pend[k].ret ? o->pend[k].ret : "connection lost before the broker confirmed");
    free(o->pend[k].ret);
  }
  o->npend = 0;
}

static void sh_free(void *arg) {
  aout_sh_t *o = arg;
  for (uint32_t k = 0; k < o->nres; k++) free(o->res[k].err);
  free(o->res);
  free(o->post);
  free(o->pend);
  free(o->declare_exchange);
  free(o->declare_type);
  free(o);
}

/* ---- the loop ---- */

static void pub_clear(aout_t *o, pub_t *p) {
  for (int k = 0; k < NP; k++)
    if (p->v[k] != o->fixed[k]) free(p->v[k]);
  free(p->hdrs);
  free(p->err);
  memset(p->v, 0, sizeof p->v);
  p->hdrs = NULL;
  p->err = NULL;
}

static void owrite_free(aout_t *o, owrite_t *w) {
  for (uint32_t i = 0; i < w->kw.b->n; i++) pub_clear(o, &w->pubs[i]);
  free(w->pubs);
  sl_kept_write_free(w);
}

static int excluded(aout_t *o, const char *key) {
  for (char **p = o->exclude; *p; p++)
    if (!strncmp(key, *p, strlen(*p))) return 1;
  return 0;
}

/* Evaluates message i's fields and copies its metadata into headers. */
static void pub_build(aout_t *o, owrite_t *w, uint32_t i) {
  pub_t *p = &w->pubs[i];
  sl_msg_t *m = w->kw.b->msgs[i];
  p->w = w;
  p->i = i;
  p->props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  p->props.delivery_mode = o->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
  for (int k = 0; k < NP; k++) {
    if (o->fixed[k]) {
      p->v[k] = o->fixed[k];
    } else {
      char *e = NULL;
      p->v[k] = sl_interp_eval(o->in[k], m, i, NULL, &e);
      if (!p->v[k]) {
        if (!p->err) p->err = sl_xasprintf("%s: %s", props_of[k].field, e ? e : "evaluation failed");
        p->v[k] = sl_xstrdup("");
      }
      free(e);
    }
    if (props_of[k].flag && *p->v[k]) {
      p->props._flags |= props_of[k].flag;
      *(amqp_bytes_t *)((char *)&p->props + props_of[k].off) = amqp_cstring_bytes(p->v[k]);
    }
  }
  if (*p->v[P_PRIORITY]) {
    char *end;
    long pr = strtol(p->v[P_PRIORITY], &end, 10);
    if (*end || pr < 0 || pr > 255) {
      if (!p->err) p->err = sl_xasprintf("priority: not a number from 0 to 255: %s", p->v[P_PRIORITY]);
    } else {
      p->props._flags |= AMQP_BASIC_PRIORITY_FLAG;
      p->props.priority = (uint8_t)pr;
    }
  }
  sl_kv_load(&m->meta);
  if (!m->meta.n) return;
  p->hdrs = sl_xcalloc(m->meta.n, sizeof(amqp_table_entry_t));
  int n = 0;
  for (uint32_t k = 0; k < m->meta.n; k++) {
    const sl_kv_t *kv = &m->meta.v[k];
    if (excluded(o, kv->key)) continue;
    p->hdrs[n].key = amqp_cstring_bytes(kv->key);
    p->hdrs[n].value.kind = AMQP_FIELD_KIND_UTF8;
    p->hdrs[n].value.value.bytes = sl_amqp_bytes(kv->val, kv->vlen);
    n++;
  }
  if (n) {
    p->props._flags |= AMQP_BASIC_HEADERS_FLAG;
    p->props.headers = (amqp_table_t){n, p->hdrs};
  }
}

static void maybe_closed(aout_t *o) {
  if (o->closed && !o->queue && !o->active) {
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    done(&o->base, o->closed_arg);
  }
}

static void pump(aout_t *o);

/* Every posted message is settled: the write's outcome. A failed one is
 * kept, so that its retry publishes only what was not confirmed. */
static void finish(aout_t *o, owrite_t *w) {
  o->active--;
  w->started = 0;
  if (!w->kw.err) {
    sl_write_cb cb = w->kw.cb;
    void *arg = w->kw.arg;
    sl_batch_t *b = w->kw.b;
    owrite_free(o, w);
    cb(&o->base, b, 0, NULL, arg);
  } else {
    sl_kept_write_fail(&o->kept, w, M_DONE, &o->base);
  }
}

static void fail_msg(owrite_t *w, uint32_t i, const char *err) {
  w->kw.state[i] = M_FAILED;
  if (!w->kw.err) w->kw.err = sl_xstrdup(err);
}

/* Posts writes in order while fewer than max_in_flight wait for confirms. */
static void pump(aout_t *o) {
  while (o->queue && o->active < o->max_in_flight) {
    owrite_t *w = o->queue;
    o->queue = w->next;
    if (!o->queue) o->queue_tail = &o->queue;
    w->next = NULL;
    w->started = 1;
    o->active++;
    aout_sh_t *sh = o->sh;
    sl_amqp_link_lock(o->link);
    int first = !sh->npost;   /* the thread takes them all when woken */
    if (sh->npost + w->kw.b->n > sh->cappost) {
      sh->cappost = (sh->npost + w->kw.b->n) * 2;
      sh->post = sl_xrealloc(sh->post, sh->cappost * sizeof(pub_t *));
    }
    for (uint32_t i = 0; i < w->kw.b->n; i++) {
      if (w->kw.state[i] != M_UNSENT) continue;
      if (w->pubs[i].err) {
        fail_msg(w, i, w->pubs[i].err);
        continue;
      }
      w->kw.state[i] = M_POSTED;
      w->open++;
      sh->post[sh->npost++] = &w->pubs[i];
    }
    sl_amqp_link_unlock(o->link);
    if (w->open && first) sl_amqp_link_kick(o->link);
    if (!w->open) finish(o, w);
  }
  maybe_closed(o);
}

static void aout_wake(void *arg) {
  aout_t *o = arg;
  aout_sh_t *sh = o->sh;
  int up;
  char why[600];
  if (sl_amqp_link_changed(o->link, &up, why, sizeof why)) {
    if (up) sl_logf(SL_LOG_INFO, sname(o), o->base.label, "amqp: connected");
    else sl_logf(SL_LOG_WARN, sname(o), o->base.label, "%s", why);
    sl_output_set_connected(&o->base, up, up ? NULL : why);
  }
  sl_amqp_link_lock(o->link);
  result_t *res = sh->res;
  uint32_t n = sh->nres;
  sh->res = NULL;
  sh->nres = sh->capres = 0;
  sl_amqp_link_unlock(o->link);
  for (uint32_t k = 0; k < n; k++) {
    owrite_t *w = res[k].p->w;
    uint32_t i = res[k].p->i;
    if (res[k].err) fail_msg(w, i, res[k].err);
    else w->kw.state[i] = M_DONE;
    free(res[k].err);
    if (--w->open == 0) finish(o, w);
  }
  free(res);
  pump(o);
}

static void aout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  aout_t *o = (aout_t *)out;
  owrite_t *w = sl_kept_write(&o->kept, b, sizeof(*w), M_UNSENT, M_DONE, cb, arg);
  if (!w->pubs) {   /* new, not a retry */
    w->pubs = sl_xcalloc(b->n ? b->n : 1, sizeof(pub_t));
    for (uint32_t i = 0; i < b->n; i++) pub_build(o, w, i);
  }
  *o->queue_tail = w;
  o->queue_tail = &w->next;
  pump(o);
}

static void aout_forget(sl_output_t *out, sl_batch_t *b) {
  aout_t *o = (aout_t *)out;
  owrite_t *w = sl_kept_take(&o->kept, b);
  if (w) owrite_free(o, w);
}

static int aout_start(sl_output_t *out) {
  aout_t *o = (aout_t *)out;
  sl_output_set_connected(out, 0, "amqp: connecting");
  return sl_amqp_link_start(o->link, out->worker->loop);
}

static void aout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  aout_t *o = (aout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  maybe_closed(o);
}

/* After close: nothing is posted or awaits a confirm. */
static void aout_destroy(sl_output_t *out) {
  aout_t *o = (aout_t *)out;
  for (owrite_t *w; (w = sl_kept_pop(&o->kept));) owrite_free(o, w);
  sl_amqp_link_close(o->link);
  for (int k = 0; k < NP; k++) {
    sl_interp_free(o->in[k]);
    free(o->fixed[k]);
  }
  for (char **p = o->exclude; p && *p; p++) free(*p);
  free(o->exclude);
  free(o);
}

static const sl_output_vt vt = {aout_start, aout_write, aout_close, aout_destroy, NULL, aout_forget};
static const sl_amqp_hooks_t hooks = {aout_setup, aout_frame, NULL, aout_work, aout_lost, aout_wake, sh_free};
static const sl_spec_t spec;

static void *aout_create(sl_build_t *b, const sl_cnode_t *conf) {
  aout_t *o = sl_xcalloc(1, sizeof(*o));
  aout_sh_t *sh = o->sh = sl_xcalloc(1, sizeof(*sh));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->queue_tail = &o->queue;
  o->persistent = sl_conf_bool(conf, "persistent", 0);
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", 64);
  const sl_cnode_t *ex = sl_cnode_get(sl_cnode_get(conf, "metadata"), "exclude_prefixes");
  uint32_t nex = ex && ex->type == SL_CN_SEQ ? ex->n : 0;
  o->exclude = sl_xcalloc(nex + 1, sizeof(char *));
  for (uint32_t i = 0; i < nex; i++) o->exclude[i] = sl_xstrdup(ex->items[i]->str);
  sh->mandatory = sl_conf_bool(conf, "mandatory", 0);
  sh->immediate = sl_conf_bool(conf, "immediate", 0);
  unsigned before = b->diags->n;
  int bad = 0;
  for (int k = 0; k < NP; k++) {
    o->in[k] = sl_lua_interp_field(b->worker, conf, b->diags, props_of[k].field);
    if (!o->in[k]) {
      bad = 1;
      continue;
    }
    if (sl_interp_is_static(o->in[k])) {
      char *err = NULL;
      o->fixed[k] = sl_interp_eval(o->in[k], NULL, 0, NULL, &err);
      free(err);
    }
  }
  const sl_cnode_t *xd = sl_cnode_get(conf, "exchange_declare");
  if (!bad && sl_conf_bool(xd, "enabled", 0)) {
    if (!o->fixed[P_EXCHANGE]) {
      sl_diag_add(b->diags, xd, "enabled", "an exchange named per message cannot be declared up front");
    } else {
      sh->declare_exchange = sl_xstrdup(o->fixed[P_EXCHANGE]);
      sh->declare_type = sl_xstrdup(sl_conf_str(xd, "type", "direct"));
      sh->declare_durable = sl_conf_bool(xd, "durable", 1);
    }
  }
  o->link = sh->link = sl_amqp_link_new(b, conf, &hooks, sh, o);
  if (bad || b->diags->n != before) {
    aout_destroy(&o->base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "amqp_0_9",
  .kind = SL_KIND_OUTPUT,
  .summary = "Publishes to an AMQP 0.9.1 exchange (RabbitMQ), acknowledged from publisher confirms.",
  .desc =
    "Each message is published with its content as the body, `exchange`, `key` and the "
    "properties evaluated per message, and its metadata as headers (less "
    "`metadata.exclude_prefixes`). The channel runs in confirm mode: a batch is acknowledged "
    "once the broker confirmed every message of it (for a persistent message on a durable "
    "queue, once it is on disk), never on write, and failed when the broker refuses one "
    "(basic.nack), returns one (`mandatory` and no queue took it), or the connection drops "
    "before the confirm; then the stream's `retry` policy or a `fallback` takes over, and a "
    "retry publishes only the messages not yet confirmed. `max_in_flight` batches await "
    "confirms at once.\n\n"
    "While the broker cannot be reached, writes fail at once (so `retry` backs off) and "
    "`/ready` reports the stream not ready with the reason; the connection is retried with "
    "backoff (100 ms doubling to 5 s, each URL in turn). librabbitmq blocks, so the "
    "connection runs on a thread of its own; the event loop never waits for the broker.",
  .fields = fields,
  .example =
    "output:\n"
    "  amqp_0_9:\n"
    "    urls: [amqp://guest:guest@localhost:5672/]\n"
    "    exchange: events\n"
    "    key: '${! meta.kind }'\n"
    "    persistent: true\n"
    "    mandatory: true\n",
  .create = aout_create,
};
SL_REGISTER(spec)
