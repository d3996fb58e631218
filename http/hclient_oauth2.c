/* OAuth2 client credentials (RFC 6749 4.4) for every outgoing-HTTP component:
 * one token per component, fetched when first needed, kept until a little
 * before `expires_in` runs out or until the server answers 401; requests
 * that need it meanwhile wait for the one fetch in flight. */
#include "hclient_conf.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* A token is renewed this long before it expires, so that none is sent stale. */
enum { EARLY_MS = 10000 };

typedef struct waiter {
  sl_hconf_token_cb cb;
  void *arg;
  struct waiter *next;
} waiter_t;

struct sl_hconf_token {
  char *token_url, *form;
  char *client_auth;         /* "Authorization: Basic ..." with client_key:client_secret */
  char *header;              /* "Authorization: Bearer ..." or NULL */
  uint64_t expires;          /* uv_hrtime() in ms; 0: never */
  int fetching;
  int64_t timeout_ms;
  waiter_t *waiters;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

int sl_hconf_oauth2_init(sl_hconf_t *hc, const sl_cnode_t *o, sl_diags_t *d) {
  const char *url = sl_conf_str(o, "token_url", "");
  if (!*url) {
    sl_diag_add(d, o, "token_url", "oauth2 needs a token_url");
    return -1;
  }
  sl_hconf_token_t *t = sl_xcalloc(1, sizeof(*t));
  t->token_url = sl_xstrdup(url);
  t->client_auth = sl_hconf_basic(sl_conf_str(o, "client_key", ""), sl_conf_str(o, "client_secret", ""));
  t->timeout_ms = hc->timeout_ms;
  const sl_cnode_t *sc = sl_cnode_get(o, "scopes");
  size_t cap = 64;
  for (uint32_t i = 0; sc && sc->type == SL_CN_SEQ && i < sc->n; i++) cap += sc->items[i]->len * 3 + 3;
  char *form = sl_xmalloc(cap), *p = form;
  p += sprintf(p, "grant_type=client_credentials");
  for (uint32_t i = 0; sc && sc->type == SL_CN_SEQ && i < sc->n; i++) {
    p += sprintf(p, i ? "%%20" : "&scope=");
    char *e = curl_easy_escape(NULL, sc->items[i]->str, (int)sc->items[i]->len);
    p += sprintf(p, "%s", e);
    curl_free(e);
  }
  t->form = form;
  hc->oauth2 = t;
  return 0;
}

void sl_hconf_oauth2_free(sl_hconf_token_t *t) {
  while (t->waiters) {
    waiter_t *w = t->waiters;
    t->waiters = w->next;
    free(w);
  }
  OPENSSL_cleanse(t->client_auth, strlen(t->client_auth));
  if (t->header) OPENSSL_cleanse(t->header, strlen(t->header));
  free(t->client_auth);
  free(t->header);
  free(t->token_url);
  free(t->form);
  free(t);
}

static void answer_all(sl_hconf_token_t *t, const char *err) {
  waiter_t *w = t->waiters;
  t->waiters = NULL;
  while (w) {
    waiter_t *next = w->next;
    w->cb(w->arg, err ? NULL : t->header, err);
    free(w);
    w = next;
  }
}

static void on_token(int status, const char *err, const char *body, size_t len, void *arg) {
  sl_hconf_token_t *t = arg;
  t->fetching = 0;
  char *why = NULL;
  json_t *j = NULL;
  if (status < 0) why = sl_xasprintf("oauth2: token_url: %s", err);
  else if (status != 200) why = sl_xasprintf("oauth2: token_url answered %d", status);
  else if (!(j = json_loadb(body, len, 0, NULL)) || !json_is_string(json_object_get(j, "access_token")))
    why = sl_xstrdup("oauth2: token_url's answer has no access_token");
  if (!why) {
    free(t->header);
    t->header = sl_xasprintf("Authorization: Bearer %s", json_string_value(json_object_get(j, "access_token")));
    json_int_t exp = json_is_integer(json_object_get(j, "expires_in")) ? json_integer_value(json_object_get(j, "expires_in")) : 0;
    t->expires = exp > 0 ? now_ms() + (uint64_t)exp * 1000 - (exp * 1000 > 2 * EARLY_MS ? EARLY_MS : 0) : 0;
  }
  json_decref(j);
  answer_all(t, why);
  free(why);
}

void sl_hconf_token_get(sl_hconf_t *hc, sl_hclient_t *client, sl_hconf_token_cb ready, void *arg) {
  sl_hconf_token_t *t = hc->oauth2;
  if (!t) {
    ready(arg, NULL, NULL);
    return;
  }
  if (t->header && (!t->expires || now_ms() < t->expires)) {
    ready(arg, t->header, NULL);
    return;
  }
  waiter_t *w = sl_xcalloc(1, sizeof(*w));
  w->cb = ready;
  w->arg = arg;
  w->next = t->waiters;
  t->waiters = w;
  if (t->fetching) return;
  t->fetching = 1;
  const char *h[] = {t->client_auth, "Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL};
  /* the component's TLS settings apply to its token_url too (a private CA, a client certificate) */
  sl_hclient_request_opts(client, "POST", t->token_url, h, t->form, strlen(t->form), t->timeout_ms, &hc->opts, on_token, t);
}

void sl_hconf_token_drop(sl_hconf_t *hc) {
  if (!hc->oauth2 || !hc->oauth2->header) return;
  free(hc->oauth2->header);
  hc->oauth2->header = NULL;
}

void sl_hconf_token_cancel(sl_hconf_t *hc, void *arg) {
  if (!hc->oauth2) return;
  for (waiter_t **pp = &hc->oauth2->waiters; *pp;) {
    if ((*pp)->arg == arg) {
      waiter_t *w = *pp;
      *pp = w->next;
      free(w);
    } else {
      pp = &(*pp)->next;
    }
  }
}
