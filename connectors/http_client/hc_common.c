#include "hc_common.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const sl_field_t sl_hc_tls_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Accepted for Benthos configs: an `https:` URL uses TLS either way.", NULL, NULL},
  {"skip_cert_verify", SL_F_BOOL, "false", 0, "Accept any certificate and host name (tests only).", NULL, NULL},
  {"root_cas_file", SL_F_STRING, "", 0, "PEM file of the CAs to trust instead of the system's.", NULL, NULL},
  {"client_certs", SL_F_OBJLIST, "[]", 0, "A client certificate (the first one is used).", NULL,
   (const sl_field_t[]){{"cert_file", SL_F_STRING, NULL, SL_REQUIRED, "PEM certificate.", NULL, NULL},
                        {"key_file", SL_F_STRING, NULL, SL_REQUIRED, "PEM private key.", NULL, NULL},
                        {0}}},
  {0}};

const sl_field_t sl_hc_basic_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Send `Authorization: Basic`.", NULL, NULL},
  {"username", SL_F_STRING, "", 0, "User name.", NULL, NULL},
  {"password", SL_F_STRING, "", 0, "Password (use `${ENV}`).", NULL, NULL},
  {0}};

const sl_field_t sl_hc_oauth2_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Use OAuth2 client credentials.", NULL, NULL},
  {"client_key", SL_F_STRING, "", 0, "Client id, sent with the secret as Basic auth to `token_url`.", NULL, NULL},
  {"client_secret", SL_F_STRING, "", 0, "Client secret (use `${ENV}`).", NULL, NULL},
  {"token_url", SL_F_STRING, "", 0, "Where tokens come from (`grant_type=client_credentials`).", NULL, NULL},
  {"scopes", SL_F_STRLIST, "[]", 0, "Scopes asked for.", NULL, NULL},
  {0}};

static int *codes(const sl_cnode_t *conf, const char *key) {
  const sl_cnode_t *l = sl_cnode_get(conf, key);
  uint32_t n = l && l->type == SL_CN_SEQ ? l->n : 0;
  int *v = sl_xcalloc(n + 1, sizeof(int));
  for (uint32_t i = 0, k = 0; i < n; i++)
    if ((v[k] = atoi(l->items[i]->str)) > 0) k++;
  return v;
}

static int has(const int *v, int code) {
  for (; *v; v++)
    if (*v == code) return 1;
  return 0;
}

char *sl_hc_basic(const char *user, const char *pass) {
  char *up = sl_xasprintf("%s:%s", user, pass);
  size_t n = strlen(up);
  char *b64 = sl_xmalloc(4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)up, (int)n);
  char *h = sl_xasprintf("Authorization: Basic %s", b64);
  OPENSSL_cleanse(up, n);
  free(up);
  free(b64);
  return h;
}


