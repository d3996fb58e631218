/* Internals shared by the Lua host's files (not for components: use lhost.h).
 * Ownership: the VM belongs to its worker slot (or the process, for lint). */
#ifndef SL_LUA_VM_H
#define SL_LUA_VM_H
#include "async.h"
#include "embedded.h"
#include "guard.h"
#include "lalloc.h"
#include "lhost.h"
#include <lua.h>

struct sl_lscript { sl_lua_t *vm; int id; int module; };

struct sl_lua {
  lua_State *L;
  size_t used;               /* bytes allocated by the VM */
  sl_lalloc_t small;         /* its freed small blocks, kept for the next */
  int limited;               /* max_memory enforced (off while the runtime loads) */
  int emergency;             /* a request was refused: host code may use the reserve */
  size_t gc_at;              /* a full collection is due when used passes this (lua/vm.c) */
  /* Full collections so far, and how many of them sluice_lua_gc_full_total
   * has (lua/vm.c's collector, on the engine's loop, reads VMs of pool
   * workers too: used and gc_full change with relaxed stores). */
  int64_t gc_full, gc_seen;
  int metered;               /* in the collector's list (not the lint VM) */
  int64_t max_memory, max_steps, max_time_ms;
  char *lua_path;            /* as configured, for the pool workers spawned from this one */
  uv_loop_t *loop;           /* the worker's; NULL for the lint VM, whose runs never yield */
  sl_lguard_t guard;
  sl_ljob_t *jobs, **jobs_tail;   /* runs suspended between slices, in resume order */
  sl_ljob_t *spare_job;      /* the last job that ended, for the next run (lua/run.c) */
  uv_idle_t *idle;           /* resumes them while any is suspended */
  int depth;                 /* protected calls in progress (a waiter's start may end it at once) */
  void *clients[SL_LCLIENT_MAX];           /* lua/async.h's per-VM client state */
  void (*client_free[SL_LCLIENT_MAX])(void *);
  struct sl_ldue *due;       /* its waiters' deadlines (lua/async.c), made at the first */
  /* registry refs of runtime.lua's entry points */
  int ref_call, ref_run, ref_resume, ref_cancel, ref_wake, ref_eval, ref_compile_inline, ref_compile_expr, ref_compile_module,
    ref_release, ref_set_lua_path, ref_exposed;
};

/* What one script run keeps: the run loop's out list and messages it created.
 * Lives in its job for the duration of the run. */
typedef struct sl_lrun {
  sl_batch_t *in;
  sl_msg_t **out; uint32_t nout, cap;
  uint32_t *from;            /* out[i] came from the message at index from[i] */
  int unordered;             /* messages that waited finished after later ones */
  sl_msg_t **created; uint32_t ncreated, ccap;
} sl_lrun_t;

/* One protected call of a runtime entry point: push (may be NULL) pushes its
 * arguments inside the protection, so that running out of memory while
 * building them fails the call rather than the process. Results: i is the
 * first (an integer, or a boolean as 0/1), s a malloc'd copy of the last when
 * it is a string. may_slice and carry_ms go to the guard (lua/guard.h). */
typedef struct sl_lcall {
  int ref, nres;
  int (*push)(lua_State *L, void *arg);   /* returns how many values it pushed */
  void *arg;
  int may_slice;
  int64_t carry_ms;
  lua_Integer i;
  char *s;
  size_t slen;
} sl_lcall_t;
/* 0, or -1 with *err (malloc'd; NULL err: the error is dropped). */
int sl_lvm_pcall(sl_lua_t *vm, sl_lcall_t *c, char **err);

/* Compiles through a runtime entry point; returns the script id or 0 with *err. */
int sl_lvm_compile(sl_lua_t *vm, int ref, const char *a, const char *chunk, int line, const char *kind, char **err);
void sl_lvm_release(sl_lua_t *vm, int id);
/* After a full collection (the runtime's, through FFI, or the host's after a
 * call): counts it and sets when the next is due. */
void sl_lvm_collected(sl_lua_t *vm);

/* The embedded Lua source named "lua.runtime", "lua.api"..., or NULL. */
const sl_embedded_t *sl_lembedded(const char *name);

/* lua/run.c: drops the VM's suspended runs (their owners are gone). */
void sl_ljobs_free(sl_lua_t *vm);
/* A run's VM, and the calls it waits for (lua/async.c). */
sl_lua_t *sl_ljob_vm(const sl_ljob_t *j);
sl_lwait_t **sl_ljob_waits(sl_ljob_t *j);
/* The run has coroutines to resume: it is driven on a later loop turn. */
void sl_ljob_ready(sl_ljob_t *j);

/* lua/async.c: the runtime's `async` argument; the calls a run waits for,
 * cancelled (their messages are gone); the VM's clients, closed. */
void sl_lasync_push(lua_State *L);
void sl_lwaits_cancel(sl_lwait_t **list);
void sl_lasync_close(sl_lua_t *vm);

#endif
