/* The `time` module's parsing and formatting (lua/timefmt.c); its clocks
 * are FFI calls in lua/runtime.lua. */
#ifndef SL_LUA_TIMEFMT_H
#define SL_LUA_TIMEFMT_H
#include <lua.h>

/* Pushes {format, parse, offset, parse_duration, format_duration}; the zones
 * they read are cached in the VM (and freed with it). */
void sl_ltime_push(lua_State *L);

#endif
