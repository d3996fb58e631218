/* Allocation that never returns NULL: out of memory aborts with a message,
 * because every caller would otherwise need the same unrecoverable branch. */
#ifndef SL_XALLOC_H
#define SL_XALLOC_H
#include <stddef.h>
void *sl_xmalloc(size_t n);
void *sl_xcalloc(size_t n, size_t sz);
void *sl_xrealloc(void *p, size_t n);
char *sl_xstrdup(const char *s);
char *sl_xstrndup(const char *s, size_t n);
char *sl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
