/* Compiled Lua pieces owned by components: scripts (inline or module),
 * boolean checks, and ${! } interpolated strings. Runs of scripts are in
 * lua/run.c. */
#include "vm.h"
#include "core/batching.h"
#include "core/xalloc.h"
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_lcheck { sl_lua_t *vm; int id; };

/* Arguments of the compile entry points: (a, chunk, line, kind). */
typedef struct compile_args { const char *a, *chunk, *kind; int line; } compile_args_t;

static int push_compile(lua_State *L, void *arg) {
  compile_args_t *c = arg;
  lua_pushstring(L, c->a);
  if (!c->chunk) return 1;
  lua_pushstring(L, c->chunk);
  lua_pushinteger(L, c->line);
  if (!c->kind) return 3;
  lua_pushstring(L, c->kind);
  return 4;
}

/* The id a compile entry point returned (id, err), or 0 with *err. */
static int compile_call(sl_lua_t *vm, sl_lcall_t *c, char **err) {
  c->nres = 2;
  if (sl_lvm_pcall(vm, c, err) != 0) return 0;
  if (c->i > 0) {
    free(c->s);
    return (int)c->i;
  }
  *err = c->s ? c->s : sl_xstrdup("compile failed");
  return 0;
}

int sl_lvm_compile(sl_lua_t *vm, int ref, const char *a, const char *chunk, int line, const char *kind, char **err) {
  compile_args_t args = {a, chunk, kind, line};
  sl_lcall_t c = {.ref = ref, .push = push_compile, .arg = &args};
  return compile_call(vm, &c, err);
}

static int push_int(lua_State *L, void *arg) {
  lua_pushinteger(L, *(int *)arg);
  return 1;
}

