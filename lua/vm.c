/* The per-worker LuaJIT VM: a memory-capped allocator, the embedded runtime
 * (lua/runtime.lua, lua/budget.lua), protected calls into it, and the `lua:`
 * config section. */
#include "vm.h"
#include "embedded.h"
#include "library.h"
#include "strmatch.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/section.h"
#include "core/xalloc.h"
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define SL_LUA_DEFAULT_MEMORY (256LL << 20)
#define SL_LUA_DEFAULT_STEPS 10000000LL
#define SL_LUA_DEFAULT_TIME_MS 1000
/* A VM with the runtime loaded holds about 160 KiB; below this there would
 * be little room for a script (lint refuses less). */
#define SL_LUA_MIN_MEMORY (1LL << 20)

/* Refuses growth beyond the VM's limit; Lua turns the NULL into a "not enough
 * memory" error that the run loop's pcall flags on the message. After a
 * refusal the host's own error handling may use a reserve above the limit
 * until a collection brings the VM back under it. */
#define SL_LUA_RESERVE (16u << 20)

/* LuaJIT starts a collection cycle when its heap doubles from the live data
 * of the last one and never collects before failing an allocation (nor can an
 * allocator collect: LuaJIT does not expect a collection there), so a VM whose
 * live data sits above half the cap would fail allocations that its garbage
 * could have served. The host runs a full collection when the heap has grown
 * by half the room left below the cap (at least a 64th of the cap) since the
 * last one: a VM near its cap collects in proportion to what it allocates,
 * and one far below it never (LuaJIT's own collector keeps it there). */
static void pace(sl_lua_t *vm) {
  size_t cap = (size_t)vm->max_memory, room = cap > vm->used ? cap - vm->used : 0;
  size_t step = room / 2 > cap / 64 ? room / 2 : cap / 64;
  vm->gc_at = vm->used + step;
  vm->guard.gc_due = 0;
}

void sl_lvm_collected(sl_lua_t *vm) {
  pace(vm);
  SL_COUNT(&vm->gc_full, 1);
}

static int collect(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  sl_lua_t *vm = ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    sl_lalloc(&vm->small, ptr, osize, 0);
    SL_COUNT(&vm->used, -osize);
    if (vm->emergency && vm->used < (size_t)vm->max_memory) vm->emergency = 0;
    return NULL;
  }
  if (vm->limited && nsize > osize) {
    size_t limit = (size_t)vm->max_memory + (vm->emergency ? SL_LUA_RESERVE : 0);
    if (vm->used + (nsize - osize) > limit) {
      vm->emergency = 1;
      vm->guard.gc_due = 1;
      return NULL;
    }
  }
  void *p = sl_lalloc(&vm->small, ptr, osize, nsize);
  if (!p) return NULL;
  SL_COUNT(&vm->used, nsize - osize);
  if (vm->used > vm->gc_at && vm->limited) vm->guard.gc_due = 1;
  return p;
}

