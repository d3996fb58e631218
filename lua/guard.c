/* The watchdog behind lua.max_time and the time slices, the count hook that
 * stops interpreted code, and the C stack floor. */
#include "guard.h"
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The watchdog looks every TICK_MS while a call runs; a sliceable call yields
 * after SLICE_MS of running, so the loop answers within about that. It goes to
 * sleep after IDLE_TICKS without a running call. */
#define TICK_MS 4
#define SLICE_MS 10
#define IDLE_TICKS 50
/* LuaJIT's own frames plus ours between two checks of the floor (16 steps,
 * each possibly a level of C recursion) stay well inside this. */
#define FLOOR_MIN (256u << 10)
#define FLOOR_MAX (1u << 20)
/* A signal nothing else in the process uses (its default is to be ignored). */
#define SIG_GUARD SIGURG

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  int started, stopping;
  atomic_int sleeping;
  sl_lguard_t *guards;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* lua/budget.lua reaches sh through the guard's own address. */
_Static_assert(offsetof(sl_lguard_t, sh) == 0, "sh must begin the guard");

/* The guard whose call runs on this thread (read by the signal handler). */
static _Thread_local sl_lguard_t *tl_guard;
static _Thread_local uintptr_t tl_floor;

/* The coarse clock is enough for ticks of a few ms, and cheap to read on the
 * VM's thread at every entry. */
static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Only the VM's thread writes sh.call, carry_ms and entered_*: it reads
 * them relaxed and publishes them with release stores (plain moves on x86);
 * the watchdog reads them with acquire. budget.lua's plain stores of sh.call
 * are what these are on x86. The watchdog writes sh.irq, then sh.irq_call. */
#define RELAXED(p) atomic_load_explicit(p, memory_order_relaxed)
#define PUBLISH(p, v) atomic_store_explicit(p, v, memory_order_release)
#define SH_LOAD(f) __atomic_load_n(&g->sh.f, __ATOMIC_ACQUIRE)
#define SH_STORE(f, v) __atomic_store_n(&g->sh.f, v, __ATOMIC_RELEASE)

/* DEADLINE or BUDGET when the current call is over one of them, else NONE. */
static int tripped(const sl_lguard_t *g) {
  if (SH_LOAD(irq_call) != __atomic_load_n(&g->sh.call, __ATOMIC_RELAXED)) return SL_LIRQ_NONE;
  int irq = __atomic_load_n(&g->sh.irq, __ATOMIC_RELAXED);
  return irq == SL_LIRQ_DEADLINE || irq == SL_LIRQ_BUDGET ? irq : SL_LIRQ_NONE;
}

const char *sl_lguard_message(const sl_lguard_t *g, int irq) {
  switch (irq) {
  case SL_LIRQ_DEADLINE: return g->time_msg;
  case SL_LIRQ_BUDGET: return g->budget_msg;
  case SL_LIRQ_CSTACK: return "stack overflow (calls nested too deep through C functions)";
  }
  return "";
}

/* Stops user code at its next instruction once the call is over budget. Host
 * code (the run loop, which is not a '@' chunk) goes on, so that it can fail
 * the message and move on; user code it calls stops again. */
static void on_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  sl_lguard_t *g = tl_guard;
  int irq = g ? tripped(g) : SL_LIRQ_NONE;
  if (irq == SL_LIRQ_NONE) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  lua_Debug d;
  for (int level = 0; lua_getstack(L, level, &d); level++) {
    lua_getinfo(L, "Sl", &d);
    if (d.source && d.source[0] == '@') {
      lua_pushfstring(L, "%s:%d: %s", d.short_src, d.currentline, sl_lguard_message(g, irq));
      lua_error(L);
    }
  }
}

/* The watchdog's signal: install the hook on the VM's own thread, where
 * LuaJIT allows it asynchronously (it is what lua_sethook is made for). */
static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  sl_lguard_t *g = tl_guard;
  if (g && atomic_load(&g->running) && tripped(g) == SL_LIRQ_DEADLINE) lua_sethook(g->L, on_hook, LUA_MASKCOUNT, 1);
  errno = saved;
}

static void raise_irq(sl_lguard_t *g, int irq, int32_t call) {
  __atomic_store_n(&g->sh.irq, irq, __ATOMIC_SEQ_CST);
  SH_STORE(irq_call, call);
  if (irq == SL_LIRQ_DEADLINE) pthread_kill(g->thread, SIG_GUARD);
}

/* The VM thread's CPU time: lua.max_time counts what the script ran, not
 * the time a loaded machine (or a throttled container) kept its thread
 * waiting, which would fail messages of scripts that take microseconds. */
