/* Gathers the C parts of the scripts' standard library into one table for
 * lua/runtime.lua. */
#include "library.h"
#include "codec.h"
#include "json.h"
#include "re.h"
#include "timefmt.h"

void sl_lstdlib_push(lua_State *L, sl_lguard_t *g) {
  sl_lcodec_push(L);
  sl_lre_push(L, g);
  lua_setfield(L, -2, "re");
  sl_ltime_push(L);
  lua_setfield(L, -2, "time");
  sl_ljson_push(L);
  lua_setfield(L, -2, "json_make");
}
