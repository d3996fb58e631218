/* A validating scan of a JSON object text that remembers where one
 * top-level member lies. Stricter than lua-cjson wherever they differ (hex
 * numbers, NaN, control bytes in strings, a lone surrogate escape is left to
 * the decoder of the value): what it refuses is decoded whole, so a script
 * sees the decoder's verdict either way. Bytes that are not UTF-8 pass, as
 * they do through lua-cjson. The members of the last text scanned are kept
 * (per thread) for the next look at the same text. */
#include "jfield.h"
#include <string.h>

#define MAX_DEPTH 1000   /* lua-cjson's decode_max_depth */

typedef struct scan {
  const char *p, *e;
  int depth;
} scan_t;

static void ws(scan_t *s) {
  while (s->p < s->e && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

static int hex(char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* At the opening quote; leaves p after the closing one. 1 plain, 2 with
 * escapes, 0 invalid. */
static int string(scan_t *s) {
  int kind = 1;
  const char *p = s->p + 1, *e = s->e;
  for (;;) {
    while (p < e && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    if (p >= e || (unsigned char)*p < 0x20) return 0;
    if (*p == '"') break;
    kind = 2;
    if (++p >= e) return 0;
    if (*p == 'u') {
      if (e - p < 5 || !hex(p[1]) || !hex(p[2]) || !hex(p[3]) || !hex(p[4])) return 0;
      p += 5;
    } else if (*p && strchr("\"\\/bfnrt", *p)) {
      p++;
    } else {
      return 0;
    }
  }
  s->p = p + 1;
  return kind;
}

static int digits(scan_t *s) {
  const char *b = s->p;
  while (s->p < s->e && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > b;
}

static int number(scan_t *s) {
  if (*s->p == '-') s->p++;
  if (s->p < s->e && *s->p == '0') s->p++;
  else if (!digits(s)) return 0;
  if (s->p < s->e && *s->p == '.') {
    s->p++;
    if (!digits(s)) return 0;
  }
  if (s->p < s->e && (*s->p | 0x20) == 'e') {
    s->p++;
    if (s->p < s->e && (*s->p == '+' || *s->p == '-')) s->p++;
    if (!digits(s)) return 0;
  }
  return 1;
}

static int word(scan_t *s, const char *w, size_t n) {
  if ((size_t)(s->e - s->p) < n || memcmp(s->p, w, n) != 0) return 0;
  s->p += n;
  return 1;
}

static int value(scan_t *s);

/* At '{' or '['; leaves p after the closing bracket. */
static int container(scan_t *s, char close) {
  if (++s->depth > MAX_DEPTH) return 0;
  s->p++;
  ws(s);
  if (s->p < s->e && *s->p == close) { s->p++; s->depth--; return 1; }
  for (;;) {
    if (close == '}') {
      if (s->p >= s->e || *s->p != '"' || !string(s)) return 0;
      ws(s);
      if (s->p >= s->e || *s->p++ != ':') return 0;
      ws(s);
    }
    if (!value(s)) return 0;
    ws(s);
    if (s->p >= s->e) return 0;
    if (*s->p == ',') { s->p++; ws(s); continue; }
    if (*s->p++ != close) return 0;
    s->depth--;
    return 1;
  }
}

/* At a value's first byte; its kind (SL_JF_*), 0 when invalid. */
static int value(scan_t *s) {
  if (s->p >= s->e) return 0;
  switch (*s->p) {
  case '"': {
    int k = string(s);
    return k == 1 ? SL_JF_STRING : k == 2 ? SL_JF_ESCAPED : 0;
  }
  case '{': return container(s, '}') ? SL_JF_OBJECT : 0;
  case '[': return container(s, ']') ? SL_JF_ARRAY : 0;
  case 't': return word(s, "true", 4) ? SL_JF_TRUE : 0;
  case 'f': return word(s, "false", 5) ? SL_JF_FALSE : 0;
  case 'n': return word(s, "null", 4) ? SL_JF_NULL : 0;
  default: return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) && number(s) ? SL_JF_NUMBER : 0;
  }
}

/* The members of the object scanned last on this thread, so that a script
 * setting a few new keys (each must be found absent first) scans its text
 * once. Only a caller that holds the text since that scan may use it (its
 * bytes cannot have changed nor been freed and reused). */
#define MEMO_MAX 32
typedef struct member { int32_t koff, klen, voff, vlen; int kind; } member_t;
static _Thread_local struct {
  const char *text;          /* NULL: nothing usable */
  size_t len;
  int n;
  member_t m[MEMO_MAX];
} memo;

static void memo_add(const char *text, const char *k, const char *ke, const char *v, const char *ve, int kind) {
  if (memo.n > MEMO_MAX) return;
  if (memo.n == MEMO_MAX) {
    memo.n++;   /* too many to keep: the next look scans */
    return;
  }
  memo.m[memo.n++] = (member_t){(int32_t)(k - text), (int32_t)(ke - k), (int32_t)(v - text),
                                          (int32_t)(ve - v), kind};
}

static int scan(const char *text, size_t len, const char *key, size_t klen, sl_jfield_t *out) {
  if (len > INT32_MAX) return SL_JF_UNSURE;
  scan_t s = {text, text + len, 1};
  int found = SL_JF_ABSENT;
  ws(&s);
  if (s.p >= s.e || *s.p != '{') return SL_JF_UNSURE;
  s.p++;
  ws(&s);
  if (s.p < s.e && *s.p == '}') s.p++;
  else for (;;) {
    const char *k = s.p + 1;
    if (s.p >= s.e || *s.p != '"') return SL_JF_UNSURE;
    int kk = string(&s);
    if (kk != 1) return SL_JF_UNSURE;   /* invalid, or a key with escapes */
    const char *ke = s.p - 1;
    int match = key && (size_t)(ke - k) == klen && memcmp(k, key, klen) == 0;
    ws(&s);
    if (s.p >= s.e || *s.p++ != ':') return SL_JF_UNSURE;
    ws(&s);
    const char *v = s.p;
    int kind = value(&s);
    if (!kind) return SL_JF_UNSURE;
    memo_add(text, k, ke, v, s.p, kind);
    if (match) {
      found = kind;
      out->off = (int32_t)(v - text) + (kind == SL_JF_STRING);
      out->len = (int32_t)(s.p - v) - (kind == SL_JF_STRING ? 2 : 0);
    }
    ws(&s);
    if (s.p >= s.e) return SL_JF_UNSURE;
    if (*s.p == ',') { s.p++; ws(&s); continue; }
    if (*s.p++ != '}') return SL_JF_UNSURE;
    break;
  }
  ws(&s);
  return s.p == s.e ? found : SL_JF_UNSURE;
}

int sl_ljson_field(const char *text, size_t len, const char *key, size_t klen, sl_jfield_t *out) {
  memo.text = NULL;
  memo.n = 0;
  int kind = scan(text, len, key, klen, out);
  if (kind != SL_JF_UNSURE && memo.n <= MEMO_MAX) {
    memo.text = text;
    memo.len = len;
  }
  return kind;
}

int sl_ljson_field_again(const char *text, size_t len, const char *key, size_t klen, sl_jfield_t *out) {
  if (memo.text != text || memo.len != len) return sl_ljson_field(text, len, key, klen, out);
  int found = SL_JF_ABSENT;
  for (int i = 0; i < memo.n; i++) {
    if ((size_t)memo.m[i].klen != klen || memcmp(text + memo.m[i].koff, key, klen) != 0) continue;
    int kind = memo.m[i].kind;
    found = kind;
    out->off = memo.m[i].voff + (kind == SL_JF_STRING);
    out->len = memo.m[i].vlen - (kind == SL_JF_STRING ? 2 : 0);
  }
  return found;
}
