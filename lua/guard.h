/* Bounds of one script call that the script cannot switch off: the wall-clock
 * deadline (lua.max_time) and the time slice after which a `lua` processor's
 * run yields to the loop, both watched from a process-wide watchdog thread,
 * and the C stack floor below which a call fails with "stack overflow".
 * A call is one message (or one process_batch, check or interpolation); the
 * step budget (lua/budget.lua) asks sl_lguard_check every few steps and
 * reads what the watchdog raised at the end of each call, and a
 * count hook installed on the VM's own thread (by a signal from the watchdog)
 * stops interpreted code that runs between steps.
 * Ownership: a guard is embedded in its VM; sl_lguard_init (on the VM's
 * thread) registers it with the watchdog, which runs while any guard is
 * registered, and sl_lguard_fini unregisters it (after which the watchdog no
 * longer reads it). Everything else runs on the VM's thread; the watchdog
 * only reads the atomics and raises irq. */
#ifndef SL_LUA_GUARD_H
#define SL_LUA_GUARD_H
#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* What sl_lguard_check reports (and irq holds, GC aside). */
enum { SL_LIRQ_NONE, SL_LIRQ_SLICE, SL_LIRQ_DEADLINE, SL_LIRQ_BUDGET, SL_LIRQ_CSTACK, SL_LIRQ_GC };

/* The part of a guard that lua/budget.lua reaches through FFI without a
 * call (declared there the same way): the number of the current call, which
 * budget.lua advances at the end of every call (a message) and
 * sl_lguard_enter at every entry, and the interrupt the watchdog raised for
 * one. Plain fields: the VM's thread reads and writes them with plain moves,
 * the watchdog with atomic builtins. Numbers wrap (compared for equality). */
typedef struct sl_lguard_shared {
  int32_t call;
  int32_t irq_call;              /* the call irq is for */
  int32_t irq;                   /* an SL_LIRQ_* */
} sl_lguard_shared_t;

typedef struct sl_lguard {
  sl_lguard_shared_t sh;
  lua_State *L;
  pthread_t thread;
  int64_t max_time_ms;
  char budget_msg[96], time_msg[96];   /* set by sl_lguard_limits */
  _Atomic int running;           /* 2: a call that may yield between slices, 1: one that may not */
  _Atomic int64_t carry_ms;      /* time the entered call used before this entry */
  _Atomic uint64_t entered_ms;   /* when the last sl_lguard_enter began entered_call */
  _Atomic int32_t entered_call;
  int gc_due;                    /* set by the VM's allocator: a full collection is due (lua/vm.c) */
  /* the watchdog's view, under its lock */
  struct sl_lguard *next;
  _Atomic int32_t seen_call;     /* written by the watchdog, read by the VM's thread for used_ms */
  uint64_t seen_at_ms;
  _Atomic int64_t seen_cpu_ms;   /* the VM thread's CPU time when seen_call was first seen (-1: not read) */
  clockid_t cpu_clock;           /* the VM thread's CPU clock (-1: none, wall time alone) */
} sl_lguard_t;

void sl_lguard_init(sl_lguard_t *g, lua_State *L);
void sl_lguard_fini(sl_lguard_t *g);
/* The VM's calls run on this thread from now on (a pool worker's VM is made
 * on the engine's thread and runs on the worker's): the watchdog signals it
 * and reads its CPU clock. */
void sl_lguard_rebind(sl_lguard_t *g);
void sl_lguard_limits(sl_lguard_t *g, int64_t max_steps, int64_t max_time_ms);

/* Around every entry into the VM for a call: may_slice says whether the run
 * may yield to the loop; carry_ms is what a resumed call already used. */
void sl_lguard_enter(sl_lguard_t *g, int may_slice, int64_t carry_ms);
void sl_lguard_leave(sl_lguard_t *g);
/* The current call's time so far (a yielding run carries it over). */
int64_t sl_lguard_used_ms(const sl_lguard_t *g);

/* Called through FFI by lua/budget.lua (which ends a call itself, in sh). */
int sl_lguard_check(sl_lguard_t *g);            /* an SL_LIRQ_* (NONE when all is well) */
void sl_lguard_trip(sl_lguard_t *g, int irq);   /* the step budget is spent: stop at every instruction */
/* The text of the error a tripped call fails with ("time budget exceeded ..."). */
const char *sl_lguard_message(const sl_lguard_t *g, int irq);

#endif
