/* hiredis reply objects built in one arena per reply (redis_reply.c), for
 * the client's connections (redis.c): a reply of a thousand stream entries
 * costs a handful of allocations instead of ten thousand. The objects are
 * hiredis's redisReply, read the same way; only hiredis frees them, through
 * these functions (never freeReplyObject). */
#ifndef SL_REDIS_REPLY_H
#define SL_REDIS_REPLY_H
#include <hiredis/hiredis.h>

extern redisReplyObjectFunctions sl_redis_reply_fns;

#endif
