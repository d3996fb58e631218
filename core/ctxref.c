#include "ctxref.h"
#include "xalloc.h"
#include <ctype.h>
#include <jansson.h>
#include <string.h>

static const char *const scalars[] = {"method", "path", "remote_addr", "request_id", "user", NULL};
static const char *const maps[] = {"query", "headers", "params", "cookies", "jwt", NULL};
static const struct { const char *prefix, *map; } tyk[] = {
  {"request_data_", "query"}, {"headers_", "headers"}, {"jwt_claims_", "jwt"}, {"cookies_", "cookies"},
  {NULL, NULL}};
static const char *const tyk_scalars[] = {"remote_addr", "path", "request_id", NULL};

static int in(const char *const *set, const char *s, size_t n) {
  for (; *set; set++)
    if (strlen(*set) == n && memcmp(*set, s, n) == 0) return 1;
  return 0;
}

static int name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }

/* `${ctx.a}` or `${ctx.a.b}` with an optional `:default`. */
static int parse_ctx(const char *s, size_t i, sl_ctxref_t *ref) {
  const char *p = s + i + 6, *close = strchr(p, '}');
  if (!close) return -1;
  const char *colon = memchr(p, ':', (size_t)(close - p));
  const char *end = colon ? colon : close;
  const char *dot = memchr(p, '.', (size_t)(end - p));
  if (dot ? !in(maps, p, (size_t)(dot - p)) || dot + 1 == end : !in(scalars, p, (size_t)(end - p))) return -1;
  ref->end = (size_t)(close - s) + 1;
  ref->what = sl_xstrndup(p, (size_t)(end - p));
  if (dot && strncmp(p, "headers.", 8) == 0)
    for (char *c = ref->what + 8; *c; c++) *c = (char)tolower((unsigned char)*c);
  ref->def = colon ? sl_xstrndup(colon + 1, (size_t)(close - colon - 1)) : NULL;
  return 1;
}

/* `$tyk_context.<prefix><name>`: the name runs over letters, digits, '_'
 * and '-'; Tyk writes header names with '_' for '-'. */
static int parse_tyk(const char *s, size_t i, sl_ctxref_t *ref) {
  const char *p = s + i + 13;
  for (int t = 0; tyk[t].prefix; t++) {
    size_t pl = strlen(tyk[t].prefix);
    if (strncmp(p, tyk[t].prefix, pl) != 0 || !name_char(p[pl])) continue;
    const char *e = p + pl;
    while (name_char(*e)) e++;
    ref->end = (size_t)(e - s);
    ref->what = sl_xasprintf("%s.%.*s", tyk[t].map, (int)(e - p - pl), p + pl);
    if (strcmp(tyk[t].map, "headers") == 0)
      for (char *c = ref->what + 8; *c; c++) *c = *c == '_' ? '-' : (char)tolower((unsigned char)*c);
    return 1;
  }
  const char *e = p;
  while (name_char(*e)) e++;
  if (!in(tyk_scalars, p, (size_t)(e - p))) return -1;
  ref->end = (size_t)(e - s);
  ref->what = sl_xstrndup(p, (size_t)(e - p));
  return 1;
}

int sl_ctxref_next(const char *s, size_t from, sl_ctxref_t *ref) {
  *ref = (sl_ctxref_t){0};
  for (size_t i = from; s[i]; i++) {
    if (s[i] != '$') continue;
    if (i > 0 && s[i - 1] == '$') continue;   /* `$${` is a literal */
    ref->start = i;
    if (strncmp(s + i, "${ctx.", 6) == 0) return parse_ctx(s, i, ref);
    if (strncmp(s + i, "$tyk_context.", 13) == 0) return parse_tyk(s, i, ref);
  }
  return 0;
}

void sl_ctxref_clear(sl_ctxref_t *ref) {
  free(ref->what);
  free(ref->def);
  *ref = (sl_ctxref_t){0};
}

int sl_ctxref_has(const char *s) {
  sl_ctxref_t r;
  int rc = s ? sl_ctxref_next(s, 0, &r) : 0;
  sl_ctxref_clear(&r);
  return rc == 1;
}

