/* The `re` module: PCRE2 regular expressions for scripts. Patterns are
 * compiled once (JIT where PCRE2 has it) and kept in a bounded cache per VM;
 * PCRE2's memory comes from the VM's allocator (so lua.max_memory counts it);
 * every match runs under a match, depth and heap limit, so that a pattern
 * that backtracks catastrophically fails its message instead of holding the
 * worker (one pcre2_match is then at most ~20 ms); loops over many matches
 * ask the script's guard for its deadline before each. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "re.h"
#include <lauxlib.h>
#include <pcre2.h>
#include <string.h>

#define CACHE_MAX 256            /* compiled patterns kept per VM; the cache is emptied when full */
#define MATCH_LIMIT 10000000     /* PCRE2's default: 15-25 ms of backtracking here */
#define DEPTH_LIMIT 100000
#define HEAP_LIMIT_KIB (64 * 1024)
#define JIT_STACK_MAX (1 << 20)
#define STATE_UPV lua_upvalueindex(1)
#define CACHE_UPV lua_upvalueindex(2)
#define RE_MT "sluice.re"

/* What every function shares (upvalue 1): a full userdata owned by the VM. */
typedef struct re_state {
  lua_Alloc alloc;
  void *ud;
  sl_lguard_t *guard;
  pcre2_general_context *gctx;
  pcre2_compile_context *cctx;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit_stack;
  int cached;                    /* entries in the cache table (upvalue 2) */
} re_state_t;

typedef struct re {
  pcre2_code *code;
  pcre2_match_data *md;
  uint32_t ncap, nnames, name_size;
  PCRE2_SPTR names;
  int utf;
} re_t;

/* PCRE2's allocations, through the VM's allocator, with their size ahead. */
typedef union { size_t n; max_align_t align; } hdr_t;
static void *re_malloc(PCRE2_SIZE size, void *data) {
  re_state_t *st = data;
  hdr_t *h = st->alloc(st->ud, NULL, 0, sizeof(hdr_t) + size);
  if (!h) return NULL;
  h->n = sizeof(hdr_t) + size;
  return h + 1;
}
static void re_free(void *p, void *data) {
  re_state_t *st = data;
  if (!p) return;
  hdr_t *h = (hdr_t *)p - 1;
  st->alloc(st->ud, h, h->n, 0);
}

static re_state_t *state(lua_State *L) { return lua_touserdata(L, STATE_UPV); }

static int fail_mem(lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}

static const char *pcre_text(int rc, char *buf, size_t cap) {
  if (pcre2_get_error_message(rc, (PCRE2_UCHAR *)buf, cap) < 0) snprintf(buf, cap, "error %d", rc);
  return buf;
}

static uint32_t parse_flags(lua_State *L, int arg) {
  const char *f = luaL_optstring(L, arg, "");
  uint32_t o = 0;
  for (; *f; f++) {
    switch (*f) {
    case 'i': o |= PCRE2_CASELESS; break;
    case 'm': o |= PCRE2_MULTILINE; break;
    case 's': o |= PCRE2_DOTALL; break;
    case 'x': o |= PCRE2_EXTENDED; break;
    case 'u': o |= PCRE2_UTF | PCRE2_UCP; break;
    case 'U': o |= PCRE2_UNGREEDY; break;
    case 'a': o |= PCRE2_ANCHORED; break;
    case 'D': o |= PCRE2_DOLLAR_ENDONLY; break;
    case 'J': o |= PCRE2_DUPNAMES; break;
    case 'j': case 'o': break;   /* OpenResty's "JIT" and "compile once": always so here */
    default: luaL_argerror(L, arg, lua_pushfstring(L, "unknown flag '%c' (flags: i m s x u U a D J)", *f));
    }
  }
  return o;
}

static int re_gc(lua_State *L) {
  re_t *r = lua_touserdata(L, 1);
  if (r->md) pcre2_match_data_free(r->md);
  if (r->code) pcre2_code_free(r->code);
  r->md = NULL;
  r->code = NULL;
  return 0;
}

