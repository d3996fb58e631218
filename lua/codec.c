/* Hashes and encodings for scripts, from the libraries that do them:
 * digests and HMAC from OpenSSL, xxHash from libxxhash, CRC-32 from zlib,
 * base64 from OpenSSL's EVP encoder, percent-encoding from libcurl. Each is
 * one C call whose work is linear in its input, which lua.max_memory bounds. */
#include "codec.h"
#include <curl/curl.h>
#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

/* ---- output of a digest: "hex" (default), "raw", "base64" (and "number"
 * for the 32-bit ones) ---- */

static void push_hex(lua_State *L, const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    luaL_addchar(&b, digits[p[i] >> 4]);
    luaL_addchar(&b, digits[p[i] & 15]);
  }
  luaL_pushresult(&b);
}

static void push_b64(lua_State *L, const unsigned char *p, size_t n, int url, int pad);

static int push_digest(lua_State *L, int arg, const unsigned char *p, size_t n) {
  const char *out = luaL_optstring(L, arg, "hex");
  if (!strcmp(out, "hex")) push_hex(L, p, n);
  else if (!strcmp(out, "raw")) lua_pushlstring(L, (const char *)p, n);
  else if (!strcmp(out, "base64")) push_b64(L, p, n, 0, 1);
  else if (!strcmp(out, "number") && n == 4) lua_pushnumber(L, (double)((uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]));
  else return luaL_argerror(L, arg, n == 4 ? "output must be \"hex\", \"raw\", \"base64\" or \"number\""
                                           : "output must be \"hex\", \"raw\" or \"base64\"");
  return 1;
}

static const EVP_MD *digest_named(lua_State *L, int arg) {
  const char *name = luaL_checkstring(L, arg);
  if (!strcmp(name, "md5")) return EVP_md5();
  if (!strcmp(name, "sha1")) return EVP_sha1();
  if (!strcmp(name, "sha256")) return EVP_sha256();
  if (!strcmp(name, "sha512")) return EVP_sha512();
  luaL_argerror(L, arg, "algorithm must be \"md5\", \"sha1\", \"sha256\" or \"sha512\"");
  return NULL;
}

/* upvalue 1: the algorithm's name */
static int l_digest(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const EVP_MD *md = digest_named(L, lua_upvalueindex(1));
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!EVP_Digest(s, len, out, &n, md, NULL)) return luaL_error(L, "%s failed", lua_tostring(L, lua_upvalueindex(1)));
  return push_digest(L, 2, out, n);
}

/* hmac(algorithm, key, data [, output]) */
static int l_hmac(lua_State *L) {
  const EVP_MD *md = digest_named(L, 1);
  size_t klen, len;
  const char *key = luaL_checklstring(L, 2, &klen);
  const char *s = luaL_checklstring(L, 3, &len);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!HMAC(md, key, (int)klen, (const unsigned char *)s, len, out, &n)) return luaL_error(L, "hmac failed");
  return push_digest(L, 4, out, n);
}

static uint64_t opt_seed(lua_State *L, int arg) {
  lua_Number seed = luaL_optnumber(L, arg, 0);
  if (seed < 0 || seed != (lua_Number)(uint64_t)seed) luaL_argerror(L, arg, "seed must be a whole number from 0");
  return (uint64_t)seed;
}

static int l_xxhash64(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  XXH64_canonical_t c;
  XXH64_canonicalFromHash(&c, XXH64(s, len, opt_seed(L, 3)));
  return push_digest(L, 2, c.digest, sizeof(c.digest));
}

static int l_xxhash32(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  XXH32_canonical_t c;
  XXH32_canonicalFromHash(&c, XXH32(s, len, (XXH32_hash_t)opt_seed(L, 3)));
  return push_digest(L, 2, c.digest, sizeof(c.digest));
}

static int l_crc32(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  uLong c = crc32(0L, Z_NULL, 0);
  /* zlib takes a uInt length */
  for (size_t off = 0; off < len;) {
    uInt n = len - off > (1u << 30) ? (1u << 30) : (uInt)(len - off);
    c = crc32(c, s + off, n);
    off += n;
  }
  unsigned char out[4] = {(unsigned char)(c >> 24), (unsigned char)(c >> 16), (unsigned char)(c >> 8), (unsigned char)c};
  return push_digest(L, 2, out, 4);
}

