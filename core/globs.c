/* Name lists with glob patterns, matched by fnmatch(3) without FNM_PATHNAME:
 * `*` also runs over '.' and '/', as names here have no hierarchy. */
#include "globs.h"
#include "xalloc.h"
#include <fnmatch.h>
#include <stdlib.h>

void sl_globs_init(sl_globs_t *g, const sl_cnode_t *seq) {
  g->v = NULL;
  g->n = 0;
  if (!seq || seq->type != SL_CN_SEQ || !seq->n) return;
  g->v = sl_xcalloc(seq->n, sizeof(char *));
  for (uint32_t i = 0; i < seq->n; i++)
    if (seq->items[i]->str) g->v[g->n++] = sl_xstrdup(seq->items[i]->str);
}

int sl_globs_match(const sl_globs_t *g, const char *s, int casefold) {
  for (uint32_t i = 0; i < g->n; i++)
    if (fnmatch(g->v[i], s, casefold ? FNM_CASEFOLD : 0) == 0) return 1;
  return 0;
}

void sl_globs_free(sl_globs_t *g) {
  for (uint32_t i = 0; i < g->n; i++) free(g->v[i]);
  free(g->v);
  g->v = NULL;
  g->n = 0;
}
