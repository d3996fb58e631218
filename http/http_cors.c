#include "http_cors.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *join(const sl_cnode_t *list, const char *fallback) {
  if (!list || list->type != SL_CN_SEQ || !list->n) return sl_xstrdup(fallback);
  size_t len = 0;
  for (uint32_t i = 0; i < list->n; i++) len += list->items[i]->len + 2;
  char *o = sl_xcalloc(1, len + 1);
  for (uint32_t i = 0; i < list->n; i++) {
    if (i) strcat(o, ", ");
    strcat(o, list->items[i]->str);
  }
  return o;
}

void sl_cors_configure(sl_cors_t *c, const sl_cnode_t *node) {
  sl_cors_free(c);
  const sl_cnode_t *o = sl_cnode_get(node, "allowed_origins");
  c->origins = sl_xcalloc(o && o->n ? o->n : 1, sizeof(char *));
  for (uint32_t i = 0; o && o->type == SL_CN_SEQ && i < o->n; i++) {
    /* Origins compare without a trailing slash, as browsers send them. */
    size_t l = o->items[i]->len;
    while (l > 1 && o->items[i]->str[l - 1] == '/') l--;
    c->origins[c->n++] = sl_xstrndup(o->items[i]->str, l);
  }
  c->methods = join(sl_cnode_get(node, "allowed_methods"), "GET, HEAD, POST, PUT, PATCH, DELETE");
  c->headers = join(sl_cnode_get(node, "allowed_headers"), "Content-Type, Authorization, X-Request-Id");
  c->max_age_s = sl_conf_duration_ms(node, "max_age", 600000) / 1000;
}

void sl_cors_free(sl_cors_t *c) {
  for (unsigned i = 0; i < c->n; i++) free(c->origins[i]);
  free(c->origins);
  free(c->methods);
  free(c->headers);
  memset(c, 0, sizeof(*c));
}

const char *sl_cors_allow(const sl_cors_t *c, const char *origin) {
  if (!origin || !*origin) return NULL;
  for (unsigned i = 0; i < c->n; i++) {
    if (strcmp(c->origins[i], "*") == 0) return "*";
    if (strcmp(c->origins[i], origin) == 0) return origin;
  }
  return NULL;
}

void sl_cors_preflight(const sl_cors_t *c, const char *allow, sl_kvlist_t *h) {
  char age[32];
  snprintf(age, sizeof age, "%lld", (long long)c->max_age_s);
  sl_kv_add(h, "Access-Control-Allow-Origin", allow, strlen(allow));
  sl_kv_add(h, "Access-Control-Allow-Methods", c->methods, strlen(c->methods));
  sl_kv_add(h, "Access-Control-Allow-Headers", c->headers, strlen(c->headers));
  sl_kv_add(h, "Access-Control-Max-Age", age, strlen(age));
  sl_kv_add(h, "Vary", "Origin", 6);
}
