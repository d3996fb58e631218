/* `lua` processor: an inline script (the Bloblang replacement) or a module
 * file, run over each batch in one call into the worker's VM. */
#include "core/component.h"
#include "core/xalloc.h"
#include "lua/faillog.h"
#include "lua/module.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  {"code", SL_F_CODE, NULL, 0,
   "Inline Lua run once per message, with the globals of the Lua API (below; `this`, `meta`, `ctx`, "
   "`content()`, `json`, `http`, `cache`, ...). Return nothing to keep the message (re-encoded only "
   "if `this` changed), a table or string to replace the content, `deleted()` to drop it. "
   "`error(...)` flags the message as failed with the text and the config file's line.", NULL, NULL},
  {"file", SL_F_STRING, NULL, 0,
   "A Lua module (relative to the config file) returning a table with `process(msg, ctx)` and/or "
   "`process_batch(batch, ctx)`. `msg` is a `sluice.message` (its methods are in the Lua API below). "
   "`process` returns the message to keep (itself, "
   "or `true`), `nil`, `false` or `deleted()` to drop it, a list of messages to split it "
   "(`msg:copy()`, `new_message(content)`), or a string or table as its new content. "
   "`process_batch` returns nothing to keep the batch as modified, or the list of messages to pass on. "
   "The file is watched and reloaded when it changes (see Hot reload above).",
   NULL, NULL},
  {"max_concurrency", SL_F_INT, "64", 0,
   "Calls that wait (`http.request`, see Calls that wait) in flight at once across this "
   "processor's messages; a message whose call would exceed it waits for a slot, and the batch's later "
   "messages wait with it. With `pipeline.threads` each worker has its own copy of the processor, and "
   "of this bound.", SL_BOUNDS("1", "100000"), NULL},
  {"timeout", SL_F_DURATION, "30s", 0,
   "Deadline of one message's calls that wait, from its first call: when it passes, the call in flight "
   "is abandoned and the message fails (\"deadline exceeded\"), even if the script catches the error. "
   "Each call has its own timeout too (`http.request`'s `timeout`).", SL_BOUNDS("1ms", ""), NULL},
  {0}};

/* A batch handed to the VM: emitted once it and every batch before it are
 * done, so that order is kept while later batches run and wait. */
typedef struct run {
  sl_batch_t *b;
  sl_ljob_t *job;            /* while it runs */
  int done;
  uint64_t failed;           /* messages it failed (the failure log's count) */
} run_t;

typedef struct lua_proc {
  sl_processor_t base;
  sl_lscript_t *script;      /* inline code */
  sl_lmodule_t *module;      /* or a module file */
  sl_lfaillog_t *log;        /* NULL when only linting */
  sl_ljob_opts_t o;
  int looping;               /* a run has messages not yet started: the next batch waits */
  int in_process;            /* inside lp_process: the chain counts the errors itself */
  int pumping;
  run_t *runs;               /* started, in order */
  uint32_t rhead, rn, rcap;
  sl_batch_t **queue;        /* batches that came meanwhile, in order */
  uint32_t qhead, qn, qcap;
} lua_proc_t;

/* A FIFO of fixed-size items that slides back to the start of its array. */
static void *fifo_push(void *v, uint32_t *head, uint32_t *n, uint32_t *cap, size_t size) {
  char *a = v;
  if (*head + *n == *cap) {
    if (*head) {
      memmove(a, a + *head * size, *n * size);
      *head = 0;
    } else {
      *cap = *cap ? *cap * 2 : 8;
      a = sl_xrealloc(a, *cap * size);
    }
  }
  return a;
}

static run_t *find_run(lua_proc_t *lp, const sl_batch_t *b) {
  for (uint32_t i = 0; i < lp->rn; i++)
    if (lp->runs[lp->rhead + i].b == b) return &lp->runs[lp->rhead + i];
  return NULL;
}

static void pump(lua_proc_t *lp);

static void done(sl_batch_t *b, void *arg) {
  lua_proc_t *lp = arg;
  run_t *r = find_run(lp, b);
  r->done = 1;
  r->job = NULL;
  r->failed = lp->log ? sl_lfaillog_take(lp->log) : 0;
  pump(lp);
}

static void looped(sl_batch_t *b, void *arg) {
  (void)b;
  lua_proc_t *lp = arg;
  lp->looping = 0;
  pump(lp);
}

