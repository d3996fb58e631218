/* The runtime's driver of a one-message batch (an HTTP request through a
 * `lua` processor) is compiled by LuaJIT: its entry gets a root trace that
 * completes. It ran interpreted when it cast a lightuserdata (NYI) or
 * entered a loop of one turn ("inner loop in root trace"): about 4k
 * instructions a request (bench/RESULTS.md). Seen through jit.attach. */
#include "core/worker.h"
#include "lua/vm.h"
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Remembers the functions whose root traces completed, in __jit_roots. */
static const char *WATCH =
  "local started, roots = {}, {}\n"
  "__jit_roots = roots\n"
  "__jit_watch = function(what, tr, func, pc, otr)\n"
  "  if what == 'start' then started[tr] = otr == nil and func or nil\n"
  "  elseif what == 'stop' and started[tr] then roots[started[tr]] = true end\n"
  "end\n"
  "require('jit').attach(__jit_watch, 'trace')\n";

static void done(sl_batch_t *b, void *arg) {
  (*(int *)arg)++;
  sl_batch_free(b);
}

/* Is the runtime entry behind registry ref among the compiled roots? */
static int compiled(lua_State *L, int ref) {
  lua_getglobal(L, "__jit_roots");
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_rawget(L, -2);
  int yes = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return yes;
}

static void run_ones(const char *code) {
  sl_worker_t *wk = sl_worker_new(0);
  sl_lua_t *vm = sl_lua_get(wk);
  lua_State *L = vm->L;
  CHECK(luaL_dostring(L, WATCH) == 0, "watch: %s", lua_tostring(L, -1));
  char *err = NULL;
  sl_lscript_t *s = sl_lscript_inline(vm, code, "test", 0, &err);
  CHECK(s && !err, "compile: %s", err ? err : "?");
  if (!s) return;
  int n = 0;
  sl_ljob_opts_t o = {.done = done, .arg = &n};
  for (int i = 0; i < 3000; i++) {
    sl_batch_t *b = sl_batch_new(i % 2 ? 1 : 8);   /* arrays at two addresses, as requests have */
    const char *body = "{\"user\":\"ada\",\"n\":42}";
    sl_batch_push(b, sl_msg_new(body, strlen(body)));
    CHECK(sl_lscript_start(s, b, &o) == NULL, "a run of one message that waits for nothing ends at once");
  }
  CHECK(n == 3000, "done %d of 3000", n);
  CHECK(compiled(L, vm->ref_run), "%s: the driver of a one-message batch has no completed root trace", code);
  CHECK(luaL_dostring(L, "require('jit').attach(__jit_watch); __jit_watch, __jit_roots = nil, nil") == 0, "unwatch");
  sl_lscript_free(s);
  sl_worker_free(wk);
}

static void test_empty(void) { run_ones("local x = 1"); }
static void test_mapping(void) { run_ones("this.id = uuid_v4(); this.seen = true"); }

int main(void) {
  RUN(test_empty);
  RUN(test_mapping);
  return check_report("test_lua_jit");
}
