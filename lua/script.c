/* Compiled Lua pieces owned by components: scripts (inline or module) run
 * over whole batches, boolean checks, and ${! } interpolated strings. */
#include "vm.h"
#include "../core/xalloc.h"
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

struct sl_lscript { sl_lua_t *vm; int id; int module; };
struct sl_lcheck { sl_lua_t *vm; int id; };

/* The id a runtime compile entry point returned (id, err), or 0 with *err;
 * pops everything above top. */
static int compile_result(lua_State *L, int rc, int top, char **err) {
  int id = 0;
  if (rc == 0 && lua_isnumber(L, -2)) id = (int)lua_tointeger(L, -2);
  else *err = sl_xstrdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "compile failed");
  lua_settop(L, top);
  return id;
}

int sl_lvm_compile(sl_lua_t *vm, int ref, const char *a, const char *chunk, int line, const char *kind, char **err) {
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushstring(L, a);
  int nargs = 1;
  if (chunk) {
    lua_pushstring(L, chunk);
    lua_pushinteger(L, line);
    nargs = 3;
    if (kind) {
      lua_pushstring(L, kind);
      nargs = 4;
    }
  }
  return compile_result(L, lua_pcall(L, nargs, 2, 0), top, err);
}

void sl_lvm_release(sl_lua_t *vm, int id) {
  lua_State *L = vm->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_release);
  lua_pushinteger(L, id);
  if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1);
}

/* ---------- scripts ---------- */

static sl_lscript_t *script_new(sl_lua_t *vm, int id, int module) {
  if (!id) return NULL;
  sl_lscript_t *s = sl_xmalloc(sizeof(*s));
  s->vm = vm;
  s->id = id;
  s->module = module;
  return s;
}

sl_lscript_t *sl_lscript_inline(sl_lua_t *L, const char *code, const char *chunk, int line_offset, char **err) {
  return script_new(L, sl_lvm_compile(L, L->ref_compile_inline, code, chunk, line_offset, NULL, err), 0);
}

sl_lscript_t *sl_lscript_module(sl_lua_t *vm, const char *path, void *owner, sl_lscript_t *prev,
                                const sl_lsource_t *pre, unsigned n, char **err) {
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_compile_module);
  lua_pushstring(L, path);
  if (owner) lua_pushlightuserdata(L, owner);
  else lua_pushnil(L);
  if (prev) lua_pushinteger(L, prev->id);
  else lua_pushnil(L);
  lua_pushnumber(L, (lua_Number)vm->max_steps);
  lua_createtable(L, 0, (int)n);
  for (unsigned i = 0; i < n; i++) {
    if (pre[i].data) {
      lua_pushlstring(L, pre[i].data, pre[i].len);
    } else {
      lua_createtable(L, 1, 0);
      lua_pushfstring(L, "%s: %s", pre[i].path, pre[i].error);
      lua_rawseti(L, -2, 1);
    }
    lua_setfield(L, -2, pre[i].path);
  }
  int id = compile_result(L, lua_pcall(L, 5, 2, 0), top, err);
  if (prev && id == prev->id) return prev;
  return script_new(vm, id, 1);
}

void sl_lscript_free(sl_lscript_t *s) {
  if (!s) return;
  sl_lvm_release(s->vm, s->id);
  free(s);
}

static ptrdiff_t find_msg(sl_msg_t **v, uint32_t n, const sl_msg_t *m) {
  for (uint32_t i = 0; i < n; i++)
    if (v[i] == m) return i;
  return -1;
}

/* Rebuilds b from what the script kept: kept input messages move over (a
 * message kept twice is cloned), the rest are freed, which acks a deletion. */
static void apply_run(sl_batch_t *b, sl_lrun_t *r) {
  sl_msg_t **out = sl_xmalloc((r->nout ? r->nout : 1) * sizeof(*out));
  uint32_t j = 0;
  for (uint32_t k = 0; k < r->nout; k++) {
    sl_msg_t *m = r->out[k];
    ptrdiff_t at;
    if (j < b->n && b->msgs[j] == m) {
      b->msgs[j++] = NULL;
    } else if ((at = find_msg(b->msgs, b->n, m)) >= 0) {
      b->msgs[at] = NULL;
    } else if ((at = find_msg(r->created, r->ncreated, m)) >= 0) {
      r->created[at] = NULL;
    } else {
      m = sl_msg_clone(m);
    }
    out[k] = m;
  }
  for (uint32_t i = 0; i < b->n; i++)
    if (b->msgs[i]) sl_msg_free(b->msgs[i]);
  for (uint32_t i = 0; i < r->ncreated; i++)
    if (r->created[i]) sl_msg_free(r->created[i]);
  free(b->msgs);
  b->msgs = out;
  b->n = b->cap = r->nout;
  if (!b->cap) {
    b->msgs = sl_xrealloc(b->msgs, sizeof(*b->msgs));
    b->cap = 1;
  }
}

