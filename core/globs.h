/* Lists of names and glob patterns from the config (`x-trace-*`, `alice.*`):
 * what an allowlist or an access rule matches.
 * Ownership: a list owns copies of its strings; sl_globs_free frees them. */
#ifndef SL_GLOBS_H
#define SL_GLOBS_H
#include "conf.h"
#include <stdint.h>

typedef struct sl_globs { char **v; uint32_t n; } sl_globs_t;

/* Copies the scalars of a validated string list (a NULL node: empty). */
void sl_globs_init(sl_globs_t *g, const sl_cnode_t *seq);
/* Does s match one of them (`*` any run, `?` one character; casefold: ASCII
 * case ignored)? */
int sl_globs_match(const sl_globs_t *g, const char *s, int casefold);
void sl_globs_free(sl_globs_t *g);

#endif
