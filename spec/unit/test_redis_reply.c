/* hiredis replies built in one arena per reply (clients/redis_reply.h):
 * the parser given these functions gives the same trees as its own, for
 * every kind of reply, nested arrays, a value larger than a chunk, a reply
 * that arrives a byte at a time, and a protocol error in the middle of one
 * (the partial tree is freed: ASan/LSan see any slip). */
#include "clients/redis_reply.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static redisReply *parse(redisReader *r, const char *proto, size_t len, int bytewise) {
  void *reply = NULL;
  if (!bytewise) {
    redisReaderFeed(r, proto, len);
  } else {
    for (size_t i = 0; i < len && !reply; i++) {
      redisReaderFeed(r, proto + i, 1);
      if (redisReaderGetReply(r, &reply) != REDIS_OK) return NULL;
    }
    return reply;
  }
  if (redisReaderGetReply(r, &reply) != REDIS_OK) return NULL;
  return reply;
}

static void kinds(void) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    redisReader *r = redisReaderCreateWithFunctions(&sl_redis_reply_fns);
    const char proto[] = "*6\r\n+OK\r\n:-42\r\n$-1\r\n$5\r\nh\0llo\r\n*2\r\n*0\r\n-ERR inner\r\n*-1\r\n";
    redisReply *t = parse(r, proto, sizeof proto - 1, bytewise);
    CHECK(t && t->type == REDIS_REPLY_ARRAY && t->elements == 6, "top");
    if (t && t->elements == 6) {
      CHECK(t->element[0]->type == REDIS_REPLY_STATUS && !strcmp(t->element[0]->str, "OK"), "status");
      CHECK(t->element[1]->type == REDIS_REPLY_INTEGER && t->element[1]->integer == -42, "integer");
      CHECK(t->element[2]->type == REDIS_REPLY_NIL, "nil");
      CHECK(t->element[3]->type == REDIS_REPLY_STRING && t->element[3]->len == 5 &&
              !memcmp(t->element[3]->str, "h\0llo", 6), "binary string with its NUL terminator");
      redisReply *n = t->element[4];
      CHECK(n->type == REDIS_REPLY_ARRAY && n->elements == 2 && n->element[0]->type == REDIS_REPLY_ARRAY &&
              n->element[0]->elements == 0 && n->element[1]->type == REDIS_REPLY_ERROR &&
              !strcmp(n->element[1]->str, "ERR inner"), "nested");
      CHECK(t->element[5]->type == REDIS_REPLY_NIL, "nil array");
    }
    sl_redis_reply_fns.freeObject(t);
    /* scalar roots, one after another from one feed */
    const char *three = ":7\r\n$3\r\nabc\r\n-WRONGTYPE x\r\n";
    redisReaderFeed(r, three, strlen(three));
    void *a = NULL, *b = NULL, *c = NULL;
    redisReaderGetReply(r, &a);
    redisReaderGetReply(r, &b);
    redisReaderGetReply(r, &c);
    CHECK(a && ((redisReply *)a)->integer == 7, "integer root");
    CHECK(b && ((redisReply *)b)->len == 3 && !strcmp(((redisReply *)b)->str, "abc"), "string root");
    CHECK(c && ((redisReply *)c)->type == REDIS_REPLY_ERROR, "error root");
    sl_redis_reply_fns.freeObject(a);
    sl_redis_reply_fns.freeObject(b);
    sl_redis_reply_fns.freeObject(c);
    redisReaderFree(r);
  }
}

/* A stream read's shape, big enough for many chunks, one value past 1 MiB. */
static void big(void) {
  enum { N = 3000 };
  size_t cap = (size_t)N * 128 + (3u << 20), len = 0;
  char *p = malloc(cap);
  len += (size_t)sprintf(p + len, "*1\r\n*2\r\n$1\r\ns\r\n*%d\r\n", N);
  for (int i = 0; i < N; i++) {
    char id[32];
    int il = sprintf(id, "%d-0", i);
    len += (size_t)sprintf(p + len, "*2\r\n$%d\r\n%s\r\n*2\r\n$4\r\nbody\r\n", il, id);
    size_t vl = i == N / 2 ? (2u << 20) : 100;
    len += (size_t)sprintf(p + len, "$%zu\r\n", vl);
    memset(p + len, 'a' + i % 26, vl);
    len += vl;
    memcpy(p + len, "\r\n", 2);
    len += 2;
  }
  redisReader *r = redisReaderCreateWithFunctions(&sl_redis_reply_fns);
  r->maxbuf = 0;
  redisReply *t = parse(r, p, len, 0);
  CHECK(t && t->elements == 1 && t->element[0]->element[1]->elements == N, "shape");
  if (t && t->elements == 1) {
    redisReply *e = t->element[0]->element[1];
    int ok = 1;
    for (int i = 0; i < N && ok; i++) {
      char id[32];
      sprintf(id, "%d-0", i);
      redisReply *v = e->element[i]->element[1]->element[1];
      ok = !strcmp(e->element[i]->element[0]->str, id) && v->len == (i == N / 2 ? (2u << 20) : 100) &&
           v->str[0] == 'a' + i % 26 && v->str[v->len - 1] == 'a' + i % 26 && v->str[v->len] == 0;
      CHECK(ok, "entry %d", i);
    }
  }
  sl_redis_reply_fns.freeObject(t);
  redisReaderFree(r);
  free(p);
}

/* A protocol error inside an array: hiredis frees the partial tree. */
static void broken(void) {
  redisReader *r = redisReaderCreateWithFunctions(&sl_redis_reply_fns);
  const char proto[] = "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n!bad\r\n";
  redisReaderFeed(r, proto, sizeof proto - 1);
  void *reply = NULL;
  CHECK(redisReaderGetReply(r, &reply) == REDIS_ERR && !reply, "refused");
  redisReaderFree(r);
  /* and an unfinished reply when the reader goes */
  r = redisReaderCreateWithFunctions(&sl_redis_reply_fns);
  redisReaderFeed(r, "*2\r\n$3\r\nabc\r\n", 13);
  CHECK(redisReaderGetReply(r, &reply) == REDIS_OK && !reply, "waits for more");
  redisReaderFree(r);
}

int main(void) {
  RUN(kinds);
  RUN(big);
  RUN(broken);
  return check_report("test_redis_reply");
}
