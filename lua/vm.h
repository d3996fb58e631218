/* Internals shared by the Lua host's files (not for components: use lhost.h).
 * Ownership: the VM belongs to its worker slot (or the process, for lint). */
#ifndef SL_LUA_VM_H
#define SL_LUA_VM_H
#include "lhost.h"
#include <lua.h>

struct sl_lua {
  lua_State *L;
  size_t used;               /* bytes allocated by the VM */
  int limited;               /* max_memory enforced (off while the runtime loads) */
  int emergency;             /* a request was refused: host code may use the reserve */
  int64_t max_memory, max_steps;
  /* registry refs of runtime.lua's entry points */
  int ref_run, ref_eval, ref_compile_inline, ref_compile_expr, ref_compile_module, ref_release, ref_set_lua_path;
};

/* What one script run keeps: the run loop's out list and messages it created.
 * Lives on the C stack for the duration of sl_lscript_run. */
typedef struct sl_lrun {
  sl_batch_t *in;
  sl_msg_t **out; uint32_t nout, cap;
  sl_msg_t **created; uint32_t ncreated, ccap;
} sl_lrun_t;

/* Compiles through a runtime entry point; returns the script id or 0 with *err. */
int sl_lvm_compile(sl_lua_t *vm, int ref, const char *a, const char *chunk, int line, const char *kind, char **err);
void sl_lvm_release(sl_lua_t *vm, int id);

#endif
