#include "declared.h"
#include "core/spec.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static void forget(sl_declared_t *l) {
  for (unsigned i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* The lists to free at exit: one per resource section. */
enum { MAX_LISTS = 8 };
static sl_declared_t *lists[MAX_LISTS];
static unsigned nlists;

static void forget_all(void) {
  for (unsigned i = 0; i < nlists; i++) forget(lists[i]);
}

unsigned sl_declared_begin(sl_declared_t *l, const sl_cnode_t *node) {
  unsigned k = 0;
  while (k < nlists && lists[k] != l) k++;
  if (k == nlists && nlists < MAX_LISTS) {
    if (!nlists) atexit(forget_all);
    lists[nlists++] = l;
  }
  forget(l);
  unsigned n = node && node->type == SL_CN_SEQ ? node->n : 0;
  l->v = sl_xcalloc(n ? n : 1, sizeof(char *));
  return n;
}

void sl_declared_add(sl_declared_t *l, const sl_cnode_t *label, const char *path, sl_diags_t *d) {
  if (!*label->str) sl_diag_add(d, label, path, "label must not be empty");
  for (unsigned k = 0; *label->str && k < l->n; k++)
    if (!strcmp(l->v[k], label->str)) sl_diag_add(d, label, path, "a second resource labelled \"%s\"", label->str);
  l->v[l->n++] = sl_xstrdup(label->str);
}

int sl_declared_has(const sl_declared_t *l, const char *name, size_t len) {
  for (unsigned k = 0; k < l->n; k++)
    if (strlen(l->v[k]) == len && !memcmp(l->v[k], name, len)) return 1;
  return 0;
}

void sl_declared_missing(const sl_declared_t *l, const sl_cnode_t *at, const char *key, const char *what,
                         const char *section, const char *name, size_t len, sl_diags_t *d) {
  char *text = sl_xstrndup(name, len);
  const char *near = sl_nearest(text, (const char *const *)l->v, l->n);
  if (near) sl_diag_add(d, at, key, "no %s labelled \"%s\" (did you mean \"%s\"?)", what, text, near);
  else sl_diag_add(d, at, key, "no %s labelled \"%s\" in %s", what, text, section);
  free(text);
}
