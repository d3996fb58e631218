/* Named cache resources (`cache_resources:`), shared by every script and
 * processor of the process, behind a backend vtable: `memory` here (LRU with
 * TTL and caps), `redis` (cache/redis.c) and `nats_kv` (cache/nats_kv.c)
 * through clients/.
 *
 * Operations are asynchronous by contract: sl_cache_exec starts one and its
 * callback runs exactly once, either before sl_cache_exec returns (a backend
 * with `sync` set, such as memory, always does so) or later on the loop of
 * the thread that started it (a network backend); at the latest when that
 * worker ends, after its streams and Lua VM: the backend's detach answers
 * what still waits with an error (on the thread freeing the worker; nats_kv
 * lets go of one its server still holds 3 s into the end, uncalled). Callers
 * must therefore keep what the callback's arg points to alive until it has
 * run, even past their own end (a script's waiting record frees itself in
 * the callback; a fire-and-forget set has none), and never assume it ran on
 * return unless the backend is `sync`.
 *
 * Threads: the engine's loop and the pool workers of pipeline.threads call
 * side by side. The registry is filled on the engine's loop and only grows
 * (lookups from any thread are safe); a backend serialises its own state:
 * memory takes the resource's mutex around each operation and still
 * completes at once on the caller's thread; a network backend keeps one
 * connection per worker loop (made on first use on a pool worker) and calls
 * back on it. A callback runs on the thread that started the operation.
 *
 * Ownership: resources belong to the registry and live until the process
 * exits (a reload adds and updates them, never removes one, so a pointer from
 * sl_cache_find stays valid); backends are static data of their file. A
 * request's bytes are borrowed by the backend only until exec returns; a
 * result's bytes only until its callback returns. */
#ifndef SL_CACHE_H
#define SL_CACHE_H
#include "core/conf.h"
#include "core/spec.h"
#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;

typedef enum { SL_CACHE_GET, SL_CACHE_SET, SL_CACHE_ADD, SL_CACHE_DELETE, SL_CACHE_INCR, SL_CACHE_NOPS } sl_cache_op_t;

/* TTL of a request: the resource's default_ttl, or none (kept until evicted). */
#define SL_CACHE_TTL_DEFAULT (-1)
#define SL_CACHE_TTL_NONE 0

typedef struct sl_cache_req {
  sl_cache_op_t op;
  const char *key;
  size_t klen;
  const char *val;           /* set, add */
  size_t vlen;
  int64_t ttl_ms;            /* set, add, and incr of a missing key: > 0, or SL_CACHE_TTL_* */
  int64_t by;                /* incr */
} sl_cache_req_t;

typedef enum {
  SL_CACHE_OK = 0,           /* done; get: val holds the value; incr: n holds the new value */
  SL_CACHE_MISS = 1,         /* get, delete, incr: no such key (delete and incr still succeed) */
  SL_CACHE_EXISTS = 2,       /* add: the key was there, nothing changed */
  SL_CACHE_ERROR = -1        /* err says why; nothing changed */
} sl_cache_status_t;

typedef struct sl_cache_res {
  sl_cache_status_t status;
  const char *val;           /* get's value */
  size_t len;
  int64_t n;                 /* incr's new value */
  const char *err;
} sl_cache_res_t;
typedef void (*sl_cache_cb)(void *arg, const sl_cache_res_t *r);

typedef struct sl_cache_backend {
  const char *name;          /* its key in a resource: `memory: {...}` */
  const char *desc;          /* Markdown, for the generated reference */
  const sl_field_t *fields;  /* validated like a component body; terminated by {0} */
  int sync;                  /* exec always calls back before returning */
  /* Optional lint of a resource's body: returns the number of errors added. */
  int (*check)(const sl_cnode_t *body, sl_diags_t *d);
  /* A resource from its validated body. */
  void *(*create)(const sl_cnode_t *body);
  /* New settings for a resource a reload keeps; its contents stay. */
  void (*update)(void *self, const sl_cnode_t *body);
  void (*exec)(void *self, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg);
  /* Optional: what the resource holds now (for sluice_cache_entries and
   * sluice_cache_bytes); a remote backend that cannot say leaves it NULL. */
  void (*stats)(void *self, int64_t *entries, int64_t *bytes);
  /* Optional, for a network backend: its connection on a worker's loop,
   * made when `cache_resources:` is applied on the engine's worker (again
   * after a reload: a no-op when it has one) or by the backend itself on
   * first use on a pool worker (sl_cache_loop), and let go when that worker
   * ends, before its loop closes: operations still waiting are answered
   * with an error then (exactly once, as always). attach runs on the loop's
   * thread; detach on it or after it ended. */
  void (*attach)(void *self, struct uv_loop_s *loop);
  void (*detach)(void *self, struct uv_loop_s *loop);
  void (*destroy)(void *self);
} sl_cache_backend_t;

void sl_cache_backend_register(const sl_cache_backend_t *b);
#define SL_REGISTER_CACHE_BACKEND(var) \
  static void __attribute__((constructor)) sl_register_cache_backend_##var(void) { sl_cache_backend_register(&var); }

typedef struct sl_cache sl_cache_t;

/* The running resource of that name, or NULL. */
sl_cache_t *sl_cache_find(const char *name, size_t len);
const char *sl_cache_name(const sl_cache_t *c);
int sl_cache_is_sync(const sl_cache_t *c);
/* Starts rq on c; counts it in the cache_* metrics (Benthos' names). */
void sl_cache_exec(sl_cache_t *c, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg);
const char *sl_cache_op_name(sl_cache_op_t op);
/* The backend's name ("memory", "redis"). */
const char *sl_cache_backend_name(const sl_cache_t *c);
/* The backend's own state (for the backend's own public functions). */
void *sl_cache_self(const sl_cache_t *c);
/* The loop of the worker running on this thread (where a network backend's
 * operations and callbacks go), or NULL on a thread of no worker. */
struct uv_loop_s *sl_cache_loop(void);

/* For components that name a resource (`resource:`, `cache:`): 0, or -1 with
 * a diagnostic at the field. Checks the running resources when built to run,
 * and the names the last validated config declares when only linting (the
 * `cache_resources:` check records them). */
int sl_cache_check_ref(const sl_cnode_t *body, const char *field, int lint_only, sl_diags_t *d);
/* Whether a resource of that name runs (or, lint_only, is declared). */
int sl_cache_known(const char *name, size_t len, int lint_only);
/* sl_cache_check_ref for a name found elsewhere (len bytes), reported at
 * `at` under key. */
int sl_cache_check_name(const sl_cnode_t *at, const char *key, const char *name, size_t len, int lint_only,
                        sl_diags_t *d);

#endif
