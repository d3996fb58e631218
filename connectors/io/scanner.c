#include "scanner.h"
#include "scan_tar.h"
#include "unpack.h"
#include "core/xalloc.h"
#include <csv.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static const sl_field_t lines_fields[] = {
  {"custom_delimiter", SL_F_STRING, "", 0,
   "Cut at this text instead of line endings (then a `\\r` before it stays).", NULL, NULL},
  {"max_buffer_size", SL_F_SIZE, "65536", 0, "Longest line kept.", SL_BOUNDS("1", ""), NULL},
  {0}};

static const sl_field_t csv_fields[] = {
  {"custom_delimiter", SL_F_STRING, ",", 0, "Field separator: one byte.", NULL, NULL},
  {"parse_header_row", SL_F_BOOL, "true", 0,
   "The first row names the fields: each row is a JSON object of them. Otherwise each row is a JSON array "
   "of strings.", NULL, NULL},
  {"lazy_quotes", SL_F_BOOL, "false", 0, "Take a quote inside an unquoted field, or a lone one inside a quoted "
   "field, as text instead of refusing the row.", NULL, NULL},
  {"continue_on_error", SL_F_BOOL, "false", 0,
   "A row that cannot be read is an empty message flagged with the error and reading goes on with the next "
   "line; otherwise that message is the last of the input.", NULL, NULL},
  {"max_buffer_size", SL_F_SIZE, "1MiB", 0, "Longest row kept (sluice adds this bound).", SL_BOUNDS("1", ""),
   NULL},
  {0}};

static const sl_field_t re_match_fields[] = {
  {"pattern", SL_F_STRING, NULL, SL_REQUIRED,
   "A regular expression (PCRE2; `(?m)` for `^` at line starts): each message starts where it matches.",
   NULL, NULL},
  {"max_buffer_size", SL_F_SIZE, "65536", 0, "Longest segment kept.", SL_BOUNDS("1", ""), NULL},
  {0}};

static const sl_field_t chunker_fields[] = {
  {"size", SL_F_SIZE, NULL, SL_REQUIRED, "Bytes per message (the last one may be shorter).",
   SL_BOUNDS("1", "64MiB"), NULL},
  {0}};

static const sl_field_t decompress_fields[] = {
  {"algorithm", SL_F_ENUM, NULL, SL_REQUIRED, "Compression of the stream (`pgzip` reads as `gzip`; `lz4` and "
   "`zstd` are their frame formats, as their command-line tools write; `snappy` is snappy's framing format, "
   "whose checksums are not verified). Concatenated gzip members, bzip2 streams and lz4 or zstd frames read as "
   "one stream; a zstd frame that needs a window above 16 MiB is refused.", sl_unpack_algorithms, NULL},
  {"into", SL_F_ANY, NULL, 0, "The scanner that cuts the decompressed bytes (default: `to_the_end`).", NULL,
   NULL},
  {0}};

static const sl_field_t skip_bom_fields[] = {
  {"into", SL_F_ANY, NULL, 0, "The scanner that cuts the bytes after the byte order mark (default: `lines` "
   "with the input's `max_buffer`).", NULL, NULL},
  {0}};

static const sl_field_t none[] = {{0}};

static const sl_field_t switch_fields[] = {
  {"re_match_name", SL_F_STRING, NULL, 0, "A regular expression (PCRE2) the source's name (the file's path) must "
   "match for this case; without it the case takes any source.", NULL, NULL},
  {"scanner", SL_F_ANY, NULL, SL_REQUIRED, "The scanner for a source this case takes.", NULL, NULL},
  {0}};

