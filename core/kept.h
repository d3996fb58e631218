/* The failed writes an output keeps, by batch, until the stream writes the
 * batch again or forgets it: so that a retry sends only what failed.
 * Ownership: a list (an `sl_kept_t *` that starts NULL) owns its nodes; the
 * writes stay the output's: sl_kept_take and sl_kept_pop hand them back. */
#ifndef SL_KEPT_H
#define SL_KEPT_H
#include "component.h"
#include <stddef.h>
#include <stdint.h>

typedef struct sl_kept sl_kept_t;

/* Keeps w for b, then reports the failure: cb(out, b, -1, err, arg), with a
 * copy of err (the callback may take w back and free it, err with it).
 * Some messages of b may have been delivered: those whose state[i] (b->n
 * entries, the output's own per-message states) is not `done` were not,
 * which a parent such as `fallback` passes on alone (sl_kept_failed);
 * state NULL: none was. */
void sl_kept_fail_some(sl_kept_t **list, void *w, const uint8_t *state, uint8_t done, sl_output_t *out,
                       sl_batch_t *b, const char *err, sl_write_cb cb, void *arg);
/* While the failure callback of a write of b runs (on this thread), once:
 * the messages of b that failed as sl_kept_fail_some said; NULL: all of them. */
const uint8_t *sl_kept_failed(const sl_batch_t *b);
/* The write kept for b, out of the list; NULL: b's write did not fail. */
void *sl_kept_take(sl_kept_t **list, const sl_batch_t *b);
/* Any kept write, out of the list; NULL once it is empty (an output's destroy). */
void *sl_kept_pop(sl_kept_t **list);

/* What every output's write of a batch has, first in its own write struct.
 * Ownership: the write owns state and err. */
typedef struct sl_kwrite {
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  uint8_t *state;            /* the output's own per-message states, b->n of them */
  char *err;                 /* the first failure, NULL while none */
} sl_kwrite_t;

/* The write for an attempt at b, with cb and arg: the one kept for b, its
 * messages not `done` set `unsent` again and its error cleared (a kept
 * write has finished: each message is delivered, failed or never sent),
 * else a new one of size bytes, zeroed but for its states, all `unsent`. */
void *sl_kept_write(sl_kept_t **list, sl_batch_t *b, size_t size, uint8_t unsent, uint8_t done, sl_write_cb cb,
                    void *arg);
/* Keeps w (an sl_kwrite_t first) and reports its failure: sl_kept_fail_some
 * with its own states, batch, error and callback. */
void sl_kept_write_fail(sl_kept_t **list, void *w, uint8_t done, sl_output_t *out);
/* Frees w's state and err, then w: the output frees its own parts first. */
void sl_kept_write_free(void *w);

#endif
