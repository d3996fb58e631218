/* http.request{method, url, headers, body, timeout, max_size, redirects} for
 * scripts (http.get and http.post are lua/runtime.lua's shorthands): a
 * waiting call (lua/async.h) on the worker's HTTP client (http/http_client.h),
 * one per VM, whose connections are kept alive per host. */
#include "async.h"
#include "http/http_client.h"
#include "core/xalloc.h"
#include <ctype.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_SIZE (10u << 20)
#define DEFAULT_REDIRECTS 5
#define MAX_HEADERS 64

static void client_free(void *c) { sl_hclient_close(c); }

static void cancel_req(void *r) { sl_hclient_cancel(r); }

#define SEEN_MAX 32

/* Whether the name at p (nl bytes) came before in seen[0..n-1]; 1 too when
 * more came than seen keeps (the table is then asked). */
static int seen_before(const char *const *seen, const size_t *lens, int n, const char *p, size_t nl) {
  if (n > SEEN_MAX) return 1;
  for (int i = 0; i < n; i++)
    if (lens[i] == nl && strncasecmp(seen[i], p, nl) == 0) return 1;
  return 0;
}

/* The table {lower-case name = value} of header lines ("Name: value\r\n"...)
 * on top of L. A header that comes more than once is joined with ", " (RFC
 * 9110 5.3): names are compared here, so that the table is only read for a
 * repeat. */
static void headers_table(lua_State *L, const char *p, size_t len) {
  const char *end = p + len;
  int lines = 0;
  for (const char *q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))); q++) lines++;
  lua_createtable(L, 0, lines + 1);
  const char *seen[SEEN_MAX];
  size_t lens[SEEN_MAX];
  int nseen = 0;
  char name[256];
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p) {
      size_t nl = (size_t)(colon - p);
      int again = seen_before(seen, lens, nseen, p, nl);
      if (nseen < SEEN_MAX) seen[nseen] = p, lens[nseen] = nl;
      nseen++;
      char *n = nl <= sizeof name ? name : sl_xmalloc(nl);   /* a name longer than any real one: still kept */
      for (size_t i = 0; i < nl; i++) n[i] = (char)tolower((unsigned char)p[i]);
      lua_pushlstring(L, n, nl);
      if (n != name) free(n);
      const char *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      if (again) {
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
      }
      if (again && lua_isstring(L, -1)) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        if (again) lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

/* A response's headers are a lazy proxy (lua/async.h): most scripts never
 * read them, and their table was half of what making a response cost. The
 * proxy keeps the header lines under hdrs_key until its first use. */
static char hdrs_key, mt_key;   /* their addresses: private keys */

/* The index of the proxy p's table, made if it was not yet. */
static int headers_made(lua_State *L, int p) {
  sl_lasync_push_raw(L);
  lua_rawget(L, p);
  if (lua_istable(L, -1)) return lua_gettop(L);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, &hdrs_key);
  lua_rawget(L, p);
  size_t len;
  const char *lines = lua_tolstring(L, -1, &len);   /* kept on the stack while the table is made */
  headers_table(L, lines, len);
  sl_lasync_push_raw(L);
  lua_pushvalue(L, -2);
  lua_rawset(L, p);
  lua_pushlightuserdata(L, &hdrs_key);
  lua_pushnil(L);
  lua_rawset(L, p);
  return lua_gettop(L);
}

static int headers_index(lua_State *L) {
  int t = headers_made(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, t);
  return 1;
}

static int headers_newindex(lua_State *L) {
  int t = headers_made(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, t);
  return 0;
}

