/* C accessors the Lua runtime calls through LuaJIT's FFI (ffi.C.sl_l*), so a
 * message's bytes, metadata and context are reached without the Lua C API.
 * Exported from the binary (ENABLE_EXPORTS); all run on the worker's loop. */
#include "library.h"
#include "vm.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *sl_lmsg_content(sl_msg_t *m, size_t *len) {
  *len = m->content->len;
  return m->content->data;
}

void sl_lmsg_set_content(sl_msg_t *m, const char *p, size_t len) { sl_msg_set_content(m, p, len); }

const char *sl_lmsg_meta_get(sl_msg_t *m, const char *k, size_t *len) {
  const sl_kv_t *kv = sl_kv_find(&m->meta, k);
  if (!kv) return NULL;
  *len = kv->vlen;
  return kv->val;
}

void sl_lmsg_meta_set(sl_msg_t *m, const char *k, const char *v, size_t len) { sl_kv_set(&m->meta, k, v, len); }
void sl_lmsg_meta_del(sl_msg_t *m, const char *k) { sl_kv_del(&m->meta, k); }

static int kv_at(const sl_kvlist_t *l, unsigned i, const char **k, const char **v, size_t *len) {
  if (!l) return 0;
  sl_kv_load(l);
  if (i >= l->n) return 0;
  *k = l->v[i].key;
  *v = l->v[i].val;
  *len = l->v[i].vlen;
  return 1;
}

int sl_lmsg_meta_at(sl_msg_t *m, unsigned i, const char **k, const char **v, size_t *len) {
  return kv_at(&m->meta, i, k, v, len);
}

const char *sl_lmsg_error(sl_msg_t *m) { return m->error; }
void sl_lmsg_set_error(sl_msg_t *m, const char *e) { sl_msg_set_error(m, e); }

const char *sl_lmsg_ctx_str(sl_msg_t *m, int which) {
  const sl_ctx_t *c = m->ctx;
  if (!c) return NULL;
  switch (which) {
  case 0: return c->method;
  case 1: return c->path;
  case 2: return c->remote_addr;
  case 3: return c->request_id;
  case 4: return c->user;
  }
  return NULL;
}

int sl_lmsg_ctx_kv_at(sl_msg_t *m, int list, unsigned i, const char **k, const char **v, size_t *len) {
  const sl_ctx_t *c = m->ctx;
  if (!c) return 0;
  const sl_kvlist_t *l[] = {&c->query, &c->headers, &c->params, &c->cookies, &c->jwt};
  return list >= 0 && list < 5 ? kv_at(l[list], i, k, v, len) : 0;
}

static void created_push(sl_lrun_t *r, sl_msg_t *m) {
  if (r->ncreated == r->ccap) {
    r->ccap = r->ccap ? r->ccap * 2 : 8;
    r->created = sl_xrealloc(r->created, r->ccap * sizeof(*r->created));
  }
  r->created[r->ncreated++] = m;
}

sl_msg_t *sl_lmsg_clone(void *run, sl_msg_t *m) {
  sl_msg_t *c = sl_msg_clone(m);
  created_push(run, c);
  return c;
}

/* A message made by a module belongs to the batch's transaction and context. */
sl_msg_t *sl_lmsg_new(void *run, const char *p, size_t len) {
  sl_lrun_t *r = run;
  sl_msg_t *m = sl_msg_new(p, len);
  if (r->in->n) {
    sl_msg_set_txn(m, r->in->msgs[0]->txn);
    sl_msg_set_ctx(m, r->in->msgs[0]->ctx);
  }
  created_push(r, m);
  return m;
}

void sl_lrun_keep(void *run, sl_msg_t *m, unsigned k) {
  sl_lrun_t *r = run;
  if (r->nout == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->out = sl_xrealloc(r->out, r->cap * sizeof(*r->out));
    r->from = sl_xrealloc(r->from, r->cap * sizeof(*r->from));
  }
  if (r->nout && k < r->from[r->nout - 1]) r->unordered = 1;
  r->from[r->nout] = k;
  r->out[r->nout++] = m;
}

/* RFC 3339 UTC with microseconds, e.g. 2026-11-23T04:03:55.699123Z. */
int sl_lnow(char *out, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  int m = snprintf(out + n, cap - n, ".%06ldZ", ts.tv_nsec / 1000);
  return (int)n + (m > 0 ? m : 0);
}

/* log(level, message, fields) from Lua: kv is key, value, ..., NULL. Returns
 * -1 for an unknown level. */
int sl_llog(const char *level, const char *msg, const char *const *kv) {
  sl_log_level_t l;
  if (sl_log_parse_level(level, &l) != 0 || l == SL_LOG_OFF) return -1;
  sl_log_fields(l, sl_log_scope.stream, sl_log_scope.component, msg, kv);
  return 0;
}
