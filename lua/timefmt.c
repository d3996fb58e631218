/* The `time` module's parsing and formatting: RFC 3339 (read strictly, as
 * its grammar says), strftime/strptime formats through glibc, durations as
 * Go writes them ("1h30m"), and time zones by IANA name from the system's
 * tzdata. glibc converts to a named zone only through the process-wide TZ
 * variable, which other threads read, so zone files (RFC 8536's TZif) are
 * read here, once per VM and zone: their version-2 64-bit transitions and
 * the POSIX TZ rule of their footer for the times after the last one. */
#include "timefmt.h"
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZONEINFO "/usr/share/zoneinfo/"
#define TZ_CACHE lua_upvalueindex(1)
#define MAX_ZONE_FILE (1 << 20)
#define MAX_FORMAT 256

/* ---- zones ---- */

typedef struct zone {
  int fixed;                     /* a fixed offset (UTC, "+02:00"): off */
  int32_t off;
  uint32_t n, ntypes;
  int64_t *at;                   /* transition times, ascending */
  uint8_t *idx;                  /* the type from each transition on */
  int32_t *type_off;             /* UT offset of each type */
  char (*abbr)[8];               /* abbreviation of each type */
  int32_t first_off;             /* before the first transition */
  char first_abbr[8];
  /* after the last transition: the footer's POSIX TZ rule (RFC 8536 3.3) */
  int rule;                      /* 0 none, 1 a standard offset only, 2 with daylight saving */
  int32_t std_off, dst_off;
  char std_abbr[8], dst_abbr[8];
  struct { int kind, m, w, d; int32_t secs; } when[2];   /* kind: 'J', 'n' or 'M'; start, end */
} zone_t;

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
static int leap_year(long y);
static int days_in(long y, int m);

static int zone_gc(lua_State *L) {
  zone_t *z = lua_touserdata(L, 1);
  free(z->at);
  free(z->idx);
  free(z->type_off);
  free(z->abbr);
  z->at = NULL;
  z->idx = NULL;
  z->type_off = NULL;
  z->abbr = NULL;
  return 0;
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static int64_t be64(const unsigned char *p) { return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)); }

/* ---- POSIX TZ rules (the footer of version 2+ files) ---- */

static const char *tz_name(const char *p, char *out) {
  const char *start = p, *end;
  if (*p == '<') {
    start = ++p;
    while (*p && *p != '>') p++;
    if (*p != '>') return NULL;
    end = p++;
  } else {
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) p++;
    end = p;
  }
  size_t n = (size_t)(end - start);
  if (n < 1) return NULL;
  if (n > 7) n = 7;
  memcpy(out, start, n);
  out[n] = 0;
  return p;
}

/* [+-]hh[:mm[:ss]] into seconds (hh up to 167, for RFC 8536's extension). */
static const char *tz_secs(const char *p, int32_t *out) {
  int sign = 1;
  if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
  int32_t v = 0;
  for (int part = 0; part < 3; part++) {
    if (!(*p >= '0' && *p <= '9')) return NULL;
    int x = 0;
    while (*p >= '0' && *p <= '9') x = x * 10 + (*p++ - '0');
    if (x > 167) return NULL;
    v += x * (part == 0 ? 3600 : part == 1 ? 60 : 1);
    if (*p != ':') break;
    p++;
  }
  *out = sign * v;
  return p;
}

static const char *tz_date(const char *p, zone_t *z, int i) {
  z->when[i].secs = 7200;
  if (*p == 'M') {
    z->when[i].kind = 'M';
    if (sscanf(p + 1, "%d.%d.%d", &z->when[i].m, &z->when[i].w, &z->when[i].d) != 3) return NULL;
    if (z->when[i].m < 1 || z->when[i].m > 12 || z->when[i].w < 1 || z->when[i].w > 5 || z->when[i].d < 0 ||
        z->when[i].d > 6)
      return NULL;
    p++;
    while ((*p >= '0' && *p <= '9') || *p == '.') p++;
  } else {
    z->when[i].kind = *p == 'J' ? 'J' : 'n';
    if (*p == 'J') p++;
    if (!(*p >= '0' && *p <= '9')) return NULL;
    int x = 0;
    while (*p >= '0' && *p <= '9') x = x * 10 + (*p++ - '0');
    if (x > 365) return NULL;
    z->when[i].d = x;
  }
  if (*p == '/') p = tz_secs(p + 1, &z->when[i].secs);
  return p;
}

