/* lua/api.lua through lua/apidoc.lua in a plain Lua state of its own (no
 * sandbox needed: both are the binary's own files), and the check against
 * the names of the lint VM's sandbox. */
#include "api.h"
#include "vm.h"
#include "core/xalloc.h"
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

/* Calls apidoc's fn with arg (may be NULL); returns its string, malloc'd. */
static char *apidoc(const char *fn, const char *arg) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  luaL_openlibs(L);
  const sl_embedded_t *api = sl_lembedded("lua.api"), *doc = sl_lembedded("lua.apidoc");
  char *res = NULL;
  if (!api || !doc || luaL_loadbuffer(L, doc->src, doc->len, "lua.apidoc") != 0 ||
      luaL_loadbuffer(L, api->src, api->len, "lua.api") != 0 || lua_pcall(L, 0, 1, 0) != 0 ||
      lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "sluice: the Lua API cannot be loaded: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "missing");
    lua_close(L);
    return NULL;
  }
  lua_getfield(L, -1, fn);
  if (arg) lua_pushstring(L, arg);
  if (lua_pcall(L, arg ? 1 : 0, 1, 0) != 0) fprintf(stderr, "sluice: %s: %s\n", fn, lua_tostring(L, -1));
  else res = sl_xstrdup(lua_tostring(L, -1));
  lua_close(L);
  return res;
}

int sl_lua_api_doc(FILE *f, const char *format) {
  if (strcmp(format, "md") && strcmp(format, "luals") && strcmp(format, "json")) return -1;
  char *s = apidoc(format, NULL);
  if (!s) return -2;
  fputs(s, f);
  free(s);
  return 0;
}

int sl_lua_api_check(char **diff) {
  sl_lua_t *vm = sl_lua_get(NULL);
  char *err = NULL;
  sl_lcall_t c = {.ref = vm->ref_exposed, .nres = 1};
  if (sl_lvm_pcall(vm, &c, &err) != 0) {
    *diff = sl_xasprintf("the sandbox's names cannot be listed: %s", err);
    free(err);
    return -1;
  }
  char *res = apidoc("check", c.s);
  free(c.s);
  if (!res || *res) {
    *diff = res ? res : sl_xstrdup("the Lua API cannot be loaded");
    return -1;
  }
  free(res);
  return 0;
}
