/* The `re` module of scripts: PCRE2 regular expressions (lua/re.c). */
#ifndef SL_LUA_RE_H
#define SL_LUA_RE_H
#include "guard.h"

/* Pushes the module table {match, find, gmatch, gsub, split, compile,
 * escape}; its functions check g (which, like them, belongs to the VM). */
void sl_lre_push(lua_State *L, sl_lguard_t *g);

#endif
