/* CORS for the HTTP server: which origins may call, and the preflight answer.
 * Ownership: embedded in the server; strings are owned by the struct. */
#ifndef SL_HTTP_CORS_H
#define SL_HTTP_CORS_H
#include "core/conf.h"
#include "core/msg.h"

typedef struct sl_cors {
  char **origins;            /* exact origins; "*" allows any */
  unsigned n;
  char *methods, *headers;   /* comma-joined for the preflight answer */
  int64_t max_age_s;
} sl_cors_t;

void sl_cors_configure(sl_cors_t *c, const sl_cnode_t *node);   /* node may be NULL: CORS off */
void sl_cors_free(sl_cors_t *c);
/* The Access-Control-Allow-Origin value for a request's Origin, or NULL. */
const char *sl_cors_allow(const sl_cors_t *c, const char *origin);
/* Headers of a preflight answer for an allowed origin (appended to h). */
void sl_cors_preflight(const sl_cors_t *c, const char *allow, sl_kvlist_t *h);

#endif