const sl_field_t sl_scanner_fields[] = {
  {"lines", SL_F_OBJECT, NULL, 0, "One message per line (`\\n`, a `\\r` before it removed); empty lines are "
   "skipped.", NULL, lines_fields},
  {"csv", SL_F_OBJECT, NULL, 0, "One message per CSV row (RFC 4180, read by libcsv), as JSON.", NULL, csv_fields},
  {"re_match", SL_F_OBJECT, NULL, 0, "Messages start where a regular expression matches.", NULL, re_match_fields},
  {"chunker", SL_F_OBJECT, NULL, 0, "Messages of `size` bytes.", NULL, chunker_fields},
  {"decompress", SL_F_OBJECT, NULL, 0, "Decompresses the stream as it arrives (zlib, libbz2, liblz4, libzstd, "
   "libsnappy), into another scanner; "
   "only what that one keeps is held, so a small input that inflates without end costs no memory.", NULL,
   decompress_fields},
  {"skip_bom", SL_F_OBJECT, NULL, 0, "Drops a UTF-8 byte order mark at the start, into another scanner.", NULL,
   skip_bom_fields},
  {"to_the_end", SL_F_OBJECT, NULL, 0, "The whole input is one message (at most the input's `max_buffer`).",
   NULL, none},
  {"tar", SL_F_OBJECT, NULL, 0, "Each entry of a tar archive (ustar, pax, GNU; read by libarchive) is a "
   "message with its name in metadata `tar_name` (directories too, empty, as Benthos). An entry longer than "
   "the input's `max_buffer` is emitted truncated and flagged; a damaged or truncated archive ends in a "
   "flagged empty message. Compressed archives: `decompress` into `tar`.", NULL, none},
  {"switch", SL_F_OBJLIST, NULL, 0, "Chooses a scanner for each source by its name (the file's path; stdin "
   "has none): the first case whose `re_match_name` matches, or that has none. A source no case takes is "
   "one flagged empty message.", NULL, switch_fields},
  {0}};

static const sl_field_t scanner_field = SL_SCANNER_FIELD;

typedef enum { K_LINES, K_CSV, K_RE, K_CHUNK, K_DECOMP, K_BOM, K_END, K_TAR, K_SWITCH } kind_t;

struct sl_scanconf {
  kind_t kind;
  size_t max;                 /* longest message kept (chunker: its size) */
  const char *max_name;       /* the field that sets it, for errors */
  char *delim;                /* lines */
  size_t dlen;
  int crlf;                   /* lines: a \r before \n goes too */
  unsigned char csv_delim;
  int header, lazy, cont;
  pcre2_code *re;
  const char *algorithm;      /* decompress */
  sl_scanconf_t *into;
  struct sl_scanconf **cases; /* switch: a scanner per case */
  pcre2_code **names;         /* switch: each case's re_match_name (NULL: any source) */
  int ncases;
};

struct sl_scanner {
  const sl_scanconf_t *c;
  int skipping;               /* dropping the rest of an over-long message */
  size_t scanned;             /* lines: bytes at the start known to hold no delimiter */
  char *buf;                  /* to_the_end: the input so far; decompress: inflated bytes */
  size_t len, cap;
  int overflow, done;
  struct csv_parser csv;
  json_t *row, *header;
  size_t row_bytes;
  uint64_t rows;
  int row_bad, failed;
  sl_scan_out_t *out;         /* csv: of the scan under way, for libcsv's callbacks */
  pcre2_match_data *md;
  sl_unpack_t *unpack;
  sl_tar_t *tar;
  sl_scanner_t *child;
};

/* ---- config ---- */

void sl_scanconf_free(sl_scanconf_t *c) {
  if (!c) return;
  free(c->delim);
  if (c->re) pcre2_code_free(c->re);
  sl_scanconf_free(c->into);
  for (int i = 0; i < c->ncases; i++) {
    sl_scanconf_free(c->cases[i]);
    if (c->names[i]) pcre2_code_free(c->names[i]);
  }
  free(c->cases);
  free(c->names);
  free(c);
}

static sl_scanconf_t *build(const sl_cnode_t *node, size_t max_buffer, sl_diags_t *d, int depth);
static sl_scanconf_t *by_codec(sl_codec_t codec, size_t max_buffer);

/* A scanner inside another one (its `key` field). */
static sl_scanconf_t *build_child(sl_cnode_t *node, const char *key, size_t max_buffer, sl_diags_t *d,
                                  int depth) {
  if (depth > 8) {
    sl_diag_add(d, node, key, "scanners nest 8 deep at most");
    return NULL;
  }
  if (sl_spec_validate_value(&scanner_field, node, key, d)) return NULL;
  return build(node, max_buffer, d, depth + 1);
}

static sl_scanconf_t *build_into(const sl_cnode_t *body, sl_codec_t def, size_t max_buffer, sl_diags_t *d,
                                 int depth) {
  sl_cnode_t *into = sl_cnode_get(body, "into");
  return into ? build_child(into, "into", max_buffer, d, depth) : by_codec(def, max_buffer);
}

static pcre2_code *compile(const sl_cnode_t *at, const char *key, const char *pat, sl_diags_t *d) {
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code,
                                 &off, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    sl_diag_add(d, at, key, "%s at offset %zu", (char *)msg, (size_t)off);
  }
  return re;
}