static int64_t cpu_ms(const sl_lguard_t *g) {
  struct timespec ts;
  if (g->cpu_clock == (clockid_t)-1 || clock_gettime(g->cpu_clock, &ts) != 0) return -1;
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One look at every guard: a call seen twice has been running at least the
 * time between the looks. Returns whether any ran. A call is over lua.max_time
 * once both the wall time and its thread's CPU time since it was first seen
 * (a tick at most after it began) say so. */
static int look(uint64_t now) {
  int busy = 0;
  for (sl_lguard_t *g = wd.guards; g; g = g->next) {
    int running = atomic_load(&g->running);
    if (!running) continue;
    busy = 1;
    int32_t call = SH_LOAD(call);
    int entered = atomic_load(&g->entered_call) == call;
    if (call != atomic_load(&g->seen_call)) {
      /* An entry says when it began; a call begun by the one before it
       * ending (the next message) is timed from now. */
      atomic_store(&g->seen_cpu_ms, g->max_time_ms < INT64_MAX ? cpu_ms(g) : -1);
      g->seen_at_ms = entered ? atomic_load(&g->entered_ms) : now;
      atomic_store(&g->seen_call, call);
    }
    int64_t carry = entered ? atomic_load(&g->carry_ms) : 0;
    int64_t ran = (int64_t)(now - g->seen_at_ms), used = ran + carry;
    int over = used >= g->max_time_ms;
    if (over && g->seen_cpu_ms >= 0) {
      int64_t cpu = cpu_ms(g);
      over = cpu < 0 || cpu - g->seen_cpu_ms + carry >= g->max_time_ms;
    }
    int irq = over ? SL_LIRQ_DEADLINE : running == 2 && ran >= SLICE_MS ? SL_LIRQ_SLICE : SL_LIRQ_NONE;
    if (irq == SL_LIRQ_NONE) continue;
    if (SH_LOAD(irq_call) == call && SH_LOAD(irq) >= irq) continue;
    raise_irq(g, irq, call);
  }
  return busy;
}

static int any_running(void) {
  for (sl_lguard_t *g = wd.guards; g; g = g->next)
    if (atomic_load(&g->running)) return 1;
  return 0;
}

static void *watchdog(void *arg) {
  (void)arg;
  int idle = 0;
  pthread_mutex_lock(&wd.lock);
  while (!wd.stopping) {
    if (look(now_ms())) {
      idle = 0;
    } else if (++idle > IDLE_TICKS) {
      /* sleeping is published before the last look, and enter() publishes
       * running before reading sleeping: one of the two sees the other. */
      atomic_store(&wd.sleeping, 1);
      if (!any_running()) pthread_cond_wait(&wd.wake, &wd.lock);
      atomic_store(&wd.sleeping, 0);
      idle = 0;
      continue;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += TICK_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&wd.wake, &wd.lock, &until);
  }
  pthread_mutex_unlock(&wd.lock);
  return NULL;
}

void sl_lguard_init(sl_lguard_t *g, lua_State *L) {
  g->L = L;
  g->thread = pthread_self();
  if (pthread_getcpuclockid(g->thread, &g->cpu_clock) != 0) g->cpu_clock = (clockid_t)-1;
  sl_lguard_limits(g, 0, 0);
  pthread_mutex_lock(&wd.lock);
  if (!wd.started) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIG_GUARD, &sa, NULL);
    /* The watchdog itself never takes the signal. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    wd.stopping = 0;
    wd.started = pthread_create(&wd.thread, NULL, watchdog, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  g->next = wd.guards;
  wd.guards = g;
  pthread_mutex_unlock(&wd.lock);
}

void sl_lguard_rebind(sl_lguard_t *g) {
  pthread_mutex_lock(&wd.lock);
  g->thread = pthread_self();
  if (pthread_getcpuclockid(g->thread, &g->cpu_clock) != 0) g->cpu_clock = (clockid_t)-1;
  pthread_mutex_unlock(&wd.lock);
}

void sl_lguard_fini(sl_lguard_t *g) {
  pthread_mutex_lock(&wd.lock);
  sl_lguard_t **p = &wd.guards;
  while (*p && *p != g) p = &(*p)->next;
  if (*p) *p = g->next;
  int last = wd.started && !wd.guards;
  if (last) {
    wd.stopping = 1;
    wd.started = 0;
    pthread_cond_signal(&wd.wake);
  }
  pthread_mutex_unlock(&wd.lock);
  if (last) pthread_join(wd.thread, NULL);
  if (tl_guard == g) tl_guard = NULL;
}

void sl_lguard_limits(sl_lguard_t *g, int64_t max_steps, int64_t max_time_ms) {
  g->max_time_ms = max_time_ms > 0 ? max_time_ms : INT64_MAX;
  snprintf(g->budget_msg, sizeof g->budget_msg, "instruction budget exceeded (lua.max_steps: %lld)", (long long)max_steps);
  snprintf(g->time_msg, sizeof g->time_msg, "time budget exceeded (lua.max_time: %lld ms)", (long long)max_time_ms);
}

void sl_lguard_enter(sl_lguard_t *g, int may_slice, int64_t carry_ms) {
  tl_guard = g;
  int32_t call = (int32_t)((uint32_t)__atomic_load_n(&g->sh.call, __ATOMIC_RELAXED) + 1);
  PUBLISH(&g->carry_ms, carry_ms);
  PUBLISH(&g->entered_ms, now_ms());
  PUBLISH(&g->entered_call, call);
  SH_STORE(call, call);
  atomic_store(&g->running, may_slice ? 2 : 1);
  if (atomic_load(&wd.sleeping)) {
    pthread_mutex_lock(&wd.lock);
    pthread_cond_signal(&wd.wake);
    pthread_mutex_unlock(&wd.lock);
  }
}

void sl_lguard_leave(sl_lguard_t *g) {
  atomic_store(&g->running, 0);
  if (lua_gethook(g->L)) lua_sethook(g->L, NULL, 0, 0);
}

/* Since the entry: a call that began after it (the next message) is charged
 * from the entry too, at most a slice more than it used. Once the watchdog
 * has seen the call (a sliced call always has), the thread's CPU time since
 * then when that is less: what a call carries to its next slice is what it
 * ran, as the watchdog counts it. */
int64_t sl_lguard_used_ms(const sl_lguard_t *g) {
  int64_t carry = RELAXED(&g->entered_call) == g->sh.call ? RELAXED(&g->carry_ms) : 0;
  int64_t used = carry + (int64_t)(now_ms() - RELAXED(&g->entered_ms));
  if (atomic_load(&g->seen_call) == g->sh.call) {
    int64_t seen = atomic_load(&g->seen_cpu_ms), cpu = cpu_ms(g);
    if (seen >= 0 && cpu >= 0 && carry + cpu - seen < used) used = carry + cpu - seen;
  }
  return used;
}

/* The main thread's stack, as pthread_getattr_np finds it but without
 * reading /proc/self/maps (4% of a start): it grows down to its rlimit from
 * the top of its mapping, where the kernel put the executable's file name
 * (AT_EXECFN) just below a final null pointer. 0 when the rlimit is unlimited. */
static int main_stack(void **lo, size_t *size) {
  struct rlimit rl;
  const char *fn = (const char *)getauxval(AT_EXECFN);
  if (!fn || getrlimit(RLIMIT_STACK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t top = ((uintptr_t)fn + strlen(fn) + 1 + sizeof(void *) + page - 1) & ~(page - 1);
  *lo = (void *)(top - rl.rlim_cur);
  *size = rl.rlim_cur;
  return 1;
}

/* The lowest address this thread's calls may reach: its stack's end plus a
 * margin for what runs between two checks and for raising the error. */
static uintptr_t stack_floor(void) {
  pthread_attr_t a;
  void *lo;
  size_t size;
  if (getpid() != gettid() || !main_stack(&lo, &size)) {
    if (pthread_getattr_np(pthread_self(), &a) != 0) return 1;
    int rc = pthread_attr_getstack(&a, &lo, &size);
    pthread_attr_destroy(&a);
    if (rc != 0) return 1;
  }
  size_t margin = size / 8;
  if (margin < FLOOR_MIN) margin = FLOOR_MIN;
  if (margin > FLOOR_MAX) margin = FLOOR_MAX;
  return (uintptr_t)lo + margin;
}

int sl_lguard_check(sl_lguard_t *g) {
  int irq = tripped(g);
  if (irq != SL_LIRQ_NONE) return irq;
  if (!tl_floor) tl_floor = stack_floor();
  if ((uintptr_t)__builtin_frame_address(0) < tl_floor) return SL_LIRQ_CSTACK;
  if (g->gc_due) return SL_LIRQ_GC;
  /* A slice is asked for once; the watchdog asks again a tick later if the
   * call could not yield then (inside a C function's callback, say). */
  int32_t slice = SL_LIRQ_SLICE;
  if (SH_LOAD(irq_call) == g->sh.call &&
      __atomic_compare_exchange_n(&g->sh.irq, &slice, SL_LIRQ_NONE, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
    return SL_LIRQ_SLICE;
  return SL_LIRQ_NONE;
}

void sl_lguard_trip(sl_lguard_t *g, int irq) {
  __atomic_store_n(&g->sh.irq, irq, __ATOMIC_SEQ_CST);
  SH_STORE(irq_call, g->sh.call);
  lua_sethook(g->L, on_hook, LUA_MASKCOUNT, 1);
}
