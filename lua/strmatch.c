/* string.find, match, gmatch and gsub for scripts: LuaJIT's own pattern
 * matcher (lib_string.c, MIT, from Lua 5.1's lstrlib.c) with one change, a
 * countdown in every loop that can run long, which asks the script's guard
 * whether the call is over its time. LuaJIT's matcher cannot be interrupted
 * (a hook never fires inside a C function), so a pattern such as
 * ".-.-.-.-b" against 600 bytes would hold the worker for minutes; here it
 * fails the message at lua.max_time, as Luau's matcher calls its interrupt.
 * Searches for a fixed string use memmem (linear) instead of LuaJIT's
 * quadratic one. Semantics (classes are ASCII, %g included; an init past the
 * end finds at the end) are LuaJIT's.
 *
 * The matcher is derived from LuaJIT's lib_string.c, Copyright (C) 2005-2023
 * Mike Pall, and Lua 5.1's lstrlib.c, Copyright (C) 1994-2008 Lua.org,
 * PUC-Rio; both under the MIT license, whose terms are in LuaJIT's COPYRIGHT
 * file (Debian: /usr/share/doc/libluajit2-5.1-dev/copyright). */
#include "strmatch.h"
#include "guard.h"
#include <lauxlib.h>
#include <string.h>

#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAXCAPTURES 32
#define MAXDEPTH 200            /* LuaJIT's LJ_MAX_XLEVEL */
#define TICKS 4096              /* matcher steps between two looks at the guard */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define uchar(c) ((unsigned char)(c))

typedef struct match_state {
  const char *src_init, *src_end;
  lua_State *L;
  sl_lguard_t *guard;
  int ticks;
  int level, depth;
  struct { const char *init; ptrdiff_t len; } capture[MAXCAPTURES];
} match_state_t;

static void tick(match_state_t *ms) {
  ms->ticks = TICKS;
  int irq = sl_lguard_check(ms->guard);
  if (irq == SL_LIRQ_DEADLINE || irq == SL_LIRQ_BUDGET || irq == SL_LIRQ_CSTACK)
    luaL_error(ms->L, "%s", sl_lguard_message(ms->guard, irq));
}
#define TICK(ms) do { if (--(ms)->ticks <= 0) tick(ms); } while (0)

static int check_capture(match_state_t *ms, int l) {
  l -= '1';
  if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED) luaL_error(ms->L, "invalid capture index");
  return l;
}

static int capture_to_close(match_state_t *ms) {
  for (int level = ms->level - 1; level >= 0; level--)
    if (ms->capture[level].len == CAP_UNFINISHED) return level;
  return luaL_error(ms->L, "invalid pattern capture");
}

static const char *classend(match_state_t *ms, const char *p) {
  switch (*p++) {
  case L_ESC:
    if (*p == '\0') luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 1;
  case '[':
    if (*p == '^') p++;
    do {
      if (*p == '\0') luaL_error(ms->L, "malformed pattern (missing ']')");
      if (*(p++) == L_ESC && *p != '\0') p++;
    } while (*p != ']');
    return p + 1;
  default:
    return p;
  }
}

