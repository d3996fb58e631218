#include "hc_common.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

int sl_hc_init(sl_hc_t *hc, sl_build_t *b, const sl_cnode_t *conf) {
  memset(hc, 0, sizeof(*hc));
  if (sl_hconf_init(&hc->conf, conf, b->diags) != 0) return -1;
  hc->url = sl_lua_interp_field(b->worker, conf, b->diags, "url");
  if (!hc->url) return -1;
  char *err = NULL;
  if (sl_interp_is_static(hc->url)) hc->static_url = sl_interp_eval(hc->url, NULL, 0, NULL, &err);
  free(err);
  const sl_cnode_t *h = sl_cnode_get(conf, "headers");
  if (h && h->type == SL_CN_MAP && h->n) {
    hc->hnames = sl_xcalloc(h->n, sizeof(char *));
    hc->hvals = sl_xcalloc(h->n, sizeof(sl_interp_t *));
    for (uint32_t i = 0; i < h->n; i++) {
      if (strpbrk(h->keys[i], ": \r\n") || strpbrk(h->items[i]->str ? h->items[i]->str : "", "\r\n")) {
        sl_diag_add(b->diags, h->items[i], h->keys[i], "not a valid header (a name holds no ':' or space, neither holds a line break)");
        return -1;
      }
      hc->hnames[hc->nheaders] = h->keys[i];
      if (!(hc->hvals[hc->nheaders++] = sl_lua_interp_field(b->worker, h, b->diags, h->keys[i]))) return -1;
    }
  }
  return 0;
}

void sl_hc_free(sl_hc_t *hc) {
  sl_interp_free(hc->url);
  free(hc->static_url);
  for (unsigned i = 0; i < hc->nheaders; i++) sl_interp_free(hc->hvals[i]);
  free(hc->hnames);
  free(hc->hvals);
  sl_hconf_free(&hc->conf);
  memset(hc, 0, sizeof(*hc));
}

char *sl_hc_url(sl_hc_t *hc, sl_msg_t *m, uint32_t i, char **err) {
  if (hc->static_url) return sl_xstrdup(hc->static_url);
  char *e = NULL, *v = sl_interp_eval(hc->url, m, i, NULL, &e);
  if (!v) *err = sl_xasprintf("url: %s", e ? e : "evaluation failed");
  free(e);
  return v;
}

char **sl_hc_headers(sl_hc_t *hc, sl_msg_t *m, uint32_t i, const char *const *extra, char **err) {
  size_t nx = 0;
  while (extra && extra[nx]) nx++;
  char **h = sl_xcalloc(hc->nheaders + nx + 2, sizeof(char *));
  size_t n = 0;
  for (unsigned k = 0; k < hc->nheaders; k++) {
    char *e = NULL;
    char *v = sl_interp_eval(hc->hvals[k], m, i, NULL, &e);
    if (!v) {
      *err = sl_xasprintf("headers.%s: %s", hc->hnames[k], e ? e : "evaluation failed");
      free(e);
      sl_hc_headers_free(h);
      return NULL;
    }
    if (!strpbrk(v, "\r\n")) h[n++] = sl_xasprintf("%s: %s", hc->hnames[k], v);
    free(v);
  }
  if (hc->conf.auth) h[n++] = sl_xstrdup(hc->conf.auth);
  for (size_t k = 0; k < nx; k++)
    if (!strpbrk(extra[k], "\r\n")) h[n++] = sl_xstrdup(extra[k]);
  return h;
}

void sl_hc_headers_free(char **h) {
  for (char **p = h; p && *p; p++) free(*p);
  free(h);
}

int64_t sl_hc_backoff(const sl_hc_t *hc, int status, int tries, const char *retry_after) {
  const sl_hconf_t *c = &hc->conf;
  if (status > 0 && (sl_hconf_listed(c->drop_on, status) || !(status >= 500 || sl_hconf_listed(c->backoff_on, status))))
    return SL_HC_NO_RETRY;
  int64_t ms = c->retry_ms;
  for (int k = 1; k < tries && ms < c->max_backoff_ms; k++) ms *= 2;
  if (retry_after) {
    int64_t ra = sl_hconf_retry_after_ms(retry_after);
    if (ra >= 0) ms = ra;
  }
  return ms > c->max_backoff_ms ? c->max_backoff_ms : ms;
}
