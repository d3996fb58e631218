#include "msg.h"
#include "blocks.h"
#include "txn.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

/* Empty content is one shared buffer that is never counted or freed:
 * inputs like generate start every message empty. */
static union { sl_bytes_t b; char room[sizeof(sl_bytes_t) + 1]; } empty = {.b = {-1, 0}};   /* data[0] is 0 */

sl_bytes_t *sl_bytes_new(const void *data, size_t len) {
  if (!len) return &empty.b;
  sl_bytes_t *b = sl_blocks_get(sizeof(*b) + len + 1);
  b->refs = 1;
  b->len = len;
  memcpy(b->data, data, len);
  b->data[len] = 0;
  return b;
}

sl_bytes_t *sl_bytes_ref(sl_bytes_t *b) {
  if (b->refs > 0) b->refs++;
  return b;
}

/* The last ref goes without a write: bytes made on another core (a pool
 * worker frees what the stream's loop made) would be pulled over for it. */
void sl_bytes_unref(sl_bytes_t *b) {
  if (b && b->refs > 0 && (b->refs == 1 || --b->refs == 0)) sl_blocks_put(b, sizeof(*b) + b->len + 1);
}

/* ---- key/value lists ---- */

static void src_unref(sl_kv_src_t *s) {
  if (s && --s->refs == 0) s->release(s);
}

void sl_kv_defer(sl_kvlist_t *l, sl_kv_src_t *s) {
  sl_kv_clear(l);
  l->src = s;
}

void sl_kv_load(const sl_kvlist_t *cl) {
  sl_kvlist_t *l = (sl_kvlist_t *)cl;   /* loading changes how entries are held, not what they are */
  sl_kv_src_t *s = l->src;
  if (!s) return;
  l->src = NULL;   /* a deferred list is empty: load fills it from scratch */
  s->load(s, l);
  src_unref(s);
}

const sl_kv_t *sl_kv_find(const sl_kvlist_t *l, const char *key) {
  sl_kv_load(l);
  for (uint32_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].key, key) == 0) return &l->v[i];
  return NULL;
}

const char *sl_kv_get(const sl_kvlist_t *l, const char *key) {
  const sl_kv_t *kv = sl_kv_find(l, key);
  return kv ? kv->val : NULL;
}

/* An entry's key and value share one allocation (key first): half the
 * mallocs of a message's metadata, which inputs like kafka set per message. */
static sl_kv_t entry(const char *key, const char *val, size_t vlen) {
  size_t kl = strlen(key);
  char *k = sl_xmalloc(kl + 1 + vlen + 1);
  memcpy(k, key, kl + 1);
  memcpy(k + kl + 1, val, vlen);
  k[kl + 1 + vlen] = 0;
  return (sl_kv_t){k, k + kl + 1, vlen};
}

/* Before a change: a list sharing its entries, or holding them packed in
 * one block, gets its own separately allocated copy of them. */
static void own(sl_kvlist_t *l) {
  sl_kv_load(l);
  int exclusive = !l->shared || *l->shared == 1;
  if (l->shared && exclusive) free(l->shared);
  else if (l->shared) (*l->shared)--;
  l->shared = NULL;
  if (exclusive && !l->packed) return;
  sl_kv_t *v = sl_xmalloc((l->n ? l->n : 1) * sizeof(*v));
  for (uint32_t i = 0; i < l->n; i++)
    v[i] = entry(l->v[i].key, l->v[i].val, l->v[i].vlen);
  if (exclusive) free(l->v);   /* the packed block */
  l->v = v;
  l->cap = l->n ? l->n : 1;
  l->packed = 0;
}

void sl_kv_pack(sl_kvlist_t *l, const sl_kv_t *src, uint32_t n) {
  sl_kv_clear(l);
  if (!n) return;
  size_t total = n * sizeof(sl_kv_t);
  for (uint32_t i = 0; i < n; i++) total += strlen(src[i].key) + 1 + src[i].vlen + 1;
  sl_kv_t *v = sl_xmalloc(total);
  char *p = (char *)(v + n);
  for (uint32_t i = 0; i < n; i++) {
    size_t kl = strlen(src[i].key) + 1;
    v[i] = (sl_kv_t){p, p + kl, src[i].vlen};
    memcpy(p, src[i].key, kl);
    memcpy(p + kl, src[i].val, src[i].vlen);
    p[kl + src[i].vlen] = 0;
    p += kl + src[i].vlen + 1;
  }
  *l = (sl_kvlist_t){.v = v, .n = n, .cap = n, .packed = 1};
}

void sl_kv_add(sl_kvlist_t *l, const char *key, const char *val, size_t vlen) {
  own(l);
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = sl_xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = entry(key, val, vlen);
}

