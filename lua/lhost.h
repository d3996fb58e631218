/* The LuaJIT host: one sandboxed VM per worker, compiled scripts, checks and
 * ${! } interpolations. Everything runs on the worker's loop thread.
 * Ownership: sl_lua_get creates the VM on first use and stores it in the
 * worker's SL_SLOT_LUA (freed with the worker); scripts, checks and interps are
 * owned by their component and freed with the matching *_free. */
#ifndef SL_LHOST_H
#define SL_LHOST_H
#include "core/conf.h"
#include "core/msg.h"
#include "core/worker.h"

typedef struct sl_lua sl_lua_t;
typedef struct sl_lfaillog sl_lfaillog_t;   /* lua/faillog.h */

typedef struct sl_lua_opts {
  int64_t max_memory;        /* bytes per VM, 0 = default (256 MiB) */
  int64_t max_steps;         /* per call budget (loop iterations, gotos, calls), 0 = default */
  int64_t max_time_ms;       /* per call wall-clock budget, 0 = default (1 s) */
  const char *lua_path;      /* ';'-separated directories require() may read, NULL = none */
} sl_lua_opts_t;

/* The worker's VM, created on first use with opts from the config's `lua:`
 * section (sl_lua_configure before first use). NULL worker = lint VM (shared). */
sl_lua_t *sl_lua_get(sl_worker_t *w);
void sl_lua_configure(sl_worker_t *w, const sl_lua_opts_t *opts);
/* The process is about to exit: VMs freed from now on leave their objects
 * to the exit (release builds; sanitizer builds still free every one). */
void sl_lua_exiting(void);

/* A script: inline processor body (`this`, `meta`, `ctx`, ... in scope) or a
 * module file with process(msg, ctx) / process_batch(batch, ctx).
 * chunk names errors ("config.yaml:12"); line_offset maps line 1 of code. */
typedef struct sl_lscript sl_lscript_t;
sl_lscript_t *sl_lscript_inline(sl_lua_t *L, const char *code, const char *chunk, int line_offset, char **err);
/* A file already read (a reload reads off the loop thread). Borrowed. */
typedef struct sl_lsource {
  const char *path;
  const char *data;          /* NULL: could not be read, error says why */
  size_t len;
  const char *error;
} sl_lsource_t;
/* A module's top level runs in a fresh environment under the step budget.
 * owner (may be NULL) is told of each file the module requires (lua/module.h).
 * With prev (a running version of the same file), returns prev itself when
 * neither the file nor anything it required has changed. pre (n entries):
 * files already read, used instead of reading them here. */
sl_lscript_t *sl_lscript_module(sl_lua_t *L, const char *path, void *owner, sl_lscript_t *prev,
                                const sl_lsource_t *pre, unsigned n, char **err);
/* Runs the script over every message of b in one C->Lua crossing. Messages the
 * script deletes are removed and freed (acked); failing messages stay and are
 * flagged (sl_msg_set_error with "chunk:line: text"); module scripts may split.
 * seq_base: when non-zero, `i` is in scope as seq_base + index (generate).
 * log (may be NULL) is told of each failure. Runs to the end before returning. */
void sl_lscript_run(sl_lscript_t *s, sl_batch_t *b, uint64_t seq_base, sl_lfaillog_t *log);

/* The same as a job that yields to the loop between time slices, so that a
 * long script does not hold the worker, and whose messages may wait for
 * calls (lua/async.h) while the next ones run: done gets b (as sl_lscript_run
 * leaves it, in the batch's order) when the script is through with every
 * message; looped (may be NULL) when every message has started, so that the
 * owner may start the next batch meanwhile. Returns NULL when done happened
 * before returning; otherwise the job, which the VM resumes on later loop
 * turns (jobs of one VM take turns). The job owns b meanwhile, and frees
 * itself after done. On the lint VM (no loop) it always runs to the end. */
