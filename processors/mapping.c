/* `mapping`, `mutation` and `bloblang`: Benthos's Bloblang processors, so
 * that Tyk Streams and Benthos configs run as written. The mapping is
 * translated to Lua when the config is built (processors/bloblang.lua, in a
 * Lua state of its own, not a worker's VM) and runs as a `lua` processor
 * would: same sandbox, budgets, failure log and positions, which name the
 * mapping's own lines. What the translation does not cover is a lint error
 * at its line and column, never a silent difference. */
#include "mapping.h"
#include "core/component.h"
#include "core/ctxref.h"
#include "core/xalloc.h"
#include "lua/embedded.h"
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  {"mapping", SL_F_STRING, NULL, SL_REQUIRED,
   "The Bloblang mapping. Translated to Lua when the config loads: `root`/`this`/`meta` paths and "
   "assignments, `let` and `$var`, `if`/`else` (statements and values), `match`, literals, arithmetic, "
   "comparisons, `&&`/`||`/`!`, `|`, `.catch()`, `.or()`, string interpolation, lambdas (`x -> ...`) and "
   "the functions and methods listed in docs/bloblang.md. Anything else is a lint error at its line.",
   NULL, NULL},
  {0}};

/* ctxref(s, from) -> rc[, start, end, what, default]: the translator reads a
 * string literal's request-context references as the config loader does. */
static int l_ctxref(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  sl_ctxref_t r;
  int rc = sl_ctxref_next(s, (size_t)luaL_checkinteger(L, 2), &r);
  lua_pushinteger(L, rc);
  if (rc <= 0) {
    sl_ctxref_clear(&r);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)r.start);
  lua_pushinteger(L, (lua_Integer)r.end);
  lua_pushstring(L, r.what);
  if (r.def) lua_pushstring(L, r.def);
  else lua_pushnil(L);
  sl_ctxref_clear(&r);
  return 5;
}

char *sl_bloblang_translate(const char *src, const char *mode, const char *config, int *line, int *col, char **why,
                            char **where) {
  const sl_embedded_t *e = NULL;
  for (const sl_embedded_t *x = sl_embedded_lua; x->name; x++)
    if (!strcmp(x->name, "processors.bloblang")) e = x;
  lua_State *L = luaL_newstate();
  char *out = NULL;
  if (!L) {
    *why = sl_xstrdup("no memory for the Bloblang translator");
    return NULL;
  }
  luaL_openlibs(L);
  if (!e || luaL_loadbuffer(L, e->src, e->len, "bloblang") != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    *why = sl_xasprintf("the Bloblang translator did not load: %s", e ? lua_tostring(L, -1) : "missing");
  } else {
    lua_getfield(L, -1, "translate");
    lua_pushstring(L, src);
    lua_pushstring(L, mode);
    lua_pushcfunction(L, l_ctxref);
    lua_pushstring(L, config);
    if (lua_pcall(L, 4, 5, 0) != 0) {
      *why = sl_xasprintf("the Bloblang translator failed: %s", lua_tostring(L, -1));
    } else if (lua_isstring(L, -5)) {
      out = sl_xstrdup(lua_tostring(L, -5));
    } else {
      *line = (int)lua_tointeger(L, -4);
      *col = (int)lua_tointeger(L, -3);
      *why = sl_xstrdup(lua_tostring(L, -2));
      if (where && lua_isstring(L, -1)) *where = sl_xstrdup(lua_tostring(L, -1));
    }
  }
  lua_close(L);
  return out;
}

static void *create(sl_build_t *b, const sl_cnode_t *conf, const sl_spec_t *self, const char *mode) {
  const sl_cnode_t *m = sl_cnode_get(conf, "mapping");
  int line = 0, col = 0;
  char *why = NULL, *where = NULL, *lua = sl_bloblang_translate(m->str, mode, m->file, &line, &col, &why, &where);
  if (!lua) {
    /* The mapping's own position, moved to the line and column refused; or
     * the place in a file it imports. */
    sl_cnode_t at = *m;
    if (where) {
      at.file = where;
      at.line = line;
      at.col = col;
    } else {
      at.line = m->line + (m->block ? 1 : 0) + line - 1;
      at.col = line > 1 || m->block ? col : m->col + col - (m->quoted ? 0 : 1);
    }
    sl_diag_add(b->diags, &at, "mapping", "Bloblang: %s", why);
    free(why);
    free(where);
    return NULL;
  }
  /* {code: <the Lua>}, at the mapping's place so that positions stay its lines. */
  sl_cnode_t *body = sl_cnode_new(SL_CN_MAP, m), *code = sl_cnode_dup(m);
  free(code->str);
  code->str = lua;
  code->len = strlen(lua);
  sl_cnode_map_set(body, "code", code);
  sl_processor_t *p = sl_registry_find(SL_KIND_PROCESSOR, "lua")->create(b, body);
  sl_cnode_free(body);
  if (p) p->spec = self;
  return p;
}

#define BLOBLANG_PROCESSOR(var, name_, mode, summary_, desc_, example_)                                   \
  static const sl_spec_t var;                                                                             \
  static void *create_##var(sl_build_t *b, const sl_cnode_t *conf) { return create(b, conf, &var, mode); } \
  static const sl_spec_t var = {.name = name_, .kind = SL_KIND_PROCESSOR, .summary = summary_,           \
                                .desc = desc_, .fields = fields, .shorthand = "mapping",                  \
                                .example = example_, .create = create_##var, .pooled = 1};                \
  SL_REGISTER(var)

BLOBLANG_PROCESSOR(mapping, "mapping", "mapping",
                   "Runs a Bloblang mapping (translated to Lua), building a new document from the message.",
                   "As Benthos's `mapping`: the new document starts empty (`root = this` copies the message); "
                   "a mapping that assigns no `root` keeps the message's content, `root = deleted()` drops it. "
                   "`sluice migrate` prints the Lua, to keep as a `lua` processor. docs/bloblang.md says what "
                   "is translated and how each construct behaves.",
                   "pipeline:\n  processors:\n    - mapping: |\n        root = this\n        root.id = uuid_v4()\n")
BLOBLANG_PROCESSOR(mutation, "mutation", "mutation",
                   "Runs a Bloblang mutation (translated to Lua), changing the message in place.",
                   "As Benthos's `mutation`: `root` starts as the message, so `root.x = 1` adds a field and "
                   "keeps the rest. docs/bloblang.md.",
                   "pipeline:\n  processors:\n    - mutation: |\n        root.seen = true\n")
BLOBLANG_PROCESSOR(bloblang, "bloblang", "mapping",
                   "The old name of `mapping` (Benthos keeps it as an alias).",
                   "Exactly `mapping`. docs/bloblang.md.", NULL)
