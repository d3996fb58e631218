/* Publish bodies of the streams API, read with yajl's streaming parser: the
 * `data` (and `headers`) of each event is kept as the exact bytes the client
 * sent, so a publish neither builds a JSON tree nor encodes anything again
 * (jansson did both, and was most of the cost of an HTTP publish). */
#include "store_pub.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

enum { F_NONE, F_DATA, F_EVENT, F_KEY, F_HEADERS, F_EVENTS };

typedef struct ev {
  size_t data_at, data_end;  /* raw bytes of `data` (end 0: absent) */
  size_t hdr_at, hdr_end;
  char *event, *key;
  size_t event_len, key_len; /* they may hold NUL (\u0000) */
} ev_t;

typedef struct parse {
  yajl_handle h;
  const char *body;
  int depth;                 /* open containers */
  int batch;                 /* an `events` array was seen */
  int in_events;             /* depth of the events array, or 0 */
  int field;                 /* the event field whose value is being read */
  int field_depth;           /* depth at which that value started */
  size_t field_at;           /* where it started in the body */
  ev_t top, *evs;
  size_t n, cap;
  char *err;
} parse_t;

/* The event a value at the current depth belongs to, or NULL (elsewhere). */
static ev_t *event_here(parse_t *p) {
  if (p->in_events && p->depth == p->in_events + 1) return p->n ? &p->evs[p->n - 1] : NULL;
  if (!p->in_events && p->depth == 1) return &p->top;
  return NULL;
}

static void fail(parse_t *p, const char *fmt, const char *what) {
  if (p->err) return;
  if (p->in_events && p->n) {
    char *m = sl_xasprintf(fmt, what);
    p->err = sl_xasprintf("events[%zu]: %s", p->n - 1, m);
    free(m);
  } else {
    p->err = sl_xasprintf(fmt, what);
  }
}

/* Where the value after the key just read starts: past blanks and ':'. */
static size_t value_start(parse_t *p) {
  size_t at = yajl_get_bytes_consumed(p->h);
  while (p->body[at] == ' ' || p->body[at] == '\t' || p->body[at] == '\n' || p->body[at] == '\r' || p->body[at] == ':') at++;
  return at;
}

static char *copy_text(const char *s, size_t len, size_t *out_len) {
  char *d = sl_xmalloc(len + 1);
  if (len) memcpy(d, s, len);
  d[len] = 0;
  *out_len = len;
  return d;
}

/* A value of the current field ended at the current position. */
static void value_end(parse_t *p, int scalar_kind, const char *s, size_t len) {
  if (p->field == F_NONE || p->depth != p->field_depth) return;
  ev_t *e = event_here(p);
  size_t end = yajl_get_bytes_consumed(p->h);
  switch (p->field) {
  case F_DATA:
    e->data_at = p->field_at;
    e->data_end = end;
    break;
  case F_HEADERS:
    if (scalar_kind != '{') fail(p, "`%s` must be an object", "headers");
    e->hdr_at = p->field_at;
    e->hdr_end = end;
    break;
  case F_EVENT:
    if (scalar_kind != 's') {
      fail(p, "`%s` must be a string", "event");
    } else {
      free(e->event);   /* the last one given wins */
      e->event = copy_text(s, len, &e->event_len);
    }
    break;
  case F_KEY:
    if (scalar_kind != 's' && scalar_kind != 'n') {
      fail(p, "`%s` must be a string", "partition_key");
    } else {
      free(e->key);
      e->key = copy_text(s, len, &e->key_len);
    }
    break;
  case F_EVENTS:
    break;
  }
  p->field = F_NONE;
}

static int on_scalar(parse_t *p, int kind, const char *s, size_t len) {
  value_end(p, kind, s, len);
  if (p->in_events && p->depth == p->in_events) fail(p, "%s", "each event must be a JSON object");
  return 1;
}

static int cb_null(void *c) { return on_scalar(c, '0', NULL, 0); }
static int cb_bool(void *c, int b) { (void)b; return on_scalar(c, 'b', NULL, 0); }
static int cb_number(void *c, const char *s, size_t l) { return on_scalar(c, 'n', s, l); }
static int cb_string(void *c, const unsigned char *s, size_t l) { return on_scalar(c, 's', (const char *)s, l); }

static int cb_key(void *c, const unsigned char *s, size_t l) {
  parse_t *p = c;
  if (!event_here(p)) return 1;
  static const struct { const char *k; int f; } keys[] = {
    {"data", F_DATA}, {"event", F_EVENT}, {"partition_key", F_KEY}, {"headers", F_HEADERS}, {"events", F_EVENTS}};
  p->field = F_NONE;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strlen(keys[i].k) == l && memcmp(keys[i].k, s, l) == 0) p->field = keys[i].f;
  if (p->field == F_EVENTS && (p->in_events || p->depth != 1)) p->field = F_NONE;
  p->field_depth = p->depth;
  p->field_at = value_start(p);
  return 1;
}