/* PCRE2's contexts, made by the VM's first pattern: a VM whose scripts use
 * no regex (most) neither loads PCRE2 nor spends its start on them. */
static void contexts(lua_State *L, re_state_t *st) {
  if (st->mctx) return;
  if (!st->gctx) st->gctx = pcre2_general_context_create(re_malloc, re_free, st);
  if (st->gctx && !st->cctx) st->cctx = pcre2_compile_context_create(st->gctx);
  if (!st->gctx || !st->cctx) luaL_error(L, "re: cannot create PCRE2 contexts");
  /* a pattern longer than this is refused (PCRE2_ERROR_PATTERN_TOO_LARGE) */
  pcre2_set_max_pattern_length(st->cctx, 1 << 16);
  pcre2_match_context *m = pcre2_match_context_create(st->gctx);
  if (!m) luaL_error(L, "re: cannot create PCRE2 contexts");
  pcre2_set_match_limit(m, MATCH_LIMIT);
  pcre2_set_depth_limit(m, DEPTH_LIMIT);
  pcre2_set_heap_limit(m, HEAP_LIMIT_KIB);
  st->jit_stack = pcre2_jit_stack_create(32 << 10, JIT_STACK_MAX, st->gctx);
  if (st->jit_stack) pcre2_jit_stack_assign(m, NULL, st->jit_stack);
  st->mctx = m;   /* last: it says the contexts are ready */
}

/* Compiles pattern p with options o into a new userdata (left on the stack). */
static re_t *compile(lua_State *L, re_state_t *st, const char *p, size_t plen, uint32_t o) {
  contexts(L, st);
  re_t *r = lua_newuserdata(L, sizeof(*r));
  memset(r, 0, sizeof(*r));
  luaL_getmetatable(L, RE_MT);
  lua_setmetatable(L, -2);
  int rc;
  PCRE2_SIZE at;
  r->code = pcre2_compile((PCRE2_SPTR)p, plen, o, &rc, &at, st->cctx);
  if (!r->code) {
    if (rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_NOMEMORY) fail_mem(L);
    char buf[256];
    luaL_error(L, "re: bad pattern at offset %d: %s", (int)at, pcre_text(rc, buf, sizeof(buf)));
  }
  /* JIT is an optimisation: a pattern it cannot take runs interpreted. Its
   * code (outside the VM's allocator) is small beside the compiled pattern,
   * which the allocator counts: 200k re.compile in a loop peak at 16 MB RSS. */
  pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
  r->md = pcre2_match_data_create_from_pattern(r->code, st->gctx);
  if (!r->md) fail_mem(L);
  pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &r->ncap);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &r->nnames);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &r->name_size);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &r->names);
  r->utf = (o & PCRE2_UTF) != 0;
  return r;
}

/* Empties the cache in place (every function holds the same table). */
static void cache_clear(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, CACHE_UPV)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, CACHE_UPV);
  }
}

/* The regex of argument pidx: a compiled one, or a pattern string with the
 * flags at fidx, from the cache or compiled into it. Pushes it, so that it
 * stays alive while it is used (a callback may empty the cache). */