static void start(lua_proc_t *lp, sl_batch_t *b) {
  lp->runs = fifo_push(lp->runs, &lp->rhead, &lp->rn, &lp->rcap, sizeof(*lp->runs));
  uint32_t at = lp->rhead + lp->rn++;
  lp->runs[at] = (run_t){.b = b};
  lp->looping = 1;
  sl_lscript_t *s = lp->module ? sl_lmodule_script(lp->module, b) : lp->script;
  /* (a queued batch starts when an earlier run ends, outside the chain's
   * call: its job keeps the scope it starts with) */
  sl_scope_save_t scope = sl_processor_scope(&lp->base, b);
  sl_ljob_t *j = sl_lscript_start(s, b, &lp->o);
  sl_processor_scope_end(scope);
  if (j) lp->runs[at].job = j;
}

/* Emits the runs done at the head, and starts queued batches while no run
 * has messages left to start. Runs that yield or wait go on by themselves. */
static void pump(lua_proc_t *lp) {
  if (lp->pumping) return;
  lp->pumping = 1;
  for (;;) {
    if (lp->rn && lp->runs[lp->rhead].done) {
      run_t r = lp->runs[lp->rhead++];
      lp->rn--;
      if (!lp->in_process) lp->base.late_errors = (int64_t)r.failed;
      if (r.b->n) sl_processor_emit(&lp->base, r.b);
      else sl_batch_free(r.b);
      lp->base.late_errors = 0;
    } else if (!lp->looping && lp->qn) {
      lp->qn--;
      start(lp, lp->queue[lp->qhead++]);
    } else {
      break;
    }
  }
  lp->pumping = 0;
}

static void lp_process(sl_processor_t *p, sl_batch_t *b) {
  lua_proc_t *lp = (lua_proc_t *)p;
  lp->queue = fifo_push(lp->queue, &lp->qhead, &lp->qn, &lp->qcap, sizeof(*lp->queue));
  lp->queue[lp->qhead + lp->qn++] = b;
  lp->in_process = 1;
  pump(lp);
  lp->in_process = 0;
}

static void lp_destroy(sl_processor_t *p) {
  lua_proc_t *lp = (lua_proc_t *)p;
  for (uint32_t i = 0; i < lp->rn; i++) {
    run_t *r = &lp->runs[lp->rhead + i];
    sl_batch_free(r->job ? sl_ljob_cancel(r->job) : r->b);
  }
  while (lp->qn--) sl_batch_free(lp->queue[lp->qhead++]);
  free(lp->runs);
  free(lp->queue);
  sl_lfaillog_free(lp->log);
  sl_lscript_free(lp->script);
  sl_lmodule_close(lp->module);
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
  if (b->worker && !b->lint_only) lp->log = sl_lfaillog_new(b->worker->loop, b->stream_name, &lp->base.label);
  lp->o = (sl_ljob_opts_t){.log = lp->log, .group = sl_ljob_group_new(),
                           .max_concurrency = (int)sl_conf_int(conf, "max_concurrency", 64),
                           .timeout_ms = sl_conf_duration_ms(conf, "timeout", 30000),
                           .done = done, .looped = looped, .arg = lp};
  return lp;
}

