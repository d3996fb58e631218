/* Waiters of non-blocking calls (lua/async.h): started by the runtime's
 * driver (lua/runtime.lua, "waits"), ended by their client, by the message's
 * deadline or by their run's cancellation. */
#include "vm.h"
#include "core/blocks.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_BINDINGS 32

static struct {
  const char *name;
  lua_CFunction start;
} bindings[MAX_BINDINGS];
static int nbindings;

void sl_lasync_register(const char *name, lua_CFunction start) {
  if (nbindings == MAX_BINDINGS) abort();   /* a build with more bindings raises the bound */
  bindings[nbindings].name = name;
  bindings[nbindings++].start = start;
}

struct sl_lwait {
  sl_lua_t *vm;
  sl_ljob_t *job;            /* NULL once unlinked */
  int id;                    /* the runtime's waiter id */
  int resolved;              /* the script no longer waits for it */
  int held;                  /* the client holds it */
  int starting;              /* inside its start: freed by begin, not by done */
  int timed;                 /* in its VM's deadline list */
  int64_t left_ms;
  uint64_t due;              /* the loop's time of its deadline */
  sl_lwait_cancel_cb cancel;
  void *op;
  sl_lwait_t *next, **prev;  /* in the job's list */
  sl_lwait_t *dnext, *dprev; /* in the deadline list */
};

/* The deadlines of a VM's waiters on one timer, soonest first (a uv_timer
 * per call was started, stopped and closed: ~0.8k instructions of each).
 * Calls of one processor share a timeout, so a new deadline is nearly
 * always the latest: inserted from the tail. The timer stays armed for a
 * head that went; it then finds nothing due and re-arms for the next. */
typedef struct sl_ldue {
  uv_timer_t timer;
  sl_lwait_t *head, *tail;
  uint64_t armed;            /* when the timer fires; 0: stopped */
} sl_ldue_t;

static void due_closed(uv_handle_t *h) { free(h->data); }

static void on_due(uv_timer_t *t);

static void due_arm(sl_ldue_t *d) {
  uint64_t now = uv_now(d->timer.loop), at = d->head->due;
  d->armed = at;
  uv_timer_start(&d->timer, on_due, at > now ? at - now : 0, 0);
}

static void due_del(sl_lwait_t *w) {
  sl_ldue_t *d = w->vm->due;
  w->timed = 0;
  if (w->dprev) w->dprev->dnext = w->dnext;
  else d->head = w->dnext;
  if (w->dnext) w->dnext->dprev = w->dprev;
  else d->tail = w->dprev;
  if (!d->head && d->armed) {   /* nothing left to time: the timer must not hold the loop */
    uv_timer_stop(&d->timer);
    d->armed = 0;
  }
}

static void unlink_wait(sl_lwait_t *w) {
  if (!w->job) return;
  *w->prev = w->next;
  if (w->next) w->next->prev = w->prev;
  w->job = NULL;
  if (w->timed) due_del(w);
}

/* Freed once neither the script nor the client needs it. Waiters are
 * core/blocks.h blocks: calloc (which skips glibc's per-thread cache) and
 * free were ~0.4k instructions of a call. */
static void release(sl_lwait_t *w) {
  if (w->held || !w->resolved || w->starting) return;
  sl_blocks_put(w, sizeof(*w));
}

static void cancel_op(sl_lwait_t *w) {
  if (!w->held || !w->cancel) return;
  w->held = 0;
  w->cancel(w->op);
}

typedef struct wake_args {
  int id, kind;              /* kind: 0 results, 1 deadline, 2 error text */
  sl_lwait_push_cb push;
  void *arg;
  const char *err;
} wake_args_t;

/* The runtime's M.wake(id, kind, n, r1, r2, r3): a fixed number of values
 * (a vararg function runs slower in LuaJIT); more than three results go in a
 * table {n = , ...} with n -1. */
static int push_wake(lua_State *L, void *arg) {
  wake_args_t *a = arg;
  lua_pushinteger(L, a->id);
  lua_pushinteger(L, a->kind);
  int base = lua_gettop(L), n = 0;
  if (a->kind == 2) {
    lua_pushstring(L, a->err);
    n = 1;
  } else if (a->push) {
    n = a->push(L, a->arg);
  }
  if (n > 3) {
    lua_createtable(L, n, 1);
    lua_insert(L, base + 1);
    for (int i = n; i >= 1; i--) lua_rawseti(L, base + 1, i);
    lua_pushinteger(L, n);
    lua_setfield(L, base + 1, "n");
    n = -1;
  }
  lua_pushinteger(L, n);
  lua_insert(L, base + 1);
  lua_settop(L, base + 4);
  return 6;
}

/* The script's coroutine is made ready with what the call gave. When
 * pushing the results fails (memory, say), it gets the error instead. */
static void wake(sl_lwait_t *w, int kind, sl_lwait_push_cb push, void *arg) {
  sl_ljob_t *j = w->job;
  w->resolved = 1;
  unlink_wait(w);
  sl_lua_t *vm = w->vm;
  wake_args_t a = {w->id, kind, push, arg, NULL};
  /* M.wake answers whether the job has a coroutine to resume: it is
   * readied here, as a call from the runtime was a C function that ended
   * its trace */
  sl_lcall_t c = {.ref = vm->ref_wake, .nres = 1, .push = push_wake, .arg = &a};
  char *err = NULL;
  if (sl_lvm_pcall(vm, &c, &err) != 0) {
    a.kind = 2;
    a.err = err ? err : "the call's results could not be read";
    if (sl_lvm_pcall(vm, &c, NULL) != 0) sl_error("lua: a waiting call could not be resumed: %s", a.err);
    free(err);
  }
  if (c.i && j) sl_ljob_ready(j);
}

