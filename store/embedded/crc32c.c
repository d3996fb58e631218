#include "crc32c.h"
#include <pthread.h>

static uint32_t table[256];
static int hw;

static void init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p, size_t n) {
  uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
  }
  c = (uint32_t)c64;
  for (; n; n--) c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}
#endif

uint32_t sl_crc32c(uint32_t crc, const void *data, size_t n) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init);
  const unsigned char *p = data;
  uint32_t c = ~crc;
#if defined(__x86_64__)
  if (hw) return ~crc_hw(c, p, n);
#endif
  for (; n; n--) c = table[(c ^ *p++) & 0xFF] ^ (c >> 8);
  return ~c;
}