/* ---- base64 (RFC 4648 sections 4 and 5) ---- */

/* Variants by Go's names, as Benthos writes them: std, rawstd (no padding),
 * url, rawurl. */
static void variant(lua_State *L, int arg, int *url, int *pad) {
  const char *v = luaL_optstring(L, arg, "std");
  if (!strcmp(v, "std")) *url = 0, *pad = 1;
  else if (!strcmp(v, "rawstd")) *url = 0, *pad = 0;
  else if (!strcmp(v, "url")) *url = 1, *pad = 1;
  else if (!strcmp(v, "rawurl")) *url = 1, *pad = 0;
  else luaL_argerror(L, arg, "variant must be \"std\", \"rawstd\", \"url\" or \"rawurl\"");
}

/* EVP_EncodeBlock writes 4 bytes per 3 and a NUL, without line breaks. */
static void push_b64(lua_State *L, const unsigned char *p, size_t n, int url, int pad) {
  if (n > ((size_t)1 << 40)) luaL_error(L, "base64: input too large");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t off = 0; off < n;) {
    /* whole groups of 3 through the Lua buffer's chunks */
    unsigned char out[LUAL_BUFFERSIZE / 4 * 4 + 1];
    size_t in = n - off > (sizeof(out) - 1) / 4 * 3 ? (sizeof(out) - 1) / 4 * 3 : n - off;
    int w = EVP_EncodeBlock(out, p + off, (int)in);
    if (url)
      for (int i = 0; i < w; i++) out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    if (!pad)
      while (w > 0 && out[w - 1] == '=') w--;
    luaL_addlstring(&b, (const char *)out, (size_t)w);
    off += in;
  }
  luaL_pushresult(&b);
}

static int l_b64_encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int url, pad;
  variant(L, 2, &url, &pad);
  push_b64(L, (const unsigned char *)s, len, url, pad);
  return 1;
}

/* Strict, as Go's decoders: only the variant's alphabet, padding exactly
 * where the variant has it, no line breaks. */
static int l_b64_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int url, pad;
  variant(L, 2, &url, &pad);
  size_t body = len;
  if (pad) {
    if (len % 4) return luaL_error(L, "base64: length %d is not a multiple of 4 (padding missing?)", (int)len);
    while (body > 0 && len - body < 2 && s[body - 1] == '=') body--;
  } else if (len % 4 == 1) {
    return luaL_error(L, "base64: bad length %d", (int)len);
  }
  for (size_t i = 0; i < body; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             (url ? (c == '-' || c == '_') : (c == '+' || c == '/'));
    if (!ok) return luaL_error(L, "base64: illegal byte 0x%02x at offset %d", c, (int)i);
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t off = 0; off < body;) {
    unsigned char in[LUAL_BUFFERSIZE / 4 * 4], out[LUAL_BUFFERSIZE / 4 * 3 + 3];
    size_t n = body - off > sizeof(in) ? sizeof(in) : body - off;
    memcpy(in, s + off, n);
    if (url)
      for (size_t i = 0; i < n; i++) in[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    size_t whole = n / 4 * 4, rest = n - whole;
    /* the last group gets its padding back for EVP_DecodeBlock */
    if (rest) {
      if (rest == 1) return luaL_error(L, "base64: bad length");
      memset(in + n, '=', 4 - rest);
    }
    size_t groups = whole + (rest ? 4 : 0);
    int w = EVP_DecodeBlock(out, in, (int)groups);
    if (w < 0) return luaL_error(L, "base64: cannot decode");
    /* EVP_DecodeBlock counts padding as zero bytes */
    size_t keep = (size_t)w - (rest ? 4 - rest : 0);
    /* Go refuses non-zero bits in the last character's unused part */
    if (rest) {
      unsigned char last = out[keep];
      if (keep < (size_t)w && last) return luaL_error(L, "base64: illegal trailing bits");
    }
    luaL_addlstring(&b, (const char *)out, keep);
    off += n;
  }
  luaL_pushresult(&b);
  return 1;
}

