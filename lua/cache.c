/* cache.* for scripts (lua/cache.lua), reached through LuaJIT's FFI: one
 * operation on a named resource of cache/. A resource whose backend answers
 * at once (memory) completes here; one that answers later (Redis) is not
 * started: the script's side gets SL_LCACHE_ASYNC and goes through its hook
 * for asynchronous backends, where a yielding call waits for the answer.
 * Runs on the worker's loop; results are copied into a per-thread buffer that
 * the next call reuses, which the script's side copies at once. */
#include "cache/cache.h"
#include "core/conf.h"
#include "core/xalloc.h"
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

/* The buffer grows to the largest value read, and shrinks back after one
 * over 1 MiB, so that a single huge read does not hold its size for good. */
static void keep(const char *p, size_t len) {
  if (len + 1 > buf_cap || (buf_cap > (1u << 20) && len < (1u << 16))) {
    free(buf);
    buf_cap = len + 1 > 256 ? len + 1 : 256;
    buf = sl_xmalloc(buf_cap);
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

/* A TTL written as a duration ("30s", "1m30s"): ms, or -2 when it is none. */
int64_t sl_lcache_ttl(const char *s) {
  int64_t ms;
  return sl_parse_duration_ms(s, &ms) == 0 && ms >= 0 ? ms : -2;
}
