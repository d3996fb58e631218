/* Failed writes kept by batch (kept.h). */
#include "kept.h"
#include "xalloc.h"
#include <stdlib.h>

struct sl_kept {
  sl_kept_t *next;
  const sl_batch_t *b;
  void *w;
};

void sl_kept_fail(sl_kept_t **list, void *w, sl_output_t *out, sl_batch_t *b, const char *err, sl_write_cb cb,
                  void *arg) {
  sl_kept_t *k = sl_xmalloc(sizeof(*k));
  *k = (sl_kept_t){*list, b, w};
  *list = k;
  char *copy = sl_xstrdup(err);
  cb(out, b, -1, copy, arg);
  free(copy);
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
