/* JSON for scripts where lua-cjson cannot do it: tables marked as arrays or
 * objects. lua-cjson (Debian's, 2.1.0) decodes `[]` and `{}` to the same
 * empty table and encodes every empty table as `{}`. Here:
 *   - decode_marked (jansson) gives every array of the text the array
 *     metatable, so `[]` stays an array; lua/runtime.lua uses it only for
 *     texts that hold an empty array, and lua-cjson for the rest;
 *   - encode writes the same text lua-cjson does (its escapes, "%.14g"
 *     numbers, its sparse-array rule and its error messages), except that a
 *     table with the array metatable is an array and one with the object
 *     metatable an object, `this` proxies are seen through and msgpack's nil
 *     is null. */
#include "json.h"
#include "core/dec.h"
#include "core/msg.h"
#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 1000           /* lua-cjson's encode_max_depth and decode_max_depth */
#define ARRAY_MT lua_upvalueindex(1)
#define OBJECT_MT lua_upvalueindex(2)
#define RAW_KEY lua_upvalueindex(3)
#define MP_NIL lua_upvalueindex(4)
#define DECODE_LAZY lua_upvalueindex(5)   /* decodes a `this` proxy not decoded yet */
#define BUF lua_upvalueindex(6)

/* ---- decode ---- */

/* Whether the text holds "[" and "]" with only whitespace between (in a
 * string too: that costs a slower decode, never a wrong one). Called by
 * lua/runtime.lua through the FFI for every decode, so it is a memchr. */
int sl_ljson_empty_array(const char *s, size_t len) {
  const char *e = s + len;
  for (const char *p = s; (p = memchr(p, '[', (size_t)(e - p))); ) {
    for (p++; p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'); p++) {}
    if (p < e && *p == ']') return 1;
  }
  return 0;
}

static void push_json(lua_State *L, json_t *v, int depth) {
  /* lua-cjson's decode_max_depth, and its words */
  if (depth >= MAX_DEPTH) luaL_error(L, "Found too many nested data structures (%d)", depth + 1);
  luaL_checkstack(L, 4, "JSON nested too deep");
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *x;
    lua_createtable(L, 0, (int)json_object_size(v));
    json_object_foreach(v, k, x) {
      lua_pushstring(L, k);
      push_json(L, x, depth + 1);
      lua_rawset(L, -3);
    }
    return;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      push_json(L, json_array_get(v, i), depth + 1);
      lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushvalue(L, ARRAY_MT);
    lua_setmetatable(L, -2);
    return;
  }
  case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); return;
  case JSON_INTEGER: lua_pushnumber(L, (lua_Number)json_integer_value(v)); return;
  case JSON_REAL: lua_pushnumber(L, json_real_value(v)); return;
  case JSON_TRUE: lua_pushboolean(L, 1); return;
  case JSON_FALSE: lua_pushboolean(L, 0); return;
  case JSON_NULL: lua_pushlightuserdata(L, NULL); return;   /* lua-cjson's null */
  }
}

/* decode_flat(s) -> the table of a flat object, or nothing. An answer
 * from an upstream is mostly one object of strings and small numbers:
 * lua-cjson spent ~3.4k instructions on a two-member one (its buffer's
 * malloc and free, a call per token). Only what decodes the same here as
 * there is taken ({ "key": a string without escapes or control bytes, an
 * integer of up to 15 digits, true, false or null, ... }, whitespace around
 * them); anything else is left to lua-cjson (its value or its error). The
 * table is made as lua-cjson makes it (lua_newtable, then each member set
 * in the order of the text), so that pairs and encode see the same order. */
static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* The end of a plain string's bytes from p (after its opening quote), or
 * NULL. */
static const char *plain_string(const char *p, const char *e) {
  for (; p < e; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p;
    if (c == '\\' || c < 0x20) return NULL;
  }
  return NULL;
}