static const sl_spec_t spec = {
  .name = "lua",
  .kind = SL_KIND_PROCESSOR,
  .pooled = 1,
  .summary = "Maps, filters and enriches messages with Lua (LuaJIT).",
  .desc =
    "Each batch crosses into the worker's LuaJIT VM once; messages are reached through FFI, and "
    "`this` is decoded only when the script reads it.\n\n"
    "Scripts are sandboxed: no `io`, `os.execute`, `os.exit`, `debug`, `ffi`, bytecode loading or "
    "`getfenv`; `require` only reads modules under the `lua.lua_path` directories; `${NAME}` from the "
    "environment is refused in Lua code (its text would become code: `env(\"NAME\")` reads the variable). "
    "JSON goes through lua-cjson, with `[]` kept an array (see `json` below). "
    "A script that only reads `this` keeps the message's bytes; one that only adds new top-level keys "
    "has them appended to the original bytes; any other change re-encodes the object (lua-cjson's key "
    "order). `meta`, `ctx` and `msg.meta` cannot be reached with `rawset`/`rawget`, and a `msg` kept "
    "past the call that received it refuses every use.\n\n"
    "### Caches\n\n"
    "`cache` reaches the resources of `cache_resources:` by label, shared with every other script and "
    "processor of the process and kept across reloads (docs/caches.md). Keys and values are strings (a "
    "number is turned into one; keys may be empty or binary); `ttl` is seconds (`30`, `0.5`) or a duration "
    "(`\"30s\"`), `0` for none, and without it the resource's `default_ttl`; the functions are in the Lua API "
    "below.\n\n"
    "What the cache refuses comes back as a value: `nil, err` (a value larger than the resource's "
    "`max_bytes`, `incr` of a value that is not an integer or would overflow). A call the script gets wrong "
    "(a label no resource has, a key that is a table, a missing value) raises, which fails that message "
    "and no other; a literal label no resource has (`cache.get(\"users\", k)`) is a lint error at the call. On the `memory` backend a call completes at once: about 19 million `cache.get` "
    "per second of CPU (bench/RESULTS.md).\n\n"
    "### What bounds a script\n\n"
    "No script can crash the process or keep its worker: each limit below fails the message it was "
    "processing (a `catch` or `fallback` sees it) and the host goes on with the next one. A call is one "
    "message (or one `process_batch`, one check, one `${! }` part).\n\n"
    "- **Steps** (`lua.max_steps`): user code is instrumented so that every loop iteration, `goto`, "
    "function call and entry into a chunk (chunks made by `load` included) spends a step. The step "
    "function is an upvalue of the compiled chunk, out of the script's reach.\n"
    "- **Time** (`lua.max_time`, 1 s): a watchdog thread times every call. When one is over, it signals the "
    "worker's thread, which installs a count hook (`lua_sethook` is meant for that): interpreted code "
    "stops at its next instruction. LuaJIT runs no hooks inside JIT-compiled traces, so every 16th step "
    "also asks the watchdog: compiled loops and recursion stop at their next step. Pattern matching "
    "(`string.find`, `match`, `gmatch`, `gsub`) is LuaJIT's matcher with a countdown that asks the "
    "watchdog, so a pattern like `.-.-.-.-b` stops too, and a search for a fixed string takes linear "
    "time. What cannot be interrupted is one call of a C function (`string.rep`, `table.concat`, "
    "`json.encode`, ...): its work is bounded by `lua.max_memory`, and a compiled loop of such calls "
    "overruns by at most 16 iterations (a loop that upper-cases 10 MB twice per iteration stops about "
    "160 ms late; plain Lua stops within a few ms). `table.sort` without a comparator on more than 256 elements compares in "
    "Lua, a step per comparison (LuaJIT's quicksort has inputs that take n² comparisons).\n"
    "- **No way around them**: a call over either budget fails its message even when the script "
    "catches the error with `pcall` or `xpcall`; after the first one, every step (and instruction) of "
    "the call raises it again.\n"
    "- **Memory** (`lua.max_memory`): an allocation over the cap fails, in the script or in the host's "
    "own work in the VM (compiling, starting a call), never with more than that message's failure. "
    "LuaJIT starts a collection when its heap has doubled since the last one and never collects before "
    "failing an allocation, so the host runs a full collection whenever the heap has grown by half the "
    "room left below the cap (looked at every 16 steps and after every call): a VM whose live data sits "
    "near the cap collects in proportion to what it allocates, one far below it never "
    "(`sluice_lua_gc_full_total`, `sluice_lua_memory_bytes`). A single allocation larger than the room "
    "left fails even if garbage could have made room; the host then collects at once.\n"
    "- **C stack**: LuaJIT has no limit of its own on calls that nest through C functions (a `gsub` "
    "replacement function, `table.sort`'s comparator or `__lt`, `string.format`'s `__tostring`, "
    "`os.time`'s `__index`, coroutines). They fail with \"stack overflow\" when the worker's C stack "
    "runs low (checked every 16 steps and at every `coroutine.resume`), like plain recursion does at "
    "Lua's own stack limit; `pcall` catches it, as it does Lua's.\n"
    "- **The event loop**: a `lua` processor's run yields to the loop every 10 ms of running (its state "
    "is kept; time spent waiting does not count against `lua.max_time`), so HTTP requests, `/ping` and "
    "the other streams are served while a long script runs; batches that reach the processor "
    "meanwhile wait their turn, in order. A run cannot yield inside a C function's callback (a `gsub` "
    "replacement, a sort comparator, an `xpcall` handler) nor deeper than 8 of its own coroutines: the "
    "loop then waits for the call, at most `lua.max_time`. Checks, `${! }` interpolations and "
    "`generate` mappings do not yield; `lua.max_time` bounds them.\n\n"
    "### Calls that wait\n\n"
    "`http.request`, `http.get` and `http.post` (their arguments and results are in the Lua API below) call "
    "out without holding the worker: the message's coroutine waits while libcurl (driven by the event loop) "
    "performs the request, the run goes on with the batch's next messages, and the script resumes with the "
    "answer, or with `nil, err` when no answer came: the script decides, and an error it throws fails that "
    "message only. Header names and values with control characters, and URLs with them, are refused before "
    "anything is sent. Connections are kept alive and reused per host (one client per worker); TLS checks "
    "peers against the system's CAs; `http_proxy`, `https_proxy` and `no_proxy` are honoured.\n\n"
    "Up to `max_concurrency` calls of this processor are in flight at once; a message whose call would "
    "exceed it waits for a slot, and the batch's later messages wait with it. Batches that arrive while "
    "earlier ones wait start at once, and leave in the order they came, each in its own order (what a "
    "module returns for a message takes that message's place). Waiting does not count against "
    "`lua.max_steps` nor `lua.max_time` (the time a call ran before it waited is not carried over; its "
    "steps are). `timeout` bounds a message's waits from its first call: past it, the call in flight is "
    "abandoned and the message fails with \"deadline exceeded\", even if the script catches the error. "
    "Waits work inside a script's own coroutines and `pcall`. A call where a run cannot wait (a check, a "
    "`${! }` interpolation, a `generate` mapping, `sluice lint`, a C function's callback such as a "
    "`gsub` replacement) raises \"http.request cannot be called here\" and sends nothing. A module "
    "reloaded while calls are in flight keeps each batch on one version: messages that wait finish on "
    "the version they started with.\n\n"
    "### Lua API\n\n"
    "Every global, module and type scripts see, with signatures: `sluice doc lua` prints it after this page, "
    "docs/components/lua-api.md holds it, and `sluice doc lua --format luals` writes lua-language-server "
    "definitions for editors (all from lua/api.lua).\n\n"
    "### Errors and the log\n\n"
    "`error(...)` with a string flags the message with it (and the file:line). Positions are the config "
    "file's lines: inline code is compiled as a chunk of its own, whose name carries the line it starts "
    "on, and every position in an error's text is turned into the file's line (also in what a script "
    "catches with `pcall`, `xpcall` or `coroutine.resume`). A stack overflow at LuaJIT's own limit names the "
    "function that recursed, or the script's first line (the module's function) when the limit is met "
    "entering a function the host calls for it, where the stack that would say more is gone. Any other "
    "error value is "
    "turned into text by `tostring` in a coroutine of its own: a `__tostring` that fails, returns no "
    "string, recurses or yields gives `error with a table value (its __tostring ...)`, on that message "
    "only. Every failed message is logged as a warning naming the stream, the processor's label "
    "(`component`) and the error: the first 5 at once, then one a second per processor (or `generate` "
    "input, whose mapping failures are logged the same way); failures left out "
    "are counted in the next line (`not_logged=N`) or a second later (Benthos logs each processor "
    "failure at debug level, without a limit).\n\n"
    "### Hot reload of module files\n\n"
    "A `file` module is loaded once per worker; processors naming the same file share it and its state. "
    "The file and every file it `require`s from `lua.lua_path` (at load or later) are watched through "
    "their directories, so in-place writes, `sed -i`, vim's save and `mv new.lua mod.lua` are all seen; "
    "a burst of changes is coalesced and acted on 50 ms after the last one. The changed file (and what "
    "it requires) is read off the event loop, then loaded in a fresh environment: its top level runs "
    "(under the step budget) and must return a table with `process` or `process_batch`. If it does, the "
    "new version processes every batch from the next one on: a batch is processed by exactly one "
    "version, so none is lost, duplicated or seen by both. With `pipeline.threads`, the first worker "
    "loads the changed file, and every worker switches at one batch: every batch the stream hands out "
    "after the switch runs the new version (each worker loads it from the same bytes before its first "
    "such batch), none before, so versions never step back in the output. If it does not (syntax error, an error raised "
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
