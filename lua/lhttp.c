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

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_SIZE (10u << 20)
#define DEFAULT_REDIRECTS 5
#define MAX_HEADERS 64

static void client_free(void *c) { sl_hclient_close(c); }

static void cancel_req(void *r) { sl_hclient_cancel(r); }

/* {status = , headers = {lower-case name = value}, body = } or nil, err.
 * A header that comes more than once is joined with ", " (RFC 9110 5.3). */
static int push_resp(lua_State *L, void *arg) {
  const sl_hclient_resp_t *r = arg;
  if (r->status < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "http.request: %s", r->err ? r->err : "failed");
    return 2;
  }
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, r->body, r->len);
  lua_setfield(L, -2, "body");
  lua_createtable(L, 0, 8);
  const char *p = r->headers, *end = r->headers + r->hlen;
  char name[256];
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p) {
      size_t nl = (size_t)(colon - p);
      char *n = nl <= sizeof name ? name : sl_xmalloc(nl);   /* a name longer than any real one: still kept */
      for (size_t i = 0; i < nl; i++) n[i] = (char)tolower((unsigned char)p[i]);
      lua_pushlstring(L, n, nl);
      if (n != name) free(n);
      const char *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      if (lua_isstring(L, -1)) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
  lua_setfield(L, -2, "headers");
  return 1;
}

static void on_resp(const sl_hclient_resp_t *r, void *w) { sl_lwait_done(w, push_resp, (void *)r); }

/* A duration in ms: a number of ms, or "250ms", "5s", "1m". */
static int64_t opt_ms(lua_State *L, int t, const char *key, int64_t def) {
  lua_getfield(L, t, key);
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

static const char *opt_str(lua_State *L, int t, const char *key, size_t *len) {
  lua_getfield(L, t, key);
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) s = lua_tolstring(L, -1, len);
  else if (!lua_isnil(L, -1)) luaL_error(L, "http.request: %s must be a string", key);
  lua_pop(L, 1);   /* the string stays reachable from the table */
  return s;
}

static int has_ctl(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 && s[i] != '\t') return 1;
  return 0;
}

/* The request's "Name: value" lines, kept alive in a table left on L's
 * stack until start returns. */
static void build_headers(lua_State *L, int t, const char **out) {
  int n = 0;
  out[0] = NULL;
  lua_getfield(L, t, "headers");
  if (lua_isnil(L, -1)) return;   /* most calls: no table made for nothing */
  if (!lua_istable(L, -1)) luaL_error(L, "http.request: headers must be a table of name = value");
  int h = lua_gettop(L);
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
  size_t ul = 0, bl = 0, ml = 0;
  const char *url = opt_str(L, 2, "url", &ul), *body = opt_str(L, 2, "body", &bl);
  const char *method = opt_str(L, 2, "method", &ml);
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
  int64_t timeout = opt_ms(L, 2, "timeout", DEFAULT_TIMEOUT_MS);
  lua_getfield(L, 2, "max_size");
  size_t max_size = lua_isnumber(L, -1) && lua_tonumber(L, -1) > 0 ? (size_t)lua_tonumber(L, -1) : DEFAULT_MAX_SIZE;
  lua_getfield(L, 2, "redirects");
  long redirects = lua_isnumber(L, -1) ? (long)lua_tonumber(L, -1) : DEFAULT_REDIRECTS;
  lua_pop(L, 2);
  const char *headers[MAX_HEADERS + 1];
  build_headers(L, 2, headers);
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