/* LuaJIT's classes: ASCII only, whatever the locale. */
static int match_class(int c, int cl) {
  int r;
  switch (cl | 0x20) {
  case 'a': r = (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; break;
  case 'c': r = c < 32 || c == 127; break;
  case 'd': r = c >= '0' && c <= '9'; break;
  case 'g': r = c > 32 && c < 127; break;
  case 'l': r = c >= 'a' && c <= 'z'; break;
  case 'p': r = c > 32 && c < 127 && !(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9')); break;
  case 's': r = c == ' ' || (c >= '\t' && c <= '\r'); break;
  case 'u': r = c >= 'A' && c <= 'Z'; break;
  case 'w': r = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9'); break;
  case 'x': r = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); break;
  case 'z': r = c == 0; break;
  default: return cl == c;
  }
  return (cl & 0x20) ? r : !r;
}

static int matchbracketclass(match_state_t *ms, int c, const char *p, const char *ec) {
  int sig = 1;
  if (*(p + 1) == '^') {
    sig = 0;
    p++;
  }
  while (++p < ec) {
    TICK(ms);
    if (*p == L_ESC) {
      p++;
      if (match_class(c, uchar(*p))) return sig;
    } else if (*(p + 1) == '-' && p + 2 < ec) {
      p += 2;
      if (uchar(*(p - 2)) <= c && c <= uchar(*p)) return sig;
    } else if (uchar(*p) == c) {
      return sig;
    }
  }
  return !sig;
}

static int singlematch(match_state_t *ms, int c, const char *p, const char *ep) {
  switch (*p) {
  case '.': return 1;
  case L_ESC: return match_class(c, uchar(*(p + 1)));
  case '[': return matchbracketclass(ms, c, p, ep - 1);
  default: return uchar(*p) == c;
  }
}

static const char *match(match_state_t *ms, const char *s, const char *p);

static const char *matchbalance(match_state_t *ms, const char *s, const char *p) {
  if (*p == 0 || *(p + 1) == 0) luaL_error(ms->L, "unbalanced pattern");
  if (*s != *p) return NULL;
  int b = *p, e = *(p + 1), cont = 1;
  while (++s < ms->src_end) {
    TICK(ms);
    if (*s == e) {
      if (--cont == 0) return s + 1;
    } else if (*s == b) {
      cont++;
    }
  }
  return NULL;
}

static const char *max_expand(match_state_t *ms, const char *s, const char *p, const char *ep) {
  ptrdiff_t i = 0;
  while (s + i < ms->src_end && singlematch(ms, uchar(*(s + i)), p, ep)) {
    TICK(ms);
    i++;
  }
  while (i >= 0) {
    TICK(ms);
    const char *res = match(ms, s + i, ep + 1);
    if (res) return res;
    i--;
  }
  return NULL;
}

static const char *min_expand(match_state_t *ms, const char *s, const char *p, const char *ep) {
  for (;;) {
    TICK(ms);
    const char *res = match(ms, s, ep + 1);
    if (res) return res;
    if (s < ms->src_end && singlematch(ms, uchar(*s), p, ep)) s++;
    else return NULL;
  }
}

static const char *start_capture(match_state_t *ms, const char *s, const char *p, int what) {
  int level = ms->level;
  if (level >= MAXCAPTURES) luaL_error(ms->L, "too many captures");
  ms->capture[level].init = s;
  ms->capture[level].len = what;
  ms->level = level + 1;
  const char *res = match(ms, s, p);
  if (!res) ms->level--;
  return res;
}

static const char *end_capture(match_state_t *ms, const char *s, const char *p) {
  int l = capture_to_close(ms);
  ms->capture[l].len = s - ms->capture[l].init;
  const char *res = match(ms, s, p);
  if (!res) ms->capture[l].len = CAP_UNFINISHED;
  return res;
}

static const char *match_capture(match_state_t *ms, const char *s, int l) {
  l = check_capture(ms, l);
  size_t len = (size_t)ms->capture[l].len;
  if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
  return NULL;
}

static const char *match(match_state_t *ms, const char *s, const char *p) {
  if (++ms->depth > MAXDEPTH) luaL_error(ms->L, "pattern too complex");
  TICK(ms);
init:
  switch (*p) {
  case '(':
    s = *(p + 1) == ')' ? start_capture(ms, s, p + 2, CAP_POSITION) : start_capture(ms, s, p + 1, CAP_UNFINISHED);
    break;
  case ')':
    s = end_capture(ms, s, p + 1);
    break;
  case L_ESC:
    switch (*(p + 1)) {
    case 'b':
      s = matchbalance(ms, s, p + 2);
      if (!s) break;
      p += 4;
      goto init;
    case 'f': {
      p += 2;
      if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
      const char *ep = classend(ms, p);
      char previous = s == ms->src_init ? '\0' : *(s - 1);
      if (matchbracketclass(ms, uchar(previous), p, ep - 1) || !matchbracketclass(ms, uchar(*s), p, ep - 1)) {
        s = NULL;
        break;
      }
      p = ep;
      goto init;
    }
    default:
      if (*(p + 1) >= '0' && *(p + 1) <= '9') {
        s = match_capture(ms, s, uchar(*(p + 1)));
        if (!s) break;
        p += 2;
        goto init;
      }
      goto dflt;
    }
    break;
  case '\0':
    break;
  case '$':
    if (*(p + 1) != '\0') goto dflt;
    if (s != ms->src_end) s = NULL;
    break;
  default:
  dflt: {
    const char *ep = classend(ms, p);
    int m = s < ms->src_end && singlematch(ms, uchar(*s), p, ep);
    switch (*ep) {
    case '?': {
      const char *res;
      if (m && (res = match(ms, s + 1, ep + 1)) != NULL) {
        s = res;
        break;
      }
      p = ep + 1;
      goto init;
    }
    case '*':
      s = max_expand(ms, s, p, ep);
      break;
    case '+':
      s = m ? max_expand(ms, s + 1, p, ep) : NULL;
      break;
    case '-':
      s = min_expand(ms, s, p, ep);
      break;
    default:
      if (m) {
        s++;
        p = ep;
        TICK(ms);
        goto init;
      }
      s = NULL;
      break;
    }
    break;
  }
  }
  ms->depth--;
  return s;
}

static void push_onecapture(match_state_t *ms, int i, const char *s, const char *e) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index");
    lua_pushlstring(ms->L, s, (size_t)(e - s));
  } else {
    ptrdiff_t l = ms->capture[i].len;
    if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION) lua_pushinteger(ms->L, ms->capture[i].init - ms->src_init + 1);
    else lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
  }
}

