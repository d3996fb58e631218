#include "hclient_url.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static void clear(sl_hurl_t *e) {
  curl_url_cleanup(e->u);
  free(e->url);
  memset(e, 0, sizeof(*e));
}

sl_hurl_t *sl_hurl_take(sl_hurls_t *c, const char *url) {
  for (unsigned i = 0; i < SL_HURL_SLOTS; i++) {
    sl_hurl_t *e = &c->slot[i];
    if (e->url && !strcmp(e->url, url)) {
      e->refs++;
      return e;
    }
  }
  for (unsigned k = 0; k < SL_HURL_SLOTS; k++) {
    sl_hurl_t *e = &c->slot[(c->next + k) % SL_HURL_SLOTS];
    if (e->refs) continue;
    CURLU *u = curl_url();
    /* the flags libcurl parses a CURLOPT_URL with */
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
      curl_url_cleanup(u);
      return NULL;
    }
    if (e->url) clear(e);
    e->url = sl_xstrdup(url);
    e->u = u;
    e->refs = 1;
    c->next = (unsigned)(e - c->slot + 1) % SL_HURL_SLOTS;
    return e;
  }
  return NULL;
}

void sl_hurl_release(sl_hurl_t *e) { e->refs--; }

void sl_hurls_free(sl_hurls_t *c) {
  for (unsigned i = 0; i < SL_HURL_SLOTS; i++)
    if (c->slot[i].url) clear(&c->slot[i]);
}
