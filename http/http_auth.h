/* Authentication of HTTP requests (JWT, API keys) for the server's routes.
 * Ownership: whoever creates an auth (the http section, a component) frees
 * it; routes only point at it. */
#ifndef SL_HTTP_AUTH_H
#define SL_HTTP_AUTH_H
#include "http.h"
#include "core/spec.h"

typedef struct sl_http_auth sl_http_auth_t;

/* The fields of a component's `auth:` block; the http section's adds who
 * the admins are and where a token's scopes are (admin, scope_claim). */
extern const sl_field_t sl_http_auth_fields[];
extern const sl_field_t sl_http_server_auth_fields[];
/* What lint checks beyond types in the http section's block: admins and
 * scopes need credentials that name users. Returns the number of errors added. */
int sl_http_auth_lint(const sl_cnode_t *node, sl_diags_t *d);

/* From a validated `auth:` node; NULL when it configures nothing or on error (diag). */
sl_http_auth_t *sl_http_auth_new(const sl_cnode_t *node, const char *config_file, sl_diags_t *d);
void sl_http_auth_free(sl_http_auth_t *a);
/* 0: r may go on (r->user, r->jwt filled). -1: r was answered 401/403. */
int sl_http_auth_check(const sl_http_auth_t *a, sl_http_req_t *r);
/* The scope of the control APIs (/admin/status, /admin/reload, /streams) and of stream admins. */
#define SL_SCOPE_ADMIN "admin"
/* Does r, accepted by an auth, hold scope: a word of its token's scope claim
 * (the auth's scope_claim), or, for SL_SCOPE_ADMIN, a user its admin list
 * names? Nothing for a request no auth accepted. */
int sl_http_has_scope(const sl_http_req_t *r, const char *scope);
/* 0 when r may use a control API: no auth guards it (the server has none),
 * or r holds the admin scope. Else r is answered 403 ("user alice may not
 * <what> without the admin scope ...") and -1 returned. */
int sl_http_require_admin(sl_http_req_t *r, const char *what);
/* Calls f(word, arg) on the words of r's JWT claim (a space-separated string,
 * or a list of strings) until it returns nonzero; returns that, or 0. */
int sl_http_claim_words(const sl_http_req_t *r, const char *claim, int (*f)(const char *w, void *arg), void *arg);

/* Does this request header (lower-cased name) or query parameter carry a
 * credential: `Authorization`, `Proxy-Authorization`, `Cookie`, `X-API-Key`,
 * `api_key`, `access_token`, or a key header or parameter an `auth:` block of
 * this process names? Such values never leave the request context. */
int sl_http_auth_secret_header(const char *name);
int sl_http_auth_secret_query(const char *name);

#endif
