/* JSON with array and object marks for scripts (lua/json.c). */
#ifndef SL_LUA_JSON_H
#define SL_LUA_JSON_H
#include <lua.h>
#include <stddef.h>

/* Pushes make(array_mt, object_mt, raw_key, msgpack_nil), which returns
 * {encode, decode_marked, decode_flat, insert} bound to those values (lua/runtime.lua
 * calls it once per VM; insert, a message's added members, is the
 * runtime's only). */
void sl_ljson_push(lua_State *L);
/* The registry's field holding array_mt once make ran (for C code that
 * builds arrays for scripts, such as redis.call's replies). */
#define SL_LJSON_ARRAY_MT "sl.json.array"


/* Whether s holds an empty array (what lua-cjson would decode to a bare
 * empty table); for lua/runtime.lua's FFI. */
int sl_ljson_empty_array(const char *s, size_t len);

#endif