void sl_kv_set(sl_kvlist_t *l, const char *key, const char *val, size_t vlen) {
  own(l);
  for (uint32_t i = 0; i < l->n; i++) {
    if (strcmp(l->v[i].key, key) == 0) {
      sl_kv_t e = entry(key, val, vlen);
      free(l->v[i].key);
      l->v[i] = e;
      return;
    }
  }
  sl_kv_add(l, key, val, vlen);
}

int sl_kv_del(sl_kvlist_t *l, const char *key) {
  if (!sl_kv_find(l, key)) return 0;
  own(l);
  int removed = 0;
  uint32_t j = 0;
  for (uint32_t i = 0; i < l->n; i++) {
    if (strcmp(l->v[i].key, key) == 0) {
      free(l->v[i].key);
      removed = 1;
    } else {
      l->v[j++] = l->v[i];
    }
  }
  l->n = j;
  return removed;
}

void sl_kv_copy(sl_kvlist_t *dst, const sl_kvlist_t *src) {
  if (src->src && dst->n == 0 && !dst->src) {   /* shares the source: each loads its own */
    sl_kv_clear(dst);
    dst->src = src->src;
    dst->src->refs++;
    return;
  }
  sl_kv_load(src);
  sl_kv_load(dst);
  if (dst->n == 0 && !dst->shared && src->n) {
    free(dst->v);
    sl_kvlist_t *s = (sl_kvlist_t *)src;   /* sharing changes src's bookkeeping, not its entries */
    if (!s->shared) {
      s->shared = sl_xmalloc(sizeof(*s->shared));
      *s->shared = 1;
    }
    (*s->shared)++;
    *dst = *s;
    return;
  }
  for (uint32_t i = 0; i < src->n; i++) sl_kv_add(dst, src->v[i].key, src->v[i].val, src->v[i].vlen);
}

void sl_kv_clear(sl_kvlist_t *l) {
  /* an empty list is left unwritten: most messages have one, and freeing
   * one made on another core would pull its line over for nothing */
  if (!l->v && !l->src && !l->shared && !l->n && !l->cap && !l->packed) return;
  src_unref(l->src);
  l->src = NULL;
  if (l->shared && *l->shared > 1) {
    (*l->shared)--;
    memset(l, 0, sizeof(*l));
    return;
  }
  free(l->shared);
  for (uint32_t i = 0; !l->packed && i < l->n; i++) free(l->v[i].key);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

/* ---- request context ---- */

/* Replies and contexts come from sl_blocks, as messages do: one each a request. */
sl_reply_t *sl_reply_new(void) {
  sl_reply_t *r = sl_blocks_zero(sizeof(*r));
  r->refs = 1;
  r->status = 200;
  return r;
}

/* Contexts and replies travel with messages to pool workers (core/pool.c)
 * and are released on either thread: their refs are atomic. One message in
 * a hundred carries one (a request's), so the cost stays off the hot path. */
sl_reply_t *sl_reply_ref(sl_reply_t *r) { if (r) __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED); return r; }

void sl_reply_unref(sl_reply_t *r) {
  if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  if (r->body) sl_bytes_unref(r->body);
  sl_kv_clear(&r->headers);
  if (r->msg) sl_msg_free(r->msg);
  sl_blocks_put(r, sizeof(*r));
}

sl_ctx_t *sl_ctx_new(void) {
  sl_ctx_t *c = sl_blocks_zero(sizeof(*c));
  c->refs = 1;
  return c;
}

void sl_ctx_set_strs(sl_ctx_t *c, const char *method, const char *path, const char *remote_addr,
                     const char *request_id) {
  const char *src[4] = {method, path, remote_addr, request_id};
  char **dst[4] = {&c->method, &c->path, &c->remote_addr, &c->request_id};
  size_t len[4], total = 0;
  for (int i = 0; i < 4; i++) total += (len[i] = strlen(src[i])) + 1;
  char *p = c->strs = sl_xmalloc(total);
  for (int i = 0; i < 4; i++) {
    memcpy(p, src[i], len[i] + 1);
    *dst[i] = p;
    p += len[i] + 1;
  }
}

sl_ctx_t *sl_ctx_ref(sl_ctx_t *c) { if (c) __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED); return c; }

void sl_ctx_unref(sl_ctx_t *c) {
  if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  if (c->strs) free(c->strs);
  else { free(c->method); free(c->path); free(c->remote_addr); free(c->request_id); }
  free(c->user);
  sl_kv_clear(&c->query); sl_kv_clear(&c->headers); sl_kv_clear(&c->params);
  sl_kv_clear(&c->cookies); sl_kv_clear(&c->jwt);
  sl_reply_unref(c->reply);
  sl_blocks_put(c, sizeof(*c));
}