static re_t *get_re(lua_State *L, int pidx, int fidx) {
  re_t *r = luaL_testudata(L, pidx, RE_MT);
  if (r) {
    if (!lua_isnoneornil(L, fidx)) luaL_argerror(L, fidx, "flags belong to re.compile for a compiled pattern");
    lua_pushvalue(L, pidx);
    return r;
  }
  size_t plen;
  const char *p = luaL_checklstring(L, pidx, &plen);
  uint32_t o = parse_flags(L, fidx);
  /* key: the pattern, or the flags, a NUL and the pattern */
  if (o) {
    lua_pushstring(L, lua_tostring(L, fidx));
    lua_pushlstring(L, "", 1);
    lua_pushvalue(L, pidx);
    lua_concat(L, 3);
  } else {
    lua_pushvalue(L, pidx);
  }
  lua_pushvalue(L, -1);
  lua_rawget(L, CACHE_UPV);
  r = lua_touserdata(L, -1);
  if (r) {
    lua_remove(L, -2);
    return r;
  }
  lua_pop(L, 1);
  re_state_t *st = state(L);
  if (st->cached >= CACHE_MAX) {
    /* emptied, not evicted one by one: the patterns of a script are few, and
     * a script that makes patterns from data gets a cache that cannot grow */
    cache_clear(L);
    st->cached = 0;
  }
  r = compile(L, st, p, plen, o);   /* key, regex */
  lua_pushvalue(L, -1);
  lua_insert(L, -3);                 /* regex, key, regex */
  lua_rawset(L, CACHE_UPV);
  st->cached++;
  return r;
}

static void check_guard(lua_State *L, re_state_t *st) {
  int irq = sl_lguard_check(st->guard);
  if (irq == SL_LIRQ_DEADLINE || irq == SL_LIRQ_BUDGET || irq == SL_LIRQ_CSTACK)
    luaL_error(L, "%s", sl_lguard_message(st->guard, irq));
}

/* One pcre2_match from pos: 1 matched, 0 not. Limits and bad input raise. */
static int exec(lua_State *L, re_state_t *st, re_t *r, const char *s, size_t len, size_t pos, uint32_t opts) {
  int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, pos, opts, r->md, st->mctx);
  if (rc >= 0) return 1;
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  switch (rc) {
  case PCRE2_ERROR_MATCHLIMIT:
  case PCRE2_ERROR_DEPTHLIMIT:
  case PCRE2_ERROR_HEAPLIMIT:
  case PCRE2_ERROR_JIT_STACKLIMIT:
    return luaL_error(L, "re: the pattern backtracks too much (%s): catastrophic backtracking, rewrite the pattern",
                      rc == PCRE2_ERROR_MATCHLIMIT ? "match limit exceeded" : rc == PCRE2_ERROR_HEAPLIMIT ? "heap limit exceeded"
                      : "depth limit exceeded");
  case PCRE2_ERROR_NOMEMORY: return fail_mem(L);
  }
  char buf[256];
  if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
    return luaL_error(L, "re: subject is not valid UTF-8 at byte %d: %s", (int)pcre2_get_startchar(r->md) + 1,
                      pcre_text(rc, buf, sizeof(buf)));
  return luaL_error(L, "re: %s", pcre_text(rc, buf, sizeof(buf)));
}

/* Pushes the captures of the last match as a table: [0] the whole match,
 * [1..n] the groups (false when a group took no part), [name] named groups. */
static void push_match(lua_State *L, re_t *r, const char *s) {
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
  lua_createtable(L, (int)r->ncap, (int)r->nnames + 1);
  for (uint32_t i = 0; i <= r->ncap; i++) {
    if (ov[2 * i] == PCRE2_UNSET) lua_pushboolean(L, 0);
    else lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
    lua_rawseti(L, -2, (int)i);
  }
  for (uint32_t i = 0; i < r->nnames; i++) {
    PCRE2_SPTR e = r->names + (size_t)i * r->name_size;
    int g = e[0] << 8 | e[1];
    /* with duplicate names, the first group that matched */
    lua_getfield(L, -1, (const char *)e + 2);
    int have = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (have) continue;
    lua_rawgeti(L, -1, g);
    lua_setfield(L, -2, (const char *)e + 2);
  }
}

/* A 1-based init (negative: from the end, as string.find) as a 0-based offset,
 * or -1 past the end. */
static long start_at(lua_State *L, int arg, size_t len) {
  lua_Integer init = luaL_optinteger(L, arg, 1);
  if (init < 0) init = (lua_Integer)len + init + 1;
  if (init < 1) init = 1;
  if ((size_t)init > len + 1) return -1;
  return (long)init - 1;
}

