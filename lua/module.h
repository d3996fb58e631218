/* Module files of `lua` processors, hot-reloaded. A file is loaded once per
 * worker VM and shared (with its state) by the processors that name it. It
 * and every file it requires from lua_path are watched (core/fswatch.h); a
 * change is loaded in a fresh environment with its top level run, and only if
 * that succeeds does the new version replace the old one, between two batches
 * (both run on the worker's loop thread; with pipeline.threads, the first
 * pool worker's instance loads it, and every worker switches at the same
 * batch: sl_lmodule_script). On error the old version keeps
 * running and the error goes to the log, the status and a metric. A new
 * version starts with fresh module state (upvalues, required modules).
 * Ownership: sl_lmodule_open returns a reference that sl_lmodule_close
 * releases; the last release stops the watcher and frees the script. The
 * status JSON belongs to the caller (json_decref). Reloads run on the owning
 * worker's loop; the status may be read from any thread. */
#ifndef SL_LUA_MODULE_H
#define SL_LUA_MODULE_H
#include "lhost.h"
#include <jansson.h>

typedef struct sl_lmodule sl_lmodule_t;

/* NULL worker (lint): compiled on the lint VM, neither watched nor listed. */
sl_lmodule_t *sl_lmodule_open(sl_worker_t *w, const char *path, char **err);
/* The version to run b with (on m's worker). On a stream's own loop a
 * reload replaces it between loop callbacks; on a pool's workers it is the
 * version of the reload epoch b carries (core/pool.h), loaded here first
 * when b is the first batch of that epoch this worker runs: every batch
 * handed out after a reload runs the new version, whichever worker runs it. */
sl_lscript_t *sl_lmodule_script(sl_lmodule_t *m, const sl_batch_t *b);
void sl_lmodule_close(sl_lmodule_t *m);

/* [{file, version (1 = as started), loaded_at (RFC 3339 UTC), last_error
 * ("file:line: message" of the last failed reload; null once the file on disk
 * is what runs again), reloads, errors}] for every module file in use, in
 * load order. */
json_t *sl_lua_modules_status(void);

/* Called by runtime.lua (FFI) when the module owner requires path. */
void sl_lmodule_dep(void *owner, const char *path);

#endif
