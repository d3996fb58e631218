/* A worker: one libuv loop, one Lua VM, its streams. Nothing here is global, so
 * N workers can run side by side (one thread each); today sluice runs one.
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
} sl_worker_t;

sl_worker_t *sl_worker_new(int id);
void sl_worker_free(sl_worker_t *w);

#endif
