/* Request authentication for the HTTP server: JWT (HS256 secret or RS256
 * public key, via libjwt) and API keys. The expected algorithm is fixed by
 * the config, never taken from the token (no alg confusion, no "none"). */
#include "http_auth.h"
#include "http_int.h"
#include "core/globs.h"
#include "core/xalloc.h"
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const sl_field_t jwt_fields[] = {
  {"secret", SL_F_STRING, "", 0, "HS256 shared secret (use `${ENV}`).", NULL, NULL},
  {"public_key_file", SL_F_STRING, "", 0, "RS256 public key (PEM), relative to the config file.", NULL, NULL},
  {"issuer", SL_F_STRING, "", 0, "Required `iss` when set.", NULL, NULL},
  {"audience", SL_F_STRING, "", 0, "Required in `aud` (a string or a list) when set.", NULL, NULL},
  {"leeway", SL_F_DURATION, "30s", 0, "Clock skew allowed on `exp` and `nbf`.", NULL, NULL},
  {"required_claims", SL_F_MAP, "{}", 0,
   "Claims the token must carry with these values (compared as strings); a valid token without them gets 403.",
   NULL, NULL},
  {0}};

static const sl_field_t key_fields[] = {
  {"keys", SL_F_MAP, "{}", 0, "Accepted keys, each mapped to the user it stands for (`ctx.user`).", NULL, NULL},
  {"header", SL_F_STRING, "X-API-Key", 0, "Request header carrying the key.", NULL, NULL},
  {"query", SL_F_STRING, "api_key", 0, "Query parameter carrying the key (for clients that cannot set headers).",
   NULL, NULL},
  {0}};

#define AUTH_FIELDS                                                                                             \
  {"jwt", SL_F_OBJECT, NULL, 0,                                                                                 \
   "Bearer tokens (`Authorization: Bearer …` or the `access_token` query parameter): signature, `exp`/`nbf` "   \
   "(with leeway), optional issuer and audience. Claims land in `ctx.jwt`, `sub` in `ctx.user`.", NULL,          \
   jwt_fields},                                                                                                 \
  {"api_keys", SL_F_OBJECT, NULL, 0, "Static API keys.", NULL, key_fields}

const sl_field_t sl_http_auth_fields[] = {AUTH_FIELDS, {0}};

const sl_field_t sl_http_server_auth_fields[] = {
  AUTH_FIELDS,
  {"admin", SL_F_STRLIST, "[]", 0,
   "Users (`ctx.user`, as `jwt` or `api_keys` name them; glob patterns allowed) with the admin scope: "
   "`/admin/status`, `/admin/reload`, the streams-mode API (`/streams`, which runs pipelines and their Lua), "
   "and creating, deleting, reading and publishing to every stream of `/stream/` whatever `store.access` says. "
   "Nobody else may use them (403).", NULL, NULL},
  {"scope_claim", SL_F_STRING, "", 0,
   "JWT claim holding the token's scopes, a space-separated string (OAuth's `scope`) or a list: `admin` grants "
   "the admin scope, `stream:read` and `stream:write` those of the streams API (`store.access`). Empty: scopes "
   "come from the user lists alone.", NULL, NULL},
  {0}};

struct sl_http_auth {
  int jwt_on;
  jwt_alg_t alg;
  unsigned char *key; size_t key_len;
  char *issuer, *audience;
  int64_t leeway_s;
  sl_kvlist_t required;
  sl_kvlist_t keys;          /* api key -> user */
  char *key_header, *key_query;
  sl_globs_t admin;          /* users with the admin scope (the http section's) */
  char *scope_claim;         /* "": none */
};

/* Names that carry credentials: the usual ones, and every key header and
 * query parameter an `auth:` block configured (kept for the process: a
 * reload may route requests through an older block a while longer). Workers
 * build auth blocks concurrently, hence the lock. */
static const char *const secret_headers[] = {"authorization", "proxy-authorization", "cookie", "x-api-key", NULL};
static const char *const secret_queries[] = {"api_key", "access_token", NULL};
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char **secret_names;    /* "h:name" or "q:name" */
static size_t nsecret_names;

static void secrets_free(void) {
  for (size_t i = 0; i < nsecret_names; i++) free(secret_names[i]);
  free(secret_names);
}

