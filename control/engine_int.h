/* Internals shared by the engine's files: engine.c (load, run, shutdown),
 * reload.c (swapping streams while running), admin.c (/admin/...) and
 * streams_api.c (/streams). Not for components: use engine.h. */
#ifndef SL_ENGINE_INT_H
#define SL_ENGINE_INT_H
#include "engine.h"
#include "scoped.h"
#include "core/fswatch.h"
#include "core/stream.h"
#include <jansson.h>

typedef enum { SL_UNIT_RUNNING, SL_UNIT_DRAINING, SL_UNIT_STOPPED } sl_unit_state_t;

/* One running stream (or request-scoped template) built from one config
 * node. Ownership: the engine; a replaced unit moves to `retired` and is freed
 * once it has drained. */
typedef struct sl_unit {
  struct sl_engine *e;
  uint64_t id;               /* also tags its HTTP routes (http_route.h) */
  char *name;
  char *canon;               /* canonical text of its resolved config: what reloads compare */
  sl_cnode_t *node;          /* its resolved config */
  sl_stream_t *stream;       /* one of stream or scoped */
  sl_scoped_t *scoped;
  sl_unit_state_t state;
  int api;                   /* created over the streams API: a file reload leaves it */
  uint64_t started_ms;       /* loop time */
} sl_unit_t;

struct sl_engine {
  sl_engine_opts_t opts;     /* copied: reloads read the same files */
  sl_cnode_t *root;          /* merged config of the first load (its sections are applied) */
  sl_cnode_t **files; int nfiles;
  sl_worker_t *worker;
  sl_unit_t **units; int nunits;       /* live */
  sl_unit_t **retired; int nretired;   /* replaced or removed, draining */
  uint64_t next_unit;
  int stopping;
  uint64_t stop_at;          /* loop time of the first shutdown signal */
  int exit_code;
  int64_t shutdown_ms;
  int handles_init;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t shutdown_timer;
  struct sl_watchdog *watchdog;   /* the bound of a shutdown when the loop itself is stuck */
  uv_idle_t reaper;          /* frees drained retired units outside their callbacks */
  sl_fswatch_t *watch;       /* -w: the config files */
  /* what /admin/status reports */
  uint64_t version;
  char hash[65];             /* sha256 of the config files' bytes, hex; "" until asked (sl_engine_hash) */
  char *loaded;              /* until then, the bytes loaded: hashing at every start would load
                                libcrypto into every start (core/lazylib.h) */
  size_t loaded_len;
  char bad_hash[65];         /* -w: the content of the last failed reload, not retried as is */
  double loaded_at;          /* unix time of the last applied change */
  char *last_error;          /* the last failed reload's errors, or NULL */
  char *streams_dir;         /* streams API persistence, or NULL */
  struct sl_swap *swap;      /* a change waiting for its new instances to connect */
};

/* Builds a unit from a validated stream node (copied). staging: for a
 * running engine, its routes wait for the handover. NULL with diags. */
sl_unit_t *sl_unit_build(sl_engine_t *e, const sl_cnode_t *node, const char *name, int staging, sl_diags_t *d);
/* Builds node as `sluice lint` does (no worker, nothing started) and drops it:
 * the streams API's dry runs. 0, or -1 with diags. On the loop (the lint VM). */
int sl_unit_lint(const sl_cnode_t *node, const char *name, sl_diags_t *d);
int sl_unit_start(sl_unit_t *u);
void sl_unit_stop(sl_unit_t *u);
void sl_unit_free(sl_unit_t *u);
/* The canonical text of a stream node (caller frees). */
char *sl_unit_canon(const sl_cnode_t *node);
sl_unit_t *sl_engine_unit(const sl_engine_t *e, const char *name);
/* Moves u (already out of the live list) to the retired ones and drains it. */
void sl_engine_retire(sl_engine_t *e, sl_unit_t *u);