/* "CET-1CEST,M3.5.0,M10.5.0/3" into z's rule; -1 if it is not one. */
static int tz_rule(zone_t *z, const char *p) {
  int32_t o;
  if (!(p = tz_name(p, z->std_abbr)) || !(p = tz_secs(p, &o))) return -1;
  z->std_off = -o;   /* POSIX counts west of Greenwich */
  z->rule = 1;
  if (!*p) return 0;
  if (!(p = tz_name(p, z->dst_abbr))) return -1;
  z->dst_off = z->std_off + 3600;
  if (*p && *p != ',') {
    if (!(p = tz_secs(p, &o))) return -1;
    z->dst_off = -o;
  }
  if (*p++ != ',' || !(p = tz_date(p, z, 0)) || *p++ != ',' || !(p = tz_date(p, z, 1)) || *p) return -1;
  z->rule = 2;
  return 0;
}

/* Seconds from 1970 to the rule's moment in year y, in the local time it is
 * written in. */
static int64_t rule_local(const zone_t *z, int i, int64_t y) {
  int64_t day;
  if (z->when[i].kind == 'M') {
    int64_t first = days_from_civil(y, (unsigned)z->when[i].m, 1);
    int wd = (int)(((first + 4) % 7 + 7) % 7);   /* 1970-01-01 was a Thursday */
    int d = 1 + (z->when[i].d - wd + 7) % 7 + (z->when[i].w - 1) * 7;
    while (d > days_in(y, z->when[i].m)) d -= 7;
    day = first + d - 1;
  } else if (z->when[i].kind == 'J') {
    /* 1..365, February 29 never counted */
    int n = z->when[i].d;
    day = days_from_civil(y, 1, 1) + n - 1 + (leap_year(y) && n >= 60 ? 1 : 0);
  } else {
    day = days_from_civil(y, 1, 1) + z->when[i].d;
  }
  return day * 86400 + z->when[i].secs;
}

/* The rule's offset at instant t (and its abbreviation). */
static int32_t rule_offset(const zone_t *z, int64_t t, const char **abbr) {
  if (z->rule == 2) {
    int64_t days = (t + z->std_off) / 86400 - ((t + z->std_off) % 86400 < 0);
    /* the year of that day (Howard Hinnant's civil_from_days) */
    int64_t zd = days + 719468, era = (zd >= 0 ? zd : zd - 146096) / 146097;
    unsigned doe = (unsigned)(zd - era * 146097), yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t y = (int64_t)yoe + era * 400 + ((mp < 10 ? mp + 3 : mp - 9) <= 2);
    int64_t start = rule_local(z, 0, y) - z->std_off, end = rule_local(z, 1, y) - z->dst_off;
    int dst = start < end ? t >= start && t < end : t < end || t >= start;
    if (dst) {
      if (abbr) *abbr = z->dst_abbr;
      return z->dst_off;
    }
  }
  if (abbr) *abbr = z->std_abbr;
  return z->std_off;
}

