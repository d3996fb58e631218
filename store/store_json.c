/* Record bytes as JSON: values, keys, event names and headers are stored as
 * the bytes they were given, and JSON can only carry UTF-8 text, so bytes
 * that are not UTF-8 travel as base64 (docs/streams-api.md, "Encoding"). */
#include "streams.h"
#include "core/xalloc.h"
#include <openssl/evp.h>
#include <string.h>

json_t *sl_json_bytes(const char *p, size_t n, int *base64) {
  *base64 = 0;
  json_t *s = json_stringn(p ? p : "", n);   /* NULL when not UTF-8 */
  if (s) return s;
  *base64 = 1;
  char *b = sl_xmalloc(4 * ((n + 2) / 3) + 1);
  int len = EVP_EncodeBlock((unsigned char *)b, (const unsigned char *)p, (int)n);
  s = json_stringn(b, (size_t)len);
  free(b);
  return s;
}

json_t *sl_json_header_value(const char *p, size_t n) {
  int b64;
  json_t *s = sl_json_bytes(p, n, &b64);
  return b64 ? json_pack("{s:o}", "base64", s) : s;
}

int sl_json_header_bytes(const json_t *v, char **out, size_t *len) {
  if (json_is_string(v)) {
    *len = json_string_length(v);
    *out = sl_xmalloc(*len + 1);
    memcpy(*out, json_string_value(v), *len + 1);
    return 0;
  }
  const json_t *b = json_object_get(v, "base64");
  if (!json_is_string(b) || json_object_size(v) != 1) return -1;
  size_t n = json_string_length(b);
  const char *s = json_string_value(b);
  if (n % 4) return -1;
  *out = sl_xmalloc(n / 4 * 3 + 1);
  int got = EVP_DecodeBlock((unsigned char *)*out, (const unsigned char *)s, (int)n);
  if (got < 0) {
    free(*out);
    return -1;
  }
  /* EVP_DecodeBlock counts the padding as zero bytes. */
  for (size_t i = n; i > 0 && s[i - 1] == '=' && got > 0; i--) got--;
  *len = (size_t)got;
  (*out)[*len] = 0;
  return 0;
}
