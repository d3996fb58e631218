#include "dec.h"

size_t sl_dec_u64(char *buf, uint64_t v) {
  char tmp[SL_DEC_MAX];
  size_t n = 0, i = 0;
  do tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10));
  while (n) buf[i++] = tmp[--n];
  return i;
}

size_t sl_dec(char *buf, int64_t v) {
  if (v >= 0) return sl_dec_u64(buf, (uint64_t)v);
  buf[0] = '-';
  return 1 + sl_dec_u64(buf + 1, 0 - (uint64_t)v);
}
