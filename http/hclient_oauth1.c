/* OAuth 1.0a request signing (RFC 5849, HMAC-SHA1), Benthos's `oauth`
 * block: every request carries an `Authorization: OAuth ...` header signed
 * over its method, its URL (scheme, host, path) and its query's parameters,
 * with a fresh nonce and timestamp. */
#include "hclient_oauth1.h"
#include "http.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const sl_field_t sl_hconf_oauth_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Sign requests with OAuth 1.0a (HMAC-SHA1).", NULL, NULL},
  {"consumer_key", SL_F_STRING, "", 0, "The consumer (client) key.", NULL, NULL},
  {"consumer_secret", SL_F_STRING, "", 0, "The consumer secret (use `${ENV}`).", NULL, NULL},
  {"access_token", SL_F_STRING, "", 0, "The access token (`oauth_token`); empty: none is sent.", NULL, NULL},
  {"access_token_secret", SL_F_STRING, "", 0, "The access token's secret (use `${ENV}`).", NULL, NULL},
  {0}};

struct sl_oauth1 {
  char *consumer_key, *access_token;
  char *signing_key;         /* consumer_secret&token_secret, percent-encoded */
};

/* RFC 5849 3.6: everything but unreserved characters as %XX. */
static void enc(char **out, size_t *len, size_t *cap, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    if (*len + 4 > *cap) *out = sl_xrealloc(*out, *cap = *cap * 2 + 64);
    unsigned char ch = (unsigned char)s[i];
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch && strchr("-._~", ch))) {
      (*out)[(*len)++] = (char)ch;
    } else {
      (*out)[(*len)++] = '%';
      (*out)[(*len)++] = hex[ch >> 4];
      (*out)[(*len)++] = hex[ch & 15];
    }
  }
  (*out)[*len] = 0;
}

static char *encode(const char *s, size_t n) {
  size_t len = 0, cap = n * 3 + 1;
  char *out = sl_xmalloc(cap);
  out[0] = 0;
  enc(&out, &len, &cap, s, n);
  return out;
}

/* s (n bytes) decoded as a query is (`+` a space, as oauthlib and Go read
 * it), then encoded as RFC 5849 wants. */
static char *reencode(const char *s, size_t n) {
  size_t k;
  char *raw = sl_http_form_decode(s, n, &k);
  char *e = encode(raw, k);
  free(raw);
  return e;
}

sl_oauth1_t *sl_oauth1_new(const sl_cnode_t *o) {
  if (!sl_conf_bool(o, "enabled", 0)) return NULL;
  sl_oauth1_t *a = sl_xcalloc(1, sizeof(*a));
  a->consumer_key = sl_xstrdup(sl_conf_str(o, "consumer_key", ""));
  a->access_token = sl_xstrdup(sl_conf_str(o, "access_token", ""));
  const char *cs = sl_conf_str(o, "consumer_secret", ""), *ts = sl_conf_str(o, "access_token_secret", "");
  char *e1 = encode(cs, strlen(cs)), *e2 = encode(ts, strlen(ts));
  a->signing_key = sl_xasprintf("%s&%s", e1, e2);
  free(e1);
  free(e2);
  return a;
}

void sl_oauth1_free(sl_oauth1_t *a) {
  if (!a) return;
  OPENSSL_cleanse(a->signing_key, strlen(a->signing_key));
  free(a->signing_key);
  free(a->consumer_key);
  free(a->access_token);
  free(a);
}

typedef struct param { char *k, *v; } param_t;

static int by_name(const void *x, const void *y) {
  const param_t *a = x, *b = y;
  int c = strcmp(a->k, b->k);
  return c ? c : strcmp(a->v, b->v);
}