/* sha256 (hex, 65 bytes with the NUL) of the config files' bytes. */
void sl_config_hash(const sl_engine_opts_t *o, char *hash);
/* e->hash, computed from the bytes kept at load on the first call. */
const char *sl_engine_hash(sl_engine_t *e);
/* Parses and validates the config files (plus --set); the merged root or
 * NULL with diags. hash (65 bytes, may be NULL) gets their sha256. */
sl_cnode_t *sl_engine_read_config(const sl_engine_opts_t *o, sl_cnode_t ***files, int *nfiles, char *hash,
                                  sl_diags_t *d);

enum { SL_APPLY_SOME, SL_APPLY_ALL, SL_APPLY_FILES };
enum { SL_APPLY_BUSY = -2 };
/* How long a swap waits for new instances to connect before it hands
 * traffic over anyway (logged). */
#define SL_SWAP_CONNECT_MS 10000
/* Runs once traffic has moved to the new instances; changes is borrowed:
 * {added, changed, removed, unchanged}, arrays of names. */
typedef void (*sl_apply_cb)(void *arg, json_t *changes);
/* Makes the live streams match `streams` (a map name -> stream node; a null
 * node removes that name). SL_APPLY_ALL also removes the streams it does not
 * name, SL_APPLY_FILES those it does not name that came from files (a file
 * reload); the others mark what they build as the API's.
 * Unchanged streams are left alone. Changed and added ones are built and
 * started next to the running ones; once they are connected (or after
 * SL_SWAP_CONNECT_MS) their routes go live, replaced and removed streams
 * drain, and cb runs (at once when everything is connected already).
 * Returns 0, -1 with diags (nothing changed, cb not called) or SL_APPLY_BUSY
 * while an earlier change still waits. */
int sl_engine_apply(sl_engine_t *e, const sl_cnode_t *streams, int mode, sl_diags_t *d, sl_apply_cb cb, void *arg);
/* The new instances a waiting swap waits for: [{name, not_ready}], or NULL. */
json_t *sl_engine_applying(const sl_engine_t *e);
/* Finishes a waiting swap now (shutdown). */
void sl_engine_apply_flush(sl_engine_t *e);

/* Reload from the files: 0 and cb(arg, reply) once applied (reply: the
 * changes, restart_required: top-level sections that changed, version,
 * hash), or -1 with diags (nothing changed) or SL_APPLY_BUSY. */
int sl_engine_reload(sl_engine_t *e, sl_diags_t *d, sl_apply_cb cb, void *arg);
/* SIGHUP and -w file watching. */
void sl_reload_start(sl_engine_t *e);
void sl_reload_close(sl_engine_t *e);
/* Every live and retired unit stopped: close down (unless streams mode or -w). */
void sl_engine_check_finished(sl_engine_t *e);

/* Routes /admin/status and /admin/reload (admin.c), /streams (streams_api.c). */
void sl_admin_route(sl_engine_t *e);
/* A unit as /admin/status shows it: state, kind, id, connected, uptime, source. */
json_t *sl_admin_unit_json(const sl_unit_t *u, uint64_t now);
/* GET /admin/live: that and the streams' counters as server-sent events (admin_live.c). */
void sl_admin_live_route(sl_engine_t *e, sl_diags_t *d);
/* A stopping sluice ends every viewer's response with its last chunk (a
 * clean end for curl and EventSource, as the other SSE streams get). */
void sl_admin_live_stop(void);
/* http.console: the browser console's page and runs (control/console.c). */
void sl_console_route(sl_engine_t *e);
int sl_streams_api_route(sl_engine_t *e, sl_diags_t *d);
/* Loads streams_dir/{id}.yaml into the engine (streams mode start). */
int sl_streams_api_load_dir(sl_engine_t *e, sl_diags_t *d);

/* Diags as a JSON array of {file, line, col, key, message}. */
json_t *sl_diags_json(const sl_diags_t *d, uint32_t from);

#endif
