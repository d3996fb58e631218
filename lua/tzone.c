/* Time zones for the `time` module: IANA names read from the system's
 * tzdata. glibc converts to a named zone only through the process-wide TZ
 * variable, which other threads read, so zone files (RFC 8536's TZif) are
 * read here, once per VM and zone: their version-2 64-bit transitions and
 * the POSIX TZ rule of their footer for the times after the last one. Also
 * the proleptic Gregorian calendar both use. */
#include "tzone.h"
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONEINFO "/usr/share/zoneinfo/"
#define MAX_ZONE_FILE (1 << 20)

struct sl_ltzone {
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
};
typedef struct sl_ltzone zone_t;

static int leap_year(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

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
    int64_t first = sl_ldays_from_civil(y, (unsigned)z->when[i].m, 1);
    int wd = (int)(((first + 4) % 7 + 7) % 7);   /* 1970-01-01 was a Thursday */
    int d = 1 + (z->when[i].d - wd + 7) % 7 + (z->when[i].w - 1) * 7;
    while (d > sl_ldays_in(y, z->when[i].m)) d -= 7;
    day = first + d - 1;
  } else if (z->when[i].kind == 'J') {
    /* 1..365, February 29 never counted */
    int n = z->when[i].d;
    day = sl_ldays_from_civil(y, 1, 1) + n - 1 + (leap_year(y) && n >= 60 ? 1 : 0);
  } else {
    day = sl_ldays_from_civil(y, 1, 1) + z->when[i].d;
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
const sl_ltzone_t *sl_ltzone_get(lua_State *L, int arg, int cache) {
  static const zone_t utc = {.fixed = 1, .off = 0};
  if (lua_isnoneornil(L, arg)) return &utc;
  const char *name = luaL_checkstring(L, arg);
  if (!strcmp(name, "UTC") || !strcmp(name, "Z") || !strcmp(name, "Etc/UTC")) return &utc;
  lua_pushvalue(L, arg);
  lua_rawget(L, cache);
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
  lua_rawset(L, cache);
  lua_pop(L, 1);
  return z;
}

/* The zone's UT offset at the instant t (and its abbreviation). Past the
 * last transition, the file's rule (or else its last type). */
int32_t sl_ltzone_offset(const sl_ltzone_t *z, int64_t t, const char **abbr) {
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
int64_t sl_ltzone_from_local(const sl_ltzone_t *z, int64_t local) {
  int32_t o1 = sl_ltzone_offset(z, local, NULL);
  int32_t o2 = sl_ltzone_offset(z, local - o1, NULL);
  if (o1 == o2) {
    /* an overlap: the earlier instant, if it maps to the same local time */
    int32_t before = sl_ltzone_offset(z, local - o1 - 3600 * 3, NULL);
    if (before != o1 && sl_ltzone_offset(z, local - before, NULL) == before) return local - before;
    return local - o1;
  }
  if (sl_ltzone_offset(z, local - o2, NULL) == o2) return local - o2;
  return local - o1;
}

/* ---- calendar ---- */

int sl_ldays_in(long y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap_year(y) ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's). */
int64_t sl_ldays_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}
