/* Debounced watch of a set of files (or directories), for hot reload: Lua
 * modules and what they require, config files. A file's directory is watched,
 * not the file, so editors and `mv new old` that replace a file by rename are
 * seen; a directory given itself reports any change inside it. A burst of
 * events (a write in chunks, vim's rename dance) gives one callback,
 * debounce_ms after the last event (or 10 debounces after the first, so a
 * file rewritten without pause still reloads).
 * Ownership: the caller frees the watch with sl_fswatch_free (handles close on
 * the loop; cb never runs after it). cb runs on the loop. The handles are
 * unreferenced: a watch never keeps alive a loop whose work is done. */
#ifndef SL_FSWATCH_H
#define SL_FSWATCH_H
#include <stdint.h>
#include <uv.h>

typedef struct sl_fswatch sl_fswatch_t;

/* Watches path; NULL (logged) when its directory cannot be watched. */
sl_fswatch_t *sl_fswatch_new(uv_loop_t *loop, const char *path, uint64_t debounce_ms, void (*cb)(void *arg),
                             void *arg);
/* Watches one more path (no-op if already watched): 0, or a libuv error code
 * (logged; the directory is missing, inotify's watch limit is reached...). */
int sl_fswatch_add(sl_fswatch_t *w, const char *path);
void sl_fswatch_free(sl_fswatch_t *w);

#endif
