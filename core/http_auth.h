/* Authentication of HTTP requests (JWT, API keys) for the server's routes.
 * Ownership: whoever creates an auth (the http section, a component) frees
 * it; routes only point at it. */
#ifndef SL_HTTP_AUTH_H
#define SL_HTTP_AUTH_H
#include "http.h"
#include "spec.h"

typedef struct sl_http_auth sl_http_auth_t;

/* The fields of an `auth:` block, shared by the http section and components. */
extern const sl_field_t sl_http_auth_fields[];

/* From a validated `auth:` node; NULL when it configures nothing or on error (diag). */
sl_http_auth_t *sl_http_auth_new(const sl_cnode_t *node, const char *config_file, sl_diags_t *d);
void sl_http_auth_free(sl_http_auth_t *a);
/* 0: r may go on (r->user, r->jwt filled). -1: r was answered 401/403. */
int sl_http_auth_check(const sl_http_auth_t *a, sl_http_req_t *r);
/* Does this request header (lower-cased name) or query parameter carry a
 * credential: `Authorization`, `Proxy-Authorization`, `Cookie`, `X-API-Key`,
 * `api_key`, `access_token`, or a key header or parameter an `auth:` block of
 * this process names? Such values never leave the request context. */
int sl_http_auth_secret_header(const char *name);
int sl_http_auth_secret_query(const char *name);

#endif
