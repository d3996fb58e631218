#include "log.h"
#include "xalloc.h"
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Process-wide on purpose: one stderr, one level for all workers. */
static sl_log_level_t g_level = SL_LOG_INFO;
static int g_json;
static char **g_static;   /* key, value, ..., NULL */
_Thread_local sl_log_scope_t sl_log_scope;

static const char *const names[] = {"trace", "debug", "info", "warn", "error", "off"};

void sl_log_set_level(sl_log_level_t l) { g_level = l; }
void sl_log_set_json(int json) { g_json = json; }
void sl_log_set_static(const char *const *kv) {
  for (char **p = g_static; p && *p; p++) free(*p);
  free(g_static);
  g_static = NULL;
  size_t n = 0;
  while (kv && kv[n] && kv[n + 1]) n += 2;
  if (!n) return;
  g_static = sl_xcalloc(n + 1, sizeof(*g_static));
  for (size_t i = 0; i < n; i++) g_static[i] = sl_xstrdup(kv[i]);
}

int sl_log_enabled(sl_log_level_t l) { return l >= g_level && g_level != SL_LOG_OFF; }

int sl_log_parse_level(const char *s, sl_log_level_t *out) {
  for (int i = 0; i <= SL_LOG_OFF; i++)
    if (strcasecmp(s, names[i]) == 0) { *out = (sl_log_level_t)i; return 0; }
  if (strcasecmp(s, "warning") == 0) { *out = SL_LOG_WARN; return 0; }
  return -1;
}

/* logfmt quotes values with spaces, quotes or '='; JSON escapes control bytes. */
static void put_value(FILE *f, const char *v) {
  if (g_json) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
      if (*p == '"' || *p == '\\') { fputc('\\', f); fputc(*p, f); }
      else if (*p == '\n') fputs("\\n", f);
      else if (*p == '\t') fputs("\\t", f);
      else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
    fputc('"', f);
    return;
  }
  int quote = *v == 0 || strpbrk(v, " =\"\n\t") != NULL;
  if (!quote) { fputs(v, f); return; }
  fputc('"', f);
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\') { fputc('\\', f); fputc(*p, f); }
    else if (*p == '\n') fputs("\\n", f);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static void put_field(FILE *f, int *first, const char *k, const char *v) {
  if (g_json) {
    fprintf(f, "%s\"%s\":", *first ? "" : ",", k);
  } else {
    fprintf(f, "%s%s=", *first ? "" : " ", k);
  }
  *first = 0;
  put_value(f, v);
}

void sl_log_write(const char *lines, size_t len) { fwrite(lines, 1, len, stderr); }

static void put_line(const char *line, size_t len) {
  sl_log_hold_t *h = sl_log_scope.hold;
  if (h && h->turn(h)) {
    if (h->len) sl_log_write(h->buf, h->len);
    h->len = 0;
    h = NULL;
  }
  if (!h) {
    sl_log_write(line, len);
    return;
  }
  if (h->len + len > h->cap) {
    h->cap = h->len + len > 2 * h->cap ? h->len + len : 2 * h->cap;
    h->buf = sl_xrealloc(h->buf, h->cap);
  }
  memcpy(h->buf + h->len, line, len);
  h->len += len;
}

void sl_log_fields(sl_log_level_t l, const char *stream, const char *component, const char *msg,
                   const char *const *kv) {
  if (!sl_log_enabled(l)) return;
  char ts[40];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
  /* The line is written with one write: stderr is unbuffered, and a reader
   * of the log (a file, a pipe) saw lines in pieces. */
  char *line = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&line, &len);
  if (!f) return;
  int first = 1;
  if (g_json) fputc('{', f);
  put_field(f, &first, "time", ts);
  put_field(f, &first, "level", names[l]);
  if (stream) put_field(f, &first, "stream", stream);
  if (component) put_field(f, &first, "component", component);
  for (char **p = g_static; p && *p; p += 2) put_field(f, &first, p[0], p[1]);
  put_field(f, &first, "msg", msg);
  for (const char *const *p = kv; p && p[0] && p[1]; p += 2) put_field(f, &first, p[0], p[1]);
  if (g_json) fputc('}', f);
  fputc('\n', f);
  if (fclose(f) == 0) put_line(line, len);
  free(line);
}

void sl_logf(sl_log_level_t l, const char *stream, const char *component, const char *fmt, ...) {
  if (!sl_log_enabled(l)) return;
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  sl_log_fields(l, stream, component, buf, NULL);
}