/* Pushes the value at p and returns its end, or NULL (nothing pushed). */
static const char *flat_value(lua_State *L, const char *p, const char *e) {
  if (*p == '"') {
    const char *q = plain_string(p + 1, e);
    if (!q) return NULL;
    lua_pushlstring(L, p + 1, (size_t)(q - p - 1));
    return q + 1;
  }
  if (*p == '-' || (*p >= '0' && *p <= '9')) {
    const char *q = p + (*p == '-');
    const char *d = q;
    int64_t v = 0;
    while (q < e && *q >= '0' && *q <= '9' && q - d < 15) v = v * 10 + (*q++ - '0');
    /* no digits, a leading zero, -0, more digits, a fraction or an exponent */
    if (q == d || (*d == '0' && q - d > 1) || (v == 0 && *p == '-') || (q < e && ((*q >= '0' && *q <= '9') ||
        *q == '.' || *q == 'e' || *q == 'E' || *q == 'x' || *q == 'X')))
      return NULL;
    lua_pushnumber(L, (lua_Number)(*p == '-' ? -v : v));
    return q;
  }
  static const struct { const char *w; size_t n; int kind; } words[] = {{"true", 4, 1}, {"false", 5, 0}, {"null", 4, 2}};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
    if ((size_t)(e - p) < words[i].n || memcmp(p, words[i].w, words[i].n) != 0) continue;
    if (words[i].kind == 2) lua_pushlightuserdata(L, NULL);   /* lua-cjson's null */
    else lua_pushboolean(L, words[i].kind);
    return p + words[i].n;
  }
  return NULL;
}

static int l_decode_flat(lua_State *L) {
  size_t len;
  if (lua_type(L, 1) != LUA_TSTRING) return 0;
  const char *s = lua_tolstring(L, 1, &len), *e = s + len;
  const char *p = ws(s, e);
  if (p == e || *p != '{') return 0;
  lua_newtable(L);
  p = ws(p + 1, e);
  if (p < e && *p == '}') return ws(p + 1, e) == e ? 1 : 0;
  while (p < e && *p == '"') {
    const char *q = plain_string(p + 1, e);
    if (!q) return 0;
    lua_pushlstring(L, p + 1, (size_t)(q - p - 1));
    p = ws(q + 1, e);
    if (p == e || *p != ':') return 0;
    p = ws(p + 1, e);
    if (p == e || !(p = flat_value(L, p, e))) return 0;
    lua_rawset(L, -3);
    p = ws(p, e);
    if (p < e && *p == '}') return ws(p + 1, e) == e ? 1 : 0;
    if (p == e || *p != ',') return 0;
    p = ws(p + 1, e);
  }
  return 0;
}

/* The parsed tree, freed by __gc if building its Lua value fails. */
static int tree_gc(lua_State *L) {
  json_t **box = lua_touserdata(L, 1);
  if (*box) json_decref(*box);
  *box = NULL;
  return 0;
}

/* decode_marked(s) -> value, or nil and jansson's error (the caller then
 * lets lua-cjson decode, or refuse, the text). upvalues: the array
 * metatable, the tree box's metatable. */
static int l_decode_marked(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  json_t **box = lua_newuserdata(L, sizeof(*box));
  *box = NULL;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setmetatable(L, -2);
  json_error_t e;
  *box = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!*box) {
    lua_pushnil(L);
    lua_pushstring(L, e.text);
    return 2;
  }
  push_json(L, *box, 0);
  json_decref(*box);
  *box = NULL;
  return 1;
}

/* ---- encode ---- */

/* The output buffer: a full userdata (upvalue 6) grown by replacing it, so
 * that an error on the way leaves nothing to free. */
typedef struct buf { char *p; size_t n, cap; } buf_t;

static void need(lua_State *L, buf_t *b, size_t more) {
  if (b->n + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + more) cap *= 2;
  char *p = lua_newuserdata(L, cap);
  memcpy(p, b->p, b->n);
  lua_replace(L, BUF);
  b->p = p;
  b->cap = cap;
}

