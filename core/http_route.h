/* Route table of the HTTP server: path patterns with {param} segments and
 * prefix routes, per-method handlers. Owned by the server; strings copied. */
#ifndef SL_HTTP_ROUTE_H
#define SL_HTTP_ROUTE_H
#include "msg.h"

typedef struct sl_route {
  char *pattern;
  char **methods;            /* NULL-terminated; NULL = any */
  void (*handler)(void *req, void *arg);
  void *arg;
  char *owner;               /* who registered it, for conflict messages */
  const void *auth;          /* the route's own auth, or NULL (the server's applies) */
} sl_route_t;

typedef struct sl_routes { sl_route_t *v; unsigned n; } sl_routes_t;

/* Adds a route; returns NULL, or the existing route holding the same pattern. */
const sl_route_t *sl_routes_add(sl_routes_t *t, const sl_route_t *r);
void sl_routes_remove(sl_routes_t *t, const char *pattern);
void sl_routes_free(sl_routes_t *t);

/* Finds the route for path; fills params. *method_ok is 0 when the path
 * matched but not the method (405). Exact patterns win over prefixes, longer
 * prefixes over shorter. */
const sl_route_t *sl_routes_match(const sl_routes_t *t, const char *method, const char *path, sl_kvlist_t *params,
                                  int *method_ok);

#endif
