/* Which metadata keys (or header names) a component passes on: Benthos's
 * `include_prefixes` and `include_patterns` (POSIX extended regular
 * expressions, unanchored, matched against the whole name's text).
 * Ownership: a filter belongs to its component (sl_metafilter_init /
 * sl_metafilter_free) and owns its strings. */
#ifndef SL_METAFILTER_H
#define SL_METAFILTER_H
#include "conf.h"
#include "spec.h"
#include <regex.h>

/* The two fields, inside the component's own object field. */
#define SL_METAFILTER_FIELDS                                                                                   \
  {"include_prefixes", SL_F_STRLIST, "[]", 0, "Names starting with one of these are included (`\"\"` includes " \
   "all).", NULL, NULL},                                                                                       \
  {"include_patterns", SL_F_STRLIST, "[]", 0, "Names matching one of these regular expressions (POSIX "        \
   "extended, unanchored: `^x-` for a prefix) are included.", NULL, NULL}

typedef struct sl_metafilter {
  char **prefixes;
  unsigned nprefixes;
  regex_t *patterns;
  unsigned npatterns;
} sl_metafilter_t;

/* Reads both fields of obj (may be NULL: the filter includes nothing); -1
 * with a diagnostic at a pattern that does not compile. */
int sl_metafilter_init(sl_metafilter_t *f, const sl_cnode_t *obj, const char *path, sl_diags_t *d);
void sl_metafilter_free(sl_metafilter_t *f);
/* Does the filter include anything at all? */
int sl_metafilter_any(const sl_metafilter_t *f);
/* Is name (len bytes, not NUL-terminated) included? */
int sl_metafilter_match(const sl_metafilter_t *f, const char *name, size_t len);

#endif
