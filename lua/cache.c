/* cache.* for scripts (lua/cache.lua), reached through LuaJIT's FFI: one
 * operation on a named resource of cache/. A resource whose backend answers
 * at once (memory) completes here; one that answers later (Redis) is not
 * started: the script's side gets SL_LCACHE_ASYNC and goes through its hook
 * for asynchronous backends, where a yielding call waits for the answer.
 * Runs on the loop of the worker whose VM calls (the engine's or a
 * pipeline.threads worker's: cache/ serialises what they share); results
 * are copied into a per-thread buffer that the next call reuses, which the
 * script's side copies at once. Also the lint
 * of inline code's literal labels (sl_lcache_lint, lua/lhost.h). */
#include "async.h"
#include "cache/cache.h"
#include "core/conf.h"
#include "core/xalloc.h"
#include <ctype.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statuses of sl_lcache_op: the sl_cache_status_t values, and these. */
enum { SL_LCACHE_NO_CACHE = -2, SL_LCACHE_ASYNC = -3 };

typedef struct lresult {
  int status;
  int64_t n;
} lresult_t;

static _Thread_local char *buf;
static _Thread_local size_t buf_cap, buf_len;
/* frees a pipeline.threads worker's buffer when its thread ends */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static void buf_key_make(void) { pthread_key_create(&buf_key, free); }

/* The buffer grows to the largest value read, and shrinks back after one
 * over 1 MiB, so that a single huge read does not hold its size for good. */
static void keep(const char *p, size_t len) {
  if (len + 1 > buf_cap || (buf_cap > (1u << 20) && len < (1u << 16))) {
    free(buf);
    buf_cap = len + 1 > 256 ? len + 1 : 256;
    buf = sl_xmalloc(buf_cap);
    pthread_once(&buf_once, buf_key_make);
    pthread_setspecific(buf_key, buf);
  }
  if (len) memcpy(buf, p, len);
  buf[len] = 0;
  buf_len = len;
}

static void done(void *arg, const sl_cache_res_t *r) {
  lresult_t *lr = arg;
  lr->status = r->status;
  lr->n = r->n;
  if (r->status == SL_CACHE_OK && r->val) keep(r->val, r->len);
  else if (r->status == SL_CACHE_ERROR) keep(r->err ? r->err : "error", strlen(r->err ? r->err : "error"));
}

/* op: sl_cache_op_t. ttl_ms: > 0, or SL_CACHE_TTL_DEFAULT / _NONE. Returns a
 * status; *out and *olen: get's value or the error's text; *n: incr's value. */
int sl_lcache_op(int op, const char *name, size_t nlen, const char *key, size_t klen, const char *val, size_t vlen,
                 int64_t ttl_ms, int64_t by, const char **out, size_t *olen, int64_t *n) {
  sl_cache_t *c = sl_cache_find(name, nlen);
  if (!c) return SL_LCACHE_NO_CACHE;
  if (!sl_cache_is_sync(c)) return SL_LCACHE_ASYNC;
  sl_cache_req_t rq = {(sl_cache_op_t)op, key, klen, val, vlen, ttl_ms, by};
  lresult_t lr = {SL_CACHE_ERROR, 0};
  sl_cache_exec(c, &rq, done, &lr);
  if ((lr.status == SL_CACHE_OK && op == SL_CACHE_GET) || lr.status == SL_CACHE_ERROR) {
    *out = buf;
    *olen = buf_len;
  }
  *n = lr.n;
  return lr.status;
}

/* The same operation on a backend that answers later: a waiting call
 * (lua/async.h), cache._wait(op, name, key, value, ttl_ms, by), whose results
 * are what cache.lua's function returns for the status. A backend cannot
 * cancel an operation: one the message stopped waiting for still completes,
 * and its answer is dropped. */
static int push_res(lua_State *L, void *arg) {
  const sl_cache_res_t *r = ((const void **)arg)[0];
  sl_cache_op_t op = *(const sl_cache_op_t *)((const void **)arg)[1];
  switch (r->status) {
  case SL_CACHE_OK:
    if (op == SL_CACHE_GET) lua_pushlstring(L, r->val, r->len);
    else if (op == SL_CACHE_INCR) lua_pushnumber(L, (lua_Number)r->n);
    else lua_pushboolean(L, 1);
    return 1;
  case SL_CACHE_MISS:
    if (op == SL_CACHE_GET) lua_pushnil(L);
    else if (op == SL_CACHE_INCR) lua_pushnumber(L, (lua_Number)r->n);
    else lua_pushboolean(L, 0);
    return 1;
  case SL_CACHE_EXISTS: lua_pushboolean(L, 0); return 1;
  default:
    lua_pushnil(L);
    lua_pushstring(L, r->err ? r->err : "error");
    return 2;
  }
}

typedef struct waiting {
  sl_lwait_t *w;             /* NULL once the message stopped waiting */
  sl_cache_op_t op;
} waiting_t;

static void answered(void *arg, const sl_cache_res_t *r) {
  waiting_t *wt = arg;
  const void *args[2] = {r, &wt->op};
  if (wt->w) sl_lwait_done(wt->w, push_res, args);
  free(wt);
}

static void cancel_wait(void *arg) { ((waiting_t *)arg)->w = NULL; }