static int push_captures(match_state_t *ms, const char *s, const char *e) {
  int n = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_onecapture(ms, i, s, e);
  return n;
}

static void ms_init(match_state_t *ms, lua_State *L, const char *s, size_t len) {
  ms->L = L;
  ms->guard = lua_touserdata(L, lua_upvalueindex(1));
  ms->ticks = TICKS;
  ms->src_init = s;
  ms->src_end = s + len;
  /* Every entry is also a level of C recursion when a callback calls it. */
  int irq = sl_lguard_check(ms->guard);
  if (irq == SL_LIRQ_CSTACK || irq == SL_LIRQ_DEADLINE || irq == SL_LIRQ_BUDGET)
    luaL_error(L, "%s", sl_lguard_message(ms->guard, irq));
}

static int has_pattern(const char *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] && strchr(SPECIALS, p[i])) return 1;
  return 0;
}

static int find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  lua_Integer start = luaL_optinteger(L, 3, 1);
  if (start < 0) start += (lua_Integer)ls;
  else start--;
  if (start < 0) start = 0;
  size_t st = (size_t)start > ls ? ls : (size_t)start;
  match_state_t ms;
  ms_init(&ms, L, s, ls);
  if (find && (lua_toboolean(L, 4) || !has_pattern(p, lp))) {
    const char *q = lp == 0 ? s + st : memmem(s + st, ls - st, p, lp);
    if (q) {
      lua_pushinteger(L, (lua_Integer)(q - s) + 1);
      lua_pushinteger(L, (lua_Integer)(q - s) + (lua_Integer)lp);
      return 2;
    }
  } else {
    const char *src = s + st;
    int anchor = *p == '^';
    if (anchor) p++;
    do {
      ms.level = ms.depth = 0;
      const char *e = match(&ms, src, p);
      if (e) {
        if (!find) return push_captures(&ms, src, e);
        lua_pushinteger(L, (lua_Integer)(src - s) + 1);
        lua_pushinteger(L, (lua_Integer)(e - s));
        return push_captures(&ms, NULL, NULL) + 2;
      }
    } while (src++ < ms.src_end && !anchor);
  }
  lua_pushnil(L);
  return 1;
}