/* Inline scripts only drop messages: remove the flagged ones, keeping order. */
static void apply_drops(sl_batch_t *b, const uint8_t *drop) {
  uint32_t j = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    if (drop[i]) sl_msg_free(b->msgs[i]);
    else b->msgs[j++] = b->msgs[i];
  }
  b->n = j;
}

void sl_lscript_run(sl_lscript_t *s, sl_batch_t *b, uint64_t seq_base) {
  if (!b->n) return;
  uint8_t small[256];
  uint8_t *drop = b->n <= sizeof(small) ? small : sl_xmalloc(b->n);
  memset(drop, 0, b->n);
  sl_lua_t *vm = s->vm;
  lua_State *L = vm->L;
  sl_lrun_t r = {.in = b};
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_run);
  lua_pushinteger(L, s->id);
  lua_pushlightuserdata(L, b->msgs);
  lua_pushinteger(L, b->n);
  lua_pushnumber(L, (lua_Number)seq_base);
  lua_pushlightuserdata(L, &r);
  lua_pushnumber(L, (lua_Number)vm->max_steps);
  lua_pushlightuserdata(L, drop);
  if (lua_pcall(L, 7, 0, 0) != 0) {
    /* The run loop itself failed (e.g. out of memory between messages): every
     * message stays, flagged, and nothing the script made survives. */
    const char *e = lua_tostring(L, -1);
    for (uint32_t i = 0; i < b->n; i++) sl_msg_set_error(b->msgs[i], e ? e : "Lua run failed");
    for (uint32_t i = 0; i < r.ncreated; i++) sl_msg_free(r.created[i]);
    r.nout = 0;
  } else if (s->module) {
    apply_run(b, &r);
  } else {
    apply_drops(b, drop);
  }
  if (drop != small) free(drop);
  lua_settop(L, top);
  free(r.out);
  free(r.created);
  if (vm->used > (size_t)vm->max_memory / 2) lua_gc(L, LUA_GCCOLLECT, 0);
}

/* ---------- checks and interpolation parts ---------- */

sl_lcheck_t *sl_lcheck_compile(sl_lua_t *L, const char *expr, const char *chunk, int line, char **err) {
  int id = sl_lvm_compile(L, L->ref_compile_expr, expr, chunk, line, "check", err);
  if (!id) return NULL;
  sl_lcheck_t *c = sl_xmalloc(sizeof(*c));
  c->vm = L;
  c->id = id;
  return c;
}

/* Calls runtime.eval; leaves the result on the stack or returns -1 with *err. */
static int eval(sl_lua_t *vm, int id, sl_msg_t *m, uint32_t index, char **err) {
  lua_State *L = vm->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_eval);
  lua_pushinteger(L, id);
  lua_pushlightuserdata(L, m);
  lua_pushinteger(L, index);
  lua_pushnumber(L, (lua_Number)vm->max_steps);
  if (lua_pcall(L, 4, 1, 0) != 0) {
    *err = sl_xstrdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "Lua error");
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int sl_lcheck_eval(sl_lcheck_t *c, sl_msg_t *m, uint32_t index, char **err) {
  if (eval(c->vm, c->id, m, index, err) != 0) return -1;
  int r = lua_toboolean(c->vm->L, -1);
  lua_pop(c->vm->L, 1);
  return r;
}

void sl_lcheck_free(sl_lcheck_t *c) {
  if (!c) return;
  sl_lvm_release(c->vm, c->id);
  free(c);
}

typedef struct part { char *lit; size_t len; int id; } part_t;   /* id 0 = literal */
struct sl_interp { sl_lua_t *vm; part_t *parts; unsigned n; };

/* End of a ${! ...} expression starting at p: the matching '}', skipping
 * nested braces and quoted strings. NULL if unterminated. */
static const char *expr_end(const char *p) {
  int depth = 0;
  for (; *p; p++) {
    if (*p == '"' || *p == '\'') {
      char q = *p;
      for (p++; *p && *p != q; p++)
        if (*p == '\\' && p[1]) p++;
      if (!*p) return NULL;
    } else if (*p == '{') {
      depth++;
    } else if (*p == '}') {
      if (depth-- == 0) return p;
    }
  }
  return NULL;
}

