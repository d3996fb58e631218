/* Build-time host tool: compiles one Lua file into LuaJIT bytecode with the
 * libluajit sluice links (bytecode is only portable within one LuaJIT build),
 * so that a start loads the embedded runtime instead of parsing ~150 KB of
 * source (a fifth of a start's CPU). Usage: luadump CHUNKNAME IN OUT. The
 * chunk name is the one sluice loads it under ("lua.runtime"), and debug info
 * is kept: errors name the runtime's lines, and lua/runtime.lua reads its own
 * chunk names in them. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

static int write_out(lua_State *L, const void *p, size_t n, void *out) {
  (void)L;
  return fwrite(p, 1, n, out) == n ? 0 : 1;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0, got;
  do {
    if (n == cap && !(buf = realloc(buf, cap = cap ? cap * 2 : 65536))) break;
    got = fread(buf + n, 1, cap - n, f);
    n += got;
  } while (got);
  int bad = ferror(f) || !buf;
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CHUNKNAME IN OUT\n", argv[0]);
    return 2;
  }
  size_t len = 0;
  char *src = slurp(argv[2], &len);
  if (!src) {
    perror(argv[2]);
    return 1;
  }
  lua_State *L = luaL_newstate();
  int rc = 1;
  if (!L) {
    fprintf(stderr, "luadump: no memory\n");
    free(src);
    return 1;
  }
  luaL_openlibs(L);   /* as sluice's VMs: the parser's 64-bit literals (1ULL) need the FFI's C types */
  if (luaL_loadbuffer(L, src, len, argv[1]) != 0) {
    fprintf(stderr, "luadump: %s\n", lua_tostring(L, -1));
  } else {
    FILE *out = fopen(argv[3], "wb");
    if (!out) perror(argv[3]);
    else {
      rc = lua_dump(L, write_out, out) != 0;
      if (fclose(out) != 0) rc = 1;
      if (rc) fprintf(stderr, "luadump: cannot write %s\n", argv[3]);
    }
  }
  lua_close(L);
  free(src);
  if (rc) remove(argv[3]);
  return rc;
}