static int build_switch(sl_scanconf_t *c, const sl_cnode_t *body, size_t max_buffer, sl_diags_t *d, int depth) {
  c->kind = K_SWITCH;
  c->cases = sl_xcalloc(body->n ? body->n : 1, sizeof(*c->cases));
  c->names = sl_xcalloc(body->n ? body->n : 1, sizeof(*c->names));
  for (size_t i = 0; i < body->n; i++) {
    const sl_cnode_t *item = body->items[i], *pat = sl_cnode_get(item, "re_match_name");
    sl_scanconf_t *cs = build_child(sl_cnode_get(item, "scanner"), "scanner", max_buffer, d, depth);
    if (!cs) return -1;
    c->cases[c->ncases++] = cs;
    if (pat && !(c->names[i] = compile(pat, "re_match_name", sl_conf_str(item, "re_match_name", ""), d))) return -1;
  }
  return 0;
}

static sl_scanconf_t *build(const sl_cnode_t *node, size_t max_buffer, sl_diags_t *d, int depth) {
  if (!node || node->type != SL_CN_MAP || node->n != 1) {
    sl_diag_add(d, node, "scanner", "name one scanner: lines, csv, re_match, chunker, decompress, skip_bom, "
                "to_the_end, tar or switch");
    return NULL;
  }
  const char *name = node->keys[0];
  const sl_cnode_t *body = node->items[0];
  sl_scanconf_t *c = sl_xcalloc(1, sizeof(*c));
  c->max = max_buffer;
  c->max_name = "max_buffer_size";
  if (!strcmp(name, "lines")) {
    c->kind = K_LINES;
    const char *dl = sl_conf_str(body, "custom_delimiter", "");
    c->crlf = !*dl;
    c->delim = sl_xstrdup(*dl ? dl : "\n");
    c->dlen = strlen(c->delim);
    c->max = (size_t)sl_conf_size(body, "max_buffer_size", 65536);
  } else if (!strcmp(name, "csv")) {
    c->kind = K_CSV;
    const char *dl = sl_conf_str(body, "custom_delimiter", ",");
    if (strlen(dl) != 1 || *dl == '"' || *dl == '\n' || *dl == '\r') {
      sl_diag_add(d, sl_cnode_get(body, "custom_delimiter"), "custom_delimiter",
                  "one byte other than a quote or a line break");
      sl_scanconf_free(c);
      return NULL;
    }
    c->csv_delim = (unsigned char)*dl;
    c->header = sl_conf_bool(body, "parse_header_row", 1);
    c->lazy = sl_conf_bool(body, "lazy_quotes", 0);
    c->cont = sl_conf_bool(body, "continue_on_error", 0);
    c->max = (size_t)sl_conf_size(body, "max_buffer_size", 1 << 20);
  } else if (!strcmp(name, "re_match")) {
    c->kind = K_RE;
    if (!(c->re = compile(sl_cnode_get(body, "pattern"), "pattern", sl_conf_str(body, "pattern", ""), d))) {
      sl_scanconf_free(c);
      return NULL;
    }
    c->max = (size_t)sl_conf_size(body, "max_buffer_size", 65536);
  } else if (!strcmp(name, "chunker")) {
    c->kind = K_CHUNK;
    c->max = (size_t)sl_conf_size(body, "size", 1);
  } else if (!strcmp(name, "decompress") || !strcmp(name, "skip_bom")) {
    c->kind = name[0] == 'd' ? K_DECOMP : K_BOM;
    c->algorithm = sl_conf_str(body, "algorithm", "gzip");
    if (!(c->into = build_into(body, c->kind == K_DECOMP ? SL_CODEC_ALL : SL_CODEC_LINES, max_buffer, d, depth))) {
      sl_scanconf_free(c);
      return NULL;
    }
  } else if (!strcmp(name, "switch")) {
    if (build_switch(c, body, max_buffer, d, depth)) {
      sl_scanconf_free(c);
      return NULL;
    }
  } else {
    c->kind = !strcmp(name, "tar") ? K_TAR : K_END;
    c->max_name = "max_buffer";
  }
  return c;
}

static sl_scanconf_t *by_codec(sl_codec_t codec, size_t max_buffer) {
  sl_scanconf_t *c = sl_xcalloc(1, sizeof(*c));
  c->kind = codec == SL_CODEC_ALL ? K_END : K_LINES;
  c->max = max_buffer;
  c->max_name = "max_buffer";
  c->delim = sl_xstrdup("\n");
  c->dlen = 1;
  c->crlf = 1;
  return c;
}