int sl_hc_init(sl_hc_t *hc, sl_build_t *b, const sl_cnode_t *conf) {
  memset(hc, 0, sizeof(*hc));
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
  hc->timeout_ms = sl_conf_duration_ms(conf, "timeout", 5000);
  hc->retry_ms = sl_conf_duration_ms(conf, "retry_period", 1000);
  hc->max_backoff_ms = sl_conf_duration_ms(conf, "max_retry_backoff", 300000);
  hc->backoff_on = codes(conf, "backoff_on");
  hc->drop_on = codes(conf, "drop_on");
  hc->ok_on = codes(conf, "successful_on");
  const sl_cnode_t *tls = sl_cnode_get(conf, "tls");
  hc->opts.skip_verify = sl_conf_bool(tls, "skip_cert_verify", 0);
  hc->opts.ca_file = sl_conf_str(tls, "root_cas_file", "");
  const sl_cnode_t *certs = sl_cnode_get(tls, "client_certs");
  if (certs && certs->type == SL_CN_SEQ && certs->n) {
    hc->opts.cert_file = sl_conf_str(certs->items[0], "cert_file", "");
    hc->opts.key_file = sl_conf_str(certs->items[0], "key_file", "");
  }
  hc->opts.max_redirects = sl_conf_bool(conf, "follow_redirects", 1) ? 5 : 0;
  hc->opts.connect_timeout_ms = hc->timeout_ms;
  const sl_cnode_t *ba = sl_cnode_get(conf, "basic_auth");
  const char *bearer = sl_conf_str(conf, "bearer_token", "");
  const sl_cnode_t *o2 = sl_cnode_get(conf, "oauth2");
  int o2on = sl_conf_bool(o2, "enabled", 0);
  if (sl_conf_bool(ba, "enabled", 0) + !!*bearer + o2on > 1) {
    sl_diag_add(b->diags, conf, "basic_auth", "basic_auth, bearer_token and oauth2 exclude each other");
    return -1;
  }
  if (sl_conf_bool(ba, "enabled", 0)) hc->auth = sl_hc_basic(sl_conf_str(ba, "username", ""), sl_conf_str(ba, "password", ""));
  else if (*bearer) hc->auth = sl_xasprintf("Authorization: Bearer %s", bearer);
  if (o2on && sl_hc_oauth2_init(hc, o2, b) != 0) return -1;
  return 0;
}


void sl_hc_free(sl_hc_t *hc) {
  sl_interp_free(hc->url);
  free(hc->static_url);
  for (unsigned i = 0; i < hc->nheaders; i++) sl_interp_free(hc->hvals[i]);
  free(hc->hnames);
  free(hc->hvals);
  if (hc->auth) OPENSSL_cleanse(hc->auth, strlen(hc->auth));
  free(hc->auth);
  free(hc->backoff_on);
  free(hc->drop_on);
  free(hc->ok_on);
  if (hc->oauth2) sl_hc_oauth2_free(hc->oauth2);
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
  if (hc->auth) h[n++] = sl_xstrdup(hc->auth);
  for (size_t k = 0; k < nx; k++)
    if (!strpbrk(extra[k], "\r\n")) h[n++] = sl_xstrdup(extra[k]);
  return h;
}

void sl_hc_headers_free(char **h) {
  for (char **p = h; p && *p; p++) free(*p);
  free(h);
}

int sl_hc_ok(const sl_hc_t *hc, int status) { return (status >= 200 && status < 300) || has(hc->ok_on, status); }

/* Retry-After: delay-seconds or an HTTP date (RFC 9110 10.2.3); -1 if neither. */
static int64_t retry_after_ms(const char *v) {
  while (*v == ' ') v++;
  char *end;
  long long s = strtoll(v, &end, 10);
  if (end != v && (*end == 0 || *end == ' ') && s >= 0) return s > 86400 * 365 ? INT64_MAX / 4 : s * 1000;
  time_t t = curl_getdate(v, NULL);
  if (t < 0) return -1;
  time_t now = time(NULL);
  return t > now ? (int64_t)(t - now) * 1000 : 0;
}

int64_t sl_hc_backoff(const sl_hc_t *hc, int status, int tries, const char *retry_after) {
  if (status > 0 && (has(hc->drop_on, status) || !(status >= 500 || has(hc->backoff_on, status))))
    return SL_HC_NO_RETRY;
  int64_t ms = hc->retry_ms;
  for (int k = 1; k < tries && ms < hc->max_backoff_ms; k++) ms *= 2;
  if (retry_after) {
    int64_t ra = retry_after_ms(retry_after);
    if (ra >= 0) ms = ra;
  }
  return ms > hc->max_backoff_ms ? hc->max_backoff_ms : ms;
}

int sl_hc_header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen) {
  size_t n = strlen(name);
  if (len <= n || line[n] != ':' || strncasecmp(line, name, n)) return 0;
  size_t i = n + 1;
  while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
  size_t e = len;
  while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t')) e--;
  *value = line + i;
  *vlen = e - i;
  return 1;
}
