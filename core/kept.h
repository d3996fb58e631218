/* The failed writes an output keeps, by batch, until the stream writes the
 * batch again or forgets it: so that a retry sends only what failed.
 * Ownership: a list (an `sl_kept_t *` that starts NULL) owns its nodes; the
 * writes stay the output's: sl_kept_take and sl_kept_pop hand them back. */
#ifndef SL_KEPT_H
#define SL_KEPT_H
#include "component.h"
#include <stdint.h>

typedef struct sl_kept sl_kept_t;

/* Keeps w for b, then reports the failure: cb(out, b, -1, err, arg), with a
 * copy of err (the callback may take w back and free it, err with it). */
void sl_kept_fail(sl_kept_t **list, void *w, sl_output_t *out, sl_batch_t *b, const char *err, sl_write_cb cb,
                  void *arg);
/* As sl_kept_fail, when some messages of b may have been delivered: those
 * whose state[i] (b->n entries, the output's own per-message states) is not
 * `done` were not, which a parent such as `fallback` passes on alone
 * (sl_kept_failed). */
void sl_kept_fail_some(sl_kept_t **list, void *w, const uint8_t *state, uint8_t done, sl_output_t *out,
                       sl_batch_t *b, const char *err, sl_write_cb cb, void *arg);
/* While the failure callback of a write of b runs (on this thread), once:
 * the messages of b that failed as sl_kept_fail_some said; NULL: all of them. */
const uint8_t *sl_kept_failed(const sl_batch_t *b);
/* The write kept for b, out of the list; NULL: b's write did not fail. */
void *sl_kept_take(sl_kept_t **list, const sl_batch_t *b);
/* Any kept write, out of the list; NULL once it is empty (an output's destroy). */
void *sl_kept_pop(sl_kept_t **list);

#endif
