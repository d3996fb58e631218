/* The per-worker LuaJIT VM: a memory-capped allocator, the embedded runtime
 * (lua/runtime.lua, lua/budget.lua), and the `lua:` config section. */
#include "vm.h"
#include "embedded.h"
#include "../core/log.h"
#include "../core/section.h"
#include "../core/xalloc.h"
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define SL_LUA_DEFAULT_MEMORY (256LL << 20)
#define SL_LUA_DEFAULT_STEPS 10000000LL

/* Refuses growth beyond the VM's limit; Lua turns the NULL into a "not enough
 * memory" error that the run loop's pcall flags on the message. After a
 * refusal the host's own error handling may use a reserve above the limit
 * until a collection brings the VM back under it. */
#define SL_LUA_RESERVE (16u << 20)

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  sl_lua_t *vm = ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    free(ptr);
    vm->used -= osize;
    if (vm->emergency && vm->used < (size_t)vm->max_memory) vm->emergency = 0;
    return NULL;
  }
  if (vm->limited && nsize > osize) {
    size_t limit = (size_t)vm->max_memory + (vm->emergency ? SL_LUA_RESERVE : 0);
    if (vm->used + (nsize - osize) > limit) {
      vm->emergency = 1;
      return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  vm->used = vm->used - osize + nsize;
  return p;
}

static int at_panic(lua_State *L) {
  sl_error("Lua VM panic: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  abort();
}

static const sl_embedded_t *embedded(const char *name) {
  for (const sl_embedded_t *e = sl_embedded_lua; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

/* Loads an embedded chunk and calls it with one argument; leaves its result. */
static int load_embedded(lua_State *L, const char *name, int nargs) {
  const sl_embedded_t *e = embedded(name);
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

static sl_lua_t *vm_new(void) {
  sl_lua_t *vm = sl_xcalloc(1, sizeof(*vm));
  vm->max_memory = SL_LUA_DEFAULT_MEMORY;
  vm->max_steps = SL_LUA_DEFAULT_STEPS;
  lua_State *L = lua_newstate(lua_alloc, vm);
  if (!L) {
    sl_error("cannot create a Lua VM");
    abort();
  }
  vm->L = L;
  lua_atpanic(L, at_panic);
  luaL_openlibs(L);
  /* lua-cjson is Debian's module; found on the default cpath. */
  lua_getglobal(L, "require");
  lua_pushstring(L, "cjson");
  if (lua_pcall(L, 1, 0, 0) != 0) {
    sl_error("cannot load lua-cjson (apt-get install lua-cjson): %s", lua_tostring(L, -1));
    abort();
  }
  if (load_embedded(L, "lua.budget", 0) != 0 || load_embedded(L, "lua.runtime", 1) != 0) abort();
  int rt = lua_gettop(L);
  vm->ref_run = field_ref(L, rt, "run");
  vm->ref_eval = field_ref(L, rt, "eval");
  vm->ref_compile_inline = field_ref(L, rt, "compile_inline");
  vm->ref_compile_expr = field_ref(L, rt, "compile_expr");
  vm->ref_compile_module = field_ref(L, rt, "compile_module");
  vm->ref_release = field_ref(L, rt, "release");
  vm->ref_set_lua_path = field_ref(L, rt, "set_lua_path");
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0);
  vm->limited = 1;
  return vm;
}

static void vm_free(void *p) {
  sl_lua_t *vm = p;
  lua_close(vm->L);
  free(vm);
}

static sl_lua_t *g_lint_vm;

static void lint_vm_free(void) {
  vm_free(g_lint_vm);
  g_lint_vm = NULL;
}

sl_lua_t *sl_lua_get(sl_worker_t *w) {
  if (!w) {
    if (!g_lint_vm) {
      g_lint_vm = vm_new();
      atexit(lint_vm_free);
    }
    return g_lint_vm;
  }
  if (!w->slot[SL_SLOT_LUA]) {
    w->slot[SL_SLOT_LUA] = vm_new();
    w->slot_free[SL_SLOT_LUA] = vm_free;
  }
  return w->slot[SL_SLOT_LUA];
}

void sl_lua_configure(sl_worker_t *w, const sl_lua_opts_t *o) {
  sl_lua_t *vm = sl_lua_get(w);
  vm->max_memory = o->max_memory > 0 ? o->max_memory : SL_LUA_DEFAULT_MEMORY;
  vm->max_steps = o->max_steps > 0 ? o->max_steps : SL_LUA_DEFAULT_STEPS;
  lua_State *L = vm->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_set_lua_path);
  lua_newtable(L);
  int n = 0;
  for (const char *p = o->lua_path; p && *p;) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len) {
      lua_pushlstring(L, p, len);
      lua_rawseti(L, -2, ++n);
    }
    p += len + (end ? 1 : 0);
  }
  if (lua_pcall(L, 1, 0, 0) != 0) {
    sl_error("lua: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

/* ---- the `lua:` section ---- */

static const sl_field_t lua_fields[] = {
  {"lua_path", SL_F_STRLIST, "[]", 0,
   "Directories `require()` may load modules from (relative to the config file). Nothing else is reachable.",
   NULL, NULL},
  {"max_memory", SL_F_SIZE, "256MiB", 0,
   "Memory cap of each worker's Lua VM. A script that allocates beyond it fails its message "
   "(\"not enough memory\") and the host keeps running.", NULL, NULL},
  {"max_steps", SL_F_INT, "10000000", 0,
   "Step budget of one script call (one message, or one batch for `process_batch`): every loop iteration, "
   "`goto` to a label and function call spends one step. A call over budget fails its message with "
   "\"instruction budget exceeded\".", NULL, NULL},
  {0}};

static int lua_section_apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)d;
  sl_lua_opts_t o = {.max_memory = sl_conf_size(node, "max_memory", 0),
                     .max_steps = sl_conf_int(node, "max_steps", 0)};
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
};
SL_REGISTER_SECTION(lua_section)