/* ---- messages ---- */

/* Message structs come from sl_blocks (core/blocks.h): a stream frees and
 * creates whole windows of in-flight batches at once (64 × 1024 messages
 * and their re-send copies), which outran malloc's own per-thread cache:
 * about 6% of a Kafka producer's CPU. */
sl_msg_t *sl_msg_new_bytes(sl_bytes_t *b) {
  sl_msg_t *m = sl_blocks_get(sizeof(*m));
  memset(m, 0, sizeof(*m));
  m->content = b;
  return m;
}

sl_msg_t *sl_msg_new(const void *data, size_t len) {
  return sl_msg_new_bytes(sl_bytes_new(data, len));
}

sl_msg_t *sl_msg_clone(const sl_msg_t *src) {
  sl_msg_t *m = sl_msg_new_bytes(sl_bytes_ref(src->content));
  sl_kv_copy(&m->meta, &src->meta);
  m->ctx = sl_ctx_ref(src->ctx);
  m->txn = src->txn ? sl_txn_ref(src->txn) : NULL;
  m->error = src->error ? sl_xstrdup(src->error) : NULL;
  m->seq = src->seq;
  return m;
}

void sl_msg_free(sl_msg_t *m) {
  if (!m) return;
  sl_bytes_unref(m->content);
  sl_kv_clear(&m->meta);
  if (m->ctx) sl_ctx_unref(m->ctx);
  if (m->txn) sl_txn_unref(m->txn);
  if (m->error) free(m->error);
  sl_blocks_put(m, sizeof(*m));
}

void sl_msg_set_content(sl_msg_t *m, const void *data, size_t len) {
  sl_msg_set_bytes(m, sl_bytes_new(data, len));
}

void sl_msg_set_bytes(sl_msg_t *m, sl_bytes_t *b) {
  sl_bytes_unref(m->content);
  m->content = b;
}

void sl_msg_set_error(sl_msg_t *m, const char *err) {
  free(m->error);
  m->error = err ? sl_xstrdup(err) : NULL;
}

void sl_msg_set_txn(sl_msg_t *m, sl_txn_t *t) {
  /* m holds t before the old one goes: releasing it may run a callback that
   * sends m on and frees it (processors/order.c's, when m was the last out) */
  sl_txn_t *old = m->txn;
  m->txn = t ? sl_txn_ref(t) : NULL;
  if (old) sl_txn_unref(old);
}

void sl_msg_set_ctx(sl_msg_t *m, sl_ctx_t *c) {
  sl_ctx_ref(c);
  sl_ctx_unref(m->ctx);
  m->ctx = c;
}

void sl_msg_isolate(sl_msg_t *m) {
  if (m->content->refs > 1) sl_msg_set_content(m, m->content->data, m->content->len);
  sl_kv_load(&m->meta);
  if (m->meta.shared && *m->meta.shared > 1) own(&m->meta);
}

/* ---- batches ---- */

sl_batch_t *sl_batch_new(uint32_t cap_hint) {
  sl_batch_t *b = sl_xcalloc(1, sizeof(*b));
  if (cap_hint) {
    b->cap = cap_hint;
    b->msgs = sl_xmalloc(cap_hint * sizeof(*b->msgs));
  }
  return b;
}

void sl_batch_push(sl_batch_t *b, sl_msg_t *m) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 8;
    b->msgs = sl_xrealloc(b->msgs, b->cap * sizeof(*b->msgs));
  }
  b->msgs[b->n++] = m;
}

void sl_batch_free_shell(sl_batch_t *b) {
  if (!b) return;
  free(b->msgs);
  free(b);
}

void sl_batch_free(sl_batch_t *b) {
  if (!b) return;
  for (uint32_t i = 0; i < b->n; i++) sl_msg_free(b->msgs[i]);
  sl_batch_free_shell(b);
}

sl_batch_t *sl_batch_clone(const sl_batch_t *b) {
  sl_batch_t *c = sl_batch_new(b->n);
  for (uint32_t i = 0; i < b->n; i++) sl_batch_push(c, sl_msg_clone(b->msgs[i]));
  return c;
}

void sl_batch_fail(sl_batch_t *b, const char *err) {
  for (uint32_t i = 0; i < b->n; i++)
    if (b->msgs[i]->txn) sl_txn_fail(b->msgs[i]->txn, err);
  sl_batch_free(b);
}

size_t sl_batch_bytes(const sl_batch_t *b) {
  size_t n = 0;
  for (uint32_t i = 0; i < b->n; i++) n += b->msgs[i]->content->len;
  return n;
}