/* The proxies' metatable, one per VM (in its registry). */
static void push_headers_mt(lua_State *L) {
  lua_pushlightuserdata(L, &mt_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, headers_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, headers_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pushlightuserdata(L, &mt_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

/* status, body, headers (lua/runtime.lua makes the response's table of
 * them) or nil, err. */
static int push_resp(lua_State *L, void *arg) {
  const sl_hclient_resp_t *r = arg;
  if (r->status < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "http.request: %s", r->err ? r->err : "failed");
    return 2;
  }
  lua_pushinteger(L, r->status);
  lua_pushlstring(L, r->body, r->len);
  lua_createtable(L, 0, 2);
  sl_lasync_push_raw(L);
  lua_pushboolean(L, 0);
  lua_rawset(L, -3);
  lua_pushlightuserdata(L, &hdrs_key);
  lua_pushlstring(L, r->headers, r->hlen);
  lua_rawset(L, -3);
  push_headers_mt(L);
  lua_setmetatable(L, -2);
  return 3;
}

static void on_resp(const sl_hclient_resp_t *r, void *w) { sl_lwait_done(w, push_resp, (void *)r); }

/* A duration in ms at index i: a number of ms, or "250ms", "5s", "1m". */
static int64_t opt_ms(lua_State *L, int i, const char *key, int64_t def) {
  lua_pushvalue(L, i);
  int64_t v = def;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    v = (int64_t)lua_tonumber(L, -1);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    char *unit;
    double n = strtod(lua_tostring(L, -1), &unit);
    if (strcmp(unit, "ms") == 0) v = (int64_t)n;
    else if (strcmp(unit, "s") == 0) v = (int64_t)(n * 1e3);
    else if (strcmp(unit, "m") == 0) v = (int64_t)(n * 6e4);
    else luaL_error(L, "http.request: %s must be a number of ms or a duration such as \"5s\"", key);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "http.request: %s must be a number of ms or a duration such as \"5s\"", key);
  }
  lua_pop(L, 1);
  if (v <= 0 && def > 0) luaL_error(L, "http.request: %s must be positive", key);
  return v;
}

/* The string at index i (a number becomes one there), or NULL for nil. */
static const char *opt_str(lua_State *L, int i, const char *key, size_t *len) {
  int t = lua_type(L, i);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) return lua_tolstring(L, i, len);
  if (t != LUA_TNIL) luaL_error(L, "http.request: %s must be a string", key);
  return NULL;
}

/* The request's fields, read into stack slots base + A_*. */
enum { A_URL, A_BODY, A_METHOD, A_TIMEOUT, A_MAX_SIZE, A_REDIRECTS, A_HEADERS, A_N };
static const char *const arg_names[A_N] = {"url", "body", "method", "timeout", "max_size", "redirects", "headers"};
static const size_t arg_lens[A_N] = {3, 4, 6, 7, 8, 9, 7};

/* A walk of the table's few keys: seven lua_getfield, each interning its
 * key, were a third of starting a call. A table with a metatable may answer
 * through __index: its fields are asked for by name. Returns base. */
static int read_args(lua_State *L, int t) {
  int base = lua_gettop(L) + 1;
  lua_settop(L, base + A_N - 1);
  if (lua_getmetatable(L, t)) {
    lua_pop(L, 1);
    for (int i = 0; i < A_N; i++) {
      lua_getfield(L, t, arg_names[i]);
      lua_replace(L, base + i);
    }
    return base;
  }
  lua_pushnil(L);
  while (lua_next(L, t)) {
    size_t kl;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
    int i = 0;
    while (k && i < A_N && (arg_lens[i] != kl || memcmp(arg_names[i], k, kl))) i++;
    if (k && i < A_N) lua_replace(L, base + i);
    else lua_pop(L, 1);
  }
  return base;
}

static int has_ctl(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 && s[i] != '\t') return 1;
  return 0;
}

/* The request's "Name: value" lines, kept alive in a table left on L's
 * stack until start returns. */