static int start_wait(lua_State *L) {
  sl_lwait_t *w = lua_touserdata(L, 1);
  size_t nlen, klen, vlen = 0;
  sl_cache_op_t op = (sl_cache_op_t)luaL_checkinteger(L, 2);
  const char *name = luaL_checklstring(L, 3, &nlen), *key = luaL_checklstring(L, 4, &klen);
  const char *val = lua_isnil(L, 5) ? NULL : luaL_checklstring(L, 5, &vlen);
  sl_cache_req_t rq = {op, key, klen, val, vlen, (int64_t)luaL_checknumber(L, 6), (int64_t)luaL_checknumber(L, 7)};
  sl_cache_t *c = sl_cache_find(name, nlen);
  if (!c) return luaL_error(L, "no cache resource labelled \"%s\"", name);
  waiting_t *wt = sl_xmalloc(sizeof(*wt));
  *wt = (waiting_t){w, op};
  sl_lwait_on_cancel(w, cancel_wait, wt);
  sl_cache_exec(c, &rq, answered, wt);
  return 0;
}

SL_LASYNC_BINDING("cache._wait", start_wait)

/* A TTL written as a duration ("30s", "1m30s"): ms, or -2 when it is none. */
int64_t sl_lcache_ttl(const char *s) {
  int64_t ms;
  return sl_parse_duration_ms(s, &ms) == 0 && ms >= 0 ? ms : -2;
}

/* The column (1-based) of text on line `line` of file, or 0. */
static int column_in_file(const char *file, int line, const char *text, size_t len) {
  FILE *f = file ? fopen(file, "r") : NULL;
  if (!f) return 0;
  char *l = NULL;
  size_t cap = 0;
  int col = 0;
  for (int n = 1; getline(&l, &cap, f) >= 0; n++) {
    if (n < line) continue;
    char *at = memmem(l, strlen(l), text, len);
    col = at ? (int)(at - l) + 1 : 0;
    break;
  }
  free(l);
  fclose(f);
  return col;
}

/* Calls whose first argument is a resource's label: "cache." and
 * "redis." (redis.call), each followed by one of its functions. */
static const char *const cache_ops[] = {"get", "set", "add", "delete", "incr", NULL};
static const char *const redis_ops[] = {"call", NULL};

/* After "cache." (or "redis.") at p: one of ops, "(" and a quoted name that
 * is the whole first argument; the name's bytes, or NULL. end: past the
 * closing quote. */
static const char *literal_name(const char *p, const char *stop, const char *const *ops, size_t *len,
                                const char **end) {
  size_t n = 0;
  for (int k = 0; ops[k] && !n; k++)
    if ((size_t)(stop - p) > strlen(ops[k]) && !strncmp(p, ops[k], strlen(ops[k]))) n = strlen(ops[k]);
  if (!n) return NULL;
  p += n;
  while (p < stop && (*p == ' ' || *p == '\t')) p++;
  if (p >= stop || *p++ != '(') return NULL;
  while (p < stop && (*p == ' ' || *p == '\t')) p++;
  if (p >= stop || (*p != '"' && *p != '\'')) return NULL;
  char q = *p++;
  const char *name = p;
  while (p < stop && *p != q && *p != '\\' && *p != '\n') p++;
  if (p >= stop || *p != q) return NULL;
  *len = (size_t)(p - name);
  *end = ++p;
  /* The whole argument, not the start of an expression ("a" .. b). */
  while (p < stop && (*p == ' ' || *p == '\t')) p++;
  return p < stop && (*p == ',' || *p == ')') ? name : NULL;
}

/* At p, the start of a Lua string literal ('...', "..." or a long bracket
 * [[...]], [==[...]==]): the last byte of it (or stop - 1 when it does not
 * end), counting the lines it spans; else NULL. */
static const char *string_end(const char *p, const char *stop, int *line, const char **line_start) {
  const char *e;
  if (*p == '"' || *p == '\'') {
    for (e = p + 1; e < stop && *e != *p && *e != '\n'; e++)
      if (*e == '\\' && e + 1 < stop) e++;
    return e < stop && *e == *p ? e : e - 1;
  }
  if (*p != '[') return NULL;
  size_t level = 0;
  for (e = p + 1; e < stop && *e == '='; e++) level++;
  if (e >= stop || *e != '[') return NULL;
  for (e++; e < stop; e++) {
    if (*e == '\n') {
      (*line)++;
      *line_start = e + 1;
    } else if (*e == ']' && (size_t)(stop - e) > level + 1 && strspn(e + 1, "=") >= level && e[level + 1] == ']') {
      return e + level + 1;
    }
  }
  return stop - 1;
}

int sl_lcache_lint(const sl_cnode_t *code, const char *key, int interp, int lint_only, sl_diags_t *d) {
  if (!code || code->type != SL_CN_SCALAR || !code->str) return 0;
  const char *s = code->str, *stop = s + code->len, *line_start = s;
  int line = code->line + (code->block ? 1 : 0), bad = 0;
  for (const char *p = s; p < stop; p++) {
    if (*p == '\n') {
      line++;
      line_start = p + 1;
      continue;
    }
    /* A call written inside a string (an EVAL script's redis.call) is no
     * call of the script's; an interpolation's text around ${! } is no Lua. */
    const char *str = interp ? NULL : string_end(p, stop, &line, &line_start);
    if (str) {
      p = str;
      continue;
    }
    const char *const *ops = !strncmp(p, "cache.", 6) ? cache_ops : !strncmp(p, "redis.", 6) ? redis_ops : NULL;
    if (!ops || (p > s && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '.'))) continue;
    size_t len;
    const char *end, *name = literal_name(p + 6, stop, ops, &len, &end);
    if (!name || memmem(line_start, (size_t)(p - line_start), "--", 2) || sl_cache_known(name, len, lint_only)) continue;
    sl_cnode_t at = *code;
    at.line = line;
    int col = column_in_file(code->file, line, p, (size_t)(end - p));
    at.col = col ? col : code->col;
    if (sl_cache_check_name(&at, key, name, len, lint_only, d) != 0) bad++;
    p = end - 1;
  }
  return bad;
}
