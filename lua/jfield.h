/* One top-level member of a JSON object text, found without decoding the
 * text: what `this.field` reads in scripts (lua/runtime.lua, through the
 * FFI). A filter that reads one field of a message costs a scan of its bytes
 * instead of a table per message. */
#ifndef SL_LUA_JFIELD_H
#define SL_LUA_JFIELD_H
#include <stddef.h>
#include <stdint.h>

/* What sl_ljson_field found. UNSURE: the text is not an object this scanner
 * reads with certainty (not JSON, not an object, deeper than lua-cjson's
 * 1000 levels, a top-level key with escapes, over 2 GiB): decode it whole and
 * let the decoder judge. */
enum {
  SL_JF_UNSURE = -1,
  SL_JF_ABSENT = 0,
  SL_JF_STRING,    /* a string without escapes: its bytes are between off and off + len */
  SL_JF_ESCAPED,   /* a string with escapes: the quoted text */
  SL_JF_NUMBER,
  SL_JF_TRUE,
  SL_JF_FALSE,
  SL_JF_NULL,
  SL_JF_OBJECT,
  SL_JF_ARRAY,
};

typedef struct sl_jfield { int32_t off, len; } sl_jfield_t;

/* Checks that s is one JSON object (RFC 8259, no more lenient than
 * lua-cjson) and finds its last member named key (a decoder keeps the last
 * of repeated keys). key NULL: only checks. The caller owns everything;
 * *out is set for a member found. */
int sl_ljson_field(const char *s, size_t len, const char *key, size_t klen, sl_jfield_t *out);
/* The same for a text this thread's last sl_ljson_field scanned and the
 * caller has held unchanged since: found among the members that scan kept
 * (up to 32; more, or another text, scans again). */
int sl_ljson_field_again(const char *s, size_t len, const char *key, size_t klen, sl_jfield_t *out);

#endif
