/* A growing byte buffer kept NUL-terminated after its len bytes (v is
 * NULL until the first put). It keeps its room when len is reset to 0, so
 * a buffer reused for each item grows once (an HTTP connection's parsing
 * buffers, the config's interpolation).
 * Ownership: the caller owns the struct and frees v. Not thread-safe. */
#ifndef SL_SBUF_H
#define SL_SBUF_H
#include <stddef.h>

typedef struct sl_sbuf { char *v; size_t len, cap; } sl_sbuf_t;

void sl_sbuf_put(sl_sbuf_t *b, const void *p, size_t n);   /* appends n bytes and the NUL */

#endif
