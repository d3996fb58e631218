/* Stream names, fsync policies and SSE positions, as the API and every
 * backend read and write them. */
#include "streams.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_store_valid_name(const char *n) {
  size_t len = strlen(n);
  if (!len || len > 200 || n[0] == '.') return 0;
  for (const char *c = n; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("._-", *c)))
      return 0;
  return 1;
}

const char *const sl_fsync_names[] = {"always", "interval", "never", NULL};

int sl_fsync_parse(const char *name) {
  for (int i = 0; name && sl_fsync_names[i]; i++)
    if (!strcmp(name, sl_fsync_names[i])) return i;
  return -1;
}

char *sl_positions_id(const uint64_t *next, int n) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  for (int p = 0; p < n; p++) fprintf(f, "%s%d:%lld", p ? "," : "", p, (long long)next[p] - 1);
  fclose(f);
  return out;
}

char *sl_positions_error(const char *what, const char *id, int n) {
  /* The id as sent, cut and kept to printable ASCII: the answer is JSON text. */
  char shown[65];
  size_t k = 0;
  for (; id[k] && k < sizeof shown - 1; k++) shown[k] = id[k] >= 0x20 && id[k] < 0x7f ? id[k] : '?';
  shown[k] = 0;
  if (n <= 0)
    return sl_xasprintf("%s \"%s%s\" is not an id this output sent: its ids are the decimal numbers of its `id:` "
                        "lines (\"41\")", what, shown, id[k] ? "…" : "");
  return sl_xasprintf("%s \"%s%s\" is not an id of this stream: ids are PARTITION:OFFSET pairs joined by commas, as "
                      "sent in `id:` (\"0:41,1:17\"; partitions 0 to %d, each at most once; offsets from -1), or one "
                      "OFFSET of partition 0 (\"41\")",
                      what, shown, id[k] ? "…" : "", n - 1);
}

/* A decimal integer from -1 up, the whole of [s, end). */
static int offset_of(const char *s, const char *end, long long *out) {
  if (s == end || (*s == '-' && (end - s != 2 || s[1] != '1'))) return -1;
  if (*s == '-') return *out = -1, 0;
  long long v = 0;
  for (const char *c = s; c < end; c++) {
    if (*c < '0' || *c > '9' || v > (INT64_MAX - 1 - (*c - '0')) / 10) return -1;   /* offset + 1 must fit */
    v = v * 10 + (*c - '0');
  }
  *out = v;
  return 0;
}

int sl_positions_parse(const char *list, uint64_t *next, int *given, int n) {
  if (!list || !*list) return -1;
  uint64_t *got = sl_xcalloc((size_t)(n > 0 ? n : 1), sizeof(uint64_t));
  char *seen = sl_xcalloc((size_t)(n > 0 ? n : 1), 1);
  int bad = 0, items = 0;
  for (const char *t = list; !bad;) {
    const char *comma = strchr(t, ','), *end = comma ? comma : t + strlen(t), *colon = memchr(t, ':', (size_t)(end - t));
    long long part = 0, off;
    bad = (colon && (offset_of(t, colon, &part) != 0 || part < 0)) || offset_of(colon ? colon + 1 : t, end, &off) != 0 ||
          part >= n || seen[part] || (!colon && comma) || (!colon && items);
    if (!bad) {
      seen[part] = 1;
      got[part] = (uint64_t)(off + 1);
      items++;
    }
    if (!comma) break;
    t = comma + 1;
  }
  for (int p = 0; p < n && !bad; p++)
    if (seen[p]) {
      next[p] = got[p];
      if (given) given[p] = 1;
    }
  free(got);
  free(seen);
  return bad ? -1 : 0;
}