sl_scanconf_t *sl_scanconf_input(const sl_cnode_t *conf, sl_diags_t *d) {
  int64_t mb = sl_conf_size(conf, "max_buffer", 1 << 20);
  if (mb < 1) {
    sl_diag_add(d, sl_cnode_get(conf, "max_buffer"), "max_buffer", "must be at least 1 byte");
    return NULL;
  }
  const sl_cnode_t *scanner = sl_cnode_get(conf, "scanner");
  if (scanner) return build(scanner, (size_t)mb, d, 0);
  return by_codec(strcmp(sl_conf_str(conf, "codec", "lines"), "all") ? SL_CODEC_LINES : SL_CODEC_ALL, (size_t)mb);
}

/* ---- scanners ---- */

static void too_long(sl_scanner_t *s, sl_scan_out_t *o, const char *what, const char *p) {
  char err[160];
  snprintf(err, sizeof err, "%s longer than %s (%zu bytes): truncated", what, s->c->max_name, s->c->max);
  o->emit(o, p, s->c->max, err);
}

static const char *find(const char *p, size_t n, const char *d, size_t dl) {
  if (dl == 1) return memchr(p, d[0], n);
  return memmem(p, n, d, dl);
}

static size_t scan_lines(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  const sl_scanconf_t *c = s->c;
  size_t used = 0;
  while (o->room > 0) {
    size_t from = used + s->scanned < n ? used + s->scanned : n;
    const char *d = find(p + from, n - from, c->delim, c->dlen);
    size_t end, next;
    if (d) {
      end = (size_t)(d - p);
      next = end + c->dlen;
    } else if (eof && used < n) {
      end = next = n;
    } else if (eof) {
      break;
    } else {
      size_t keep = c->dlen - 1;   /* a delimiter may have begun at the end */
      if (n - used > c->max) {
        if (!s->skipping) too_long(s, o, "line", p + used);
        s->skipping = 1;
        s->scanned = 0;
        return n - used > keep ? n - keep : used;
      }
      s->scanned = n - used > keep ? n - used - keep : 0;
      return used;
    }
    s->scanned = 0;
    const char *seg = p + used;
    size_t len = end - used;
    used = next;
    if (s->skipping) {
      s->skipping = 0;
      continue;
    }
    if (c->crlf && len && seg[len - 1] == '\r') len--;
    if (!len) continue;
    if (len > c->max) too_long(s, o, "line", seg);
    else o->emit(o, seg, len, NULL);
  }
  return used;
}

static size_t scan_end(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  size_t take = n < s->c->max - s->len ? n : s->c->max - s->len;
  if (take) {
    if (s->len + take > s->cap) s->buf = sl_xrealloc(s->buf, s->cap = s->len + take + (s->len + take) / 2);
    memcpy(s->buf + s->len, p, take);
    s->len += take;
  }
  if (take < n) s->overflow = 1;
  if (eof && !s->done) {
    s->done = 1;
    if (s->overflow) too_long(s, o, "input", s->buf);
    else if (s->len) o->emit(o, s->buf, s->len, NULL);
  }
  return n;
}

static size_t scan_chunks(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  size_t used = 0;
  while (o->room > 0 && used < n) {
    size_t k = n - used;
    if (k > s->c->max) k = s->c->max;
    else if (k < s->c->max && !eof) break;
    o->emit(o, p + used, k, NULL);
    used += k;
  }
  return used;
}

static size_t scan_re(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  size_t used = 0;
  while (o->room > 0 && used < n) {
    size_t wn = n - used;
    int rc = pcre2_match(s->c->re, (PCRE2_SPTR)(p + used), wn, 1, eof ? 0 : PCRE2_PARTIAL_HARD, s->md, NULL);
    size_t end;
    if (rc > 0 || rc == 0) {
      end = pcre2_get_ovector_pointer(s->md)[0];
      if (!end || end > wn) end = wn;   /* \K can report a start before the search's */
    } else if (rc == PCRE2_ERROR_NOMATCH && eof) {
      end = wn;
    } else if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL) {
      if (wn <= s->c->max) break;
      if (!s->skipping) too_long(s, o, "segment", p + used);
      s->skipping = 1;
      return n;
    } else {
      PCRE2_UCHAR msg[128];
      pcre2_get_error_message(rc, msg, sizeof msg);
      char err[200];
      snprintf(err, sizeof err, "re_match: %s", (char *)msg);
      o->emit(o, "", 0, err);
      s->skipping = 1;
      return n;
    }
    const char *seg = p + used;
    used += end;
    if (s->skipping) {
      s->skipping = 0;
      continue;
    }
    if (end > s->c->max) too_long(s, o, "segment", seg);
    else o->emit(o, seg, end, NULL);
  }
  return used;
}

