/* Failed writes kept by batch (kept.h). */
#include "kept.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

struct sl_kept {
  sl_kept_t *next;
  const sl_batch_t *b;
  void *w;
};

/* The failure being reported on this thread: the callback reaches a parent
 * through the stream's retry layer, which has no room for it. A parent's
 * own write that fails inside the callback reports its own, then restores. */
typedef struct report {
  const sl_batch_t *b;
  const uint8_t *failed;
} report_t;
static _Thread_local report_t reporting;

void sl_kept_fail_some(sl_kept_t **list, void *w, const uint8_t *state, uint8_t done, sl_output_t *out,
                       sl_batch_t *b, const char *err, sl_write_cb cb, void *arg) {
  sl_kept_t *k = sl_xmalloc(sizeof(*k));
  *k = (sl_kept_t){*list, b, w};
  *list = k;
  /* Copies: the callback may take w back and free it, err and failed with it. */
  char *copy = sl_xstrdup(err);
  uint8_t *fcopy = NULL;
  if (state && b->n) {
    fcopy = sl_xmalloc(b->n);
    for (uint32_t i = 0; i < b->n; i++) fcopy[i] = state[i] != done;
  }
  report_t outer = reporting;
  reporting = (report_t){b, fcopy};
  cb(out, b, -1, copy, arg);
  reporting = outer;
  free(fcopy);
  free(copy);
}

/* Read once, by the first parent the callback reaches: b may be freed and
 * its address given to another batch before the callback returns. */
const uint8_t *sl_kept_failed(const sl_batch_t *b) {
  if (reporting.b != b) return NULL;
  reporting.b = NULL;
  return reporting.failed;
}

void *sl_kept_take(sl_kept_t **list, const sl_batch_t *b) {
  for (sl_kept_t **pp = list; *pp; pp = &(*pp)->next)
    if ((*pp)->b == b) {
      sl_kept_t *k = *pp;
      void *w = k->w;
      *pp = k->next;
      free(k);
      return w;
    }
  return NULL;
}

void *sl_kept_pop(sl_kept_t **list) { return *list ? sl_kept_take(list, (*list)->b) : NULL; }

void *sl_kept_write(sl_kept_t **list, sl_batch_t *b, size_t size, uint8_t unsent, uint8_t done, sl_write_cb cb,
                    void *arg) {
  sl_kwrite_t *w = sl_kept_take(list, b);
  if (w) {
    for (uint32_t i = 0; i < b->n; i++)
      if (w->state[i] != done) w->state[i] = unsent;
    free(w->err);
    w->err = NULL;
  } else {
    w = sl_xcalloc(1, size);
    w->b = b;
    w->state = sl_xmalloc(b->n ? b->n : 1);
    memset(w->state, unsent, b->n);
  }
  w->cb = cb;
  w->arg = arg;
  return w;
}

void sl_kept_write_fail(sl_kept_t **list, void *w, uint8_t done, sl_output_t *out) {
  sl_kwrite_t *k = w;
  sl_kept_fail_some(list, w, k->state, done, out, k->b, k->err, k->cb, k->arg);
}

void sl_kept_write_free(void *w) {
  sl_kwrite_t *k = w;
  free(k->state);
  free(k->err);
  free(k);
}