/* The first match of (subject, pattern [, flags [, init]]): the regex, or
 * NULL (and nil pushed) when there is none. */
static re_t *first_match(lua_State *L, const char **s) {
  lua_settop(L, 4);
  size_t len;
  *s = luaL_checklstring(L, 1, &len);
  re_t *r = get_re(L, 2, 3);
  long pos = start_at(L, 4, len);
  if (pos < 0 || !exec(L, state(L), r, *s, len, (size_t)pos, 0)) {
    lua_pushnil(L);
    return NULL;
  }
  return r;
}

/* re.match(subject, pattern [, flags [, init]]) -> table of captures | nil */
static int l_match(lua_State *L) {
  const char *s;
  re_t *r = first_match(L, &s);
  if (r) push_match(L, r, s);
  return 1;
}

/* re.find(subject, pattern [, flags [, init]]) -> from, to | nil (1-based, inclusive) */
static int l_find(lua_State *L) {
  const char *s;
  re_t *r = first_match(L, &s);
  if (!r) return 1;
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
  lua_pushinteger(L, (lua_Integer)ov[0] + 1);
  lua_pushinteger(L, (lua_Integer)ov[1]);
  return 2;
}

/* Iterating matches as Go's regexp does (and Benthos's re_* functions): an
 * empty match right after the previous match is skipped. */
typedef struct iter {
  size_t pos;
  long last_end;                 /* end of the previous match, -1 before the first */
  uint32_t opts;                 /* after the first match the subject's UTF-8 is known good */
} iter_t;

static int next_match(lua_State *L, re_state_t *st, re_t *r, const char *s, size_t len, iter_t *it) {
  while (it->pos <= len) {
    check_guard(L, st);
    if (!exec(L, st, r, s, len, it->pos, it->opts)) return 0;
    if (r->utf) it->opts |= PCRE2_NO_UTF_CHECK;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    if (ov[0] == ov[1] && (long)ov[0] == it->last_end) {
      /* skip one character */
      size_t p = ov[0] + 1;
      if (r->utf)
        while (p < len && ((unsigned char)s[p] & 0xC0) == 0x80) p++;
      it->pos = p;
      continue;
    }
    it->last_end = (long)ov[1];
    it->pos = ov[1];
    return 1;
  }
  return 0;
}

/* upvalues: state, cache, subject, regex, position, last end */
static int gmatch_aux(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, lua_upvalueindex(3), &len);
  re_t *r = lua_touserdata(L, lua_upvalueindex(4));
  iter_t it = {(size_t)lua_tointeger(L, lua_upvalueindex(5)), (long)lua_tointeger(L, lua_upvalueindex(6)),
               r->utf && lua_tointeger(L, lua_upvalueindex(5)) > 0 ? PCRE2_NO_UTF_CHECK : 0};
  if (!next_match(L, state(L), r, s, len, &it)) return 0;
  lua_pushinteger(L, (lua_Integer)it.pos);
  lua_replace(L, lua_upvalueindex(5));
  lua_pushinteger(L, (lua_Integer)it.last_end);
  lua_replace(L, lua_upvalueindex(6));
  push_match(L, r, s);
  return 1;
}

/* re.gmatch(subject, pattern [, flags]) -> iterator of capture tables */
static int l_gmatch(lua_State *L) {
  lua_settop(L, 3);
  luaL_checkstring(L, 1);
  get_re(L, 2, 3);
  lua_pushvalue(L, STATE_UPV);
  lua_pushvalue(L, CACHE_UPV);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -4);
  lua_pushinteger(L, 0);
  lua_pushinteger(L, -1);
  lua_pushcclosure(L, gmatch_aux, 6);
  return 1;
}

/* Appends the replacement template for the last match: $0..$9, ${n},
 * ${name}, $$ for a dollar. */
