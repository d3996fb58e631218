/* A Tyk API definition (an OpenAPI document with `x-tyk-streaming`, as Tyk
 * Streams' users keep it in Git) read as a config: its streams are
 * `x-tyk-streaming.streams`, its listen path (`x-tyk-api-gateway.server.
 * listenPath.value`, else the path of the first `servers` URL) becomes
 * `http.base_path`, and the other OpenAPI sections are accepted and left
 * aside. sluice's own top-level keys may sit beside them. */
#include "tyk_openapi.h"
#include "log.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

/* The scalar at a path of map keys, or NULL. */
static const sl_cnode_t *dig(const sl_cnode_t *n, const char *const *keys) {
  for (; n && *keys; keys++) n = n->type == SL_CN_MAP ? sl_cnode_get(n, *keys) : NULL;
  return n && n->type == SL_CN_SCALAR ? n : NULL;
}

/* The path of "http://host:port/stream-demo/", as a node at the URL's place. */
static sl_cnode_t *server_path(const sl_cnode_t *servers) {
  if (!servers || servers->type != SL_CN_SEQ || !servers->n) return NULL;
  static const char *const url[] = {"url", NULL};
  const sl_cnode_t *u = dig(servers->items[0], url);
  const char *s = u ? strstr(u->str, "://") : NULL;
  const char *p = s ? strchr(s + 3, '/') : NULL;
  return p ? sl_cnode_scalar(p, u) : NULL;
}

const char *const sl_openapi_keys[] = {"openapi", "info", "servers", "paths", "components", "security", "tags",
                                       "externalDocs", "webhooks", "jsonSchemaDialect", NULL};

static int is_openapi_key(const char *k) {
  if (!strncmp(k, "x-", 2)) return 1;
  for (const char *const *x = sl_openapi_keys; *x; x++)
    if (!strcmp(k, *x)) return 1;
  return 0;
}

int sl_tyk_openapi_unwrap(sl_cnode_t *root, sl_diags_t *d) {
  sl_cnode_t *ext = sl_cnode_get(root, "x-tyk-streaming");
  if (!ext) return 0;
  if (sl_cnode_get(root, "streams")) {
    sl_diag_add(d, ext, "x-tyk-streaming", "a file holds either `x-tyk-streaming` (a Tyk API definition) or `streams:`");
    return 1;
  }
  sl_cnode_t *streams = ext->type == SL_CN_MAP ? sl_cnode_take(ext, "streams") : NULL;
  if (!streams || streams->type != SL_CN_MAP) {
    sl_diag_add(d, streams ? streams : ext, "x-tyk-streaming.streams", "expected a map of named streams");
    sl_cnode_free(streams);
    return 1;
  }
  if (ext->n) {
    sl_cnode_t at = sl_cnode_key_pos(ext, 0);
    char *key = sl_xasprintf("x-tyk-streaming.%s", ext->keys[0]);
    sl_diag_add(d, &at, key, "unknown field (x-tyk-streaming holds `streams`)");
    free(key);
    sl_cnode_free(streams);
    return 1;
  }
  static const char *const listen[] = {"x-tyk-api-gateway", "server", "listenPath", "value", NULL};
  const sl_cnode_t *lp = dig(root, listen);
  sl_cnode_t *base = lp ? sl_cnode_scalar(lp->str, lp) : server_path(sl_cnode_get(root, "servers"));
  /* What is left of the document is OpenAPI's and Tyk's gateway's own. */
  for (uint32_t i = root->n; i-- > 0;) {
    if (!is_openapi_key(root->keys[i])) continue;
    char *k = sl_xstrdup(root->keys[i]);
    sl_logf(SL_LOG_DEBUG, NULL, "config", "Tyk API definition: section %s left aside", k);
    sl_cnode_free(sl_cnode_take(root, k));
    free(k);
  }
  sl_cnode_map_set(root, "streams", streams);
  if (base && strcmp(base->str, "/") != 0) {
    sl_cnode_t *http = sl_cnode_get(root, "http");
    if (!http) sl_cnode_map_set(root, "http", http = sl_cnode_new(SL_CN_MAP, base));
    if (http->type == SL_CN_MAP && !sl_cnode_get(http, "base_path")) {
      sl_cnode_map_set(http, "base_path", base);
      base = NULL;
    }
  }
  sl_cnode_free(base);
  return 0;
}
