/* The standard library scripts see beside Lua's own: `re`, `time`, `hash`,
 * `base64`, `hex`, `url`, `json`'s marks and `msgpack` (lua/library.c and
 * the files it names; lua/runtime.lua puts them in every environment). */
#ifndef SL_LUA_LIBRARY_H
#define SL_LUA_LIBRARY_H
#include "guard.h"

/* Pushes a table of the C parts: {re, time, hash, base64, hex, url,
 * json_make}; g bounds the loops of `re` (it belongs to the VM, as they do).
 * Their reference is lua/api.lua. */
void sl_lstdlib_push(lua_State *L, sl_lguard_t *g);

#endif
