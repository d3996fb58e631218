/* The peer of bench/redis.sh: hiredis used directly, the least a client
 * does for the same work as sluice's redis_streams connectors.
 *   redis_loop PORT produce STREAM N SIZE DEPTH   XADD STREAM * body <SIZE bytes>, DEPTH pipelined at a time
 *   redis_loop PORT consume STREAM N COUNT        XREADGROUP GROUP g c COUNT <COUNT> (group created at 0),
 *                                                 then XACK of what it read, until N entries
 * Prints the entries per second. Built by bench/redis.sh (cc -O2 ... -lhiredis). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(redisContext *c, redisReply *r) {
  if (!r || r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "redis_loop: %s\n", r ? r->str : c->errstr);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 6) {
    fprintf(stderr, "usage: redis_loop PORT produce STREAM N SIZE DEPTH | PORT consume STREAM N COUNT\n");
    return 2;
  }
  redisContext *c = redisConnect("127.0.0.1", atoi(argv[1]));
  if (!c || c->err) {
    fprintf(stderr, "redis_loop: cannot connect\n");
    return 1;
  }
  const char *stream = argv[3];
  long n = atol(argv[4]);
  double t0 = now();
  if (!strcmp(argv[2], "produce") && argc == 7) {
    size_t size = (size_t)atol(argv[5]);
    long depth = atol(argv[6]);
    char *body = malloc(size + 1);
    memset(body, 'x', size);
    const char *av[] = {"XADD", stream, "*", "body", body};
    size_t al[] = {4, strlen(stream), 1, 4, size};
    for (long done = 0; done < n;) {
      long k = n - done < depth ? n - done : depth;
      for (long i = 0; i < k; i++) redisAppendCommandArgv(c, 5, av, al);
      for (long i = 0; i < k; i++) {
        redisReply *r;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) check(c, NULL);
        check(c, r);
        freeReplyObject(r);
      }
      done += k;
    }
    free(body);
  } else if (!strcmp(argv[2], "consume") && argc == 6) {
    redisReply *r = redisCommand(c, "XGROUP CREATE %s g 0", stream);
    check(c, r);
    freeReplyObject(r);
    long got = 0;
    const char *count = argv[5];
    while (got < n) {
      const char *av[] = {"XREADGROUP", "GROUP", "g", "c", "COUNT", count, "BLOCK", "1000", "STREAMS", stream, ">"};
      r = redisCommandArgv(c, 11, av, NULL);
      check(c, r);
      if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        continue;
      }
      redisReply *entries = r->element[0]->element[1];
      size_t k = entries->elements;
      const char **ack = malloc((k + 3) * sizeof(*ack));
      ack[0] = "XACK", ack[1] = stream, ack[2] = "g";
      for (size_t i = 0; i < k; i++) ack[i + 3] = entries->element[i]->element[0]->str;
      redisReply *a = redisCommandArgv(c, (int)k + 3, ack, NULL);
      check(c, a);
      freeReplyObject(a);
      free(ack);
      got += (long)k;
      freeReplyObject(r);
    }
  } else {
    fprintf(stderr, "redis_loop: bad arguments\n");
    return 2;
  }
  printf("%.0f\n", n / (now() - t0));
  redisFree(c);
  return 0;
}
