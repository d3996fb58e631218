/* A debounced watcher of a set of files, for hot reload (Lua modules; config
 * files later). Each file's directory is watched, not the file: editors and
 * `mv tmp file` replace a file by rename, which a watch on the old inode would
 * miss. A burst of events (a write in several chunks, vim's rename dance)
 * gives one callback, debounce_ms after the last event (or 10 debounces after
 * the first, so a file rewritten without pause still reloads).
 * Ownership: sl_fswatch_new allocates; sl_fswatch_close stops the watcher and
 * frees it once libuv has let go of its handles. cb runs on the loop's thread,
 * never after sl_fswatch_close. The handles are unreferenced: a watcher never
 * keeps a loop alive whose work is done. */
#ifndef SL_FSWATCH_H
#define SL_FSWATCH_H
#include <uv.h>

typedef struct sl_fswatch sl_fswatch_t;
typedef void (*sl_fswatch_cb)(void *arg);

sl_fswatch_t *sl_fswatch_new(uv_loop_t *loop, uint64_t debounce_ms, sl_fswatch_cb cb, void *arg);
/* Adds a file (no-op if already watched). 0, or a libuv error code (say, the
 * directory is missing or inotify's watch limit is reached). */
int sl_fswatch_add(sl_fswatch_t *w, const char *path);
void sl_fswatch_close(sl_fswatch_t *w);

#endif
