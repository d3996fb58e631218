/* Who may do what on the streams API (`store.access`): scopes (read, write)
 * per user or from the JWT claim of http.auth.scope_claim, and which streams
 * and consumer names a user who is not an admin (http.auth.admin) may touch. Checked at the API's entry, before a
 * backend looks anything up, so REST, SSE and WebSocket paths and both
 * backends obey the same rules.
 * Ownership: the store API's route owns the access rules (freed with its
 * worker); a request points at them (r->policy) while a handler runs. */
#ifndef SL_STORE_ACCESS_H
#define SL_STORE_ACCESS_H
#include "core/spec.h"
#include "http/http.h"
#include <jansson.h>

typedef struct sl_store_access sl_store_access_t;

/* The fields of `store.access`. */
extern const sl_field_t sl_store_access_fields[];

/* From a validated `store.access` node (NULL: the defaults). */
sl_store_access_t *sl_store_access_new(const sl_cnode_t *node);
void sl_store_access_free(sl_store_access_t *a);
/* What lint checks beyond types: patterns, and `http.auth` being there to say
 * who asks (root: the whole config). Returns the number of errors added. */
int sl_store_access_lint(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d);

/* May r do what its path under /stream/ asks (seg[0..n-1])? 0: yes, and
 * r->policy is set for the handler; -1: answered 403. A request that passed
 * no auth (the server has none) may do everything. */
int sl_store_access_check(const sl_store_access_t *a, sl_http_req_t *r, char **seg, int n);
/* For listings: may r see this stream, this subscriber or group name? */
int sl_api_may_see_stream(const sl_http_req_t *r, const char *stream);
int sl_api_may_see_consumer(const sl_http_req_t *r, const char *name);
/* Drops from a JSON array the consumer names r may not see: strings, or
 * objects naming one under key (NULL for strings). Not an array: nothing. */
void sl_api_keep_consumers(const sl_http_req_t *r, json_t *list, const char *key);

#endif
