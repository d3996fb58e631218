#include "hclient_conf.h"
#include "http_int.h"
#include "core/conf_json.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const sl_field_t sl_tls_client_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Use TLS even where the URL does not ask for it (the `tls` field above says "
   "which URLs do).", NULL, NULL},
  {"skip_cert_verify", SL_F_BOOL, "false", 0, "Accept any server certificate and host name (tests only).", NULL,
   NULL},
  {"root_cas_file", SL_F_STRING, "", 0, "PEM file of the CAs to trust instead of the system's.", NULL, NULL},
  {"client_certs", SL_F_OBJLIST, "[]", 0, "A client certificate (the first one is used).", NULL,
   sl_hconf_cert_fields},
  {0}};

const sl_field_t sl_hconf_cert_fields[] = {
  {"cert_file", SL_F_STRING, "", 0, "PEM certificate (chain) file, relative to the config file.", NULL, NULL},
  {"key_file", SL_F_STRING, "", 0, "PEM private key file, relative to the config file.", NULL, NULL},
  {"cert", SL_F_STRING, "", 0, "The PEM certificate as text, instead of `cert_file`.", NULL, NULL},
  {"key", SL_F_STRING, "", 0, "The PEM private key as text, instead of `key_file`.", NULL, NULL},
  {"password", SL_F_STRING, "", 0, "Decrypts an encrypted key (use `${ENV}`).", NULL, NULL},
  {0}};

const sl_field_t sl_tls_conf_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Use TLS even where the URL does not ask for it.", NULL, NULL},
  SL_TLS_CONF_FIELDS,
  {0}};

sl_tls_ctx_t *sl_tls_conf_client(const sl_cnode_t *tls, sl_diags_t *d) {
  const char *f = sl_conf_str(tls, "root_cas_file", "");
  char *cafile = *f ? sl_conf_path(tls->file, f) : NULL, *why = NULL;
  sl_tls_ctx_t *ctx =
    sl_tls_client_ctx_new(cafile, sl_conf_str(tls, "root_cas", ""), sl_conf_bool(tls, "skip_cert_verify", 0), &why);
  free(cafile);
  if (!ctx) {
    sl_diag_add(d, tls, "tls", "%s", why);
    free(why);
    return NULL;
  }
  sl_hreq_opts_t cert = {0};
  int rc = tls ? sl_hconf_client_cert(tls, &cert, d) : 0;
  if (!rc && (cert.cert_file || cert.cert_pem) &&
      sl_tls_ctx_client_cert(ctx, cert.cert_file, cert.cert_pem, cert.key_file, cert.key_pem, cert.key_password,
                             &why)) {
    sl_diag_add(d, sl_cnode_get(tls, "client_certs")->items[0], "tls.client_certs", "%s", why);
    free(why);
    rc = -1;
  }
  sl_hconf_client_cert_free(&cert);
  if (rc) {
    sl_tls_ctx_free(ctx);
    ctx = NULL;
  }
  return ctx;
}

int sl_hconf_client_cert(const sl_cnode_t *tls, sl_hreq_opts_t *o, sl_diags_t *d) {
  const sl_cnode_t *certs = sl_cnode_get(tls, "client_certs");
  if (!certs || certs->type != SL_CN_SEQ || !certs->n) return 0;
  const sl_cnode_t *c = certs->items[0];
  const char *cf = sl_conf_str(c, "cert_file", ""), *kf = sl_conf_str(c, "key_file", "");
  const char *cp = sl_conf_str(c, "cert", ""), *kp = sl_conf_str(c, "key", "");
  if (!*cf == !*cp || !*kf == !*kp) {
    sl_diag_add(d, c, "tls.client_certs", "give the certificate as cert_file or cert, and its key as key_file or key");
    return -1;
  }
  if (*cf) o->cert_file = sl_conf_path(c->file, cf);
  if (*kf) o->key_file = sl_conf_path(c->file, kf);
  if (*cp) o->cert_pem = sl_xstrdup(cp);
  if (*kp) o->key_pem = sl_xstrdup(kp);
  o->key_password = sl_xstrdup(sl_conf_str(c, "password", ""));
  return 0;
}

void sl_hconf_client_cert_free(sl_hreq_opts_t *o) {
  char *s[] = {(char *)o->cert_file, (char *)o->key_file, (char *)o->cert_pem, (char *)o->key_pem,
               (char *)o->key_password};
  for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
    if (s[i]) OPENSSL_cleanse(s[i], strlen(s[i]));
    free(s[i]);
  }
  o->cert_file = o->key_file = o->cert_pem = o->key_pem = o->key_password = NULL;
}

