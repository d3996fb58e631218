/* Diagnostics: every config problem as `file:line:col: key: message`,
 * printed in file order so a user fixes them top to bottom. */
#include "conf.h"
#include "xalloc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_diag_add(sl_diags_t *d, const sl_cnode_t *at, const char *key, const char *fmt, ...) {
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 8;
    d->v = sl_xrealloc(d->v, d->cap * sizeof(*d->v));
  }
  sl_diag_t *g = &d->v[d->n++];
  memset(g, 0, sizeof(*g));
  g->file = sl_xstrdup(at && at->file ? at->file : "<config>");
  g->line = at ? at->line : 0;
  g->col = at ? at->col : 0;
  g->key = key && *key ? sl_xstrdup(key) : NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&g->msg, fmt, ap) < 0) g->msg = sl_xstrdup(fmt);
  va_end(ap);
}

static int by_position(const void *a, const void *b) {
  const sl_diag_t *x = *(const sl_diag_t *const *)a, *y = *(const sl_diag_t *const *)b;
  int c = strcmp(x->file, y->file);
  if (c) return c;
  if (x->line != y->line) return x->line - y->line;
  if (x->col != y->col) return x->col - y->col;
  return x < y ? -1 : x > y;
}

void sl_diag_print(const sl_diags_t *d, void *stream) {
  FILE *f = stream;
  const sl_diag_t **order = sl_xcalloc(d->n ? d->n : 1, sizeof(*order));
  for (uint32_t i = 0; i < d->n; i++) order[i] = &d->v[i];
  qsort(order, d->n, sizeof(*order), by_position);
  for (uint32_t i = 0; i < d->n; i++) {
    const sl_diag_t *g = order[i];
    /* The same problem reached twice (e.g. a file merged into another) is shown once. */
    if (i && g->line == order[i - 1]->line && g->col == order[i - 1]->col && !strcmp(g->file, order[i - 1]->file) &&
        !strcmp(g->msg, order[i - 1]->msg))
      continue;
    if (g->key) fprintf(f, "%s:%d:%d: %s: %s\n", g->file, g->line, g->col, g->key, g->msg);
    else fprintf(f, "%s:%d:%d: %s\n", g->file, g->line, g->col, g->msg);
  }
  free(order);
}

void sl_diags_free(sl_diags_t *d) {
  for (uint32_t i = 0; i < d->n; i++) {
    free(d->v[i].file);
    free(d->v[i].key);
    free(d->v[i].msg);
  }
  free(d->v);
  memset(d, 0, sizeof(*d));
}
