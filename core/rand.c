/* Random ids: uuid v4 from xoshiro256** seeded by the kernel (uniqueness,
 * not secrecy: a syscall per id would dominate a mapping's cost). */
#include "rand.h"
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* One state per thread: workers never share it. */
static _Thread_local uint64_t rng[4];
static _Thread_local int rng_seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
  if (!rng_seeded) {
    if (getrandom(rng, sizeof(rng), 0) != sizeof(rng)) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      rng[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
      rng[1] = (uint64_t)(uintptr_t)&ts;
      rng[2] = 0x9e3779b97f4a7c15ULL;
      rng[3] = 0xbf58476d1ce4e5b9ULL;
    }
    rng_seeded = 1;
  }
  uint64_t result = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
  rng[2] ^= rng[0];
  rng[3] ^= rng[1];
  rng[1] ^= rng[2];
  rng[0] ^= rng[3];
  rng[2] ^= t;
  rng[3] = rotl(rng[3], 45);
  return result;
}

int sl_uuid_v4(char *out) {
  static const char hex[] = "0123456789abcdef";
  unsigned char b[16];
  uint64_t a = rng_next(), c = rng_next();
  memcpy(b, &a, 8);
  memcpy(b + 8, &c, 8);
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[o] = 0;
  return o;
}


uint64_t sl_rand64(void) {
  uint64_t v;
  while (!(v = rng_next())) {}
  return v;
}