/* Parses a TZif file (RFC 8536) into z; 0, or -1 if it is not one. */
static int tzif_parse(zone_t *z, const unsigned char *p, size_t len) {
  if (len < 44 || memcmp(p, "TZif", 4)) return -1;
  /* skip the version-1 block when a version-2 one follows */
  const unsigned char *h = p;
  int v2 = p[4] >= '2';
  size_t tsize = 4;
  if (v2) {
    uint32_t isut = be32(h + 20), isstd = be32(h + 24), leap = be32(h + 28), timecnt = be32(h + 32),
             typecnt = be32(h + 36), charcnt = be32(h + 40);
    size_t skip = 44 + (size_t)timecnt * 5 + (size_t)typecnt * 6 + charcnt + (size_t)leap * 8 + isstd + isut;
    if (skip + 44 > len) return -1;
    h = p + skip;
    if (memcmp(h, "TZif", 4)) return -1;
    tsize = 8;
  }
  uint32_t isut = be32(h + 20), isstd = be32(h + 24), leap = be32(h + 28), timecnt = be32(h + 32),
           typecnt = be32(h + 36), charcnt = be32(h + 40);
  if (typecnt == 0 || typecnt > 256 || timecnt > 100000 || charcnt > 10000 || leap > 10000) return -1;
  const unsigned char *d = h + 44;
  size_t need = (size_t)timecnt * (tsize + 1) + (size_t)typecnt * 6 + charcnt;
  if ((size_t)(d - p) + need > len) return -1;
  z->n = timecnt;
  z->ntypes = typecnt;
  z->at = malloc(sizeof(*z->at) * (timecnt ? timecnt : 1));
  z->idx = malloc(timecnt ? timecnt : 1);
  z->type_off = malloc(sizeof(*z->type_off) * typecnt);
  z->abbr = malloc(sizeof(*z->abbr) * typecnt);
  if (!z->at || !z->idx || !z->type_off || !z->abbr) return -1;
  for (uint32_t i = 0; i < timecnt; i++) z->at[i] = tsize == 8 ? be64(d + i * 8) : (int32_t)be32(d + i * 4);
  d += (size_t)timecnt * tsize;
  for (uint32_t i = 0; i < timecnt; i++) {
    z->idx[i] = d[i];
    if (d[i] >= typecnt) return -1;
  }
  d += timecnt;
  const unsigned char *types = d, *chars = d + (size_t)typecnt * 6;
  for (uint32_t i = 0; i < typecnt; i++) {
    z->type_off[i] = (int32_t)be32(types + i * 6);
    unsigned ai = types[i * 6 + 5];
    size_t k = 0;
    if (ai < charcnt)
      for (; k < 7 && ai + k < charcnt && chars[ai + k]; k++) z->abbr[i][k] = (char)chars[ai + k];
    z->abbr[i][k] = 0;
  }
  /* RFC 8536 3.2: before the first transition, type 0 */
  z->first_off = z->type_off[0];
  memcpy(z->first_abbr, z->abbr[0], 8);
  /* the footer: "\n" rule "\n" after the version-2 data */
  const unsigned char *f = chars + charcnt + (size_t)leap * (tsize + 4) + isstd + isut;
  if (v2 && f < p + len && *f == '\n') {
    const unsigned char *nl = memchr(f + 1, '\n', (size_t)(p + len - f - 1));
    char rule[128];
    size_t rl = nl ? (size_t)(nl - f - 1) : 0;
    if (nl && rl > 0 && rl < sizeof(rule)) {
      memcpy(rule, f + 1, rl);
      rule[rl] = 0;
      if (tz_rule(z, rule) != 0) z->rule = 0;
    }
  }
  return 0;
}

