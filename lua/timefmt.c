/* The `time` module's parsing and formatting: RFC 3339 (read strictly, as
 * its grammar says), strftime/strptime formats through glibc, and durations
 * as Go writes them ("1h30m"); zones come from lua/tzone.c. */
#include "timefmt.h"
#include "tzone.h"
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TZ_CACHE lua_upvalueindex(1)
#define MAX_FORMAT 256

/* ---- RFC 3339 (section 5.6) ---- */

static int digits(const char *s, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    *v = *v * 10 + (s[i] - '0');
  }
  return 0;
}

/* 0 and *sec, *ns; or -1 and *why. */
static int parse_rfc3339(const char *s, size_t len, int64_t *sec, long *ns, const char **why) {
  int Y, M, D, h, m, S;
  if (len < 20) return *why = "too short for YYYY-MM-DDTHH:MM:SSZ", -1;
  if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' || digits(s + 8, 2, &D))
    return *why = "the date must be YYYY-MM-DD", -1;
  /* RFC 3339 5.6: "T" may be "t"; a space stands for it by its note */
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return *why = "date and time must be separated by T", -1;
  if (digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' || digits(s + 17, 2, &S))
    return *why = "the time must be HH:MM:SS", -1;
  if (M < 1 || M > 12) return *why = "month out of range", -1;
  if (D < 1 || D > sl_ldays_in(Y, M)) return *why = "day out of range", -1;
  if (h > 23) return *why = "hour out of range", -1;
  if (m > 59) return *why = "minute out of range", -1;
  if (S > 60) return *why = "second out of range", -1;
  size_t i = 19;
  long frac = 0;
  if (i < len && s[i] == '.') {
    size_t start = ++i;
    long scale = 100000000;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
      frac += (s[i] - '0') * scale;   /* digits past nanoseconds are cut */
      scale /= 10;
    }
    if (i == start) return *why = "a '.' must be followed by digits", -1;
  }
  int off = 0;
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    if (len - i < 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || digits(s + i + 4, 2, &om))
      return *why = "the offset must be Z or +HH:MM", -1;
    if (oh > 23 || om > 59) return *why = "offset out of range", -1;
    off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return *why = "an offset (Z or +HH:MM) must follow the time", -1;
  }
  if (i != len) return *why = "text after the offset", -1;
  int64_t t = sl_ldays_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + S - off;
  if (S == 60) {
    /* a leap second is the last of a UTC day (5.7): 23:59:60Z; POSIX time,
     * which has no leap seconds, counts it as the next day's first */
    if ((t - 60) % 86400 != 86340 && (t - 60) % 86400 != -60) return *why = "second 60 (a leap second) only at 23:59:60 UTC", -1;
  }
  *sec = t;
  *ns = frac;
  return 0;
}

/* ---- arguments ---- */

/* A time argument: seconds (a number, its fraction rounded to microseconds,
 * what a double holds today) and optionally exact nanoseconds at nsarg. */
static void get_time(lua_State *L, int arg, int nsarg, int64_t *sec, long *ns) {
  lua_Number t = luaL_checknumber(L, arg);
  if (!(t > -62135596800.0 * 2 && t < 253402300800.0 * 2)) luaL_argerror(L, arg, "time out of range");
  lua_Number fl = floor(t);
  *sec = (int64_t)fl;
  if (!lua_isnoneornil(L, nsarg)) {
    lua_Number n = luaL_checknumber(L, nsarg);
    if (n < 0 || n > 999999999 || n != floor(n)) luaL_argerror(L, nsarg, "nanoseconds must be a whole number from 0 to 999999999");
    *ns = (long)n;
    return;
  }
  long us = lround((t - fl) * 1e6);
  if (us >= 1000000) (*sec)++, us -= 1000000;
  *ns = us * 1000;
}

static void push_time(lua_State *L, int64_t sec, long ns) {
  lua_pushnumber(L, (lua_Number)sec + ns / 1e9);
  lua_pushinteger(L, ns);
}

