#include "sse.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

void sl_lines_init(sl_lines_t *l, size_t max) {
  memset(l, 0, sizeof(*l));
  l->max = max;
}

void sl_lines_reset(sl_lines_t *l) {
  l->len = 0;
  l->after_cr = 0;
}

void sl_lines_free(sl_lines_t *l) {
  free(l->buf);
  memset(l, 0, sizeof(*l));
}

static int append(sl_lines_t *l, const char *d, size_t n) {
  if (l->len + n > l->max) {
    sl_lines_reset(l);
    return -1;
  }
  if (l->len + n > l->cap) {
    l->cap = l->len + n < 256 ? 256 : (l->len + n) * 2 > l->max ? l->max : (l->len + n) * 2;
    l->buf = sl_xrealloc(l->buf, l->cap);
  }
  memcpy(l->buf + l->len, d, n);
  l->len += n;
  return 0;
}

int sl_lines_feed(sl_lines_t *l, const char *data, size_t len, sl_line_cb cb, void *arg) {
  size_t i = 0;
  if (l->after_cr && len && data[0] == '\n') i = 1;
  l->after_cr = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && data[j] != '\n' && data[j] != '\r') j++;
    if (j == len) return append(l, data + i, len - i);
    if (l->len) {   /* the line began in an earlier feed */
      if (append(l, data + i, j - i) != 0) return -1;
      cb(arg, l->buf, l->len);
      l->len = 0;
    } else {
      if (j - i > l->max) return -1;
      cb(arg, data + i, j - i);
    }
    if (data[j] == '\r') {
      if (j + 1 == len) l->after_cr = 1;
      else if (data[j + 1] == '\n') j++;
    }
    i = j + 1;
  }
  return 0;
}

void sl_lines_finish(sl_lines_t *l, sl_line_cb cb, void *arg) {
  if (l->len) cb(arg, l->buf, l->len);
  sl_lines_reset(l);
}

void sl_sse_init(sl_sse_t *p, size_t max) {
  memset(p, 0, sizeof(*p));
  sl_lines_init(&p->lines, max);
  p->last_id = sl_xstrdup("");
  p->retry_ms = -1;
}

void sl_sse_reset(sl_sse_t *p) {
  sl_lines_reset(&p->lines);
  p->dlen = 0;
  p->has_data = 0;
  free(p->event);
  p->event = NULL;
}

void sl_sse_free(sl_sse_t *p) {
  sl_lines_free(&p->lines);
  free(p->data);
  free(p->event);
  free(p->last_id);
  memset(p, 0, sizeof(*p));
}

static void add_data(sl_sse_t *p, const char *v, size_t n) {
  if (p->dlen + n + 1 > p->lines.max) {
    p->too_big = 1;
    return;
  }
  if (p->dlen + n + 1 > p->dcap) {
    p->dcap = (p->dlen + n + 1) * 2;
    p->data = sl_xrealloc(p->data, p->dcap);
  }
  memcpy(p->data + p->dlen, v, n);
  p->dlen += n;
  p->data[p->dlen++] = '\n';
  p->has_data = 1;
}

static void on_line(void *arg, const char *line, size_t len) {
  sl_sse_t *p = arg;
  if (len == 0) {   /* dispatch, unless the event grew past the bound */
    if (p->has_data && !p->too_big) {
      p->dlen--;      /* the last LF */
      p->data[p->dlen] = 0;
      p->cb(p->arg, p->event ? p->event : "message", p->last_id, p->data, p->dlen);
    }
    p->dlen = 0;
    p->has_data = 0;
    free(p->event);
    p->event = NULL;
    return;
  }
  if (line[0] == ':') return;   /* a comment (heartbeats) */
  const char *colon = memchr(line, ':', len);
  size_t nl = colon ? (size_t)(colon - line) : len;
  const char *v = colon ? colon + 1 : line + len;
  size_t vl = colon ? len - nl - 1 : 0;
  if (vl && *v == ' ') v++, vl--;
  if (nl == 4 && !memcmp(line, "data", 4)) {
    add_data(p, v, vl);
  } else if (nl == 5 && !memcmp(line, "event", 5)) {
    free(p->event);
    p->event = sl_xstrndup(v, vl);
  } else if (nl == 2 && !memcmp(line, "id", 2)) {
    if (!memchr(v, 0, vl)) {
      free(p->last_id);
      p->last_id = sl_xstrndup(v, vl);
    }
  } else if (nl == 5 && !memcmp(line, "retry", 5)) {
    size_t k = 0;
    long long ms = 0;
    while (k < vl && v[k] >= '0' && v[k] <= '9' && ms < 100000000000LL) ms = ms * 10 + (v[k++] - '0');
    if (vl && k == vl) p->retry_ms = ms;
  }   /* other fields are ignored */
}

int sl_sse_feed(sl_sse_t *p, const char *data, size_t len, sl_sse_cb cb, void *arg) {
  p->cb = cb;
  p->arg = arg;
  if (sl_lines_feed(&p->lines, data, len, on_line, p) != 0 || p->too_big) {
    p->too_big = 0;
    sl_sse_reset(p);
    return -1;
  }
  return 0;
}