/* Reads "+hh:mm", "-hhmm", "+hh" into seconds; -1 if s is not one. */
static int fixed_offset(const char *s, int32_t *off) {
  if ((s[0] != '+' && s[0] != '-') || !(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9')) return -1;
  int h = (s[1] - '0') * 10 + (s[2] - '0'), m = 0;
  const char *r = s + 3;
  if (*r == ':') r++;
  if (*r) {
    if (!(r[0] >= '0' && r[0] <= '9' && r[1] >= '0' && r[1] <= '9') || r[2]) return -1;
    m = (r[0] - '0') * 10 + (r[1] - '0');
  }
  if (h > 23 || m > 59) return -1;
  *off = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
  return 0;
}

/* The zone named at arg (nil: UTC), from the VM's cache or its file. */
static const zone_t *get_zone(lua_State *L, int arg) {
  static const zone_t utc = {.fixed = 1, .off = 0};
  if (lua_isnoneornil(L, arg)) return &utc;
  const char *name = luaL_checkstring(L, arg);
  if (!strcmp(name, "UTC") || !strcmp(name, "Z") || !strcmp(name, "Etc/UTC")) return &utc;
  lua_pushvalue(L, arg);
  lua_rawget(L, TZ_CACHE);
  zone_t *z = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (z) return z;
  z = lua_newuserdata(L, sizeof(*z));
  memset(z, 0, sizeof(*z));
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, zone_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  int32_t off;
  if (fixed_offset(name, &off) == 0) {
    z->fixed = 1;
    z->off = off;
  } else {
    /* an IANA name: letters, digits, '_', '-', '+', '/' between parts, no ".." */
    size_t nl = strlen(name);
    int ok = nl > 0 && nl < 128 && name[0] != '/' && !strstr(name, "..");
    for (size_t i = 0; ok && i < nl; i++) {
      unsigned char c = (unsigned char)name[i];
      ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '+' || c == '/';
    }
    if (!ok) luaL_error(L, "time: bad time zone name \"%s\"", name);
    char path[sizeof(ZONEINFO) + 128];
    snprintf(path, sizeof(path), ZONEINFO "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) luaL_error(L, "time: unknown time zone \"%s\" (no %s)", name, path);
    unsigned char *buf = malloc(MAX_ZONE_FILE);
    size_t len = buf ? fread(buf, 1, MAX_ZONE_FILE, f) : 0;
    fclose(f);
    int rc = buf ? tzif_parse(z, buf, len) : -1;
    free(buf);
    if (rc != 0) luaL_error(L, "time: %s is not a time zone file", path);
  }
  lua_pushvalue(L, arg);
  lua_pushvalue(L, -2);
  lua_rawset(L, TZ_CACHE);
  lua_pop(L, 1);
  return z;
}

/* The zone's UT offset at the instant t (and its abbreviation). Past the
 * last transition, the file's rule (or else its last type). */
static int32_t offset_at(const zone_t *z, int64_t t, const char **abbr) {
  if (z->fixed) {
    if (abbr) *abbr = z->off ? NULL : "UTC";
    return z->off;
  }
  if (z->n == 0 || t < z->at[0]) {
    if (abbr) *abbr = z->first_abbr;
    return z->first_off;
  }
  if (z->rule && t >= z->at[z->n - 1]) return rule_offset(z, t, abbr);
  uint32_t lo = 0, hi = z->n;   /* the last transition <= t */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (z->at[mid] <= t) lo = mid;
    else hi = mid;
  }
  if (abbr) *abbr = z->abbr[z->idx[lo]];
  return z->type_off[z->idx[lo]];
}

/* The instant whose local time in z is `local` (seconds as if UTC). In a gap
 * (spring forward) the offset before it applies, in an overlap the earlier
 * instant: as Go's time.Date. */
static int64_t from_local(const zone_t *z, int64_t local) {
  int32_t o1 = offset_at(z, local, NULL);
  int32_t o2 = offset_at(z, local - o1, NULL);
  if (o1 == o2) {
    /* an overlap: the earlier instant, if it maps to the same local time */
    int32_t before = offset_at(z, local - o1 - 3600 * 3, NULL);
    if (before != o1 && offset_at(z, local - before, NULL) == before) return local - before;
    return local - o1;
  }
  if (offset_at(z, local - o2, NULL) == o2) return local - o2;
  return local - o1;
}

/* ---- calendar ---- */

static int leap_year(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
static int days_in(long y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap_year(y) ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

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
  if (D < 1 || D > days_in(Y, M)) return *why = "day out of range", -1;
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
  int64_t t = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + S - off;
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
  const zone_t *z = get_zone(L, 3);
  const char *abbr;
  int32_t off = offset_at(z, sec, &abbr);
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
  const zone_t *z = get_zone(L, 3);
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = 70;
  tm.tm_mday = 1;
  tm.tm_gmtoff = LONG_MIN;   /* stays so unless %z was read */
  const char *end = strptime_f(s, f, &tm, &ns);
  if (!end) return luaL_error(L, "time.parse: \"%s\" does not match the format \"%s\"", len > 64 ? "(long text)" : s, f);
  if (*end) return luaL_error(L, "time.parse: text after the time: \"%s\"", strlen(end) > 32 ? "(long text)" : end);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > days_in(tm.tm_year + 1900L, tm.tm_mon + 1))
    return luaL_error(L, "time.parse: day out of range");
  int64_t local = days_from_civil(tm.tm_year + 1900LL, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday) * 86400 +
                  tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
  sec = tm.tm_gmtoff != LONG_MIN ? local - tm.tm_gmtoff : from_local(z, local);
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
  int32_t off = offset_at(get_zone(L, 2), sec, &abbr);
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
