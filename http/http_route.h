/* Route table of the HTTP server: path patterns with {param} segments and
 * prefix routes, per-method handlers. Owned by the server; strings copied.
 *
 * Handover (config reload): routes belong to the stream instance ("unit")
 * that was being built or freed when they were added or removed. While a
 * reload builds (t->staging), new routes wait as STAGED and may take a pattern
 * from a unit marked outgoing; sl_routes_handover then makes them live and
 * retires the outgoing units' routes in one step on the loop, so a request
 * meets either the old handler or the new one, never a gap. */
#ifndef SL_HTTP_ROUTE_H
#define SL_HTTP_ROUTE_H
#include "core/msg.h"

enum { SL_ROUTE_LIVE, SL_ROUTE_STAGED, SL_ROUTE_RETIRED };

typedef struct sl_route {
  char *pattern;
  char **methods;            /* NULL-terminated; NULL = any */
  void (*handler)(void *req, void *arg);
  void *arg;
  char *owner;               /* who registered it, for conflict messages */
  const void *auth;          /* the route's own auth, or NULL (the server's applies) */
  uint64_t unit;             /* the stream instance that added it; 0: none */
  int state;                 /* SL_ROUTE_*: only live routes are matched */
  int outgoing;              /* its unit is being replaced or removed */
} sl_route_t;

typedef struct sl_routes {
  sl_route_t *v; unsigned n;
  uint64_t unit;             /* the unit being built or freed now, or 0 */
  int staging;               /* a reload is building: new routes wait for the handover */
} sl_routes_t;

/* Adds a route for t->unit; returns NULL, or the existing route holding the same pattern. */
const sl_route_t *sl_routes_add(sl_routes_t *t, const sl_route_t *r);
/* Removes pattern's route of t->unit (any unit's when t->unit is 0). */
void sl_routes_remove(sl_routes_t *t, const char *pattern);
/* Sets the auth of pattern's route of t->unit. */
void sl_routes_set_auth(sl_routes_t *t, const char *pattern, const void *auth);
void sl_routes_free(sl_routes_t *t);

/* Marks every route of unit as outgoing (on) or not. */
void sl_routes_mark_outgoing(sl_routes_t *t, uint64_t unit, int on);
/* Staged routes go live, outgoing ones retire, marks clear. */
void sl_routes_handover(sl_routes_t *t);

/* Finds the live route for path; fills params. *method_ok is 0 when the path
 * matched but not the method (405). Exact patterns win over prefixes, longer
 * prefixes over shorter. */
const sl_route_t *sl_routes_match(const sl_routes_t *t, const char *method, const char *path, sl_kvlist_t *params,
                                  int *method_ok);

#endif