const sl_field_t sl_hconf_basic_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Send `Authorization: Basic`.", NULL, NULL},
  {"username", SL_F_STRING, "", 0, "User name.", NULL, NULL},
  {"password", SL_F_STRING, "", 0, "Password (use `${ENV}`).", NULL, NULL},
  {0}};

const sl_field_t sl_hconf_oauth2_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Use OAuth2 client credentials.", NULL, NULL},
  {"client_key", SL_F_STRING, "", 0, "Client id, sent with the secret as Basic auth to `token_url`.", NULL, NULL},
  {"client_secret", SL_F_STRING, "", 0, "Client secret (use `${ENV}`).", NULL, NULL},
  {"token_url", SL_F_STRING, "", 0, "Where tokens come from (`grant_type=client_credentials`).", NULL, NULL},
  {"scopes", SL_F_STRLIST, "[]", 0, "Scopes asked for.", NULL, NULL},
  {0}};

const sl_field_t sl_hconf_jwt_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Send a signed JWT.", NULL, NULL},
  {"private_key_file", SL_F_STRING, "", 0, "PEM private key (RS*, ES*, PS*), or the secret itself for HS*; a "
   "relative path is from the config file.", NULL, NULL},
  {"signing_method", SL_F_STRING, "RS256", 0, "`RS256`, `RS384`, `RS512`, `ES256`, `ES384`, `ES512`, `HS256`, "
   "`HS384` or `HS512` (libjwt's; Benthos's `EdDSA` is not among them).", NULL, NULL},
  {"claims", SL_F_MAP, "{}", 0, "The token's claims (values keep their YAML types).", NULL, NULL},
  {"headers", SL_F_MAP, "{}", 0, "Extra JOSE header fields.", NULL, NULL},
  {0}};

char *sl_hconf_jwt(const sl_cnode_t *j, sl_diags_t *d) {
  const char *m = sl_conf_str(j, "signing_method", "RS256"), *file = sl_conf_str(j, "private_key_file", "");
  jwt_alg_t alg = jwt_str_alg(m);
  if (alg == JWT_ALG_INVAL || alg == JWT_ALG_NONE) {
    sl_diag_add(d, sl_cnode_get(j, "signing_method"), "jwt.signing_method", "unknown signing method \"%s\"", m);
    return NULL;
  }
  if (!*file) {
    sl_diag_add(d, j, "jwt.private_key_file", "jwt needs a private_key_file");
    return NULL;
  }
  char *path = sl_conf_path(j->file, file);
  size_t len = 0;
  char *key = sl_http_read_file(path, &len);
  char *out = NULL, *claims = NULL, *hdrs = NULL, *tok = NULL;
  jwt_t *t = NULL;
  json_t *c = sl_cnode_to_json(sl_cnode_get(j, "claims")), *h = sl_cnode_to_json(sl_cnode_get(j, "headers"));
  if (!key) {
    sl_diag_add(d, sl_cnode_get(j, "private_key_file"), "jwt.private_key_file", "cannot read %s", path);
  } else if (jwt_new(&t) != 0 || (json_is_object(c) && json_object_size(c) &&
                                 (!(claims = json_dumps(c, JSON_COMPACT)) || jwt_add_grants_json(t, claims) != 0)) ||
             (json_is_object(h) && json_object_size(h) &&
              (!(hdrs = json_dumps(h, JSON_COMPACT)) || jwt_add_headers_json(t, hdrs) != 0)) ||
             jwt_set_alg(t, alg, (const unsigned char *)key, (int)len) != 0 || !(tok = jwt_encode_str(t))) {
    sl_diag_add(d, sl_cnode_get(j, "private_key_file"), "jwt.private_key_file",
                "cannot sign a %s token with %s (not a key for it?)", m, path);
  } else {
    out = sl_xasprintf("Authorization: Bearer %s", tok);
  }
  if (key) OPENSSL_cleanse(key, len);
  free(key);
  free(path);
  free(claims);
  free(hdrs);
  free(tok);   /* libjwt 1.10 allocates with malloc */
  jwt_free(t);
  json_decref(c);
  json_decref(h);
  return out;
}

/* A status list (one scalar counts as a list of one), 0-terminated; NULL
 * with a diagnostic at the first value that is no HTTP status. */
static int *statuses(const sl_cnode_t *conf, const char *key, const char *def, sl_diags_t *d) {
  const sl_cnode_t *l = sl_cnode_get(conf, key);
  uint32_t n = !l ? 0 : l->type == SL_CN_SEQ ? l->n : 1;
  int *v = sl_xcalloc(n + 2, sizeof(int));
  if (!l && def) v[0] = atoi(def);
  for (uint32_t i = 0; i < n; i++) {
    const sl_cnode_t *it = l->type == SL_CN_SEQ ? l->items[i] : l;
    char *end = NULL;
    long s = it->str ? strtol(it->str, &end, 10) : 0;
    if (!it->str || end == it->str || *end || s < 100 || s > 599) {
      sl_diag_add(d, it, key, "an HTTP status (100-599) is expected");
      free(v);
      return NULL;
    }
    v[i] = (int)s;
  }
  return v;
}

