/* Time zones by IANA name from the system's tzdata, and the calendar, for
 * the `time` module (lua/tzone.c). */
#ifndef SL_LUA_TZONE_H
#define SL_LUA_TZONE_H
#include <lua.h>
#include <stdint.h>

typedef struct sl_ltzone sl_ltzone_t;

/* The zone named by argument arg (nil, "UTC", "Z": UTC; "+05:30": a fixed
 * offset; else an IANA name), from the table at index cache or read and put
 * there (the table owns it; it lives as long as the table holds it). Raises
 * a Lua error for a bad or unknown name. */
const sl_ltzone_t *sl_ltzone_get(lua_State *L, int arg, int cache);
/* The zone's offset from UT at instant t (seconds), and its abbreviation
 * (NULL for a fixed offset other than UTC; static or the zone's). */
int32_t sl_ltzone_offset(const sl_ltzone_t *z, int64_t t, const char **abbr);
/* The instant whose local time in z is local (seconds as if UTC). In a gap
 * the offset before it applies, in an overlap the earlier instant (Go's
 * time.Date). */
int64_t sl_ltzone_from_local(const sl_ltzone_t *z, int64_t local);

/* Days from 1970-01-01 to y-m-d, and the days of month m of year y
 * (proleptic Gregorian). */
int64_t sl_ldays_from_civil(int64_t y, unsigned m, unsigned d);
int sl_ldays_in(long y, int m);

#endif