static int cb_start_map(void *c) {
  parse_t *p = c;
  if (p->in_events && p->depth == p->in_events) {
    if (p->n == p->cap) p->evs = sl_xrealloc(p->evs, (p->cap = p->cap ? p->cap * 2 : 64) * sizeof(*p->evs));
    p->evs[p->n++] = (ev_t){0};
  }
  if (p->field == F_EVENT || p->field == F_KEY) value_end(p, '{', NULL, 0);
  p->depth++;
  return 1;
}

static int cb_end_map(void *c) {
  parse_t *p = c;
  p->depth--;
  value_end(p, '{', NULL, 0);
  return 1;
}

static int cb_start_array(void *c) {
  parse_t *p = c;
  if (p->field == F_EVENTS && p->depth == p->field_depth) {
    p->batch = 1;
    p->in_events = p->depth + 1;
    p->field = F_NONE;
  } else if (p->field == F_EVENT || p->field == F_KEY || p->field == F_HEADERS) {
    value_end(p, '[', NULL, 0);
  } else if (p->in_events && p->depth == p->in_events) {
    fail(p, "%s", "each event must be a JSON object");
  }
  p->depth++;
  return 1;
}

static int cb_end_array(void *c) {
  parse_t *p = c;
  p->depth--;
  if (p->in_events && p->depth + 1 == p->in_events) {
    p->in_events = 0;
    return 1;
  }
  value_end(p, '[', NULL, 0);
  return 1;
}

static const yajl_callbacks callbacks = {cb_null, cb_bool, NULL, NULL, cb_number, cb_string,
                                         cb_start_map, cb_key, cb_end_map, cb_start_array, cb_end_array};

static void free_evs(parse_t *p) {
  free(p->top.event);
  free(p->top.key);
  for (size_t i = 0; i < p->n; i++) {
    free(p->evs[i].event);
    free(p->evs[i].key);
  }
  free(p->evs);
}

int sl_pub_parse(const char *body, size_t len, sl_pubs_t *out, char **err) {
  *out = (sl_pubs_t){0};
  parse_t p = {.body = body};
  p.h = yajl_alloc(&callbacks, NULL, &p);
  yajl_status st = yajl_parse(p.h, (const unsigned char *)body, len);
  if (st == yajl_status_ok) st = yajl_complete_parse(p.h);
  if (st != yajl_status_ok && !p.err && len) {
    unsigned char *m = yajl_get_error(p.h, 0, (const unsigned char *)body, len);
    size_t ml = strlen((const char *)m);
    while (ml && (m[ml - 1] == '\n' || m[ml - 1] == ' ')) ml--;
    p.err = sl_xasprintf("the body is not JSON (%.*s)", (int)ml, (const char *)m);
    yajl_free_error(p.h, m);
  }
  yajl_free(p.h);
  if (!p.err && (len == 0 || body[strspn(body, " \t\r\n")] != '{')) p.err = sl_xstrdup("the body must be a JSON object");
  if (!p.err && p.batch && p.n == 0) p.err = sl_xstrdup("`events` must be a non-empty array");
  ev_t *evs = p.batch ? p.evs : &p.top;
  size_t n = p.batch ? p.n : 1;
  for (size_t i = 0; i < n && !p.err; i++)
    if (!evs[i].data_end) {
      if (p.batch) p.err = sl_xasprintf("events[%zu]: an event needs `data`", i);
      else p.err = sl_xstrdup("an event needs `data` (or send {\"events\": [...]})");
    }
  if (p.err) {
    *err = p.err;
    free_evs(&p);
    return -1;
  }
  out->recs = sl_xcalloc(n, sizeof(*out->recs));
  out->n = n;
  out->batch = p.batch;
  out->owned = sl_xcalloc(2 * n, sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    ev_t *e = &evs[i];
    out->recs[i] = (sl_pub_t){e->key, e->key_len, e->event, e->event_len,
                              e->hdr_end ? body + e->hdr_at : NULL, e->hdr_end ? e->hdr_end - e->hdr_at : 0,
                              body + e->data_at, e->data_end - e->data_at, 0};
    out->owned[2 * i] = e->event;
    out->owned[2 * i + 1] = e->key;
    e->event = e->key = NULL;
  }
  free_evs(&p);
  return 0;
}

void sl_pubs_free(sl_pubs_t *p) {
  for (size_t i = 0; i < 2 * p->n; i++) free(p->owned[i]);
  free(p->owned);
  free(p->recs);
  *p = (sl_pubs_t){0};
}
