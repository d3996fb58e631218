/* What the http_server input and output share: a component's `auth` field,
 * and serving its paths on the worker's shared server with that auth.
 * Ownership: the component owns its routes' strings and the auth that
 * sl_hroutes_add returns (it frees it after sl_hroutes_remove). */
#ifndef SL_HTTP_ROUTES_H
#define SL_HTTP_ROUTES_H
#include "core/component.h"
#include "http/http.h"
#include "http/http_auth.h"

#define SL_HTTP_AUTH_FIELD                                                                        \
  {"auth", SL_F_OBJECT, NULL, 0,                                                                 \
   "Authentication for this component's paths, replacing `http.auth` (see the `http:` section).", \
   NULL, sl_http_auth_fields}

#define SL_HTTP_ADDRESS_FIELD                                                                              \
  {"address", SL_F_STRING, "", 0,                                                                          \
   "host:port of a server of this component's own (Benthos's): its paths are served there, with `http:`'s " \
   "limits but not its TLS, CORS (`cors` here), base_path or auth (the component's `auth` applies), next to `/ping`. "     \
   "Empty: the shared `http:` server.", NULL, NULL}

extern const sl_field_t sl_hroute_cors_fields[];
#define SL_HTTP_CORS_FIELD                                                                                  \
  {"cors", SL_F_OBJECT, NULL, SL_ADVANCED,                                                                  \
   "Cross-origin requests from browsers (Benthos's), on the server of this component's own `address` only " \
   "(the shared server's are `http.cors`): preflights from allowed origins are answered with the "           \
   "`Access-Control-*` headers (methods GET, HEAD, POST, PUT, PATCH, DELETE), answers to them carry "         \
   "`Access-Control-Allow-Origin`; other origins get none. Components sharing an address share one policy: the last one built (or reloaded) sets it.", \
   NULL, sl_hroute_cors_fields}

/* One path of a component: key names its config field; an empty path is
 * not served; get: GET only, else methods (NULL: any); address: served on
 * a server of its own there (sl_http_route_at), NULL or "": the shared one. */
typedef struct sl_hroute {
  const char *key, *path;
  int get;
  const sl_cnode_t *methods;
  sl_http_handler h;
  const char *address;
} sl_hroute_t;

/* "/"-prefixed copy of a configured path ("" stays ""); caller frees. */
char *sl_hroute_path(const char *p);
/* Routes each of the n paths to h(r, arg) on b's worker, then builds conf's
 * `auth` (*auth, NULL when there is none) and sets it on them; without a
 * worker (lint) checks the paths against the other components' instead.
 * 0, or -1 with diags and nothing routed. */
int sl_hroutes_add(sl_build_t *b, const sl_cnode_t *conf, const sl_hroute_t *r, int n, void *arg,
                   sl_http_auth_t **auth);
void sl_hroutes_remove(sl_worker_t *w, const sl_hroute_t *r, int n);

#endif
