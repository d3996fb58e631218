/* `sluice migrate FILE`: prints the config with every Bloblang processor
 * (mapping, mutation, bloblang) rewritten as the `lua` processor it runs as,
 * so that users can own the Lua. ${NAME} references are printed as written,
 * not with the environment's values; comments are not kept. */
#include "cli.h"
#include "yaml_emit.h"
#include "core/conf_json.h"
#include "core/xalloc.h"
#include "processors/mapping.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scalars print as the file wrote them, before ${NAME} substitution. */
static void unsubstitute(sl_cnode_t *n) {
  if (n->type == SL_CN_SCALAR && n->env_raw) {
    free(n->str);
    n->str = n->env_raw;
    n->len = strlen(n->str);
    n->env_raw = NULL;
  }
  for (uint32_t i = 0; i < n->n; i++) unsubstitute(n->items[i]);
}

static const char *mode_of(const char *name) {
  if (!strcmp(name, "mutation")) return "mutation";
  return !strcmp(name, "mapping") || !strcmp(name, "bloblang") ? "mapping" : NULL;
}

/* A processor in a list: {mapping: TEXT} or {mapping: {mapping: TEXT}},
 * with a label perhaps. Returns the number of mappings left as they were. */
static int rewrite(sl_cnode_t *item, const char *file) {
  if (item->type != SL_CN_MAP) return 0;
  for (uint32_t i = 0; i < item->n; i++) {
    const char *mode = mode_of(item->keys[i]);
    if (!mode) continue;
    sl_cnode_t *body = item->items[i];
    sl_cnode_t *text = body->type == SL_CN_MAP ? sl_cnode_get(body, "mapping") : body;
    if (!text || text->type != SL_CN_SCALAR) return 0;
    if (text->env_raw) {
      /* its Lua would hold the variable's value, a secret perhaps */
      fprintf(stderr, "%s:%d: %s kept as Bloblang: it holds ${NAME}; read the variable with env(\"NAME\") to "
              "migrate it\n", file, text->line, item->keys[i]);
      return 1;
    }
    int line = 0, col = 0;
    char *why = NULL, *where = NULL, *lua = sl_bloblang_translate(text->str, mode, file, &line, &col, &why, &where);
    if (!lua) {
      if (where) fprintf(stderr, "%s:%d:%d: %s kept as Bloblang: %s\n", where, line, col, item->keys[i], why);
      else
        fprintf(stderr, "%s:%d: %s kept as Bloblang: %s\n", file, text->line + (text->block ? 1 : 0) + line - 1,
                item->keys[i], why);
      free(why);
      free(where);
      return 1;
    }
    sl_cnode_t *code = sl_cnode_new(SL_CN_MAP, body);
    sl_cnode_map_set(code, "code", sl_cnode_scalar(lua, body));
    free(lua);
    sl_cnode_free(item->items[i]);
    item->items[i] = code;
    free(item->keys[i]);
    item->keys[i] = sl_xstrdup("lua");
    return 0;
  }
  return 0;
}

static int walk(sl_cnode_t *n, const char *file) {
  int kept = 0;
  for (uint32_t i = 0; i < n->n; i++) {
    if (n->type == SL_CN_SEQ) kept += rewrite(n->items[i], file);
    kept += walk(n->items[i], file);
  }
  return kept;
}

int sl_cli_migrate(int argc, char **argv) {
  if (argc != 1) {
    fprintf(stderr, "usage: sluice migrate FILE\n  prints FILE with its Bloblang processors rewritten as lua\n");
    return 2;
  }
  sl_diags_t d = {0};
  sl_cnode_t *root = sl_conf_load(argv[0], &d);
  if (!root) {
    sl_diag_print(&d, stderr);
    sl_diags_free(&d);
    return 1;
  }
  int kept = walk(root, argv[0]);
  unsubstitute(root);
  json_t *j = sl_cnode_to_json(root);
  int rc = sl_yaml_emit(stdout, j) == 0 ? (kept ? 1 : 0) : 2;
  json_decref(j);
  sl_cnode_free(root);
  sl_diags_free(&d);
  return rc;
}
