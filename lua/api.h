/* The Lua API scripts see, described once in lua/api.lua: its reference in
 * several formats, and the check that it matches the sandbox. */
#ifndef SL_LUA_API_H
#define SL_LUA_API_H
#include <stdio.h>

/* Writes the reference to f: format "md", "luals" or "json". 0, -1 for an
 * unknown format, -2 when it could not be made (said on stderr). */
int sl_lua_api_doc(FILE *f, const char *format);

/* Compares lua/api.lua with the names the sandbox exposes: 0 when they are
 * the same, else -1 and *diff (malloc'd, the caller frees) says how. */
int sl_lua_api_check(char **diff);

#endif
