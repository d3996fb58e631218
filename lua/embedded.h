/* The Lua code compiled into the binary (every .lua file of lua/ and
 * processors/, as LuaJIT bytecode with debug info: cmake/luadump.c), e.g.
 * "lua.runtime", "processors.foo"; see core/embedded.h. */
#ifndef SL_LUA_EMBEDDED_H
#define SL_LUA_EMBEDDED_H
#include "core/embedded.h"

extern const sl_embedded_t sl_embedded_lua[];

#endif