static void add(lua_State *L, buf_t *b, const char *s, size_t n) {
  need(L, b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
}
#define ADDC(L, b, c) do { need(L, b, 1); (b)->p[(b)->n++] = (c); } while (0)

/* What lua-cjson writes for each byte: 0 the byte itself, else its escape's
 * second character ('u' for \u00XX). */
static const char escape[256] = {
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
  ['"'] = '"', ['/'] = '/', ['\\'] = '\\', [0x7f] = 'u'};

static void add_string(lua_State *L, buf_t *b, const char *s, size_t len) {
  need(L, b, len * 6 + 2);
  char *o = b->p + b->n;
  *o++ = '"';
  size_t run = 0;   /* start of the bytes not yet copied */
  for (size_t i = 0; i < len; i++) {
    char e = escape[(unsigned char)s[i]];
    if (!e) continue;
    memcpy(o, s + run, i - run);
    o += i - run;
    run = i + 1;
    *o++ = '\\';
    if (e == 'u') o += sprintf(o, "u%04x", (unsigned char)s[i]);
    else *o++ = e;
  }
  memcpy(o, s + run, len - run);
  o += len - run;
  *o++ = '"';
  b->n = (size_t)(o - b->p);
}

static void add_number(lua_State *L, buf_t *b, lua_Number x) {
  if (isnan(x) || isinf(x)) luaL_error(L, "Cannot serialise number: must not be NaN or Inf");
  char tmp[32];
  size_t n;
  /* whole numbers below 10^14 are what "%.14g" writes, digit for digit
   * (snprintf's "%lld" was ~0.7k instructions of each) */
  if (x == (lua_Number)(long long)x && x > -1e14 && x < 1e14 && !(x == 0 && signbit(x)))
    n = sl_dec(tmp, (int64_t)x);
  else
    n = (size_t)snprintf(tmp, sizeof(tmp), "%.14g", x);
  add(L, b, tmp, n);
}

static void add_value(lua_State *L, buf_t *b, int depth);

/* -1: an object; otherwise the array's length (lua-cjson's rule, or the mark). */
static long array_length(lua_State *L, int t, int marked) {
  long max = 0, items = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    lua_Number k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    if (k >= 1 && k == floor(k)) {
      if (k > max) max = (long)k;
      items++;
      continue;
    }
    if (!marked) {
      lua_pop(L, 1);
      return -1;
    }
  }
  if (marked) return max;
  if (items == 0) return -1;
  if (max > items * 2 && max > 10) luaL_error(L, "Cannot serialise table: excessively sparse array");
  return max;
}

static void add_table(lua_State *L, buf_t *b, int depth) {
  int t = lua_gettop(L);
  /* a `this` proxy: the table behind it (false: not decoded yet) */
  lua_pushvalue(L, RAW_KEY);
  lua_rawget(L, t);
  if (lua_type(L, -1) == LUA_TBOOLEAN) {
    lua_pop(L, 1);
    lua_pushvalue(L, DECODE_LAZY);
    lua_pushvalue(L, t);
    lua_call(L, 1, 1);
  }
  if (lua_type(L, -1) == LUA_TTABLE) lua_replace(L, t);
  else lua_pop(L, 1);
  int kind = 0;   /* 1 array, 2 object */
  if (lua_getmetatable(L, t)) {
    kind = lua_rawequal(L, -1, ARRAY_MT) ? 1 : lua_rawequal(L, -1, OBJECT_MT) ? 2 : 0;
    lua_pop(L, 1);
  }
  long n = kind == 2 ? -1 : array_length(L, t, kind == 1);
  if (n >= 0) {
    ADDC(L, b, '[');
    for (long i = 1; i <= n; i++) {
      if (i > 1) ADDC(L, b, ',');
      lua_rawgeti(L, t, (int)i);
      add_value(L, b, depth + 1);
    }
    ADDC(L, b, ']');
    return;
  }
  ADDC(L, b, '{');
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (!first) ADDC(L, b, ',');
    first = 0;
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);
      add_string(L, b, k, kl);
    } else if (kt == LUA_TNUMBER) {
      ADDC(L, b, '"');
      add_number(L, b, lua_tonumber(L, -2));
      ADDC(L, b, '"');
    } else {
      luaL_error(L, "Cannot serialise %s: table key must be a number or string", luaL_typename(L, -2));
    }
    ADDC(L, b, ':');
    add_value(L, b, depth + 1);
  }
  ADDC(L, b, '}');
}

