#include "worker.h"
#include "xalloc.h"
#include <stdlib.h>

sl_worker_t *sl_worker_new(int id) {
  sl_worker_t *w = sl_xcalloc(1, sizeof(*w));
  w->id = id;
  w->loop = sl_xmalloc(sizeof(*w->loop));
  uv_loop_init(w->loop);
  return w;
}

enum { MAX_HOOKS = 8 };
static void (*hooks[MAX_HOOKS])(sl_worker_t *w, const sl_worker_t *parent);
static unsigned nhooks;

void sl_worker_on_spawn(void (*hook)(sl_worker_t *w, const sl_worker_t *parent)) {
  if (nhooks < MAX_HOOKS) hooks[nhooks++] = hook;
}

static void (*thread_hooks[MAX_HOOKS])(sl_worker_t *w);
static unsigned nthread_hooks;

void sl_worker_on_thread(void (*hook)(sl_worker_t *w)) {
  if (nthread_hooks < MAX_HOOKS) thread_hooks[nthread_hooks++] = hook;
}

void sl_worker_thread_started(sl_worker_t *w) {
  for (unsigned i = 0; i < nthread_hooks; i++) thread_hooks[i](w);
}

sl_worker_t *sl_worker_spawn(const sl_worker_t *parent, int id) {
  sl_worker_t *w = sl_worker_new(id);
  w->parent = parent;
  for (unsigned i = 0; i < nhooks; i++) hooks[i](w, parent);
  return w;
}

void sl_worker_free(sl_worker_t *w) {
  if (!w) return;
  /* Handles closed by their owners still need a loop turn to finish, before
   * and after the subsystems in the slots let go of theirs. */
  uv_run(w->loop, UV_RUN_NOWAIT);
  for (int i = 0; i < SL_SLOT_MAX; i++)
    if (w->slot[i] && w->slot_free[i]) w->slot_free[i](w->slot[i]);
  /* A close callback may close more handles, and work in libuv's pool
   * reports back through the loop: turn it until the loop can close. Bounded
   * (~2 s), so a handle nobody closes shows up as a leak instead of a hang. */
  for (int i = 0; i < 2000 && uv_loop_close(w->loop) == UV_EBUSY; i++) {
    uv_run(w->loop, UV_RUN_NOWAIT);
    if (i >= 10) uv_sleep(1);
  }
  free(w->loop);
  free(w);
}
