/* redis.call(label, command, args...) for scripts: a waiting call
 * (lua/async.h) that sends one command on the connection of the `redis`
 * cache resource labelled `label` (cache/redis_cache.h) and resumes the
 * script with the reply: a status or bulk string is a string, an integer a
 * number, nil nil (json.null inside an array), an array an array (marked as
 * json.array), Redis's error nil, "ERR ..." (an error inside an array is
 * {err = "..."}, as Redis's own EVAL does); a lost connection is nil, err.
 * Commands that would take the shared connection from everyone else
 * (blocking reads, subscriptions, transactions, SELECT...) are refused. */
#include "async.h"
#include "json.h"
#include "cache/redis_cache.h"
#include "core/xalloc.h"
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* More arguments than this raise (a Lua call's own limit is lower still). */
#define MAX_ARGS (1 << 20)

static const char *const refused[] = {
  "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "SYNC", "PSYNC",
  "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT", "WAITAOF",
  "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "AUTH", "HELLO", "QUIT", "RESET", "CLIENT", NULL};

/* Why cmd may not run on a shared connection, or NULL. */
static const char *refusal(lua_State *L, const char *cmd, int first_arg) {
  for (int i = 0; refused[i]; i++)
    if (!strcasecmp(cmd, refused[i]))
      return "it would hold or change the connection every script and cache operation shares (use EVAL for "
             "several steps at once)";
  if (!strcasecmp(cmd, "XREAD") || !strcasecmp(cmd, "XREADGROUP"))
    for (int i = first_arg; i <= lua_gettop(L); i++)
      if (lua_type(L, i) == LUA_TSTRING && !strcasecmp(lua_tostring(L, i), "BLOCK"))
        return "BLOCK would hold the connection every script and cache operation shares (read without it, or "
               "use a redis_streams input)";
  return NULL;
}

/* A number as Redis reads it: an integer in full (Lua's own "%.14g" would
 * write 2^53 as 9.007199254741e+15, which INCRBY refuses), else 17 digits. */
static void number_arg(lua_State *L, int i) {
  double d = lua_tonumber(L, i);
  char buf[32];
  if (d > -9.2e18 && d < 9.2e18 && d == (double)(long long)d) snprintf(buf, sizeof buf, "%lld", (long long)d);
  else snprintf(buf, sizeof buf, "%.17g", d);
  lua_pushstring(L, buf);
  lua_replace(L, i);
}

static void cancel_cmd(void *k) { sl_rcache_cancel(k); }

static void push_value(lua_State *L, const redisReply *rp, int in_array) {
  luaL_checkstack(L, 4, "redis.call: a reply nested too deeply");
  switch (rp->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS: lua_pushlstring(L, rp->str, rp->len); return;
  case REDIS_REPLY_INTEGER: lua_pushnumber(L, (lua_Number)rp->integer); return;
  case REDIS_REPLY_ERROR:   /* only inside an array: push_reply handles a top-level one */
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, rp->str, rp->len);
    lua_setfield(L, -2, "err");
    return;
  case REDIS_REPLY_ARRAY:
    lua_createtable(L, (int)rp->elements, 0);
    for (size_t i = 0; i < rp->elements; i++) {
      push_value(L, rp->element[i], 1);
      lua_rawseti(L, -2, (int)i + 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, SL_LJSON_ARRAY_MT);
    lua_setmetatable(L, -2);
    return;
  default:
    if (in_array) lua_pushlightuserdata(L, NULL);   /* json.null: keeps the array's length */
    else lua_pushnil(L);
  }
}

typedef struct answer {
  const redisReply *rp;
  const char *err;
  const char *addr;
} answer_t;

static int push_reply(lua_State *L, void *arg) {
  const answer_t *a = arg;
  if (a->rp && a->rp->type != REDIS_REPLY_ERROR) {
    push_value(L, a->rp, 0);
    return 1;
  }
  lua_pushnil(L);
  if (a->rp) lua_pushlstring(L, a->rp->str, a->rp->len);
  else lua_pushfstring(L, "redis %s: %s", a->addr, a->err);
  return 2;
}

static void on_reply(sl_redis_t *r, redisReply *rp, const char *err, void *w) {
  answer_t a = {rp, err, sl_redis_addr(r)};
  sl_lwait_done(w, push_reply, &a);
}

static int push_refused(lua_State *L, void *arg) {
  lua_pushnil(L);
  lua_pushstring(L, arg);
  return 2;
}

static int start(lua_State *L) {
  sl_lwait_t *w = lua_touserdata(L, 1);
  size_t nlen;
  const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &nlen) : NULL;
  if (!name) return luaL_error(L, "redis.call: the first argument is the label of a redis cache resource");
  sl_cache_t *c = sl_cache_find(name, nlen);
  if (!c) return luaL_error(L, "redis.call: no cache resource labelled \"%s\"", name);
  if (strcmp(sl_cache_backend_name(c), "redis") != 0)
    return luaL_error(L, "redis.call: cache resource \"%s\" is a %s cache, not redis", name, sl_cache_backend_name(c));
  if (lua_type(L, 3) != LUA_TSTRING) return luaL_error(L, "redis.call: the command (a string) must follow the label");
  int argc = lua_gettop(L) - 2;
  if (argc > MAX_ARGS) return luaL_error(L, "redis.call: more than %d arguments", MAX_ARGS);
  const char *why = refusal(L, lua_tostring(L, 3), 4);
  if (why) return luaL_error(L, "redis.call: %s is refused: %s", lua_tostring(L, 3), why);
  for (int i = 4; i <= lua_gettop(L); i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_error(L, "redis.call: argument %d must be a string or a number, not a %s", i - 2,
                        lua_typename(L, t));
  }
  for (int i = 4; i <= lua_gettop(L); i++)
    if (lua_type(L, i) == LUA_TNUMBER) number_arg(L, i);
  const char **argv = sl_xmalloc((size_t)argc * sizeof(*argv));
  size_t *lens = sl_xmalloc((size_t)argc * sizeof(*lens));
  for (int i = 0; i < argc; i++) argv[i] = lua_tolstring(L, i + 3, &lens[i]);
  const char *err = NULL;
  sl_rcache_cmd_t *k = sl_rcache_command(c, argc, argv, lens, on_reply, w, &err);
  free(argv);
  free(lens);
  if (k) sl_lwait_on_cancel(w, cancel_cmd, k);
  else sl_lwait_done(w, push_refused, (void *)err);
  return 0;
}

SL_LASYNC_BINDING("redis.call", start)
