/* Config trees as JSON: for the canonical form reloads compare, the streams
 * API's answers and `sluice test`'s json_content / json_equals. Unquoted
 * scalars that read as YAML booleans, nulls or numbers become those JSON
 * types; everything else is a string.
 * Ownership: the caller owns the returned reference (json_decref). */
#ifndef SL_CONF_JSON_H
#define SL_CONF_JSON_H
#include "conf.h"
#include <jansson.h>

json_t *sl_cnode_to_json(const sl_cnode_t *n);

#endif