static int at_panic(lua_State *L) {
  sl_error("Lua VM panic: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  abort();
}

const sl_embedded_t *sl_lembedded(const char *name) {
  for (const sl_embedded_t *e = sl_embedded_lua; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

/* Loads an embedded chunk and calls it with nargs arguments; leaves its result. */
static int load_embedded(lua_State *L, const char *name, int nargs) {
  const sl_embedded_t *e = sl_lembedded(name);
  if (!e || luaL_loadbuffer(L, e->src, e->len, name) != 0) {
    sl_error("cannot load embedded %s: %s", name, e ? lua_tostring(L, -1) : "missing");
    return -1;
  }
  lua_insert(L, -1 - nargs);
  if (lua_pcall(L, nargs, 1, 0) != 0) {
    sl_error("cannot start embedded %s: %s", name, lua_tostring(L, -1));
    return -1;
  }
  return 0;
}

static int field_ref(lua_State *L, int table, const char *name) {
  lua_getfield(L, table, name);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Every VM with a loop (the engine's worker's and pool workers'), created
 * and freed on the engine's thread. The memory gauge shows the fullest VM
 * (each has its own cap); full collections add up. */
static sl_lua_t **g_vms;
static unsigned g_nvms;
static int64_t *g_m_gc_full, *g_m_memory;

static void collect_vm(sl_lua_t *vm) {
  int64_t n = SL_READ(&vm->gc_full);
  SL_COUNT(g_m_gc_full, n - vm->gc_seen);
  vm->gc_seen = n;
}

static void collect_vms(void *arg) {
  (void)arg;
  size_t most = 0;
  for (unsigned i = 0; i < g_nvms; i++) {
    size_t used = SL_READ(&g_vms[i]->used);
    if (used > most) most = used;
    collect_vm(g_vms[i]);
  }
  *g_m_memory = (int64_t)most;
}

static void meter(sl_lua_t *vm) {
  if (!g_m_memory) {
    g_m_gc_full = sl_metric(SL_COUNTER, "sluice_lua_gc_full_total",
                            "Full garbage collections the host ran in the workers' Lua VMs: one when a heap has grown "
                            "by half the room left below lua.max_memory, and one after a script ran out of memory "
                            "(LuaJIT's incremental collector is not counted).", NULL);
    g_m_memory = sl_metric(SL_GAUGE, "sluice_lua_memory_bytes",
                           "Bytes the fullest worker's Lua VM holds (live data and garbage not yet collected), against "
                           "lua.max_memory (each VM has its own).", NULL);
  }
  if (!g_nvms) sl_metrics_collector_add(collect_vms, NULL);
  g_vms = sl_xrealloc(g_vms, (g_nvms + 1) * sizeof(*g_vms));
  g_vms[g_nvms++] = vm;
  vm->metered = 1;
}

static void unmeter(sl_lua_t *vm) {
  collect_vm(vm);
  for (unsigned i = 0; i < g_nvms; i++)
    if (g_vms[i] == vm) g_vms[i] = g_vms[--g_nvms];
  if (!g_nvms) {
    sl_metrics_collector_remove(collect_vms, NULL);
    free(g_vms);
    g_vms = NULL;
  }
}

static int call_protected(lua_State *L);

/* Bloblang's runtime, loaded when a script of the VM first uses it: loading
 * and starting it at every VM's creation was 514k of a start's 4.5M
 * instructions (callgrind, generate 1 -> drop). */
static int load_bloblang(lua_State *L) {
  const sl_embedded_t *bl = sl_lembedded("lua.bloblang");
  if (!bl) return luaL_error(L, "embedded lua.bloblang is missing");
  if (luaL_loadbuffer(L, bl->src, bl->len, "lua.bloblang") != 0) return lua_error(L);
  return 1;
}

static sl_lua_t *vm_new(uv_loop_t *loop) {
  sl_lua_t *vm = sl_xcalloc(1, sizeof(*vm));
  vm->max_memory = SL_LUA_DEFAULT_MEMORY;
  vm->max_steps = SL_LUA_DEFAULT_STEPS;
  vm->max_time_ms = SL_LUA_DEFAULT_TIME_MS;
  vm->loop = loop;
  vm->jobs_tail = &vm->jobs;
  lua_State *L = lua_newstate(lua_alloc, vm);
  if (!L) {
    sl_error("cannot create a Lua VM");
    abort();
  }
  vm->L = L;
  lua_atpanic(L, at_panic);
  lua_gc(L, LUA_GCSTOP, 0);   /* till the runtime is loaded: see below */
  sl_lguard_init(&vm->guard, L);
  sl_lguard_limits(&vm->guard, vm->max_steps, vm->max_time_ms);
  luaL_openlibs(L);
  /* lua-cjson is Debian's module; found on the default cpath. */
  lua_getglobal(L, "require");
  lua_pushstring(L, "cjson");
  if (lua_pcall(L, 1, 0, 0) != 0) {
    sl_error("cannot load lua-cjson (apt-get install lua-cjson): %s", lua_tostring(L, -1));
    abort();
  }
  lua_pushlightuserdata(L, &vm->guard);
  lua_pushlightuserdata(L, vm);
  if (load_embedded(L, "lua.budget", 2) != 0) abort();
  sl_lstrmatch_push(L, &vm->guard);
  if (load_embedded(L, "lua.cache", 0) != 0) abort();
  lua_pushcfunction(L, load_bloblang);
  sl_lasync_push(L);
  sl_lstdlib_push(L, &vm->guard);
  if (load_embedded(L, "lua.runtime", 6) != 0) abort();
  int rt = lua_gettop(L);
  lua_pushcfunction(L, call_protected);
  vm->ref_call = luaL_ref(L, LUA_REGISTRYINDEX);
  vm->ref_run = field_ref(L, rt, "run");
  vm->ref_resume = field_ref(L, rt, "resume");
  vm->ref_cancel = field_ref(L, rt, "cancel");
  vm->ref_wake = field_ref(L, rt, "wake");
  vm->ref_eval = field_ref(L, rt, "eval");
  vm->ref_compile_inline = field_ref(L, rt, "compile_inline");
  vm->ref_compile_expr = field_ref(L, rt, "compile_expr");
  vm->ref_compile_module = field_ref(L, rt, "compile_module");
  vm->ref_release = field_ref(L, rt, "release");
  vm->ref_set_lua_path = field_ref(L, rt, "set_lua_path");
  vm->ref_exposed = field_ref(L, rt, "exposed");
  lua_pop(L, 1);
  /* No collection while loading, nor a full one here: loading leaves 31 kB
   * of garbage in 220 kB, the steps of the incremental collector while
   * loading were 306k of a start's 3.26M instructions and the full
   * collection 431k (callgrind). The next cycle starts when the heap has
   * doubled, as after any collection. */
  lua_gc(L, LUA_GCRESTART, -1);
  pace(vm);
  vm->limited = 1;
  if (loop) meter(vm);
  return vm;
}

/* Walking every object of a VM to free it was an eighth of a short run's
 * instructions (generate 1 -> drop); at exit the memory goes anyway. */
static int g_exiting;

#ifdef SL_SANITIZED
void sl_lua_exiting(void) {}   /* LeakSanitizer checks that every object is freed */
#else
void sl_lua_exiting(void) { g_exiting = 1; }
#endif

static void vm_free(void *p) {
  sl_lua_t *vm = p;
  if (vm->metered) unmeter(vm);
  sl_ljobs_free(vm);
  sl_lasync_close(vm);
  sl_lguard_fini(&vm->guard);
  if (!g_exiting) {
    lua_close(vm->L);
    sl_lalloc_drain(&vm->small);
  }
  free(vm->lua_path);
  free(vm);
}

/* ---- protected calls ---- */

static int call_protected(lua_State *L) {
  sl_lcall_t *c = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  int n = c->push ? c->push(L, c->arg) : 0;
  lua_call(L, n, c->nres);
  if (c->nres > 0) {
    int first = -c->nres;
    c->i = lua_isboolean(L, first) ? lua_toboolean(L, first) : lua_tointeger(L, first);
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s) {
      c->s = sl_xmalloc(len + 1);
      memcpy(c->s, s, len);
      c->s[len] = 0;
      c->slen = len;
    }
  }
  return 0;
}

int sl_lvm_pcall(sl_lua_t *vm, sl_lcall_t *c, char **err) {
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  c->i = 0;
  c->s = NULL;
  /* A nested call (a waiter ended inside its start, lua/async.c) is part of
   * the one in progress. */
  int outer = vm->depth++ == 0;
  if (outer) sl_lguard_enter(&vm->guard, c->may_slice && vm->loop, c->carry_ms);
  /* lua_pcall of a function made once: LuaJIT's lua_cpcall makes a new one
   * per call. The two pushes stay within the stack Lua keeps free. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_call);
  lua_pushlightuserdata(L, c);
  int rc = lua_pcall(L, 1, 0, 0);
  vm->depth--;
  if (outer) sl_lguard_leave(&vm->guard);
  if (outer && vm->guard.gc_due && lua_cpcall(L, collect, NULL) == 0) sl_lvm_collected(vm);
  if (rc != 0) {
    const char *e = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (rc == LUA_ERRMEM) e = "not enough memory";
    if (err) *err = sl_xstrdup(e ? e : "Lua error");
    free(c->s);
    c->s = NULL;
  }
  lua_settop(L, top);
  return rc == 0 ? 0 : -1;
}

static sl_lua_t *g_lint_vm;

static void lint_vm_free(void) {
  vm_free(g_lint_vm);
  g_lint_vm = NULL;
}

sl_lua_t *sl_lua_get(sl_worker_t *w) {
  if (!w) {
    if (!g_lint_vm) {
      g_lint_vm = vm_new(NULL);
      atexit(lint_vm_free);
    }
    return g_lint_vm;
  }
  if (!w->slot[SL_SLOT_LUA]) {
    w->slot[SL_SLOT_LUA] = vm_new(w->loop);
    w->slot_free[SL_SLOT_LUA] = vm_free;
  }
  return w->slot[SL_SLOT_LUA];
}

/* set_lua_path's argument: the directories as a list. */
static int push_paths(lua_State *L, void *arg) {
  lua_newtable(L);
  int n = 0;
  for (const char *p = arg; p && *p;) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len) {
      lua_pushlstring(L, p, len);
      lua_rawseti(L, -2, ++n);
    }
    p += len + (end ? 1 : 0);
  }
  return 1;
}

void sl_lua_configure(sl_worker_t *w, const sl_lua_opts_t *o) {
  sl_lua_t *vm = sl_lua_get(w);
  vm->max_memory = o->max_memory > 0 ? o->max_memory : SL_LUA_DEFAULT_MEMORY;
  vm->max_steps = o->max_steps > 0 ? o->max_steps : SL_LUA_DEFAULT_STEPS;
  vm->max_time_ms = o->max_time_ms > 0 ? o->max_time_ms : SL_LUA_DEFAULT_TIME_MS;
  char *path = sl_xstrdup(o->lua_path ? o->lua_path : "");
  free(vm->lua_path);
  vm->lua_path = path;
  pace(vm);
  sl_lguard_limits(&vm->guard, vm->max_steps, vm->max_time_ms);
  char *err = NULL;
  sl_lcall_t c = {.ref = vm->ref_set_lua_path, .push = push_paths, .arg = (void *)o->lua_path};
  if (sl_lvm_pcall(vm, &c, &err) != 0) {
    sl_error("lua: %s", err);
    free(err);
  }
}

/* A pool worker's VM gets its parent's limits and paths. */
static void spawn_hook(sl_worker_t *w, const sl_worker_t *parent) {
  const sl_lua_t *p = parent->slot[SL_SLOT_LUA];
  if (!p) return;
  sl_lua_opts_t o = {.max_memory = p->max_memory, .max_steps = p->max_steps, .max_time_ms = p->max_time_ms,
                     .lua_path = p->lua_path};
  sl_lua_configure(w, &o);
}

/* ... and runs on the worker's thread: its guard watches that one. */
static void thread_hook(sl_worker_t *w) {
  sl_lua_t *vm = w->slot[SL_SLOT_LUA];
  if (vm) sl_lguard_rebind(&vm->guard);
}

static void __attribute__((constructor)) register_spawn_hook(void) {
  sl_worker_on_spawn(spawn_hook);
  sl_worker_on_thread(thread_hook);
}

/* ---- the `lua:` section ---- */

static const sl_field_t lua_fields[] = {
  {"lua_path", SL_F_STRLIST, "[]", 0,
   "Directories `require()` may load modules from (relative to the config file). Nothing else is reachable.",
   NULL, NULL},
  {"max_memory", SL_F_SIZE, "256MiB", 0,
   "Memory cap of each worker's Lua VM (at least 1MiB, which lint checks). A script that allocates "
   "beyond it fails its message (\"not enough memory\") and the host keeps running; so does the host's "
   "own work in the VM (compiling, calling a script) when it meets the cap.", NULL, NULL},
  {"max_steps", SL_F_INT, "10000000", 0,
   "Step budget of one script call (one message, or one batch for `process_batch`, or one check or "
   "`${! }` interpolation): every loop iteration, `goto` to a label and function call spends one step. A "
   "call over budget fails its message with \"instruction budget exceeded\", even if the script catches "
   "that error with `pcall`.", NULL, NULL},
  {"max_time", SL_F_DURATION, "1s", 0,
   "Time one script call may run, counted on its thread's CPU clock: time a `lua` processor's run spends "
   "yielded to the event loop or waiting for a call, and time a loaded machine or a throttled container "
   "keeps the thread off the CPU, do not count (a call is stopped once both its CPU time and the wall "
   "time since it began are over). A call over it fails its message with \"time budget exceeded\", even if the "
   "script catches that error, and the worker moves on: a watchdog thread stops interpreted code at its "
   "next instruction, compiled code at its next loop iteration or call, and pattern matching "
   "(`string.find`, `match`, `gmatch`, `gsub`) within its loop. See `sluice doc lua` for what is bounded "
   "and how.", NULL, NULL},
  {0}};

static int lua_section_check(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  (void)root;
  const sl_cnode_t *mem = sl_cnode_get(node, "max_memory");
  int64_t v = sl_conf_size(node, "max_memory", SL_LUA_DEFAULT_MEMORY);
  if (mem && v < SL_LUA_MIN_MEMORY) {
    sl_diag_add(d, mem, "max_memory", "%lld bytes cannot hold a Lua VM: the minimum is %lld MiB",
                (long long)v, SL_LUA_MIN_MEMORY >> 20);
    return 1;
  }
  return 0;
}

static int lua_section_apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)d;
  sl_lua_opts_t o = {.max_memory = sl_conf_size(node, "max_memory", 0),
                     .max_steps = sl_conf_int(node, "max_steps", 0),
                     .max_time_ms = sl_conf_duration_ms(node, "max_time", 0)};
  const sl_cnode_t *paths = sl_cnode_get(node, "lua_path");
  char *joined = sl_xstrdup("");
  for (uint32_t i = 0; paths && paths->type == SL_CN_SEQ && i < paths->n; i++) {
    char *abs = sl_conf_path(node->file, paths->items[i]->str);
    char *next = sl_xasprintf("%s%s%s", joined, *joined ? ";" : "", abs);
    free(abs);
    free(joined);
    joined = next;
  }
  o.lua_path = joined;
  sl_lua_configure(w, &o);
  free(joined);
  return 0;
}

static const sl_section_t lua_section = {
  .name = "lua",
  .desc = "Limits and module path of the Lua VMs (one per worker) that run `lua` processors, "
          "`generate` mappings, checks and `${! }` interpolations.",
  .fields = lua_fields,
  .apply = lua_section_apply,
  .check = lua_section_check,
};
SL_REGISTER_SECTION(lua_section)
