/* Debounced watch of one file (or directory): cb runs once changes have been
 * quiet for debounce_ms. The file's directory is watched, so editors that
 * save by writing a new file and renaming it over the old one are seen too.
 * Ownership: the caller frees the watch with sl_fswatch_free (handles close
 * on the loop; cb never runs after it). cb runs on the loop. */
#ifndef SL_FSWATCH_H
#define SL_FSWATCH_H
#include <stdint.h>
#include <uv.h>

typedef struct sl_fswatch sl_fswatch_t;

/* NULL (logged) when the directory cannot be watched. */
sl_fswatch_t *sl_fswatch_new(uv_loop_t *loop, const char *path, uint64_t debounce_ms, void (*cb)(void *arg),
                             void *arg);
void sl_fswatch_free(sl_fswatch_t *w);

#endif