/* -- csv -- */

static int no_space(unsigned char c) {
  (void)c;
  return 0;
}

static void csv_start(sl_scanner_t *s) {
  csv_init(&s->csv, s->c->lazy ? 0 : CSV_STRICT | CSV_STRICT_FINI);
  csv_set_delim(&s->csv, s->c->csv_delim);
  csv_set_space_func(&s->csv, no_space);   /* spaces are data, as in RFC 4180 */
}

static void csv_restart(sl_scanner_t *s) {
  csv_free(&s->csv);
  csv_start(s);
  json_array_clear(s->row);
  s->row_bytes = 0;
  s->row_bad = 0;
}

static void csv_fail(sl_scanner_t *s, const char *why) {
  char err[200];
  snprintf(err, sizeof err, "csv: row %llu: %s%s", (unsigned long long)s->rows + 1, why,
           s->c->cont ? "" : " (the rest of the input is skipped: see continue_on_error)");
  s->out->emit(s->out, "", 0, err);
  if (!s->c->cont) s->failed = 1;
}

static void csv_field(void *f, size_t len, void *arg) {
  sl_scanner_t *s = arg;
  json_t *v = json_stringn(f, len);
  if (!v) {
    s->row_bad = 1;
    v = json_null();
  }
  json_array_append_new(s->row, v);
}