/* Appends the value on top of the stack and pops it. */
static void add_value(lua_State *L, buf_t *b, int depth) {
  switch (lua_type(L, -1)) {
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    add_string(L, b, s, len);
    break;
  }
  case LUA_TNUMBER: add_number(L, b, lua_tonumber(L, -1)); break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, -1)) add(L, b, "true", 4);
    else add(L, b, "false", 5);
    break;
  case LUA_TNIL: add(L, b, "null", 4); break;
  case LUA_TTABLE:
    if (depth >= MAX_DEPTH) luaL_error(L, "Cannot serialise, excessive nesting (%d)", depth + 1);
    luaL_checkstack(L, 6, "JSON nested too deep");
    add_table(L, b, depth);
    break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, -1) == NULL) {
      add(L, b, "null", 4);
      break;
    }
    /* fall through */
  default:
    if (lua_rawequal(L, -1, MP_NIL)) {
      add(L, b, "null", 4);
      break;
    }
    luaL_error(L, "Cannot serialise %s: type not supported", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
}

/* A large buffer goes with the garbage; a small one is kept for the next call. */
static void keep_small(lua_State *L, const buf_t *b) {
  if (b->cap > (64u << 10)) {
    lua_newuserdata(L, 256);
    lua_replace(L, BUF);
  }
}

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  buf_t b = {lua_touserdata(L, BUF), 0, lua_objlen(L, BUF)};
  add_value(L, &b, 0);
  lua_pushlstring(L, b.p, b.n);
  keep_small(L, &b);
  return 1;
}

/* insert(m, src, at, sep, pieces, n): the content of m (the message's
 * address as a number) becomes src with sep and the members in pieces[1..n]
 * (a key already JSON, then its value, encoded here as encode does; sep
 * only before members) put in at byte at: a mapping's added members (lua/runtime.lua append_into). No
 * Lua string is made for a value nor for the members together: each would
 * be interned, and a new uuid's collected. A lua_CFunction, not an FFI
 * call: it ends the mapping's last trace (a stitch) before the returns that
 * LuaJIT cannot record, where an FFI call ran from the interpreter at ~1.6k
 * instructions. */
static int l_insert(lua_State *L) {
  sl_msg_t *m = (sl_msg_t *)(uintptr_t)lua_tonumber(L, 1);
  size_t len, slen;
  const char *src = lua_tolstring(L, 2, &len);
  size_t at = (size_t)lua_tointeger(L, 3);
  const char *sep = lua_tolstring(L, 4, &slen);
  int n = (int)lua_tointeger(L, 6);
  lua_settop(L, 5);
  buf_t b = {lua_touserdata(L, BUF), 0, lua_objlen(L, BUF)};
  add(L, &b, src, at);
  if (n > 0) add(L, &b, sep, slen);
  for (int i = 1; i < n; i += 2) {
    if (i > 1) ADDC(L, &b, ',');
    lua_rawgeti(L, 5, i);
    size_t klen;
    const char *k = lua_tolstring(L, -1, &klen);
    add(L, &b, k, klen);
    lua_pop(L, 1);
    ADDC(L, &b, ':');
    lua_rawgeti(L, 5, i + 1);
    add_value(L, &b, 0);
  }
  add(L, &b, src + at, len - at);
  sl_msg_set_content(m, b.p, b.n);
  keep_small(L, &b);
  return 0;
}

/* make(array_mt, object_mt, raw_key, msgpack_nil, decode_lazy) -> {encode, decode_marked, decode_flat, insert} */
static int l_make(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 5);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, SL_LJSON_ARRAY_MT);
  lua_newtable(L);
  for (int i = 1; i <= 5; i++) lua_pushvalue(L, i);
  lua_newuserdata(L, 256);
  lua_pushcclosure(L, l_encode, 6);
  lua_setfield(L, -2, "encode");
  for (int i = 1; i <= 5; i++) lua_pushvalue(L, i);
  lua_newuserdata(L, 256);
  lua_pushcclosure(L, l_insert, 6);
  lua_setfield(L, -2, "insert");
  lua_pushvalue(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, tree_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcclosure(L, l_decode_marked, 2);
  lua_setfield(L, -2, "decode_marked");
  lua_pushcfunction(L, l_decode_flat);
  lua_setfield(L, -2, "decode_flat");
  return 1;
}

void sl_ljson_push(lua_State *L) { lua_pushcfunction(L, l_make); }
