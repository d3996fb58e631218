#include "http_route.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

/* Another route may share r's pattern only while r waits for a handover
 * from an outgoing unit, and only one may wait. */
const sl_route_t *sl_routes_add(sl_routes_t *t, const sl_route_t *r) {
  for (unsigned i = 0; i < t->n; i++) {
    const sl_route_t *o = &t->v[i];
    if (o->state == SL_ROUTE_RETIRED || strcmp(o->pattern, r->pattern) != 0) continue;
    if (t->staging && o->outgoing && o->state == SL_ROUTE_LIVE) continue;
    return o;
  }
  t->v = sl_xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
  sl_route_t *c = &t->v[t->n++];
  *c = *r;
  c->pattern = sl_xstrdup(r->pattern);
  c->owner = sl_xstrdup(r->owner ? r->owner : "");
  c->unit = t->unit;
  c->state = t->staging ? SL_ROUTE_STAGED : SL_ROUTE_LIVE;
  c->outgoing = 0;
  if (r->methods) {
    unsigned n = 0;
    while (r->methods[n]) n++;
    c->methods = sl_xcalloc(n + 1, sizeof(char *));
    for (unsigned i = 0; i < n; i++) c->methods[i] = sl_xstrdup(r->methods[i]);
  }
  return NULL;
}

static void route_free(sl_route_t *r) {
  free(r->pattern);
  free(r->owner);
  for (char **m = r->methods; m && *m; m++) free(*m);
  free(r->methods);
}

static int mine(const sl_routes_t *t, const sl_route_t *r, const char *pattern) {
  return strcmp(r->pattern, pattern) == 0 && (!t->unit || r->unit == t->unit);
}

void sl_routes_remove(sl_routes_t *t, const char *pattern) {
  for (unsigned i = 0; i < t->n; i++)
    if (mine(t, &t->v[i], pattern)) {
      route_free(&t->v[i]);
      t->v[i] = t->v[--t->n];
      return;
    }
}

void sl_routes_set_auth(sl_routes_t *t, const char *pattern, const void *auth) {
  for (unsigned i = 0; i < t->n; i++)
    if (mine(t, &t->v[i], pattern)) t->v[i].auth = auth;
}

void sl_routes_mark_outgoing(sl_routes_t *t, uint64_t unit, int on) {
  for (unsigned i = 0; i < t->n; i++)
    if (t->v[i].unit == unit && t->v[i].state == SL_ROUTE_LIVE) t->v[i].outgoing = on;
}

void sl_routes_handover(sl_routes_t *t) {
  for (unsigned i = 0; i < t->n; i++) {
    sl_route_t *r = &t->v[i];
    if (r->state == SL_ROUTE_STAGED) r->state = SL_ROUTE_LIVE;
    else if (r->outgoing) r->state = SL_ROUTE_RETIRED;
    r->outgoing = 0;
  }
}

void sl_routes_free(sl_routes_t *t) {
  for (unsigned i = 0; i < t->n; i++) route_free(&t->v[i]);
  free(t->v);
  t->v = NULL;
  t->n = 0;
}

/* Matches path against pattern segment by segment; returns the number of
 * literal characters matched (for ranking) or -1. */
static int match(const char *pattern, const char *path, sl_kvlist_t *params) {
  size_t plen = strlen(pattern);
  int prefix = plen > 1 && pattern[plen - 1] == '/';
  const char *p = pattern, *s = path;
  int score = 0;
  while (*p) {
    if (*p == '{') {
      const char *close = strchr(p, '}');
      if (!close) return -1;
      const char *end = strchr(s, '/');
      size_t n = end ? (size_t)(end - s) : strlen(s);
      if (n == 0) return -1;
      if (params) {
        char *name = sl_xstrndup(p + 1, (size_t)(close - p - 1));
        sl_kv_add(params, name, s, n);
        free(name);
      }
      s += n;
      p = close + 1;
      continue;
    }
    if (*p != *s) {
      /* "/a/" as a prefix also matches "/a" itself. */
      if (prefix && p[0] == '/' && p[1] == 0 && *s == 0) return score;
      return -1;
    }
    p++;
    s++;
    score++;
  }
  if (*s == 0 || prefix) return score;
  return -1;
}

static int method_allowed(const sl_route_t *r, const char *method) {
  if (!r->methods) return 1;
  for (char **m = r->methods; *m; m++)
    if (strcmp(*m, method) == 0) return 1;
  return 0;
}

const sl_route_t *sl_routes_match(const sl_routes_t *t, const char *method, const char *path, sl_kvlist_t *params,
                                  int *method_ok) {
  const sl_route_t *best = NULL;
  int best_score = -1, best_exact = 0;
  *method_ok = 1;
  for (unsigned i = 0; i < t->n; i++) {
    const sl_route_t *r = &t->v[i];
    if (r->state != SL_ROUTE_LIVE) continue;
    int score = match(r->pattern, path, NULL);
    if (score < 0) continue;
    size_t plen = strlen(r->pattern);
    int exact = !(plen > 1 && r->pattern[plen - 1] == '/');
    if (exact > best_exact || (exact == best_exact && score > best_score)) {
      best = r;
      best_score = score;
      best_exact = exact;
    }
  }
  if (!best) return NULL;
  if (!method_allowed(best, method)) {
    *method_ok = 0;
    return best;
  }
  match(best->pattern, path, params);
  return best;
}
