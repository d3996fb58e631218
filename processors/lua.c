/* `lua` processor: an inline script (the Bloblang replacement) or a module
 * file, run over each batch in one call into the worker's VM. */
#include "../core/component.h"
#include "../core/xalloc.h"
#include "../lua/module.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"code", SL_F_CODE, NULL, 0,
   "Inline Lua run once per message. In scope: `this` (the content decoded as JSON on first use), "
   "`meta` (metadata: `meta.key`, `meta.key = v`, `meta.key = nil`, `meta()` for a copy), `ctx` (the "
   "request context, read-only: `method`, `path`, `remote_addr`, `request_id`, `user`, `query`, "
   "`headers`, `params`, `cookies`, `jwt`; empty without a request), `content()`, `deleted()`, "
   "`uuid_v4()`, `now()`, `json.encode/decode`, `env(name)`, `batch_index()` (0-based), `errored()`, "
   "`error_message()`, `new_message(content)`, `log(level, message, fields)` (a log line naming this "
   "stream and processor; docs/observability.md). Return nothing to keep the message (re-encoded only "
   "if `this` changed), a table or string to replace the content, `deleted()` to drop it. "
   "`error(...)` flags the message as failed with the text and the config file's line.", NULL, NULL},
  {"file", SL_F_STRING, NULL, 0,
   "A Lua module (relative to the config file) returning a table with `process(msg, ctx)` and/or "
   "`process_batch(batch, ctx)`. `msg` has `content()` (alias `bytes()`), `set_content(s)`, `json()`, "
   "`set_json(t)`, `meta` (that message's metadata: `msg.meta.k`, `msg.meta.k = v`), `metadata()` "
   "(a copy), `error()`, `set_error(e)` and `copy()`. `process` returns the message to keep (itself, "
   "or `true`), `nil`, `false` or `deleted()` to drop it, a list of messages to split it "
   "(`msg:copy()`, `new_message(content)`), or a string or table as its new content. "
   "`process_batch` returns nothing to keep the batch as modified, or the list of messages to pass on. "
   "The file is watched and reloaded when it changes (see Hot reload above).",
   NULL, NULL},
  {0}};

typedef struct lua_proc {
  sl_processor_t base;
  sl_lscript_t *script;      /* inline code */
  sl_lmodule_t *module;      /* or a module file */
} lua_proc_t;

static void lp_process(sl_processor_t *p, sl_batch_t *b) {
  lua_proc_t *lp = (lua_proc_t *)p;
  sl_lscript_run(lp->module ? sl_lmodule_script(lp->module) : lp->script, b, 0);
  if (b->n) sl_processor_emit(p, b);
  else sl_batch_free(b);
}

static void lp_destroy(sl_processor_t *p) {
  sl_lscript_free(((lua_proc_t *)p)->script);
  sl_lmodule_close(((lua_proc_t *)p)->module);
  free(p);
}

static const sl_processor_vt vt = {lp_process, NULL, lp_destroy};
static const sl_spec_t spec;

static void *lp_create(sl_build_t *b, const sl_cnode_t *conf) {
  const sl_cnode_t *code = sl_cnode_get(conf, "code"), *file = sl_cnode_get(conf, "file");
  if (!code == !file) {
    sl_diag_add(b->diags, conf, "lua", "give exactly one of `code` (inline) or `file` (module)");
    return NULL;
  }
  lua_proc_t *lp = sl_xcalloc(1, sizeof(*lp));
  sl_component_init_processor(&lp->base, &vt, &spec, b);
  if (code) {
    lp->script = sl_lua_script_field(b->worker, conf, b->diags, "code");
  } else {
    char *path = sl_build_path(b, file->str);
    char *err = NULL;
    lp->module = sl_lmodule_open(b->worker, path, &err);
    if (!lp->module) {
      sl_diag_add(b->diags, file, "file", "%s", err);
      free(err);
    }
    free(path);
  }
  if (!lp->script && !lp->module) {
    free(lp);
    return NULL;
  }
  return lp;
}

static const sl_spec_t spec = {
  .name = "lua",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Maps, filters and enriches messages with Lua (LuaJIT).",
  .desc =
    "Each batch crosses into the worker's LuaJIT VM once; messages are reached through FFI, and "
    "`this` is decoded only when the script reads it.\n\n"
    "Scripts are sandboxed: no `io`, `os.execute`, `os.exit`, `debug`, `ffi`, bytecode loading or "
    "`getfenv`; `require` only reads modules under the `lua.lua_path` directories. Each call has a "
    "step budget (`lua.max_steps`: loop iterations, gotos and function calls) and each VM a memory "
    "cap (`lua.max_memory`); a script over either fails its message, and the host keeps serving. "
    "JSON goes through lua-cjson: an empty array decodes to an empty table and is re-encoded as `{}`. "
    "A script that only reads `this` keeps the message's bytes; one that only adds new top-level keys "
    "has them appended to the original bytes; any other change re-encodes the object (lua-cjson's key "
    "order). `meta`, `ctx` and `msg.meta` cannot be reached with `rawset`/`rawget`, and a `msg` kept "
    "past the call that received it refuses every use.\n\n"
    "### Hot reload of module files\n\n"
    "A `file` module is loaded once per worker; processors naming the same file share it and its state. "
    "The file and every file it `require`s from `lua.lua_path` (at load or later) are watched through "
    "their directories, so in-place writes, `sed -i`, vim's save and `mv new.lua mod.lua` are all seen; "
    "a burst of changes is coalesced and acted on 50 ms after the last one. The changed file (and what "
    "it requires) is read off the event loop, then loaded in a fresh environment: its top level runs "
    "(under the step budget) and must return a table with `process` or `process_batch`. If it does, the "
    "new version processes every batch from the next one on: a batch is processed by exactly one "
    "version, so none is lost, duplicated or seen by both. If it does not (syntax error, an error raised "
    "at top level, no `process`, the file deleted), the running version stays, and the error with its "
    "file:line is logged (`reload of FILE failed, version N keeps running: FILE:LINE: ...`), kept as "
    "the module's `last_error` in the status (until the file loads again) and counted in `sluice_lua_reload_errors_total{file}`; "
    "successful reloads count in `sluice_lua_reloads_total{file}`. A file whose content (and that of "
    "what it required) is unchanged is not reloaded.\n\n"
    "A new version starts with fresh state: its upvalues and top-level locals are those its top level "
    "makes, and the modules it requires are loaded again for it (not shared with the old version nor "
    "with inline scripts). Anything the old version kept in memory is gone, so keep state that must "
    "survive a reload outside the module (in the message, metadata or a stream). Not watched: the "
    "config file itself (pipeline reload is separate), and a symlinked file whose target changes "
    "without an event in the link's own directory for the link's name (Kubernetes ConfigMap volumes "
    "swap a `..data` link instead).",
  .fields = fields,
  .shorthand = "code",
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - lua: |\n"
    "        if this.type ~= \"order\" then return deleted() end\n"
    "        this.id = uuid_v4()\n"
    "        this.total = this.price * this.qty\n"
    "        meta.kind = \"order\"\n",
  .create = lp_create,
};
SL_REGISTER(spec)
