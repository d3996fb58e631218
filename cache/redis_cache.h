/* Commands of scripts (`redis.call`, lua/lredis.c) on the connection of a
 * `redis` cache resource (cache/redis.c): one configured Redis serves both
 * cache.* and raw commands, so a config names its Redis once.
 * Ownership: a command belongs to the resource until its callback has run
 * or it was cancelled; callbacks run on the loop of the worker that sent it. */
#ifndef SL_REDIS_CACHE_H
#define SL_REDIS_CACHE_H
#include "cache.h"
#include "clients/redis.h"

typedef struct sl_rcache_cmd sl_rcache_cmd_t;

/* Sends argv (argc strings of lens bytes, copied) on c's connection: cb runs
 * exactly once, later, with the reply or the reason there is none, unless
 * the command is cancelled first. NULL, with *err (valid until the caller
 * returns to the loop), when c is no `redis` resource or has no connection
 * now (then cb never runs). */
sl_rcache_cmd_t *sl_rcache_command(sl_cache_t *c, int argc, const char **argv, const size_t *lens, sl_redis_cb cb,
                                   void *arg, const char **err);
/* The reply will be dropped: cb does not run. */
void sl_rcache_cancel(sl_rcache_cmd_t *cmd);

#endif