static void add_part(sl_interp_t *in, const char *lit, size_t len, int id) {
  in->parts = sl_xrealloc(in->parts, (in->n + 1) * sizeof(*in->parts));
  in->parts[in->n].lit = lit ? sl_xstrndup(lit, len) : NULL;
  in->parts[in->n].len = len;
  in->parts[in->n++].id = id;
}

sl_interp_t *sl_interp_compile(sl_lua_t *L, const char *tmpl, const char *chunk, int line, char **err) {
  sl_interp_t *in = sl_xcalloc(1, sizeof(*in));
  in->vm = L;
  const char *p = tmpl;
  while (*p) {
    const char *open = strstr(p, "${!");
    if (!open) {
      add_part(in, p, strlen(p), 0);
      break;
    }
    if (open > p) add_part(in, p, (size_t)(open - p), 0);
    const char *end = expr_end(open + 3);
    if (!end) {
      *err = sl_xasprintf("%s:%d: unterminated ${! ... } in \"%s\"", chunk, line, tmpl);
      sl_interp_free(in);
      return NULL;
    }
    char *expr = sl_xstrndup(open + 3, (size_t)(end - open - 3));
    int id = sl_lvm_compile(L, L->ref_compile_expr, expr, chunk, line, "expr", err);
    free(expr);
    if (!id) {
      sl_interp_free(in);
      return NULL;
    }
    add_part(in, NULL, 0, id);
    p = end + 1;
  }
  return in;
}

int sl_interp_is_static(const sl_interp_t *in) {
  for (unsigned i = 0; i < in->n; i++)
    if (in->parts[i].id) return 0;
  return 1;
}

char *sl_interp_eval(sl_interp_t *in, sl_msg_t *m, uint32_t index, size_t *len, char **err) {
  size_t n = 0, cap = 64;
  char *out = sl_xmalloc(cap);
  for (unsigned i = 0; i < in->n; i++) {
    const char *s = in->parts[i].lit;
    size_t l = in->parts[i].len;
    if (in->parts[i].id) {
      if (eval(in->vm, in->parts[i].id, m, index, err) != 0) {
        free(out);
        return NULL;
      }
      s = lua_tolstring(in->vm->L, -1, &l);
    }
    if (n + l + 1 > cap) {
      cap = (n + l + 1) * 2;
      out = sl_xrealloc(out, cap);
    }
    memcpy(out + n, s, l);
    n += l;
    if (in->parts[i].id) lua_pop(in->vm->L, 1);
  }
  out[n] = 0;
  if (len) *len = n;
  return out;
}

void sl_interp_free(sl_interp_t *in) {
  if (!in) return;
  for (unsigned i = 0; i < in->n; i++) {
    if (in->parts[i].id) sl_lvm_release(in->vm, in->parts[i].id);
    free(in->parts[i].lit);
  }
  free(in->parts);
  free(in);
}

/* ---------- config field helpers ---------- */

/* The line a scalar's text starts on (block scalars start below the key). */
static int code_line(const sl_cnode_t *v) { return v->line + (v->block ? 1 : 0); }

/* Compiles the scalar at node[key] with compile(); on failure reports the
 * Lua error at the value's position. */
typedef void *(*compile_fn)(sl_lua_t *L, const char *src, const char *chunk, int line, char **err);

static void *field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key, const char *what,
                   compile_fn compile) {
  const sl_cnode_t *v = sl_cnode_get(node, key);
  if (!v || v->type != SL_CN_SCALAR) {
    sl_diag_add(d, v ? v : node, key, "expected %s", what);
    return NULL;
  }
  char *err = NULL;
  void *r = compile(sl_lua_get(w), v->str, v->file ? v->file : "config", code_line(v), &err);
  if (!r) {
    sl_diag_add(d, v, key, "Lua: %s", err);
    free(err);
  }
  return r;
}

static void *compile_script(sl_lua_t *L, const char *src, const char *chunk, int line, char **err) {
  return sl_lscript_inline(L, src, chunk, line, err);
}
static void *compile_interp(sl_lua_t *L, const char *src, const char *chunk, int line, char **err) {
  return sl_interp_compile(L, src, chunk, line, err);
}
static void *compile_check(sl_lua_t *L, const char *src, const char *chunk, int line, char **err) {
  return sl_lcheck_compile(L, src, chunk, line, err);
}

sl_lscript_t *sl_lua_script_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key) {
  return field(w, node, d, key, "Lua code", compile_script);
}

sl_interp_t *sl_lua_interp_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key) {
  return field(w, node, d, key, "a string", compile_interp);
}

sl_lcheck_t *sl_lua_check_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key) {
  return field(w, node, d, key, "a Lua expression", compile_check);
}