static void build_headers(lua_State *L, int h, const char **out) {
  int n = 0;
  out[0] = NULL;
  if (lua_isnil(L, h)) return;   /* most calls: no table made for nothing */
  if (!lua_istable(L, h)) luaL_error(L, "http.request: headers must be a table of name = value");
  int top = lua_gettop(L);
  sl_lasync_push_raw(L);   /* a lazy proxy (a response's headers passed on): its table */
  lua_rawget(L, h);
  if (lua_type(L, -1) == LUA_TBOOLEAN) {   /* not made yet: its __index makes it */
    lua_pushlightuserdata(L, &mt_key);
    lua_gettable(L, h);
    sl_lasync_push_raw(L);
    lua_rawget(L, h);
  }
  if (lua_istable(L, -1)) lua_replace(L, h);
  lua_settop(L, top);
  lua_newtable(L);
  int hold = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, h)) {
    size_t kl, vl;
    if (lua_type(L, -2) != LUA_TSTRING || !(lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER))
      luaL_error(L, "http.request: headers must be a table of name = value strings");
    const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
    if (!kl || has_ctl(k, kl) || memchr(k, ':', kl) || memchr(k, ' ', kl) || has_ctl(v, vl))
      luaL_error(L, "http.request: header '%s' has a name or value with a control character, space or colon", k);
    if (n == MAX_HEADERS) luaL_error(L, "http.request: more than %d headers", MAX_HEADERS);
    lua_pushfstring(L, "%s: %s", k, v);
    out[n++] = lua_tostring(L, -1);
    lua_rawseti(L, hold, n);
    lua_pop(L, 1);
  }
  out[n] = NULL;
}

static int start(lua_State *L) {
  sl_lwait_t *w = lua_touserdata(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING) {   /* http.request(url): a GET */
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "url");
    lua_replace(L, 2);
  }
  if (!lua_istable(L, 2)) return luaL_error(L, "http.request: expects a table {method, url, headers, body, timeout}");
  int a = read_args(L, 2);
  size_t ul = 0, bl = 0, ml = 0;
  const char *url = opt_str(L, a + A_URL, "url", &ul), *body = opt_str(L, a + A_BODY, "body", &bl);
  const char *method = opt_str(L, a + A_METHOD, "method", &ml);
  if (!url) return luaL_error(L, "http.request: url is required");
  if (has_ctl(url, ul) || strlen(url) != ul) return luaL_error(L, "http.request: url has a control character");
  char verb[16];
  if (!method) method = body ? "POST" : "GET";
  ml = strlen(method);
  if (!ml || ml >= sizeof verb) return luaL_error(L, "http.request: method '%s' is not an HTTP method", method);
  for (size_t i = 0; i < ml; i++) {
    if (!isalpha((unsigned char)method[i])) return luaL_error(L, "http.request: method '%s' is not an HTTP method", method);
    verb[i] = (char)toupper((unsigned char)method[i]);
  }
  verb[ml] = 0;
  int64_t timeout = opt_ms(L, a + A_TIMEOUT, "timeout", DEFAULT_TIMEOUT_MS);
  int ms = a + A_MAX_SIZE, rd = a + A_REDIRECTS;
  size_t max_size = lua_isnumber(L, ms) && lua_tonumber(L, ms) > 0 ? (size_t)lua_tonumber(L, ms) : DEFAULT_MAX_SIZE;
  long redirects = lua_isnumber(L, rd) ? (long)lua_tonumber(L, rd) : DEFAULT_REDIRECTS;
  const char *headers[MAX_HEADERS + 1];
  build_headers(L, a + A_HEADERS, headers);
  int64_t left = sl_lwait_left_ms(w);
  /* The message's deadline, when sooner, is the host's to enforce (its timer
   * is due first): the call fails the message rather than returning nil. */
  if (left >= 0 && left < timeout) timeout = left + 10;
  void **slot = sl_lwait_client(w, SL_LCLIENT_HTTP, client_free);
  if (!*slot) *slot = sl_hclient_new(sl_lwait_loop(w));
  sl_hclient_opts_t o = {.method = verb, .url = url, .headers = headers, .body = body, .len = bl,
                         .timeout_ms = timeout, .max_body = max_size, .max_redirects = redirects};
  sl_hclient_req_t *r = sl_hclient_send(*slot, &o, on_resp, w);
  if (r) sl_lwait_on_cancel(w, cancel_req, r);
  return 0;
}

SL_LASYNC_BINDING("http.request", start)
