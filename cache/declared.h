/* The labels a resource section (`cache_resources:`, `rate_limit_resources:`)
 * of the config validated last declares: a section's check records them, so
 * that lint, which runs nothing, can still tell a component that names a
 * missing resource, with the nearest label.
 * Ownership: a list belongs to its section's file (a static), and holds
 * copies of the labels until the next reset. */
#ifndef SL_CACHE_DECLARED_H
#define SL_CACHE_DECLARED_H
#include "core/conf.h"
#include <stddef.h>

typedef struct sl_declared {
  char **v;
  unsigned n;
} sl_declared_t;

/* Forgets what the list held and makes room for the items of the section's
 * node (a sequence, or NULL), whose count it returns; the list is freed at
 * exit. */
unsigned sl_declared_begin(sl_declared_t *l, const sl_cnode_t *node);
/* Records the scalar label found under path; a diagnostic when it is empty
 * or declared already. */
void sl_declared_add(sl_declared_t *l, const sl_cnode_t *label, const char *path, sl_diags_t *d);
int sl_declared_has(const sl_declared_t *l, const char *name, size_t len);
/* "no <what> labelled "name" (did you mean ...?)" at `at` under key. */
void sl_declared_missing(const sl_declared_t *l, const sl_cnode_t *at, const char *key, const char *what,
                         const char *section, const char *name, size_t len, sl_diags_t *d);

#endif
