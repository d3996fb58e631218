/* Key slots and key positions (redis_slot.h). The key position is Redis's
 * own rule for the commands whose first key is not their first argument
 * (COMMAND INFO's "movablekeys" and subcommand containers); every other
 * command's first argument is its key, or harmless to route by when it has
 * none (CONFIG GET, PUBLISH's channel: any node answers those). */
#include "redis_slot.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT (XMODEM), Redis Cluster's hash (cluster spec, appendix A). */
static uint16_t crc16(const unsigned char *p, size_t n) {
  uint16_t crc = 0;
  while (n--) {
    crc ^= (uint16_t)(*p++ << 8);
    for (int i = 0; i < 8; i++) crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc;
}

int sl_redis_key_slot(const char *key, size_t len) {
  const char *open = memchr(key, '{', len);
  if (open) {
    const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
    if (close && close > open + 1) return crc16((const unsigned char *)open + 1, (size_t)(close - open - 1)) % SL_REDIS_SLOTS;
  }
  return crc16((const unsigned char *)key, len) % SL_REDIS_SLOTS;
}

static int is(const char *a, size_t n, const char *b) { return n == strlen(b) && !strncasecmp(a, b, n); }

/* A count of keys at argv[i], then the keys: the first, or -1 when none. */
static int counted(int argc, const char *const *argv, int i) {
  if (i >= argc) return -1;
  long n = strtol(argv[i], NULL, 10);
  return n > 0 && i + 1 < argc ? i + 1 : -1;
}

int sl_redis_key_arg(int argc, const char *const *argv, const size_t *lens) {
  if (argc < 2) return -1;
  const char *c = argv[0];
  size_t n = lens ? lens[0] : strlen(c);
  if (is(c, n, "EVAL") || is(c, n, "EVALSHA") || is(c, n, "EVAL_RO") || is(c, n, "EVALSHA_RO") ||
      is(c, n, "FCALL") || is(c, n, "FCALL_RO") || is(c, n, "BLMPOP") || is(c, n, "BZMPOP"))
    return counted(argc, argv, 2);
  if (is(c, n, "ZUNION") || is(c, n, "ZINTER") || is(c, n, "ZDIFF") || is(c, n, "SINTERCARD") ||
      is(c, n, "ZINTERCARD") || is(c, n, "LMPOP") || is(c, n, "ZMPOP"))
    return counted(argc, argv, 1);
  if (is(c, n, "XREAD") || is(c, n, "XREADGROUP")) {
    for (int i = 1; i + 1 < argc; i++)
      if (is(argv[i], lens ? lens[i] : strlen(argv[i]), "STREAMS")) return i + 1;
    return -1;
  }
  if (is(c, n, "XGROUP") || is(c, n, "XINFO") || is(c, n, "OBJECT") || is(c, n, "MEMORY") || is(c, n, "BITOP"))
    return argc > 2 ? 2 : -1;
  if (is(c, n, "MIGRATE")) return argc > 3 && (lens ? lens[3] : strlen(argv[3])) ? 3 : -1;   /* empty: KEYS follows */
  return 1;
}