typedef struct sl_ljob sl_ljob_t;
typedef void (*sl_ljob_done_cb)(sl_batch_t *b, void *arg);
typedef struct sl_ljob_opts {
  sl_lfaillog_t *log;        /* told of each failure (may be NULL) */
  int group;                 /* jobs of one group share max_concurrency (sl_ljob_group_new; 0: its own) */
  int max_concurrency;       /* calls in flight at once (0: 1) */
  int64_t timeout_ms;        /* a message's deadline from its first call (0: none) */
  sl_ljob_done_cb done, looped;
  void *arg;
} sl_ljob_opts_t;
sl_ljob_t *sl_lscript_start(sl_lscript_t *s, sl_batch_t *b, const sl_ljob_opts_t *o);
int sl_ljob_group_new(void);
/* Abandons a job: done is not called, the calls it waits for are cancelled,
 * b comes back as the script left it (messages it made are freed). */
sl_batch_t *sl_ljob_cancel(sl_ljob_t *j);
void sl_lscript_free(sl_lscript_t *s);

/* A boolean check such as `this.type == "a"` (switch cases). */
typedef struct sl_lcheck sl_lcheck_t;
sl_lcheck_t *sl_lcheck_compile(sl_lua_t *L, const char *expr, const char *chunk, int line, char **err);
/* 1 true, 0 false, -1 error (err set, caller frees). */
int sl_lcheck_eval(sl_lcheck_t *c, sl_msg_t *m, uint32_t index, char **err);
/* A batch policy's triggers once b's last message joined it (bytes: b's
 * contents): 1 when b is to be formed now. check may be NULL; one that fails
 * flags that message and forms nothing. */
struct sl_batch_policy;
int sl_lcheck_batch_full(const struct sl_batch_policy *p, sl_lcheck_t *check, const sl_batch_t *b, int64_t bytes);
void sl_lcheck_free(sl_lcheck_t *c);

/* Interpolated string: literal text with ${! lua expression } parts. */
typedef struct sl_interp sl_interp_t;
sl_interp_t *sl_interp_compile(sl_lua_t *L, const char *tmpl, const char *chunk, int line, char **err);
int sl_interp_is_static(const sl_interp_t *i);
/* Returns a malloc'd NUL-terminated string (len optional) or NULL with err. */
char *sl_interp_eval(sl_interp_t *i, sl_msg_t *m, uint32_t index, size_t *len, char **err);
void sl_interp_free(sl_interp_t *i);

/* ${NAME} from the environment is refused in Lua code (its text would become
 * code): in a code scalar at all, in a template (interp) inside ${! } or when
 * its value holds "${!". 0, or -1 with a diagnostic at v. The helpers below
 * check it; call it for code compiled some other way. */
int sl_lua_env_check(const sl_cnode_t *v, sl_diags_t *d, const char *key, int interp);

/* Each `cache.<op>("label", ...)` and `redis.call("label", ...)` of Lua code in a config scalar (node[key]
 * is code, or with interp an interpolation) whose label is a literal must name a resource (cache/cache.h,
 * sl_cache_check_name): 0, or the number of errors added at the call's line
 * and column. The field helpers below run it on what they compile. */
int sl_lcache_lint(const sl_cnode_t *code, const char *key, int interp, int lint_only, sl_diags_t *d);

/* Helpers for components: compile a config field with its position. */
sl_lscript_t *sl_lua_script_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key);
sl_interp_t *sl_lua_interp_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key);
sl_lcheck_t *sl_lua_check_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key);
/* A map of interpolated strings (an SL_F_MAP field with SL_INTERP): each
 * name with its template. 0, or -1 with diagnostics; either way the caller
 * frees it with sl_interp_map_free. */
typedef struct sl_interp_map {
  unsigned n;
  char **names;
  sl_interp_t **values;
} sl_interp_map_t;
int sl_lua_interp_map_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key, sl_interp_map_t *out);
void sl_interp_map_free(sl_interp_map_t *m);

#endif
