/* hiredis reply objects in an arena per reply (redis_reply.h). The root
 * object heads the first chunk; its nested objects, their strings and
 * element arrays come from the root's chunks, found by walking the read
 * task up to the root; freeing the root frees the chunks. hiredis frees
 * only roots (after the callback, or a partial one on a protocol error). */
#include "redis_reply.h"
#include "core/xalloc.h"
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  max_align_t data[];
} chunk_t;

typedef struct root {
  chunk_t *chunks;           /* newest first; the last holds this root */
  redisReply reply;
} root_t;

#define ALIGN(n) (((n) + 15) & ~(size_t)15)
#define CHUNK_MIN 4096
#define CHUNK_MAX (1u << 20)

static chunk_t *chunk_new(size_t need, size_t prev_cap) {
  size_t cap = prev_cap * 2 < CHUNK_MIN ? CHUNK_MIN : prev_cap * 2;
  if (cap > CHUNK_MAX) cap = CHUNK_MAX;
  if (cap < need) cap = need;
  chunk_t *c = sl_xmalloc(sizeof(*c) + cap);
  c->next = NULL;
  c->used = 0;
  c->cap = cap;
  return c;
}

static void *take(root_t *rt, size_t n) {
  n = ALIGN(n);
  chunk_t *c = rt->chunks;
  if (c->cap - c->used < n) {
    chunk_t *more = chunk_new(n, c->cap);
    more->next = c;
    rt->chunks = c = more;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

/* A new root in a first chunk of cap bytes. */
static root_t *root_new(size_t cap) {
  chunk_t *c = sl_xmalloc(sizeof(*c) + cap);
  c->next = NULL;
  c->cap = cap;
  c->used = ALIGN(sizeof(root_t));
  root_t *rt = (root_t *)c->data;
  rt->chunks = c;
  memset(&rt->reply, 0, sizeof(rt->reply));
  return rt;
}

static root_t *root_of(const redisReadTask *t) {
  while (t->parent) t = t->parent;
  return (root_t *)((char *)t->obj - offsetof(root_t, reply));
}

/* The object for task, holding `extra` bytes more; linked into its parent. */
static redisReply *object(const redisReadTask *t, int type, size_t extra, char **room) {
  root_t *rt;
  redisReply *r;
  if (!t->parent) {
    /* a scalar root takes one exact chunk; an array's grows with what it holds */
    size_t cap = ALIGN(sizeof(root_t)) + ALIGN(extra);
    rt = root_new(type == REDIS_REPLY_ARRAY && cap < CHUNK_MIN ? CHUNK_MIN : cap);
    r = &rt->reply;
  } else {
    rt = root_of(t);
    r = take(rt, sizeof(*r));
    memset(r, 0, sizeof(*r));
    redisReply *parent = t->parent->obj;
    parent->element[t->idx] = r;
  }
  *room = extra ? take(rt, extra) : NULL;
  r->type = type;
  return r;
}

static void *create_string(const redisReadTask *t, char *str, size_t len) {
  char *room;
  redisReply *r = object(t, t->type, len + 1, &room);
  memcpy(room, str, len);
  room[len] = 0;
  r->str = room;
  r->len = len;
  return r;
}

static void *create_array(const redisReadTask *t, int elements) {
  char *room;
  size_t n = elements > 0 ? (size_t)elements * sizeof(redisReply *) : 0;
  redisReply *r = object(t, REDIS_REPLY_ARRAY, n, &room);
  if (n) memset(room, 0, n);
  r->element = (redisReply **)room;
  r->elements = elements > 0 ? (size_t)elements : 0;
  return r;
}

static void *create_integer(const redisReadTask *t, long long value) {
  char *room;
  redisReply *r = object(t, REDIS_REPLY_INTEGER, 0, &room);
  r->integer = value;
  return r;
}

static void *create_nil(const redisReadTask *t) {
  char *room;
  return object(t, REDIS_REPLY_NIL, 0, &room);
}

static void free_root(void *obj) {
  if (!obj) return;
  root_t *rt = (root_t *)((char *)obj - offsetof(root_t, reply));
  chunk_t *c = rt->chunks;
  while (c) {
    chunk_t *next = c->next;
    free(c);   /* the last one holds rt itself */
    c = next;
  }
}

redisReplyObjectFunctions sl_redis_reply_fns = {create_string, create_array, create_integer, create_nil, free_root};
