#include "metafilter.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

/* A list field's items (one scalar counts as a list of one). */
static uint32_t items(const sl_cnode_t *l, const sl_cnode_t **out, uint32_t max) {
  if (!l) return 0;
  if (l->type != SL_CN_SEQ) {
    out[0] = l;
    return 1;
  }
  uint32_t n = l->n < max ? l->n : max;
  for (uint32_t i = 0; i < n; i++) out[i] = l->items[i];
  return n;
}

enum { MAX_ITEMS = 64 };

int sl_metafilter_init(sl_metafilter_t *f, const sl_cnode_t *obj, const char *path, sl_diags_t *d) {
  memset(f, 0, sizeof(*f));
  const sl_cnode_t *it[MAX_ITEMS];
  uint32_t n = items(sl_cnode_get(obj, "include_prefixes"), it, MAX_ITEMS);
  f->prefixes = sl_xcalloc(n + 1, sizeof(char *));
  for (uint32_t i = 0; i < n; i++)
    if (it[i]->str) f->prefixes[f->nprefixes++] = sl_xstrdup(it[i]->str);
  n = items(sl_cnode_get(obj, "include_patterns"), it, MAX_ITEMS);
  f->patterns = sl_xcalloc(n + 1, sizeof(regex_t));
  for (uint32_t i = 0; i < n; i++) {
    int rc = regcomp(&f->patterns[f->npatterns], it[i]->str ? it[i]->str : "", REG_EXTENDED | REG_NOSUB);
    if (rc) {
      char why[256];
      regerror(rc, &f->patterns[f->npatterns], why, sizeof why);
      char *key = sl_xasprintf("%s.include_patterns", path);
      sl_diag_add(d, it[i], key, "not a regular expression: %s", why);
      free(key);
      return -1;
    }
    f->npatterns++;
  }
  return 0;
}

void sl_metafilter_free(sl_metafilter_t *f) {
  for (unsigned i = 0; i < f->npatterns; i++) regfree(&f->patterns[i]);
  free(f->patterns);
  for (unsigned i = 0; i < f->nprefixes; i++) free(f->prefixes[i]);
  free(f->prefixes);
  memset(f, 0, sizeof(*f));
}

int sl_metafilter_any(const sl_metafilter_t *f) { return f->nprefixes || f->npatterns; }

int sl_metafilter_match(const sl_metafilter_t *f, const char *name, size_t len) {
  for (unsigned i = 0; i < f->nprefixes; i++) {
    size_t pl = strlen(f->prefixes[i]);
    if (pl <= len && !memcmp(name, f->prefixes[i], pl)) return 1;
  }
  if (!f->npatterns) return 0;
  char buf[256];
  char *s = len < sizeof buf ? buf : sl_xmalloc(len + 1);
  memcpy(s, name, len);
  s[len] = 0;
  int hit = 0;
  for (unsigned i = 0; i < f->npatterns && !hit; i++) hit = regexec(&f->patterns[i], s, 0, NULL, 0) == 0;
  if (s != buf) free(s);
  return hit;
}
