/* Tyk API definitions (OpenAPI + x-tyk-streaming) as configs: rewrites such
 * a root in place into sluice's shape (streams, http.base_path) before it is
 * validated; a root without x-tyk-streaming is left as it is.
 * Returns the number of errors added to d. */
#ifndef SL_TYK_OPENAPI_H
#define SL_TYK_OPENAPI_H
#include "conf.h"

int sl_tyk_openapi_unwrap(sl_cnode_t *root, sl_diags_t *d);
/* OpenAPI's own top-level keys (NULL-terminated), left aside like any `x-` key. */
extern const char *const sl_openapi_keys[];

#endif