/* ---- format ---- */

static void to_tm(int64_t local, struct tm *tm) {
  time_t tt = (time_t)local;
  gmtime_r(&tt, tm);
}

static int add_offset(char *o, int32_t off, int colon, int z) {
  if (z && off == 0) return sprintf(o, "Z");
  int a = off < 0 ? -off : off;
  return sprintf(o, colon ? "%c%02d:%02d" : "%c%02d%02d", off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

/* time.format(t [, format [, zone [, ns]]]) */
static int l_format(lua_State *L) {
  int64_t sec;
  long ns;
  get_time(L, 1, 4, &sec, &ns);
  const sl_ltzone_t *z = sl_ltzone_get(L, 3, TZ_CACHE);
  const char *abbr;
  int32_t off = sl_ltzone_offset(z, sec, &abbr);
  struct tm tm;
  to_tm(sec + off, &tm);
  char out[2048];   /* a 256-byte format of %N writes 1152 */
  if (lua_isnoneornil(L, 2)) {
    /* RFC 3339, with as many fractional digits as it takes (Go's RFC3339Nano) */
    if (tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) return luaL_error(L, "time.format: year outside 0000-9999");
    int n = sprintf(out, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                    tm.tm_min, tm.tm_sec);
    if (ns) {
      n += sprintf(out + n, ".%09ld", ns);
      while (out[n - 1] == '0') n--;
    }
    n += add_offset(out + n, off, 1, 1);
    lua_pushlstring(L, out, (size_t)n);
    return 1;
  }
  size_t flen;
  const char *f = luaL_checklstring(L, 2, &flen);
  if (flen > MAX_FORMAT) return luaL_argerror(L, 2, "format longer than 256 bytes");
  /* sluice's conversions first: %f microseconds, %L milliseconds,
   * %N nanoseconds (GNU date), %:z the offset as +hh:mm */
  char fmt[MAX_FORMAT * 5 + 1];   /* %N grows 2 bytes to 9 */
  size_t w = 0;
  for (size_t i = 0; i < flen; i++) {
    if (f[i] != '%' || i + 1 >= flen) {
      fmt[w++] = f[i];
      continue;
    }
    char c = f[i + 1];
    if (c == 'f') w += (size_t)sprintf(fmt + w, "%06ld", ns / 1000);
    else if (c == 'L') w += (size_t)sprintf(fmt + w, "%03ld", ns / 1000000);
    else if (c == 'N') w += (size_t)sprintf(fmt + w, "%09ld", ns);
    else if (c == ':' && i + 2 < flen && f[i + 2] == 'z') w += (size_t)add_offset(fmt + w, off, 1, 0), i++;
    else {
      fmt[w++] = '%';
      fmt[w++] = c;
    }
    i++;
  }
  fmt[w] = 0;
  tm.tm_gmtoff = off;
  tm.tm_zone = abbr ? abbr : "";
  char zbuf[8];
  if (!abbr) {
    add_offset(zbuf, off, 0, 0);
    tm.tm_zone = zbuf;
  }
  out[0] = 1;
  size_t n = strftime(out, sizeof(out), fmt, &tm);
  if (n == 0 && w > 0 && out[0] != 0) return luaL_error(L, "time.format: result longer than %d bytes", (int)sizeof(out));
  lua_pushlstring(L, out, n);
  return 1;
}

/* ---- parse ---- */

/* strptime over text with sluice's %f (1 to 9 digits of a second's
 * fraction) between glibc's conversions. */
static const char *strptime_f(const char *s, const char *fmt, struct tm *tm, long *ns) {
  char part[MAX_FORMAT + 1];
  while (*fmt) {
    const char *pf = strstr(fmt, "%f");
    /* "%%f" is a literal "%f" */
    while (pf && pf > fmt && pf[-1] == '%') {
      size_t run = 0;
      for (const char *q = pf - 1; q >= fmt && *q == '%'; q--) run++;
      if (run % 2 == 0) break;
      pf = strstr(pf + 2, "%f");
    }
    size_t n = pf ? (size_t)(pf - fmt) : strlen(fmt);
    memcpy(part, fmt, n);
    part[n] = 0;
    if (n) {
      s = strptime(s, part, tm);
      if (!s) return NULL;
    }
    if (!pf) break;
    long scale = 100000000, v = 0;
    const char *start = s;
    for (; *s >= '0' && *s <= '9'; s++) {
      v += (*s - '0') * scale;
      scale /= 10;
    }
    if (s == start) return NULL;
    *ns = v;
    fmt = pf + 2;
  }
  return s;
}

/* time.parse(text [, format [, zone]]) -> seconds (with the fraction), nanoseconds */
static int l_parse(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int64_t sec;
  long ns = 0;
  if (lua_isnoneornil(L, 2)) {
    const char *why;
    if (parse_rfc3339(s, len, &sec, &ns, &why) != 0)
      return luaL_error(L, "time.parse: \"%s\" is not an RFC 3339 time: %s", len > 64 ? "(long text)" : s, why);
    push_time(L, sec, ns);
    return 2;
  }
  size_t flen;
  const char *f = luaL_checklstring(L, 2, &flen);
  if (flen > MAX_FORMAT) return luaL_argerror(L, 2, "format longer than 256 bytes");
  if (strlen(s) != len) return luaL_error(L, "time.parse: text holds a NUL byte");
  const sl_ltzone_t *z = sl_ltzone_get(L, 3, TZ_CACHE);
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = 70;
  tm.tm_mday = 1;
  tm.tm_gmtoff = LONG_MIN;   /* stays so unless %z was read */
  const char *end = strptime_f(s, f, &tm, &ns);
  if (!end) return luaL_error(L, "time.parse: \"%s\" does not match the format \"%s\"", len > 64 ? "(long text)" : s, f);
  if (*end) return luaL_error(L, "time.parse: text after the time: \"%s\"", strlen(end) > 32 ? "(long text)" : end);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > sl_ldays_in(tm.tm_year + 1900L, tm.tm_mon + 1))
    return luaL_error(L, "time.parse: day out of range");
  int64_t local = sl_ldays_from_civil(tm.tm_year + 1900LL, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday) * 86400 +
                  tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
  sec = tm.tm_gmtoff != LONG_MIN ? local - tm.tm_gmtoff : sl_ltzone_from_local(z, local);
  push_time(L, sec, ns);
  return 2;
}

/* ---- durations, as Go's time.ParseDuration and Duration.String ---- */

static const struct { const char *unit; double ns; } units[] = {
  {"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};

/* time.parse_duration("1h30m") -> seconds */
static int l_parse_duration(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len), *p = s, *e = s + len;
  int neg = 0;
  if (p < e && (*p == '-' || *p == '+')) neg = *p++ == '-';
  if (p == e) return luaL_error(L, "time.parse_duration: invalid duration \"%s\"", s);
  if (e - p == 1 && *p == '0') {
    lua_pushnumber(L, 0);
    return 1;
  }
  double total = 0;
  while (p < e) {
    double v = 0, scale = 1;
    int any = 0;
    for (; p < e && *p >= '0' && *p <= '9'; p++) v = v * 10 + (*p - '0'), any = 1;
    if (p < e && *p == '.') {
      for (p++; p < e && *p >= '0' && *p <= '9'; p++) scale /= 10, v += (*p - '0') * scale, any = 1;
    }
    if (!any) return luaL_error(L, "time.parse_duration: invalid duration \"%s\"", s);
    const char *u = p;
    while (p < e && !(*p >= '0' && *p <= '9') && *p != '.') p++;
    size_t ul = (size_t)(p - u);
    if (ul == 0) return luaL_error(L, "time.parse_duration: missing unit in duration \"%s\"", s);
    double mult = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
      if (strlen(units[i].unit) == ul && !memcmp(units[i].unit, u, ul)) mult = units[i].ns;
    if (!mult) {
      lua_pushlstring(L, u, ul);
      return luaL_error(L, "time.parse_duration: unknown unit \"%s\" in duration \"%s\"", lua_tostring(L, -1), s);
    }
    total += v * mult;
  }
  if (total > 9223372036854775807.0) return luaL_error(L, "time.parse_duration: invalid duration \"%s\"", s);
  lua_pushnumber(L, (neg ? -total : total) / 1e9);
  return 1;
}

/* Appends v's decimal digits, less trailing zeros after the point at prec. */
static int frac_str(char *o, int64_t v, int prec) {
  char d[24];
  int n = 0;
  int64_t ip = v;
  for (int i = 0; i < prec; i++) ip /= 10;
  int64_t scale = 1;
  for (int i = 0; i < prec; i++) scale *= 10;
  int64_t fp = v - ip * scale;
  n = sprintf(d, "%lld", (long long)ip);
  memcpy(o, d, (size_t)n);
  if (fp) {
    char f[24];
    int fl = sprintf(f, "%0*lld", prec, (long long)fp);
    while (f[fl - 1] == '0') fl--;
    o[n++] = '.';
    memcpy(o + n, f, (size_t)fl);
    n += fl;
  }
  return n;
}

/* time.format_duration(seconds) -> "1h30m0s", as Go writes it */
static int l_format_duration(lua_State *L) {
  lua_Number secs = luaL_checknumber(L, 1);
  double nsd = secs * 1e9;
  if (!(fabs(nsd) < 9.2e18)) return luaL_argerror(L, 1, "duration out of range");
  int64_t ns = llround(nsd);
  char out[64];
  int n = 0;
  uint64_t u = ns < 0 ? (uint64_t)(-ns) : (uint64_t)ns;
  if (ns < 0) out[n++] = '-';
  if (u == 0) {
    lua_pushliteral(L, "0s");
    return 1;
  }
  if (u < 1000000000) {
    /* under a second: the largest unit that keeps it at 1 or more */
    int prec;
    const char *unit;
    if (u < 1000) prec = 0, unit = "ns";
    else if (u < 1000000) prec = 3, unit = "\xc2\xb5s";
    else prec = 6, unit = "ms";
    n += frac_str(out + n, (int64_t)u, prec);
    n += sprintf(out + n, "%s", unit);
  } else {
    uint64_t h = u / 3600000000000ULL, m = u / 60000000000ULL % 60, rest = u % 60000000000ULL;
    if (h) n += sprintf(out + n, "%lluh", (unsigned long long)h);
    if (h || m) n += sprintf(out + n, "%llum", (unsigned long long)m);
    n += frac_str(out + n, (int64_t)rest, 9);
    out[n++] = 's';
  }
  lua_pushlstring(L, out, (size_t)n);
  return 1;
}

/* time.offset(t, zone) -> the zone's UT offset in seconds at t, its abbreviation */
static int l_offset(lua_State *L) {
  int64_t sec;
  long ns;
  get_time(L, 1, 3, &sec, &ns);
  const char *abbr;
  int32_t off = sl_ltzone_offset(sl_ltzone_get(L, 2, TZ_CACHE), sec, &abbr);
  lua_pushinteger(L, off);
  if (abbr) lua_pushstring(L, abbr);
  else lua_pushnil(L);
  return 2;
}

void sl_ltime_push(lua_State *L) {
  static const luaL_Reg fns[] = {{"format", l_format}, {"parse", l_parse}, {"offset", l_offset}, {NULL, NULL}};
  lua_newtable(L);
  lua_newtable(L);   /* zones read so far */
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, -3, f->name);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_parse_duration);
  lua_setfield(L, -2, "parse_duration");
  lua_pushcfunction(L, l_format_duration);
  lua_setfield(L, -2, "format_duration");
}
