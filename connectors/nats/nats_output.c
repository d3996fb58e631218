/* The NATS outputs' shared part (nats_output.h). */
#include "nats_output.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

const sl_field_t sl_nats_meta_fields[] = {
  {"include_prefixes", SL_F_STRLIST, "[]", 0,
   "Metadata keys starting with one of these go out as headers (`\"\"`: every key).", NULL, NULL},
  {0}};

/* A header line the protocol can carry: a token for a name, no line break
 * in the value. */
static int header_ok(const char *k, const char *v) {
  if (!*k) return 0;
  for (const unsigned char *p = (const unsigned char *)k; *p; p++)
    if (*p <= ' ' || *p == ':' || *p >= 0x7f) return 0;
  return !strpbrk(v, "\r\n");
}

const char *sl_nats_out_sname(const sl_nats_out_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

int sl_nats_out_init(sl_nats_out_t *o, sl_build_t *b, const sl_cnode_t *conf) {
  o->conf = sl_nats_conf(b, conf);
  o->subject = sl_lua_interp_field(b->worker, conf, b->diags, "subject");
  const sl_cnode_t *h = sl_cnode_get(conf, "headers");
  int bad = !o->conf || !o->subject;
  if (h && h->type == SL_CN_MAP) {
    o->hkeys = sl_xcalloc(h->n ? h->n : 1, sizeof(char *));
    o->hvals = sl_xcalloc(h->n ? h->n : 1, sizeof(sl_interp_t *));
    for (uint32_t i = 0; i < h->n; i++, o->nheaders++) {
      o->hkeys[i] = sl_xstrdup(h->keys[i]);
      o->hvals[i] = sl_lua_interp_field(b->worker, h, b->diags, h->keys[i]);
      bad |= !o->hvals[i];
      if (!header_ok(h->keys[i], "")) {
        sl_cnode_t at = sl_cnode_key_pos(h, i);
        sl_diag_add(b->diags, &at, h->keys[i], "not a header name (a token: no spaces, colons or control bytes)");
        bad = 1;
      }
    }
  }
  const sl_cnode_t *p = sl_cnode_get(sl_cnode_get(conf, "metadata"), "include_prefixes");
  uint32_t np = p && p->type == SL_CN_SEQ ? p->n : 0;
  o->prefixes = sl_xcalloc(np + 1, sizeof(char *));
  for (uint32_t i = 0; i < np; i++) {
    o->prefixes[i] = sl_xstrdup(p->items[i]->str);
    o->all_meta |= !*p->items[i]->str;
  }
  if (bad) return -1;
  char *err = NULL;
  if (sl_interp_is_static(o->subject)) {
    o->static_subject = sl_interp_eval(o->subject, NULL, 0, NULL, &err);
    /* ${ctx...} is resolved before a request-scoped instance is built: a
     * template still holding it is only being linted. */
    if (o->static_subject && !strstr(o->static_subject, "${") && !strstr(o->static_subject, "$tyk_context")) {
      o->static_ok = sl_nats_subject_ok(o->static_subject, 0);
      if (!o->static_ok) {
        sl_diag_add(b->diags, sl_cnode_get(conf, "subject"), "subject", "not a subject to publish to: %s",
                    o->static_subject);
        bad = 1;
      }
    }
  }
  free(err);
  return bad ? -1 : 0;
}

static void on_state(void *arg, int up, const char *why) {
  sl_nats_out_t *o = arg;
  if (up) sl_logf(SL_LOG_INFO, sl_nats_out_sname(o), o->base.label, "nats: connected");
  else sl_logf(strstr(why, "connecting") ? SL_LOG_INFO : SL_LOG_WARN, sl_nats_out_sname(o), o->base.label, "%s", why);
  sl_output_set_connected(&o->base, up, why);
  if (up && o->on_up) o->on_up(o);
}

int sl_nats_out_start(sl_nats_out_t *o, void (*wake)(void *arg), int queue_max) {
  o->cbs.wake = wake;
  o->cbs.state = on_state;
  o->cbs.stream = sl_nats_out_sname(o);
  o->cbs.label = o->base.label;
  sl_output_set_connected(&o->base, 0, "nats: connecting");
  o->link = sl_nats_new(o->base.worker->loop, o->conf, &o->cbs, o, o->setup_arg, queue_max);
  o->conf = NULL;
  o->setup_arg = NULL;
  return o->link ? 0 : -1;
}

static int wanted(const sl_nats_out_t *o, const char *key) {
  if (o->all_meta) return 1;
  for (char **p = o->prefixes; *p; p++)
    if (!strncmp(key, *p, strlen(*p))) return 1;
  return 0;
}

static natsStatus add_header(natsMsg *nm, const char *k, const char *v, char **err) {
  if (header_ok(k, v)) return natsMsgHeader_Add(nm, k, v);
  *err = sl_xasprintf("header %s: a name must be a token and a value one line", k);
  return NATS_INVALID_ARG;
}

/* Message i's subject (o->static_subject or malloc'd), or NULL with *err. */
static char *subject_of(sl_nats_out_t *o, sl_msg_t *m, uint32_t i, char **err) {
  char *e = NULL;
  char *subj = o->static_subject ? o->static_subject : sl_interp_eval(o->subject, m, i, NULL, &e);
  if (!subj) {
    *err = sl_xasprintf("subject: %s", e ? e : "evaluation failed");
    free(e);
    return NULL;
  }
  if (!(subj == o->static_subject && o->static_ok) && !sl_nats_subject_ok(subj, 0)) {
    *err = sl_xasprintf("subject: not a subject to publish to: \"%s\"", subj);
    if (subj != o->static_subject) free(subj);
    return NULL;
  }
  return subj;
}

/* Without headers there is no natsMsg to build: cnats frees every natsMsg
 * on its garbage collector's thread, a lock and a cross-thread free per
 * message that cost more than the publish (perf, bench/RESULTS.md). */
natsStatus sl_nats_out_publish(sl_nats_out_t *o, natsConnection *nc, sl_msg_t *m, uint32_t i, const char *reply,
                               char **err) {
  if (o->nheaders || *o->prefixes) {
    natsMsg *nm = sl_nats_out_msg(o, m, i, reply, err);
    natsStatus s = nm ? natsConnection_PublishMsg(nc, nm) : NATS_OK;
    natsMsg_Destroy(nm);
    return s;
  }
  char *subj = subject_of(o, m, i, err);
  if (!subj) return NATS_OK;
  natsStatus s = reply ? natsConnection_PublishRequest(nc, subj, reply, m->content->data, (int)m->content->len)
                       : natsConnection_Publish(nc, subj, m->content->data, (int)m->content->len);
  if (subj != o->static_subject) free(subj);
  return s;
}

natsMsg *sl_nats_out_msg(sl_nats_out_t *o, sl_msg_t *m, uint32_t i, const char *reply, char **err) {
  char *e = NULL;
  char *subj = subject_of(o, m, i, err);
  if (!subj) return NULL;
  natsMsg *nm = NULL;
  natsStatus s = natsMsg_Create(&nm, subj, reply, m->content->data, (int)m->content->len);
  if (subj != o->static_subject) free(subj);
  for (uint32_t k = 0; s == NATS_OK && nm && k < o->nheaders; k++) {
    char *v = sl_interp_eval(o->hvals[k], m, i, NULL, &e);
    if (!v) {
      *err = sl_xasprintf("headers.%s: %s", o->hkeys[k], e ? e : "evaluation failed");
      free(e);
      natsMsg_Destroy(nm);
      return NULL;
    }
    s = add_header(nm, o->hkeys[k], v, err);
    free(v);
  }
  if (s == NATS_OK && nm && *o->prefixes) {
    sl_kv_load(&m->meta);
    for (uint32_t k = 0; s == NATS_OK && k < m->meta.n; k++)
      if (wanted(o, m->meta.v[k].key)) s = add_header(nm, m->meta.v[k].key, m->meta.v[k].val, err);
  }
  if (s != NATS_OK) {
    if (!*err) {
      char *t = sl_nats_err(s);
      *err = sl_xasprintf("message: %s", t);
      free(t);
    }
    natsMsg_Destroy(nm);
    return NULL;
  }
  return nm;
}

static void ended(void *who, void *arg) {
  sl_nats_out_t *o = who;
  o->closed(&o->base, arg);
}

void sl_nats_out_end(sl_nats_out_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  o->closed = done;
  if (!o->link) done(&o->base, arg);
  else sl_nats_end(o->link, ended, o, arg);
}

void sl_nats_out_free(sl_nats_out_t *o) {
  sl_nats_close(o->link);
  sl_nats_conf_free(o->conf);
  if (o->setup_arg && o->cbs.setup_free) o->cbs.setup_free(o->setup_arg);
  sl_interp_free(o->subject);
  free(o->static_subject);
  for (uint32_t k = 0; k < o->nheaders; k++) {
    free(o->hkeys[k]);
    sl_interp_free(o->hvals[k]);
  }
  free(o->hkeys);
  free(o->hvals);
  for (char **p = o->prefixes; p && *p; p++) free(*p);
  free(o->prefixes);
  free(o);
}
