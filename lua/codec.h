/* Hashes and encodings scripts reach as `hash`, `base64`, `hex` and `url`
 * (lua/codec.c). */
#ifndef SL_LUA_CODEC_H
#define SL_LUA_CODEC_H
#include <lua.h>

/* Pushes a table {hash = {...}, base64 = {...}, hex = {...}, url = {...}} of
 * C functions (no upvalue outlives the VM). */
void sl_lcodec_push(lua_State *L);

#endif
