/* The request context (`ctx` in Lua) of an HTTP request: method, path,
 * query, headers, params, cookies, user and JWT claims, copied out of the
 * request so that it outlives it. */
#include "http.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static void parse_query(sl_kvlist_t *into, const char *q) {
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', n);
    size_t kl, vl;
    char *k = sl_http_form_decode(q, eq ? (size_t)(eq - q) : n, &kl);
    char *v = eq ? sl_http_form_decode(eq + 1, n - (size_t)(eq - q) - 1, &vl) : (vl = 0, sl_xstrdup(""));
    if (kl) sl_kv_add(into, k, v, vl);
    free(k);
    free(v);
    q += n + (amp ? 1 : 0);
  }
}

static void parse_cookies(sl_kvlist_t *into, const char *h) {
  while (h && *h) {
    while (*h == ' ' || *h == ';') h++;
    const char *semi = strchr(h, ';');
    size_t n = semi ? (size_t)(semi - h) : strlen(h);
    const char *eq = memchr(h, '=', n);
    if (eq && eq > h) {
      char *k = sl_xstrndup(h, (size_t)(eq - h));
      sl_kv_add(into, k, eq + 1, n - (size_t)(eq - h) - 1);
      free(k);
    }
    h += n;
  }
}

sl_ctx_t *sl_http_ctx_new(const sl_http_req_t *r) {
  sl_ctx_t *c = sl_ctx_new();
  sl_ctx_set_strs(c, r->head ? "HEAD" : r->method, r->path, r->remote_addr, r->request_id);
  if (r->user) c->user = sl_xstrdup(r->user);
  sl_kv_copy(&c->jwt, &r->jwt);
  parse_query(&c->query, r->query);
  sl_kv_copy(&c->headers, &r->headers);
  sl_kv_copy(&c->params, &r->params);
  for (uint32_t i = 0; i < r->headers.n; i++)
    if (strcmp(r->headers.v[i].key, "cookie") == 0) parse_cookies(&c->cookies, r->headers.v[i].val);
  return c;
}


char *sl_http_query(const sl_http_req_t *r, const char *name) {
  size_t nl = strlen(name);
  for (const char *q = r->query; q && *q;) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q), l;
    if (n > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') return sl_http_form_decode(q + nl + 1, n - nl - 1, &l);
    if (n == nl && strncmp(q, name, nl) == 0) return sl_xstrdup("");
    q += n + (amp ? 1 : 0);
  }
  return NULL;
}