static int str_find(lua_State *L) { return find_aux(L, 1); }
static int str_match(lua_State *L) { return find_aux(L, 0); }

/* upvalues: guard, subject, pattern, position */
static int gmatch_aux(lua_State *L) {
  size_t ls;
  const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
  const char *p = lua_tostring(L, lua_upvalueindex(3));
  size_t pos = (size_t)lua_tointeger(L, lua_upvalueindex(4));
  match_state_t ms;
  ms_init(&ms, L, s, ls);
  for (const char *src = s + pos; src <= ms.src_end; src++) {
    ms.level = ms.depth = 0;
    const char *e = match(&ms, src, p);
    if (e) {
      lua_Integer next = e - s;
      if (e == src) next++;   /* an empty match moves on */
      lua_pushinteger(L, next);
      lua_replace(L, lua_upvalueindex(4));
      return push_captures(&ms, src, e);
    }
  }
  return 0;
}

static int str_gmatch(lua_State *L) {
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, gmatch_aux, 4);
  return 1;
}

static void add_s(match_state_t *ms, luaL_Buffer *b, const char *s, const char *e) {
  size_t l;
  const char *news = lua_tolstring(ms->L, 3, &l);
  for (size_t i = 0; i < l; i++) {
    TICK(ms);
    if (news[i] != L_ESC) {
      luaL_addchar(b, news[i]);
    } else {
      i++;
      if (!(news[i] >= '0' && news[i] <= '9')) {
        luaL_addchar(b, news[i]);
      } else if (news[i] == '0') {
        luaL_addlstring(b, s, (size_t)(e - s));
      } else {
        push_onecapture(ms, news[i] - '1', s, e);
        luaL_addvalue(b);
      }
    }
  }
}

static void add_value(match_state_t *ms, luaL_Buffer *b, const char *s, const char *e) {
  lua_State *L = ms->L;
  switch (lua_type(L, 3)) {
  case LUA_TNUMBER:
  case LUA_TSTRING:
    add_s(ms, b, s, e);
    return;
  case LUA_TFUNCTION: {
    lua_pushvalue(L, 3);
    int n = push_captures(ms, s, e);
    lua_call(L, n, 1);
    break;
  }
  case LUA_TTABLE:
    push_onecapture(ms, 0, s, e);
    lua_gettable(L, 3);
    break;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    lua_pushlstring(L, s, (size_t)(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  }
  luaL_addvalue(b);
}

static int str_gsub(lua_State *L) {
  size_t srcl;
  const char *src = luaL_checklstring(L, 1, &srcl);
  const char *p = luaL_checkstring(L, 2);
  int tr = lua_type(L, 3);
  int max_s = luaL_optint(L, 4, (int)(srcl + 1));
  int anchor = *p == '^';
  if (anchor) p++;
  if (!(tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE))
    luaL_argerror(L, 3, "string/function/table expected");
  match_state_t ms;
  ms_init(&ms, L, src, srcl);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int n = 0;
  while (n < max_s) {
    ms.level = ms.depth = 0;
    const char *e = match(&ms, src, p);
    if (e) {
      n++;
      add_value(&ms, &b, src, e);
    }
    if (e && e > src) src = e;
    else if (src < ms.src_end) luaL_addchar(&b, *src++);
    else break;
    if (anchor) break;
  }
  luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

void sl_lstrmatch_push(lua_State *L, sl_lguard_t *g) {
  static const luaL_Reg fns[] = {{"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch},
                                 {"gsub", str_gsub}, {NULL, NULL}};
  lua_createtable(L, 0, 4);
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, -2, f->name);
  }
}
