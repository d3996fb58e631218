/* The engine: loads configs, builds streams on workers, runs until every
 * finite stream is done or a signal asks for shutdown within shutdown_timeout. */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H
#include "core/config.h"
#include "core/worker.h"

typedef struct sl_engine sl_engine_t;

typedef struct sl_engine_opts {
  const char *const *files; int nfiles;
  const char *const *sets; int nsets;    /* --set path=value */
  int lint_only;
  int watch;                             /* -w: reload when a config file changes */
  int streams_mode;                      /* `sluice streams`: the /streams API on, no stream needed,
                                            a single-stream file is named after the file */
  const char *streams_dir;               /* --streams-dir (else http.streams_dir) */
  int log_level_fixed;                   /* --log-level given: reloads keep it */
} sl_engine_opts_t;

/* Parse, validate and build everything; prints every diag. NULL on error. */
sl_engine_t *sl_engine_load(const sl_engine_opts_t *o, sl_diags_t *diags);
int sl_engine_run(sl_engine_t *e);      /* returns the process exit code */
void sl_engine_free(sl_engine_t *e);
sl_worker_t *sl_engine_worker(sl_engine_t *e, int i);

/* The merged, validated config root (streams normalised under `streams:`). */
const sl_cnode_t *sl_engine_config(const sl_engine_t *e);

#endif
