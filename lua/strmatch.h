/* Lua pattern matching for scripts that stops at the call's deadline
 * (lua/strmatch.c). */
#ifndef SL_LUA_STRMATCH_H
#define SL_LUA_STRMATCH_H
#include "guard.h"

/* Pushes a table {find, match, gmatch, gsub} of C closures bound to g (which
 * must outlive them: both belong to the VM). */
void sl_lstrmatch_push(lua_State *L, sl_lguard_t *g);

#endif