/* ---- hex ---- */

static int l_hex_encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  push_hex(L, (const unsigned char *)s, len);
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int l_hex_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (len % 2) return luaL_error(L, "hex: odd length %d", (int)len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < len; i += 2) {
    int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
    if (hi < 0 || lo < 0) return luaL_error(L, "hex: illegal byte at offset %d", (int)(hi < 0 ? i : i + 1));
    luaL_addchar(&b, (char)(hi << 4 | lo));
  }
  luaL_pushresult(&b);
  return 1;
}

/* ---- percent-encoding (RFC 3986): libcurl keeps ALPHA DIGIT - . _ ~ ---- */

static int push_curl(lua_State *L, char *p, size_t n) {
  if (!p) return luaL_error(L, "url: out of memory");
  lua_pushlstring(L, p, n);
  curl_free(p);
  return 1;
}

/* upvalue 1: true for the query form (a space is '+') */
static int l_url_encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (len > INT32_MAX / 3) return luaL_error(L, "url: input too large");
  char *p = curl_easy_escape(NULL, s, (int)len);
  if (!p || !lua_toboolean(L, lua_upvalueindex(1))) return push_curl(L, p, p ? strlen(p) : 0);
  /* curl writes a space as %20 */
  size_t n = strlen(p), w = 0;
  for (size_t r = 0; r < n; r++) {
    if (p[r] == '%' && p[r + 1] == '2' && p[r + 2] == '0') p[w++] = '+', r += 2;
    else p[w++] = p[r];
  }
  return push_curl(L, p, w);
}

/* upvalue 1: true for the query form ('+' is a space; "%2B" stays '+') */
static int l_url_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (len > INT32_MAX) return luaL_error(L, "url: input too large");
  if (lua_toboolean(L, lua_upvalueindex(1)) && memchr(s, '+', len)) {
    char *c = lua_newuserdata(L, len);
    for (size_t i = 0; i < len; i++) c[i] = s[i] == '+' ? ' ' : s[i];
    s = c;
  }
  int n = 0;
  char *p = curl_easy_unescape(NULL, s, (int)len, &n);
  return push_curl(L, p, (size_t)n);
}

static void set_fn(lua_State *L, const char *name, lua_CFunction f, int nup) {
  lua_pushcclosure(L, f, nup);
  lua_setfield(L, -2, name);
}

void sl_lcodec_push(lua_State *L) {
  lua_newtable(L);
  lua_newtable(L);   /* hash */
  static const char *const algs[] = {"md5", "sha1", "sha256", "sha512", NULL};
  for (const char *const *a = algs; *a; a++) {
    lua_pushstring(L, *a);
    set_fn(L, *a, l_digest, 1);
  }
  set_fn(L, "hmac", l_hmac, 0);
  set_fn(L, "xxhash64", l_xxhash64, 0);
  set_fn(L, "xxhash32", l_xxhash32, 0);
  set_fn(L, "crc32", l_crc32, 0);
  lua_setfield(L, -2, "hash");
  lua_newtable(L);
  set_fn(L, "encode", l_b64_encode, 0);
  set_fn(L, "decode", l_b64_decode, 0);
  lua_setfield(L, -2, "base64");
  lua_newtable(L);
  set_fn(L, "encode", l_hex_encode, 0);
  set_fn(L, "decode", l_hex_decode, 0);
  lua_setfield(L, -2, "hex");
  lua_newtable(L);
  lua_pushboolean(L, 0);
  set_fn(L, "encode", l_url_encode, 1);
  lua_pushboolean(L, 1);
  set_fn(L, "query_encode", l_url_encode, 1);
  lua_pushboolean(L, 0);
  set_fn(L, "decode", l_url_decode, 1);
  lua_pushboolean(L, 1);
  set_fn(L, "query_decode", l_url_decode, 1);
  lua_setfield(L, -2, "url");
}
