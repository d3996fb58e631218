/* JSON with array and object marks for scripts (lua/json.c). */
#ifndef SL_LUA_JSON_H
#define SL_LUA_JSON_H
#include <lua.h>

/* Pushes make(array_mt, object_mt, raw_key, msgpack_nil), which returns
 * {encode, decode_marked} bound to those values (lua/runtime.lua calls it
 * once per VM). */
void sl_ljson_push(lua_State *L);

#endif