int sl_hconf_listed(const int *v, int status) {
  for (; v && *v; v++)
    if (*v == status) return 1;
  return 0;
}

char *sl_hconf_basic(const char *user, const char *pass) {
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

int sl_hconf_init(sl_hconf_t *hc, const sl_cnode_t *conf, sl_diags_t *d) {
  memset(hc, 0, sizeof(*hc));
  hc->timeout_ms = sl_conf_duration_ms(conf, "timeout", 5000);
  hc->retry_ms = sl_conf_duration_ms(conf, "retry_period", 1000);
  hc->max_backoff_ms = sl_conf_duration_ms(conf, "max_retry_backoff", 300000);
  if (!(hc->backoff_on = statuses(conf, "backoff_on", "429", d)) || !(hc->drop_on = statuses(conf, "drop_on", NULL, d)) ||
      !(hc->ok_on = statuses(conf, "successful_on", NULL, d)))
    return -1;
  const sl_cnode_t *tls = sl_cnode_get(conf, "tls");
  hc->opts.skip_verify = sl_conf_bool(tls, "skip_cert_verify", 0);
  hc->opts.ca_file = sl_xstrdup(sl_conf_str(tls, "root_cas_file", ""));
  if (sl_hconf_client_cert(tls, &hc->opts, d) != 0) return -1;
  hc->opts.max_redirects = sl_conf_bool(conf, "follow_redirects", 1) ? 5 : 0;
  hc->opts.connect_timeout_ms = hc->timeout_ms;
  const sl_cnode_t *ba = sl_cnode_get(conf, "basic_auth");
  const char *bearer = sl_conf_str(conf, "bearer_token", "");
  const sl_cnode_t *o2 = sl_cnode_get(conf, "oauth2"), *jw = sl_cnode_get(conf, "jwt");
  int o2on = sl_conf_bool(o2, "enabled", 0), jwon = sl_conf_bool(jw, "enabled", 0);
  if (sl_conf_bool(ba, "enabled", 0) + !!*bearer + o2on + jwon > 1) {
    sl_diag_add(d, conf, "basic_auth", "basic_auth, bearer_token, jwt and oauth2 exclude each other");
    return -1;
  }
  if (strpbrk(bearer, "\r\n")) {
    sl_diag_add(d, sl_cnode_get(conf, "bearer_token"), "bearer_token", "a token holds no line break");
    return -1;
  }
  if (sl_conf_bool(ba, "enabled", 0))
    hc->auth = sl_hconf_basic(sl_conf_str(ba, "username", ""), sl_conf_str(ba, "password", ""));
  else if (*bearer)
    hc->auth = sl_xasprintf("Authorization: Bearer %s", bearer);
  else if (jwon && !(hc->auth = sl_hconf_jwt(jw, d)))
    return -1;
  if (o2on && sl_hconf_oauth2_init(hc, o2, d) != 0) return -1;
  return 0;
}

void sl_hconf_free(sl_hconf_t *hc) {
  if (hc->auth) OPENSSL_cleanse(hc->auth, strlen(hc->auth));
  free(hc->auth);
  free(hc->backoff_on);
  free(hc->drop_on);
  free(hc->ok_on);
  free((char *)hc->opts.ca_file);
  sl_hconf_client_cert_free(&hc->opts);
  if (hc->oauth2) sl_hconf_oauth2_free(hc->oauth2);
  memset(hc, 0, sizeof(*hc));
}

int sl_hconf_ok(const sl_hconf_t *hc, int status) {
  return (status >= 200 && status < 300) || sl_hconf_listed(hc->ok_on, status);
}

/* RFC 9110 10.2.3 */
int64_t sl_hconf_retry_after_ms(const char *v) {
  while (*v == ' ') v++;
  char *end;
  long long s = strtoll(v, &end, 10);
  if (end != v && (*end == 0 || *end == ' ' || *end == '\r') && s >= 0) return s > 86400 * 365 ? INT64_MAX / 4 : s * 1000;
  time_t t = curl_getdate(v, NULL);
  if (t < 0) return -1;
  time_t now = time(NULL);
  return t > now ? (int64_t)(t - now) * 1000 : 0;
}

int sl_hconf_header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen) {
  size_t n = strlen(name);
  if (len <= n || line[n] != ':' || strncasecmp(line, name, n)) return 0;
  size_t i = n + 1;
  while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
  size_t e = len;
  while (e > i && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r')) e--;
  *value = line + i;
  *vlen = e - i;
  return 1;
}