void sl_lwait_done(sl_lwait_t *w, sl_lwait_push_cb push, void *arg) {
  if (!w->held) return;
  w->held = 0;
  if (!w->resolved) wake(w, 0, push, arg);
  release(w);
}

void sl_lwait_on_cancel(sl_lwait_t *w, sl_lwait_cancel_cb cancel, void *op) {
  w->cancel = cancel;
  w->op = op;
}

int64_t sl_lwait_left_ms(const sl_lwait_t *w) { return w->left_ms; }

uv_loop_t *sl_lwait_loop(const sl_lwait_t *w) { return w->vm->loop; }

void **sl_lwait_client(const sl_lwait_t *w, int id, void (*free_fn)(void *)) {
  w->vm->client_free[id] = free_fn;
  return &w->vm->clients[id];
}

static void expire(sl_lwait_t *w) {
  cancel_op(w);
  wake(w, 1, NULL, NULL);
  release(w);
}

static void on_due(uv_timer_t *t) {
  sl_ldue_t *d = t->data;
  d->armed = 0;
  uint64_t now = uv_now(t->loop);
  while (d->head && d->head->due <= now) expire(d->head);   /* wake takes it off the list */
  if (d->head && !d->armed) due_arm(d);
}

static void due_add(sl_lwait_t *w) {
  sl_lua_t *vm = w->vm;
  sl_ldue_t *d = vm->due;
  if (!d) {
    d = vm->due = sl_xcalloc(1, sizeof(*d));
    uv_timer_init(vm->loop, &d->timer);
    d->timer.data = d;
  }
  w->due = uv_now(vm->loop) + (uint64_t)w->left_ms;
  w->timed = 1;
  sl_lwait_t *p = d->tail;
  while (p && p->due > w->due) p = p->dprev;
  w->dprev = p;
  w->dnext = p ? p->dnext : d->head;
  if (w->dnext) w->dnext->dprev = w;
  else d->tail = w;
  if (p) p->dnext = w;
  else d->head = w;
  if (d->head == w && (!d->armed || w->due < d->armed)) due_arm(d);
}

/* The runtime's async.begin(job, waiter id, ms left or -1, start, n, ...):
 * calls start(w, ...) with the first n of ...; answers true, or false and
 * what start raised (not raised again: the runtime's driver calls it
 * without a pcall, which would end its trace). */
static int l_begin(lua_State *L) {
  sl_ljob_t *j = lua_touserdata(L, 1);
  sl_lwait_t *w = memset(sl_blocks_get(sizeof(*w)), 0, sizeof(sl_lwait_t));
  w->vm = sl_ljob_vm(j);
  w->id = (int)lua_tointeger(L, 2);
  w->left_ms = (int64_t)lua_tonumber(L, 3);
  w->held = w->starting = 1;
  w->job = j;
  sl_lwait_t **list = sl_ljob_waits(j);
  if ((w->next = *list)) w->next->prev = &w->next;
  *list = w;
  w->prev = list;
  lua_remove(L, 1);
  lua_remove(L, 1);
  lua_remove(L, 1);
  int n = (int)lua_tointeger(L, 2);   /* start, then the script's n arguments, padded to 4 */
  lua_remove(L, 2);
  lua_settop(L, 1 + n);
  lua_pushlightuserdata(L, w);
  lua_insert(L, 2);
  int rc = lua_pcall(L, lua_gettop(L) - 1, 0, 0);
  w->starting = 0;
  if (rc != 0) {
    w->held = 0;
    w->resolved = 1;
    unlink_wait(w);
    release(w);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  if (!w->resolved && w->left_ms >= 0) due_add(w);
  release(w);
  lua_pushboolean(L, 1);
  return 1;
}

/* The runtime's async.ready(job), for a job whose queued call got a slot
 * (rare: a woken call's own job is readied by wake). */
static int l_ready(lua_State *L) {
  sl_ljob_ready(lua_touserdata(L, 1));
  return 0;
}

void sl_lwaits_cancel(sl_lwait_t **list) {
  while (*list) {
    sl_lwait_t *w = *list;
    w->resolved = 1;
    unlink_wait(w);
    cancel_op(w);
    release(w);
  }
}

static char raw_key;   /* its address: the registry's key of the runtime's RAW */

/* The runtime's async.proxy_key(RAW): the private key of its lazy proxies
 * (lua/runtime.lua), for bindings that answer with one (sl_lasync_push_raw). */
static int l_proxy_key(lua_State *L) {
  lua_pushlightuserdata(L, &raw_key);
  lua_pushvalue(L, 1);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return 0;
}

void sl_lasync_push_raw(lua_State *L) {
  lua_pushlightuserdata(L, &raw_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
}

void sl_lasync_push(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, l_proxy_key);
  lua_setfield(L, -2, "proxy_key");
  lua_pushcfunction(L, l_begin);
  lua_setfield(L, -2, "begin");
  lua_pushcfunction(L, l_ready);
  lua_setfield(L, -2, "ready");
  lua_newtable(L);
  for (int i = 0; i < nbindings; i++) {
    lua_pushcfunction(L, bindings[i].start);
    lua_setfield(L, -2, bindings[i].name);
  }
  lua_setfield(L, -2, "bindings");
}

void sl_lasync_close(sl_lua_t *vm) {
  if (vm->due) uv_close((uv_handle_t *)&vm->due->timer, due_closed);
  vm->due = NULL;
  for (int i = 0; i < SL_LCLIENT_MAX; i++)
    if (vm->clients[i] && vm->client_free[i]) vm->client_free[i](vm->clients[i]);
}