static void secret_add(char kind, const char *name) {
  char *s = sl_xasprintf("%c:%s", kind, name);
  pthread_mutex_lock(&secrets_lock);
  size_t i = 0;
  while (i < nsecret_names && strcmp(secret_names[i], s)) i++;
  if (i == nsecret_names) {
    if (!nsecret_names) atexit(secrets_free);
    secret_names = sl_xrealloc(secret_names, (nsecret_names + 1) * sizeof(*secret_names));
    secret_names[nsecret_names++] = s;
    s = NULL;
  }
  pthread_mutex_unlock(&secrets_lock);
  free(s);
}

static int secret(char kind, const char *const *builtin, const char *name, int casefold) {
  for (; *builtin; builtin++)
    if (!(casefold ? strcasecmp : strcmp)(*builtin, name)) return 1;
  int hit = 0;
  pthread_mutex_lock(&secrets_lock);
  for (size_t i = 0; i < nsecret_names && !hit; i++)
    hit = secret_names[i][0] == kind && !(casefold ? strcasecmp : strcmp)(secret_names[i] + 2, name);
  pthread_mutex_unlock(&secrets_lock);
  return hit;
}

int sl_http_auth_secret_header(const char *name) { return secret('h', secret_headers, name, 1); }
int sl_http_auth_secret_query(const char *name) { return secret('q', secret_queries, name, 0); }

char *sl_http_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 > cap) {
      cap = (n + 4096) * 2;
      buf = sl_xrealloc(buf, cap);
    }
    size_t got = fread(buf + n, 1, 4096, f);
    n += got;
    if (got < 4096) break;
  }
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

sl_http_auth_t *sl_http_auth_new(const sl_cnode_t *node, const char *config_file, sl_diags_t *d) {
  const sl_cnode_t *j = sl_cnode_get(node, "jwt"), *k = sl_cnode_get(node, "api_keys");
  if (!j && !k) return NULL;
  sl_http_auth_t *a = sl_xcalloc(1, sizeof(*a));
  if (j) {
    const char *secret = sl_conf_str(j, "secret", ""), *pub = sl_conf_str(j, "public_key_file", "");
    if (!*secret == !*pub) {
      sl_diag_add(d, j, "auth.jwt", "give exactly one of `secret` (HS256) or `public_key_file` (RS256)");
      sl_http_auth_free(a);
      return NULL;
    }
    a->jwt_on = 1;
    if (*secret) {
      a->alg = JWT_ALG_HS256;
      a->key = (unsigned char *)sl_xstrdup(secret);
      a->key_len = strlen(secret);
    } else {
      a->alg = JWT_ALG_RS256;
      char *path = sl_conf_path(config_file, pub);
      a->key = (unsigned char *)sl_http_read_file(path, &a->key_len);
      if (!a->key) {
        sl_diag_add(d, sl_cnode_get(j, "public_key_file"), "auth.jwt.public_key_file", "cannot read %s", path);
        free(path);
        sl_http_auth_free(a);
        return NULL;
      }
      free(path);
    }
    a->issuer = sl_xstrdup(sl_conf_str(j, "issuer", ""));
    a->audience = sl_xstrdup(sl_conf_str(j, "audience", ""));
    a->leeway_s = sl_conf_duration_ms(j, "leeway", 30000) / 1000;
    const sl_cnode_t *rc = sl_cnode_get(j, "required_claims");
    for (uint32_t i = 0; rc && rc->type == SL_CN_MAP && i < rc->n; i++)
      sl_kv_add(&a->required, rc->keys[i], rc->items[i]->str ? rc->items[i]->str : "", rc->items[i]->len);
  }
  if (k) {
    const sl_cnode_t *keys = sl_cnode_get(k, "keys");
    for (uint32_t i = 0; keys && keys->type == SL_CN_MAP && i < keys->n; i++)
      sl_kv_add(&a->keys, keys->keys[i], keys->items[i]->str ? keys->items[i]->str : "", keys->items[i]->len);
    char *h = sl_xstrdup(sl_conf_str(k, "header", "X-API-Key"));
    for (char *p = h; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    a->key_header = h;
    a->key_query = sl_xstrdup(sl_conf_str(k, "query", "api_key"));
    secret_add('h', a->key_header);
    secret_add('q', a->key_query);
  }
  sl_globs_init(&a->admin, sl_cnode_get(node, "admin"));
  a->scope_claim = sl_xstrdup(sl_conf_str(node, "scope_claim", ""));
  return a;
}

void sl_http_auth_free(sl_http_auth_t *a) {
  if (!a) return;
  free(a->key);
  free(a->issuer);
  free(a->audience);
  sl_kv_clear(&a->required);
  sl_kv_clear(&a->keys);
  free(a->key_header);
  free(a->key_query);
  sl_globs_free(&a->admin);
  free(a->scope_claim);
  free(a);
}

/* Value of query parameter name in r (decoded), or NULL (caller frees). */
static char *query_param(const sl_http_req_t *r, const char *name) {
  size_t nl = strlen(name);
  for (const char *q = r->query; q && *q;) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    if (n > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
      size_t l;
      return sl_http_form_decode(q + nl + 1, n - nl - 1, &l);
    }
    q += n + (amp ? 1 : 0);
  }
  return NULL;
}

