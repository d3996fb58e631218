/* Publish bodies of the streams API: {"event","data","partition_key",
 * "headers"} or {"events": [...]}, checked and turned into records whose
 * data and headers are the body's own bytes.
 * Ownership: the records point into the body (keep it alive while they are
 * used) and into strings the sl_pubs_t owns (sl_pubs_free). */
#ifndef SL_STORE_PUB_H
#define SL_STORE_PUB_H
#include "streams.h"

typedef struct sl_pubs {
  sl_pub_t *recs;
  size_t n;
  int batch;                 /* the {"events": [...]} form */
  char **owned;
} sl_pubs_t;

/* 0, or -1 with *err (caller frees) saying what is wrong, for a 400. The
 * body must be NUL-terminated after len bytes. */
int sl_pub_parse(const char *body, size_t len, sl_pubs_t *out, char **err);
void sl_pubs_free(sl_pubs_t *p);

#endif