static void csv_row(int c, void *arg) {
  (void)c;
  sl_scanner_t *s = arg;
  s->row_bytes = 0;
  if (s->failed) return;
  json_t *row = s->row;
  s->row = json_array();
  if (s->row_bad) {
    s->row_bad = 0;
    csv_fail(s, "not UTF-8 text");
  } else if (s->c->header && !s->header) {
    s->header = row;
    row = NULL;
  } else if (s->c->header && json_array_size(row) != json_array_size(s->header)) {
    char why[96];
    snprintf(why, sizeof why, "%zu fields where the header has %zu", json_array_size(row),
             json_array_size(s->header));
    csv_fail(s, why);
  } else {
    json_t *out = row;
    if (s->c->header) {
      out = json_object();
      for (size_t i = 0; i < json_array_size(row); i++)
        json_object_set(out, json_string_value(json_array_get(s->header, i)), json_array_get(row, i));
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    s->out->emit(s->out, text, strlen(text), NULL);
    free(text);
    if (out != row) json_decref(out);
  }
  s->rows++;
  json_decref(row);
}

static size_t scan_csv(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  s->out = o;
  size_t used = 0;
  while (used < n && o->room > 0 && !s->failed) {
    if (s->skipping) {
      const char *nl = memchr(p + used, '\n', n - used);
      used = nl ? (size_t)(nl - p) + 1 : n;
      s->skipping = !nl;
      continue;
    }
    size_t k = n - used < 4096 ? n - used : 4096;
    size_t took = csv_parse(&s->csv, p + used, k, csv_field, csv_row, s);
    s->row_bytes += took;
    used += took;
    if (took < k || s->row_bytes > s->c->max) {
      char why[96];
      if (took < k) snprintf(why, sizeof why, "%s", csv_strerror(csv_error(&s->csv)));
      else snprintf(why, sizeof why, "longer than max_buffer_size (%zu bytes)", s->c->max);
      csv_fail(s, why);
      s->rows++;
      csv_restart(s);
      s->skipping = 1;
    }
  }
  if (s->failed) return n;
  if (eof && used == n && o->room > 0 && !s->done) {
    s->done = 1;
    if (!s->skipping && csv_fini(&s->csv, csv_field, csv_row, s) != 0) csv_fail(s, "a quoted field is not closed");
  }
  return used;
}

/* -- decompress and skip_bom -- */

static size_t scan_decompress(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  size_t used = 0;
  for (;;) {
    size_t k = sl_scanner_scan(s->child, s->buf, s->len, s->done, o);
    memmove(s->buf, s->buf + k, s->len - k);
    s->len -= k;
    if (s->done) return o->room > 0 ? n : used;   /* what follows the stream's end is left aside */
    if (o->room <= 0) return used;
    if (s->len == s->cap) s->buf = sl_xrealloc(s->buf, s->cap *= 2);   /* the child wants a longer window */
    size_t inl = n - used, outl = s->cap - s->len;
    const char *why = NULL;
    int rc = sl_unpack(s->unpack, p + used, &inl, s->buf + s->len, &outl, eof, &why);
    used += inl;
    s->len += outl;
    if (rc < 0) {
      char err[200];
      snprintf(err, sizeof err, "decompress: %s%s", why, used == n && eof ? "" : " (the rest of the input is skipped)");
      o->emit(o, "", 0, err);
    }
    if (rc) s->done = 1;
    else if (!inl && !outl) return used;   /* more input wanted */
  }
}

static size_t scan_bom(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  static const char bom[] = "\xEF\xBB\xBF";
  size_t skip = 0;
  if (!s->done) {
    if (n < 3 && !eof && !memcmp(p, bom, n)) return 0;   /* could still be one */
    s->done = 1;
    if (n >= 3 && !memcmp(p, bom, 3)) skip = 3;
  }
  return skip + sl_scanner_scan(s->child, p + skip, n - skip, eof, o);
}

/* switch: the first case that takes the source's name, or NULL. */
static const sl_scanconf_t *choose(const sl_scanconf_t *c, const char *name) {
  pcre2_match_data *md = NULL;
  const sl_scanconf_t *hit = NULL;
  for (int i = 0; i < c->ncases && !hit; i++) {
    const sl_scanconf_t *cs = c->cases[i];
    pcre2_code *re = c->names[i];
    if (!re) {
      hit = cs;
      break;
    }
    if (!md) md = pcre2_match_data_create(1, NULL);
    if (pcre2_match(re, (PCRE2_SPTR)(name ? name : ""), PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0) hit = cs;
  }
  if (md) pcre2_match_data_free(md);
  return hit;
}

sl_scanner_t *sl_scanner_new(const sl_scanconf_t *c, const char *name) {
  sl_scanner_t *s = sl_xcalloc(1, sizeof(*s));
  s->c = c;
  switch (c->kind) {
  case K_CSV:
    csv_start(s);
    s->row = json_array();
    break;
  case K_RE:
    s->md = pcre2_match_data_create_from_pattern(c->re, NULL);
    break;
  case K_DECOMP:
    s->unpack = sl_unpack_new(c->algorithm);
    s->buf = sl_xmalloc(s->cap = 64 * 1024);
    /* fall through */
  case K_BOM:
    s->child = sl_scanner_new(c->into, name);
    break;
  case K_TAR:
    s->tar = sl_tar_new(c->max);
    break;
  case K_SWITCH: {
    const sl_scanconf_t *cs = choose(c, name);
    if (cs) s->child = sl_scanner_new(cs, name);
    else s->failed = 1;
    break;
  }
  default:
    break;
  }
  return s;
}

size_t sl_scanner_scan(sl_scanner_t *s, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  switch (s->c->kind) {
  case K_LINES: return scan_lines(s, p, n, eof, o);
  case K_CSV: return scan_csv(s, p, n, eof, o);
  case K_RE: return scan_re(s, p, n, eof, o);
  case K_CHUNK: return scan_chunks(s, p, n, eof, o);
  case K_DECOMP: return scan_decompress(s, p, n, eof, o);
  case K_BOM: return scan_bom(s, p, n, eof, o);
  case K_END: return scan_end(s, p, n, eof, o);
  case K_TAR: return sl_tar_scan(s->tar, p, n, eof, o);
  case K_SWITCH:
    if (s->child) return sl_scanner_scan(s->child, p, n, eof, o);
    if (!s->done) {
      s->done = 1;
      o->emit(o, "", 0, "switch: no case takes this source's name (the input is skipped)");
    }
    return n;
  }
  return n;
}

void sl_scanner_free(sl_scanner_t *s) {
  if (!s) return;
  if (s->c->kind == K_CSV) {
    csv_free(&s->csv);
    json_decref(s->row);
    json_decref(s->header);
  }
  if (s->md) pcre2_match_data_free(s->md);
  sl_unpack_free(s->unpack);
  sl_tar_free(s->tar);
  sl_scanner_free(s->child);
  free(s->buf);
  free(s);
}