static void unauthorized(sl_http_req_t *r, const char *why, int bad_token) {
  sl_kvlist_t h = {0};
  const char *v = bad_token ? "Bearer realm=\"sluice\", error=\"invalid_token\"" : "Bearer realm=\"sluice\"";
  sl_kv_add(&h, "WWW-Authenticate", v, strlen(v));
  char *body = sl_http_error_body(401, why);
  sl_http_respond(r, 401, "application/json", body, strlen(body), &h);
  free(body);
  sl_kv_clear(&h);
}

static int aud_matches(json_t *aud, const char *want) {
  if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
  size_t i;
  json_t *v;
  json_array_foreach(aud, i, v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return 1;
  return 0;
}

/* 0 accepted (claims stored in r), 401/403 refused (why set). */
static int check_jwt(const sl_http_auth_t *a, sl_http_req_t *r, const char *token, const char **why) {
  jwt_t *jwt = NULL;
  if (jwt_decode(&jwt, token, a->key, (int)a->key_len) != 0 || !jwt) {
    *why = "invalid token";
    return 401;
  }
  int status = 0;
  char *json = NULL;
  json_t *claims = NULL;
  if (jwt_get_alg(jwt) != a->alg) {
    *why = "token signed with another algorithm";
    status = 401;
    goto done;
  }
  json = jwt_get_grants_json(jwt, NULL);
  claims = json ? json_loads(json, 0, NULL) : NULL;
  if (!json_is_object(claims)) {
    *why = "token without claims";
    status = 401;
    goto done;
  }
  time_t now = time(NULL);
  json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
  if (exp && (!json_is_number(exp) || json_number_value(exp) + (double)a->leeway_s < (double)now)) {
    *why = "token expired";
    status = 401;
    goto done;
  }
  if (nbf && (!json_is_number(nbf) || json_number_value(nbf) - (double)a->leeway_s > (double)now)) {
    *why = "token not valid yet";
    status = 401;
    goto done;
  }
  json_t *iss = json_object_get(claims, "iss");
  if (*a->issuer && (!json_is_string(iss) || strcmp(json_string_value(iss), a->issuer) != 0)) {
    *why = "token from another issuer";
    status = 401;
    goto done;
  }
  json_t *aud = json_object_get(claims, "aud");
  if (*a->audience && (!aud || !aud_matches(aud, a->audience))) {
    *why = "token for another audience";
    status = 401;
    goto done;
  }
  for (uint32_t i = 0; i < a->required.n; i++) {
    json_t *c = json_object_get(claims, a->required.v[i].key);
    char *have = c ? (json_is_string(c) ? sl_xstrdup(json_string_value(c)) : json_dumps(c, JSON_ENCODE_ANY)) : NULL;
    int ok = have && strcmp(have, a->required.v[i].val) == 0;
    free(have);
    if (!ok) {
      *why = "token lacks a required claim";
      status = 403;
      goto done;
    }
  }
  const char *k;
  json_t *v;
  json_object_foreach(claims, k, v) {
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    sl_kv_add(&r->jwt, k, text, strlen(text));
    free(text);
  }
  json_t *sub = json_object_get(claims, "sub");
  if (json_is_string(sub)) {
    free(r->user);
    r->user = sl_xstrdup(json_string_value(sub));
  }
done:
  json_decref(claims);
  free(json);
  jwt_free(jwt);
  return status;
}

int sl_http_auth_check(const sl_http_auth_t *a, sl_http_req_t *r) {
  if (!a) return 0;
  if (a->keys.n) {
    const char *hk = sl_kv_get(&r->headers, a->key_header);
    char *qk = hk ? NULL : query_param(r, a->key_query);
    const char *key = hk ? hk : qk;
    const sl_kv_t *hit = key ? sl_kv_find(&a->keys, key) : NULL;
    if (hit) {
      free(r->user);
      r->user = sl_xstrdup(hit->val);
    }
    free(qk);
    if (hit) {
      r->authenticated = 1;
      r->auth = a;
      return 0;
    }
  }
  if (a->jwt_on) {
    const char *authz = sl_kv_get(&r->headers, "authorization");
    char *qt = NULL;
    const char *token = NULL;
    if (authz && strncasecmp(authz, "Bearer ", 7) == 0) token = authz + 7;
    else token = qt = query_param(r, "access_token");
    if (token) {
      const char *why = NULL;
      int status = check_jwt(a, r, token, &why);
      free(qt);
      if (status == 0) {
        r->authenticated = 1;
        r->auth = a;
        return 0;
      }
      if (status == 403) sl_http_error(r, 403, why);
      else unauthorized(r, why, 1);
      return -1;
    }
  }
  unauthorized(r, "credentials required", 0);
  return -1;
}

/* ---------- scopes ---------- */

int sl_http_claim_words(const sl_http_req_t *r, const char *claim, int (*f)(const char *w, void *arg), void *arg) {
  const char *raw = claim && *claim ? sl_kv_get(&r->jwt, claim) : NULL;
  json_t *v = raw ? json_loads(raw, JSON_DECODE_ANY, NULL) : NULL;
  int hit = 0;
  if (json_is_string(v)) {
    char *s = sl_xstrdup(json_string_value(v));
    for (char *save = NULL, *w = strtok_r(s, " ", &save); w && !hit; w = strtok_r(NULL, " ", &save)) hit = f(w, arg);
    free(s);
  } else if (json_is_array(v)) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!hit && json_is_string(e)) hit = f(json_string_value(e), arg);
  }
  json_decref(v);
  return hit;
}