/* Values land in config text that may be Lua code, a file path or a topic:
 * only characters that cannot end a string literal or climb a directory. */
static int safe_value(const char *v) {
  if (!*v || strlen(v) > 256 || !strcmp(v, ".") || !strcmp(v, "..")) return 0;
  for (const char *c = v; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr("-._~@+:=,|", *c)) return 0;
  return 1;
}

static const char *scalar_of(const sl_ctx_t *c, const char *what) {
  if (!strcmp(what, "method")) return c->method;
  if (!strcmp(what, "path")) return c->path;
  if (!strcmp(what, "remote_addr")) return c->remote_addr;
  if (!strcmp(what, "request_id")) return c->request_id;
  return c->user;
}

static char *lookup(const sl_ctx_t *c, const char *what) {
  const char *dot = strchr(what, '.');
  if (!dot) {
    const char *v = scalar_of(c, what);
    return v && *v ? sl_xstrdup(v) : NULL;
  }
  const sl_kvlist_t *l = !strncmp(what, "query.", 6) ? &c->query
                         : !strncmp(what, "headers.", 8) ? &c->headers
                         : !strncmp(what, "params.", 7) ? &c->params
                         : !strncmp(what, "cookies.", 8) ? &c->cookies : &c->jwt;
  const sl_kv_t *kv = sl_kv_find(l, dot + 1);
  if (!kv || !kv->vlen) return NULL;
  if (l != &c->jwt) return sl_xstrndup(kv->val, kv->vlen);
  /* Claims are kept JSON-encoded: a string claim is its text. */
  json_t *j = json_loadb(kv->val, kv->vlen, JSON_DECODE_ANY, NULL);
  char *v = json_is_string(j) ? sl_xstrdup(json_string_value(j)) : sl_xstrndup(kv->val, kv->vlen);
  json_decref(j);
  return v;
}

static const char *describe(const char *what) {
  if (!strncmp(what, "query.", 6)) return "query parameter";
  if (!strncmp(what, "headers.", 8)) return "header";
  if (!strncmp(what, "params.", 7)) return "path parameter";
  if (!strncmp(what, "cookies.", 8)) return "cookie";
  if (!strncmp(what, "jwt.", 4)) return "JWT claim";
  return "request value";
}

char *sl_ctxref_value(const sl_ctxref_t *ref, const sl_ctx_t *c, char **why) {
  char *v = lookup(c, ref->what);
  if (!v && ref->def) v = sl_xstrdup(ref->def);
  const char *dot = strchr(ref->what, '.');
  const char *name = dot ? dot + 1 : ref->what;
  if (!v) {
    *why = sl_xasprintf("this path needs the %s `%s`", describe(ref->what), name);
    return NULL;
  }
  if (!safe_value(v)) {
    *why = sl_xasprintf("the %s `%s` may hold up to 256 letters, digits and -._~@+:=,| only (it lands in the "
                        "stream's config)", describe(ref->what), name);
    free(v);
    return NULL;
  }
  return v;
}

char *sl_ctxref_subst(const char *s, const sl_ctx_t *c, char **why) {
  size_t at = 0, len = strlen(s);
  char *out = sl_xstrdup("");
  sl_ctxref_t ref;
  int rc;
  while ((rc = sl_ctxref_next(s, at, &ref)) == 1) {
    char *v = c ? sl_ctxref_value(&ref, c, why) : sl_xstrdup(ref.def ? ref.def : "x");
    if (!v) {
      sl_ctxref_clear(&ref);
      free(out);
      return NULL;
    }
    char *next = sl_xasprintf("%s%.*s%s", out, (int)(ref.start - at), s + at, v);
    free(out);
    free(v);
    out = next;
    at = ref.end;
    sl_ctxref_clear(&ref);
  }
  sl_ctxref_clear(&ref);
  char *full = sl_xasprintf("%s%.*s", out, (int)(len - at), s + at);
  free(out);
  return full;
}
