/* libFuzzer target: any bytes, cut into any slices, through every scanner of
 * the stdin and file inputs (tar, switch and each decompress algorithm too):
 * messages and flagged errors, never a crash, a
 * leak or undefined behaviour, and what a scanner leaves to read again stays
 * within its buffer size plus the slice just read (bounded memory). */
#include "connectors/io/scanner.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const configs[] = {
  "scanner: {lines: {max_buffer_size: 64}}",
  "scanner: {lines: {custom_delimiter: ab, max_buffer_size: 64}}",
  "scanner: {csv: {continue_on_error: true, max_buffer_size: 256}}",
  "scanner: {csv: {lazy_quotes: true, parse_header_row: false, max_buffer_size: 256}}",
  "scanner: {csv: {custom_delimiter: ';', max_buffer_size: 256}}",
  "scanner: {re_match: {pattern: '(?m)^\\d', max_buffer_size: 64}}",
  "scanner: {chunker: {size: 7}}",
  "scanner: {decompress: {algorithm: gzip, into: {lines: {max_buffer_size: 64}}}}",
  "scanner: {decompress: {algorithm: zlib, into: {csv: {continue_on_error: true}}}}",
  "scanner: {decompress: {algorithm: flate}}\nmax_buffer: 1KiB",
  "scanner: {skip_bom: {into: {re_match: {pattern: 'x+y', max_buffer_size: 64}}}}",
  "codec: all\nmax_buffer: 128",
  "scanner: {tar: {}}\nmax_buffer: 256",
  "scanner: {decompress: {algorithm: bzip2, into: {lines: {max_buffer_size: 64}}}}",
  "scanner: {decompress: {algorithm: lz4, into: {tar: {}}}}\nmax_buffer: 256",
  "scanner: {decompress: {algorithm: zstd, into: {chunker: {size: 16}}}}",
  "scanner: {decompress: {algorithm: snappy, into: {lines: {max_buffer_size: 64}}}}",
  "scanner: {switch: [{re_match_name: 'x$', scanner: {lines: {}}}, {re_match_name: '\\.tar$', scanner: {tar: {}}}]}\nmax_buffer: 256",
};
/* The most any of these scanners leaves unread: a line or segment of 64 bytes. */
enum { NCONF = sizeof configs / sizeof configs[0], BOUND = 4096, KEPT = 128 };

typedef struct out { sl_scan_out_t o; size_t n; } out_t;

static void emit(sl_scan_out_t *o, const char *p, size_t n, const char *err) {
  out_t *t = (out_t *)o;
  if (n && (!p || (err && n > BOUND))) __builtin_trap();
  t->n++;
  o->room--;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  sl_diags_t d = {0};
  const char *text = configs[data[0] % NCONF];
  size_t slice = 1 + data[1] % 64;
  data += 2;
  size -= 2;
  sl_cnode_t *conf = sl_conf_parse(text, strlen(text), "fuzz.yaml", &d);
  sl_scanconf_t *c = conf ? sl_scanconf_input(conf, &d) : NULL;
  if (!c) __builtin_trap();
  sl_scanner_t *s = sl_scanner_new(c, "fuzz.tar");
  char *buf = malloc(size + 1);
  size_t len = 0, fed = 0;
  for (;;) {
    size_t k = size - fed < slice ? size - fed : slice;
    memcpy(buf + len, data + fed, k);
    len += k;
    fed += k;
    int eof = fed == size;
    for (int rounds = 0;; rounds++) {   /* as the reader: cut all it can before reading more */
      out_t t = {{emit, 1 + (int64_t)(slice % 5), NULL}, 0};
      size_t used = sl_scanner_scan(s, buf, len, eof, &t.o);
      if (used > len || rounds > 100000) __builtin_trap();
      memmove(buf, buf + used, len - used);
      len -= used;
      if (!t.n) break;
    }
    if (len > KEPT + slice) __builtin_trap();   /* a scanner kept what it should have cut */
    if (eof) {
      if (len) __builtin_trap();   /* at the end everything goes */
      break;
    }
  }
  free(buf);
  sl_scanner_free(s);
  sl_scanconf_free(c);
  sl_cnode_free(conf);
  sl_diags_free(&d);
  return 0;
}