static int same_word(const char *w, void *arg) { return !strcmp(w, arg); }

int sl_http_has_scope(const sl_http_req_t *r, const char *scope) {
  const sl_http_auth_t *a = r->auth;
  if (!a) return 0;
  if (!strcmp(scope, SL_SCOPE_ADMIN) && sl_globs_match(&a->admin, r->user ? r->user : "", 0)) return 1;
  return sl_http_claim_words(r, a->scope_claim, same_word, (void *)scope);
}

int sl_http_require_admin(sl_http_req_t *r, const char *what) {
  if (!r->authenticated || sl_http_has_scope(r, SL_SCOPE_ADMIN)) return 0;
  char *msg = sl_xasprintf("%s%s may not %s without the admin scope (http.auth.admin, or `admin` in a token's "
                           "http.auth.scope_claim)", r->user ? "user " : "this token", r->user ? r->user : "", what);
  sl_http_error(r, 403, msg);
  free(msg);
  return -1;
}

int sl_http_auth_lint(const sl_cnode_t *node, sl_diags_t *d) {
  if (!node) return 0;
  uint32_t before = d->n;
  const sl_cnode_t *admin = sl_cnode_get(node, "admin"), *claim = sl_cnode_get(node, "scope_claim");
  int jwt = sl_cnode_get(node, "jwt") != NULL, keys = sl_cnode_get(node, "api_keys") != NULL;
  if (admin && admin->n && !jwt && !keys)
    sl_diag_add(d, admin, "http.auth", "admin needs api_keys or jwt to tell who is asking");
  if (claim && claim->str && *claim->str && !jwt)
    sl_diag_add(d, claim, "http.auth.scope_claim", "scope_claim needs jwt: API keys carry no claims");
  for (uint32_t i = 0; admin && admin->type == SL_CN_SEQ && i < admin->n; i++)
    if (admin->items[i]->str && strstr(admin->items[i]->str, "${"))
      sl_diag_add(d, admin->items[i], "http.auth.admin", "admin lists users (or patterns of them), not ${ctx.user}");
  return (int)(d->n - before);
}