void sl_lvm_release(sl_lua_t *vm, int id) {
  sl_lcall_t c = {.ref = vm->ref_release, .push = push_int, .arg = &id};
  sl_lvm_pcall(vm, &c, NULL);
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

typedef struct module_args {
  const char *path;
  void *owner;
  sl_lscript_t *prev;
  int64_t steps;
  const sl_lsource_t *pre;
  unsigned n;
} module_args_t;

static int push_module(lua_State *L, void *arg) {
  module_args_t *m = arg;
  lua_pushstring(L, m->path);
  if (m->owner) lua_pushlightuserdata(L, m->owner);
  else lua_pushnil(L);
  if (m->prev) lua_pushinteger(L, m->prev->id);
  else lua_pushnil(L);
  lua_pushnumber(L, (lua_Number)m->steps);
  lua_createtable(L, 0, (int)m->n);
  for (unsigned i = 0; i < m->n; i++) {
    if (m->pre[i].data) {
      lua_pushlstring(L, m->pre[i].data, m->pre[i].len);
    } else {
      lua_createtable(L, 1, 0);
      lua_pushfstring(L, "%s: %s", m->pre[i].path, m->pre[i].error);
      lua_rawseti(L, -2, 1);
    }
    lua_setfield(L, -2, m->pre[i].path);
  }
  return 5;
}

sl_lscript_t *sl_lscript_module(sl_lua_t *vm, const char *path, void *owner, sl_lscript_t *prev,
                                const sl_lsource_t *pre, unsigned n, char **err) {
  module_args_t args = {path, owner, prev, vm->max_steps, pre, n};
  sl_lcall_t c = {.ref = vm->ref_compile_module, .push = push_module, .arg = &args};
  int id = compile_call(vm, &c, err);
  if (prev && id == prev->id) return prev;
  return script_new(vm, id, 1);
}

void sl_lscript_free(sl_lscript_t *s) {
  if (!s) return;
  sl_lvm_release(s->vm, s->id);
  free(s);
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

typedef struct eval_args { int id; sl_msg_t *m; uint32_t index; int64_t steps; } eval_args_t;

static int push_eval(lua_State *L, void *arg) {
  eval_args_t *e = arg;
  lua_pushinteger(L, e->id);
  lua_pushlightuserdata(L, e->m);
  lua_pushinteger(L, e->index);
  lua_pushnumber(L, (lua_Number)e->steps);
  return 4;
}

/* Calls runtime.eval: 0 with the result in c, or -1 with *err. */
static int eval(sl_lua_t *vm, int id, sl_msg_t *m, uint32_t index, sl_lcall_t *c, char **err) {
  eval_args_t args = {id, m, index, vm->max_steps};
  *c = (sl_lcall_t){.ref = vm->ref_eval, .nres = 1, .push = push_eval, .arg = &args};
  return sl_lvm_pcall(vm, c, err);
}

int sl_lcheck_eval(sl_lcheck_t *c, sl_msg_t *m, uint32_t index, char **err) {
  sl_lcall_t r;
  if (eval(c->vm, c->id, m, index, &r, err) != 0) return -1;
  free(r.s);
  return r.i != 0;
}

int sl_lcheck_batch_full(const sl_batch_policy_t *p, sl_lcheck_t *check, const sl_batch_t *b, int64_t bytes) {
  if ((p->count > 0 && (int64_t)b->n >= p->count) || (p->byte_size > 0 && bytes >= p->byte_size)) return 1;
  if (!check) return 0;
  char *err = NULL;
  sl_msg_t *m = b->msgs[b->n - 1];
  int r = sl_lcheck_eval(check, m, b->n - 1, &err);
  if (r < 0) {
    sl_msg_set_error(m, err);
    free(err);
  }
  return r == 1;
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
    sl_lcall_t r = {0};
    if (in->parts[i].id) {
      if (eval(in->vm, in->parts[i].id, m, index, &r, err) != 0) {
        free(out);
        return NULL;
      }
      s = r.s ? r.s : "";
      l = r.s ? r.slen : 0;
    }
    if (n + l + 1 > cap) {
      cap = (n + l + 1) * 2;
      out = sl_xrealloc(out, cap);
    }
    memcpy(out + n, s, l);
    n += l;
    free(r.s);
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

/* The first ${NAME} that conf.c substitutes from the environment in s, with
 * its name in name; 0 if there is none. */
static int env_ref(const char *s, char *name, size_t cap) {
  for (const char *p = s; *p; p++) {
    if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
      p += 2;
      continue;
    }
    if (p[0] != '$' || p[1] != '{' || !(isalpha((unsigned char)p[2]) || p[2] == '_')) continue;
    size_t n = 2;
    while (isalnum((unsigned char)p[n]) || p[n] == '_') n++;
    if (p[n] != '}' && p[n] != ':') continue;
    snprintf(name, cap, "%.*s", (int)(n - 2), p + 2);
    return 1;
  }
  return 0;
}

/* The ${! } parts of a template, each as "text\n", in one string. */
static char *expr_parts(const char *tmpl) {
  char *all = sl_xstrdup("");
  for (const char *p = strstr(tmpl, "${!"); p; p = strstr(p, "${!")) {
    const char *end = expr_end(p + 3);
    if (!end) break;
    char *next = sl_xasprintf("%s%.*s\n", all, (int)(end - p - 3), p + 3);
    free(all);
    all = next;
    p = end + 1;
  }
  return all;
}

int sl_lua_env_check(const sl_cnode_t *v, sl_diags_t *d, const char *key, int interp) {
  if (!v->env_raw) return 0;
  char name[64] = "NAME";
  if (!interp) {
    env_ref(v->env_raw, name, sizeof name);
    sl_diag_add(d, v, key, "${%s} in Lua code would paste the variable's text into the code; read it with env(\"%s\")",
                name, name);
    return -1;
  }
  char *raw = expr_parts(v->env_raw), *now = expr_parts(v->str);
  int in_code = env_ref(raw, name, sizeof name), changed = strcmp(raw, now) != 0;
  free(raw);
  free(now);
  if (in_code)
    sl_diag_add(d, v, key, "${%s} inside ${! } would paste the variable's text into Lua code; read it with env(\"%s\")",
                name, name);
  else if (changed)
    sl_diag_add(d, v, key, "an environment variable's value in this string holds \"${!\", which would run as Lua code");
  return in_code || changed ? -1 : 0;
}

/* The line a scalar's text starts on (block scalars start below the key). */
static int code_line(const sl_cnode_t *v) { return v->line + (v->block ? 1 : 0); }

/* Compiles the scalar at node[key] with compile(); on failure reports the
 * Lua error at the value's position. */
typedef void *(*compile_fn)(sl_lua_t *L, const char *src, const char *chunk, int line, char **err);
static void *compile_interp(sl_lua_t *L, const char *src, const char *chunk, int line, char **err);

static void *field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key, const char *what,
                   compile_fn compile) {
  const sl_cnode_t *v = sl_cnode_get(node, key);
  if (!v || v->type != SL_CN_SCALAR) {
    sl_diag_add(d, v ? v : node, key, "expected %s", what);
    return NULL;
  }
  if (sl_lua_env_check(v, d, key, compile == compile_interp) != 0) return NULL;
  if (sl_lcache_lint(v, key, compile == compile_interp, !w, d) != 0) return NULL;
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

int sl_lua_interp_map_field(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d, const char *key, sl_interp_map_t *out) {
  const sl_cnode_t *map = sl_cnode_get(node, key);
  *out = (sl_interp_map_t){0};
  if (!map || map->type != SL_CN_MAP || !map->n) return 0;
  out->names = sl_xcalloc(map->n, sizeof(*out->names));
  out->values = sl_xcalloc(map->n, sizeof(*out->values));
  int rc = 0;
  for (uint32_t i = 0; i < map->n; i++) {
    sl_interp_t *v = sl_lua_interp_field(w, map, d, map->keys[i]);
    if (!v) {
      rc = -1;
      continue;
    }
    out->names[out->n] = sl_xstrdup(map->keys[i]);
    out->values[out->n++] = v;
  }
  return rc;
}

void sl_interp_map_free(sl_interp_map_t *m) {
  for (unsigned i = 0; i < m->n; i++) {
    free(m->names[i]);
    sl_interp_free(m->values[i]);
  }
  free(m->names);
  free(m->values);
}
