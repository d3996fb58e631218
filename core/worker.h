/* A worker: one libuv loop, one Lua VM, its streams. Nothing here is global, so
 * N workers can run side by side (one thread each): the engine's worker runs
 * the streams, and a stream with `pipeline.threads` > 1 spawns pool workers
 * that run only its processors (core/pool.h).
 * Ownership: the engine creates and frees workers; extension slots are owned by
 * the subsystem that filled them and released through its destructor. */
#ifndef SL_WORKER_H
#define SL_WORKER_H
#include <uv.h>

enum { SL_SLOT_LUA, SL_SLOT_HTTP, SL_SLOT_STORE, SL_SLOT_KSTORE, SL_SLOT_STORE_API, SL_SLOT_CACHE, SL_SLOT_MAX };

typedef struct sl_worker {
  uv_loop_t *loop;
  int id;
  void *slot[SL_SLOT_MAX];
  void (*slot_free[SL_SLOT_MAX])(void *);
  const struct sl_worker *parent;   /* a pool worker: the worker whose stream spawned it */
  const struct sl_worker *lead;     /* a pool worker: its pool's first worker (compared, never followed) */
} sl_worker_t;

sl_worker_t *sl_worker_new(int id);
/* A pool worker configured like parent: every spawn hook copies what its
 * subsystem's sections set on parent (the `lua:` limits and paths). Runs on
 * parent's thread, before the pool worker's thread starts. */
sl_worker_t *sl_worker_spawn(const sl_worker_t *parent, int id);
void sl_worker_on_spawn(void (*hook)(sl_worker_t *w, const sl_worker_t *parent));   /* from constructors */
/* A pool worker's thread starts: every thread hook runs on it, before its
 * loop does (the Lua guard binds the VM to the thread that runs it). */
void sl_worker_thread_started(sl_worker_t *w);
void sl_worker_on_thread(void (*hook)(sl_worker_t *w));   /* from constructors */
void sl_worker_free(sl_worker_t *w);

#endif