char *sl_oauth1_header(const sl_oauth1_t *a, const char *method, const char *url) {
  /* the base URL: scheme and host lower-cased, no query or fragment;
   * http's :80 and https's :443 dropped (RFC 5849 3.4.1.2) */
  const char *sep = strstr(url, "://");
  const char *hs = sep ? sep + 3 : url, *he = hs + strcspn(hs, "/?#"), *q = strchr(he, '?');
  const char *pe = he + strcspn(he, "?#");
  char *base = sl_xasprintf("%.*s://%.*s%.*s", sep ? (int)(sep - url) : 0, url, (int)(he - hs), hs, (int)(pe - he), he);
  size_t slen = sep ? (size_t)(sep - url) : 0;
  for (char *p = base; p < base + slen + 3 + (size_t)(he - hs); p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  size_t hlen = (size_t)(he - hs);
  char *host = base + slen + 3;
  if ((slen == 4 && !strncmp(base, "http", 4) && hlen > 3 && !strncmp(host + hlen - 3, ":80", 3)) ||
      (slen == 5 && !strncmp(base, "https", 5) && hlen > 4 && !strncmp(host + hlen - 4, ":443", 4))) {
    size_t cut = slen == 4 ? 3 : 4;
    memmove(host + hlen - cut, host + hlen, strlen(host + hlen) + 1);
  }
  if (pe == he) {   /* an empty path is "/" */
    char *b = sl_xasprintf("%s/", base);
    free(base);
    base = b;
  }
  char nonce[33], ts[24];
  uint64_t r1 = sl_rand64(), r2 = sl_rand64();
  snprintf(nonce, sizeof nonce, "%016llx%016llx", (unsigned long long)r1, (unsigned long long)r2);
  snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
  const char *oauth[][2] = {{"oauth_consumer_key", a->consumer_key}, {"oauth_nonce", nonce},
                            {"oauth_signature_method", "HMAC-SHA1"}, {"oauth_timestamp", ts},
                            {"oauth_token", a->access_token}, {"oauth_version", "1.0"}};
  size_t noauth = sizeof oauth / sizeof *oauth, n = 0, cap = noauth + 8;
  param_t *ps = sl_xmalloc(cap * sizeof(*ps));
  for (size_t i = 0; i < noauth; i++)
    if (*oauth[i][1]) ps[n++] = (param_t){encode(oauth[i][0], strlen(oauth[i][0])), encode(oauth[i][1], strlen(oauth[i][1]))};
  for (const char *p = q ? q + 1 : NULL; p && *p && *p != '#';) {
    size_t len = strcspn(p, "&#");
    if (len) {
      const char *eq = memchr(p, '=', len);
      size_t kl = eq ? (size_t)(eq - p) : len;
      if (n == cap) ps = sl_xrealloc(ps, (cap *= 2) * sizeof(*ps));
      ps[n++] = (param_t){reencode(p, kl), eq ? reencode(eq + 1, len - kl - 1) : sl_xstrdup("")};
    }
    p += len;
    if (*p == '&') p++;
  }
  qsort(ps, n, sizeof(*ps), by_name);
  size_t plen = 0, pcap = 256;
  char *norm = sl_xmalloc(pcap);
  norm[0] = 0;
  for (size_t i = 0; i < n; i++) {
    char *kv = sl_xasprintf("%s%s=%s", i ? "&" : "", ps[i].k, ps[i].v);
    size_t kl = strlen(kv);
    if (plen + kl + 1 > pcap) norm = sl_xrealloc(norm, pcap = (plen + kl + 1) * 2);
    memcpy(norm + plen, kv, kl + 1);
    plen += kl;
    free(kv);
  }
  char *em = encode(method, strlen(method)), *eb = encode(base, strlen(base)), *en = encode(norm, plen);
  char *sbs = sl_xasprintf("%s&%s&%s", em, eb, en);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mlen = 0;
  HMAC(EVP_sha1(), a->signing_key, (int)strlen(a->signing_key), (const unsigned char *)sbs, strlen(sbs), mac, &mlen);
  char b64[64];
  EVP_EncodeBlock((unsigned char *)b64, mac, (int)mlen);
  char *sig = encode(b64, strlen(b64));
  /* the header: the oauth_ parameters and the signature */
  size_t hl = 0, hcap = 512;
  char *h = sl_xmalloc(hcap);
  hl = (size_t)snprintf(h, hcap, "OAuth ");
  for (size_t i = 0; i <= noauth; i++) {
    const char *k = i < noauth ? oauth[i][0] : "oauth_signature";
    if (i < noauth && !*oauth[i][1]) continue;
    char *v = i < noauth ? encode(oauth[i][1], strlen(oauth[i][1])) : sl_xstrdup(sig);
    char *kv = sl_xasprintf("%s%s=\"%s\"", hl > 6 ? ", " : "", k, v);
    size_t kl = strlen(kv);
    if (hl + kl + 1 > hcap) h = sl_xrealloc(h, hcap = (hl + kl + 1) * 2);
    memcpy(h + hl, kv, kl + 1);
    hl += kl;
    free(kv);
    free(v);
  }
  for (size_t i = 0; i < n; i++) {
    free(ps[i].k);
    free(ps[i].v);
  }
  free(ps);
  free(norm);
  free(em);
  free(eb);
  free(en);
  free(sbs);
  free(sig);
  free(base);
  return h;
}
