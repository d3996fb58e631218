/* Scanners (Benthos v4's `scanner` of the stdin and file inputs): cut a byte
 * stream into messages, with bounded memory. A scanner config is built
 * once per input (lint errors there); a scanner is made from it for each
 * byte stream (a file) and keeps state between calls, never a pointer into
 * the bytes it is given. Ownership: whoever builds or makes one frees it. */
#ifndef SL_CONN_SCANNER_H
#define SL_CONN_SCANNER_H
#include "core/component.h"

extern const sl_field_t sl_scanner_fields[];
#define SL_SCANNER_FIELD                                                                                     \
  {"scanner", SL_F_OBJECT, NULL, 0,                                                                          \
   "How the bytes are cut into messages (Benthos v4's scanners; name one): `lines`, `csv`, `re_match`, "     \
   "`chunker`, `decompress` (into another scanner), `skip_bom` (into another), `to_the_end`, `tar`, "        \
   "`switch` (by file name). Given, it replaces `codec`. Each keeps at most its buffer size of one message in memory: a longer line, segment " \
   "or CSV row is logged and emitted truncated (or empty) and flagged as failed, and the rest of it is "    \
   "skipped.", NULL, sl_scanner_fields}

typedef enum { SL_CODEC_LINES, SL_CODEC_ALL } sl_codec_t;

/* Where a scanner's messages go: emit copies p[0..n) into a new message
 * (err non-NULL: flagged with it; tar_name non-NULL during the call: the
 * archive entry it is, for metadata `tar_name`) and lowers room; a scanner
 * stops taking bytes once room is 0 or less (one call may pass it a little). */
typedef struct sl_scan_out {
  void (*emit)(struct sl_scan_out *o, const char *p, size_t n, const char *err);
  int64_t room;
  const char *tar_name;
} sl_scan_out_t;

typedef struct sl_scanconf sl_scanconf_t;
typedef struct sl_scanner sl_scanner_t;

/* From an input's validated config: its `scanner`, else its `codec`, with
 * its `max_buffer`. NULL with diags when refused. */
sl_scanconf_t *sl_scanconf_input(const sl_cnode_t *conf, sl_diags_t *d);
void sl_scanconf_free(sl_scanconf_t *c);

/* name: the source's (a file's path; NULL for stdin), which `switch` matches.
 * c outlives the scanner. */
sl_scanner_t *sl_scanner_new(const sl_scanconf_t *c, const char *name);
/* Takes bytes from p[0..n) and returns how many: the rest must come again,
 * followed by more, in the next call. eof: nothing follows p[n). At eof a
 * scanner returns n once everything is emitted. */
size_t sl_scanner_scan(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o);
void sl_scanner_free(sl_scanner_t *s);

#endif
