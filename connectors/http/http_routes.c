#include "http_routes.h"
#include "core/xalloc.h"

const sl_field_t sl_hroute_cors_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Whether browsers of other origins may call.", NULL, NULL},
  {"allowed_origins", SL_F_STRLIST, "[]", 0,
   "Origins allowed to call (`https://app.example.com`), or `*` for any; at least one when enabled.", NULL, NULL},
  {0}};

/* The component's `cors` when enabled, or NULL; -1 with a diag when it
 * cannot apply. */
static int cors_of(sl_build_t *b, const sl_cnode_t *conf, const sl_cnode_t **out) {
  const sl_cnode_t *cors = sl_cnode_get(conf, "cors"), *origins = sl_cnode_get(cors, "allowed_origins");
  *out = NULL;
  if (!sl_conf_bool(cors, "enabled", 0)) return 0;
  if (!*sl_conf_str(conf, "address", "")) {
    sl_diag_add(b->diags, cors, "cors", "applies to a server of this component's own: set `address` (as Benthos "
                "requires), or give the shared server's policy in `http.cors`");
    return -1;
  }
  if (!origins || origins->type != SL_CN_SEQ || !origins->n) {
    sl_diag_add(b->diags, origins ? origins : cors, "allowed_origins",
                "name at least one origin (or `*`) when cors is enabled");
    return -1;
  }
  *out = cors;
  return 0;
}

char *sl_hroute_path(const char *p) {
  if (!p[0]) return sl_xstrdup("");
  return p[0] == '/' ? sl_xstrdup(p) : sl_xasprintf("/%s", p);
}

/* Where a diag about a path points: its field, or the component. */
static const sl_cnode_t *at_of(const sl_cnode_t *conf, const char *key) {
  const sl_cnode_t *n = sl_cnode_get(conf, key);
  return n ? n : conf;
}

void sl_hroutes_remove(sl_worker_t *w, const sl_hroute_t *r, int n) {
  for (int i = 0; i < n; i++)
    if (r[i].path[0]) sl_http_unroute_at(w, r[i].address, r[i].path);
}

int sl_hroutes_add(sl_build_t *b, const sl_cnode_t *conf, const sl_hroute_t *r, int n, void *arg,
                   sl_http_auth_t **auth) {
  *auth = NULL;
  const sl_cnode_t *addr = sl_cnode_get(conf, "address");
  const char *why;
  if (addr && addr->str && *addr->str && sl_parse_address(addr->str, &(struct sockaddr_storage){0}, &why) != 0) {
    sl_diag_add(b->diags, addr, "address", "\"%s\" is not an address to listen on: %s (e.g. 127.0.0.1:4196)",
                addr->str, why);
    return -1;
  }
  const sl_cnode_t *cors;
  if (cors_of(b, conf, &cors) != 0) return -1;
  if (!b->worker) {   /* lint knows the shared server's paths only */
    for (int i = 0; i < n; i++)
      if (r[i].path[0] && !(r[i].address && *r[i].address) &&
          sl_http_lint_route(r[i].path, b->stream_name, b->diags, at_of(conf, r[i].key)))
        return -1;
    return 0;
  }
  int i = 0;
  for (; i < n; i++) {
    if (!r[i].path[0]) continue;
    const sl_cnode_t *at = at_of(conf, r[i].key);
    int rc = r[i].get ? sl_http_route_get_at(b->worker, r[i].address, r[i].path, r[i].h, arg, b->stream_name,
                                             b->diags, at)
                      : sl_http_route_at(b->worker, r[i].address, r[i].path, r[i].methods, r[i].h, arg,
                                         b->stream_name, b->diags, at);
    if (rc != 0) break;
  }
  uint32_t errors = b->diags->n;
  const sl_cnode_t *a = i == n ? sl_cnode_get(conf, "auth") : NULL;
  if (a) *auth = sl_http_auth_new(a, conf->file, b->diags);
  if (i < n || b->diags->n > errors) {
    sl_hroutes_remove(b->worker, r, i);
    sl_http_auth_free(*auth);
    *auth = NULL;
    return -1;
  }
  /* every component on an address of its own sets its policy, off too: a
   * reload that disables cors takes it away */
  if (addr && addr->str && *addr->str) sl_http_cors_at(b->worker, addr->str, cors);
  for (i = 0; *auth && i < n; i++)
    if (r[i].path[0]) sl_http_route_auth_at(b->worker, r[i].address, r[i].path, *auth);
  return 0;
}