static void add_template(lua_State *L, luaL_Buffer *b, re_t *r, const char *s, const char *t, size_t tlen) {
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
  for (size_t i = 0; i < tlen; i++) {
    if (t[i] != '$') {
      luaL_addchar(b, t[i]);
      continue;
    }
    i++;
    long g = -1;
    if (i < tlen && t[i] == '$') {
      luaL_addchar(b, '$');
      continue;
    } else if (i < tlen && t[i] >= '0' && t[i] <= '9') {
      g = t[i] - '0';
    } else if (i < tlen && t[i] == '{') {
      const char *close = memchr(t + i, '}', tlen - i);
      if (!close) luaL_error(L, "re.gsub: unclosed ${ in the replacement");
      size_t nlen = (size_t)(close - (t + i + 1));
      char name[64];
      if (nlen == 0 || nlen >= sizeof(name)) luaL_error(L, "re.gsub: bad group name in the replacement");
      memcpy(name, t + i + 1, nlen);
      name[nlen] = 0;
      char *end;
      g = strtol(name, &end, 10);
      if (*end) {
        g = pcre2_substring_number_from_name(r->code, (PCRE2_SPTR)name);
        if (g < 0) luaL_error(L, "re.gsub: no group named \"%s\"", name);
      }
      i += nlen + 1;
    } else {
      luaL_error(L, "re.gsub: '$' must be followed by a digit, {name} or '$' in the replacement");
    }
    if (g > (long)r->ncap) luaL_error(L, "re.gsub: no group %d in the pattern", (int)g);
    if (ov[2 * g] != PCRE2_UNSET) luaL_addlstring(b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
  }
}

/* re.gsub(subject, pattern, replacement [, flags [, max]]) -> string, count.
 * replacement: a template string, or a function(match table) whose string or
 * number replaces the match (nil or false keeps it). */
static int l_gsub(lua_State *L) {
  lua_settop(L, 5);
  size_t len, tlen = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  re_t *r = get_re(L, 2, 4);
  int fn = lua_type(L, 3) == LUA_TFUNCTION;
  const char *t = fn ? NULL : luaL_checklstring(L, 3, &tlen);
  lua_Integer max = luaL_optinteger(L, 5, -1);
  re_state_t *st = state(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  iter_t it = {0, -1, 0};
  size_t copied = 0;
  lua_Integer n = 0;
  while (max < 0 || n < max) {
    if (!next_match(L, st, r, s, len, &it)) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    size_t ms = ov[0], me = ov[1];
    luaL_addlstring(&b, s + copied, ms - copied);
    if (fn) {
      lua_pushvalue(L, 3);
      push_match(L, r, s);
      lua_call(L, 1, 1);
      if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
        luaL_addvalue(&b);
      } else if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(&b, s + ms, me - ms);
      } else {
        return luaL_error(L, "re.gsub: the replacement function returned a %s", luaL_typename(L, -1));
      }
    } else {
      add_template(L, &b, r, s, t, tlen);
    }
    copied = me;
    n++;
  }
  luaL_addlstring(&b, s + copied, len - copied);
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

/* re.split(subject, pattern [, flags [, max]]) -> list of the parts between
 * matches, as Go's Regexp.Split: max > 0 gives at most max parts (the last
 * one unsplit). */
static int l_split(lua_State *L) {
  lua_settop(L, 4);
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  re_t *r = get_re(L, 2, 3);
  lua_Integer max = luaL_optinteger(L, 4, -1);
  re_state_t *st = state(L);
  lua_newtable(L);
  if (max == 0) return 1;
  int n = 0;
  iter_t it = {0, -1, 0};
  size_t beg = 0, end = 0;
  while (max < 0 || n < max - 1) {
    if (!next_match(L, st, r, s, len, &it)) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    end = ov[0];
    if (ov[1] != 0) {
      lua_pushlstring(L, s + beg, end - beg);
      lua_rawseti(L, -2, ++n);
    }
    beg = ov[1];
  }
  if (end != len || len == 0) {
    lua_pushlstring(L, s + beg, len - beg);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* re.compile(pattern [, flags]) -> a regex with the same functions as methods */
static int l_compile(lua_State *L) {
  size_t plen;
  const char *p = luaL_checklstring(L, 1, &plen);
  compile(L, state(L), p, plen, parse_flags(L, 2));
  return 1;
}

/* re.escape(s): s with every character PCRE2 could read as syntax escaped. */
static int l_escape(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0) {
      luaL_addstring(&b, "\\x00");
      continue;
    }
    if (strchr("\\^$.|?*+()[]{}-/#", c) || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')
      luaL_addchar(&b, '\\');
    luaL_addchar(&b, (char)c);
  }
  luaL_pushresult(&b);
  return 1;
}

/* Methods: r:match(s [, init]) is re.match(s, r, nil, init), and so on.
 * upvalues: state, cache, the function, where its flags go. */
static int method(lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(3));
  int flags_at = (int)lua_tointeger(L, lua_upvalueindex(4));
  luaL_checkudata(L, 1, RE_MT);
  if (lua_gettop(L) < flags_at - 1) lua_settop(L, flags_at - 1);
  lua_pushvalue(L, 1);
  lua_remove(L, 1);
  lua_insert(L, 2);       /* (s, r, ...) */
  lua_pushnil(L);
  lua_insert(L, flags_at);
  return f(L);
}

static int state_gc(lua_State *L) {
  re_state_t *st = lua_touserdata(L, 1);
  if (st->jit_stack) pcre2_jit_stack_free(st->jit_stack);
  if (st->mctx) pcre2_match_context_free(st->mctx);
  if (st->cctx) pcre2_compile_context_free(st->cctx);
  if (st->gctx) pcre2_general_context_free(st->gctx);
  st->jit_stack = NULL;
  st->mctx = NULL;
  st->cctx = NULL;
  st->gctx = NULL;
  return 0;
}

static const luaL_Reg fns[] = {{"match", l_match}, {"find", l_find}, {"gmatch", l_gmatch}, {"gsub", l_gsub},
                               {"split", l_split}, {"compile", l_compile}, {NULL, NULL}};

void sl_lre_push(lua_State *L, sl_lguard_t *g) {
  re_state_t *st = lua_newuserdata(L, sizeof(*st));
  memset(st, 0, sizeof(*st));
  int sidx = lua_gettop(L);
  st->alloc = lua_getallocf(L, &st->ud);
  st->guard = g;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, sidx);
  luaL_newmetatable(L, RE_MT);
  int mt = lua_gettop(L);
  lua_pushcfunction(L, re_gc);
  lua_setfield(L, mt, "__gc");
  lua_pushboolean(L, 0);
  lua_setfield(L, mt, "__metatable");
  lua_pushliteral(L, "regex");
  lua_setfield(L, mt, "__name");
  lua_newtable(L);                 /* methods */
  lua_newtable(L);                 /* module */
  int methods = mt + 1, module = mt + 2;
  lua_newtable(L);                 /* the cache */
  int cache = lua_gettop(L);
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushvalue(L, sidx);
    lua_pushvalue(L, cache);
    lua_pushcclosure(L, f->func, 2);
    if (f->func != l_compile) {
      lua_pushvalue(L, sidx);
      lua_pushvalue(L, cache);
      lua_pushvalue(L, -3);
      lua_pushinteger(L, f->func == l_gsub ? 4 : 3);
      lua_pushcclosure(L, method, 4);
      lua_setfield(L, methods, f->name);
    }
    lua_setfield(L, module, f->name);
  }
  lua_pushcfunction(L, l_escape);
  lua_setfield(L, module, "escape");
  lua_pop(L, 1);                   /* cache */
  lua_pushvalue(L, methods);
  lua_setfield(L, mt, "__index");
  lua_pushvalue(L, module);
  lua_replace(L, sidx);
  lua_settop(L, sidx);
}
