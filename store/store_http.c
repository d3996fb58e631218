/* The store's REST API under /stream/ (Synap's paths): create, list, info,
 * delete, publish (single and batch), consume by subscriber with long-poll,
 * stats. Consumer groups are in store_group.c, live readers (SSE and
 * WebSocket) in store_live.c. Every error is JSON with a fitting status. */
#include "store_access.h"
#include "store_api.h"
#include "store_pub.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- helpers shared by the API's files ---------- */

void sl_api_json(sl_http_req_t *r, int status, json_t *j) {
  char *body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!body) {
    /* Only jansson strings built unchecked fail here: never send NULL. */
    json_decref(j);
    sl_http_error(r, 500, "the answer could not be encoded as JSON");
    return;
  }
  sl_http_respond(r, status, "application/json", body, strlen(body), NULL);
  free(body);
  json_decref(j);
}

void sl_api_error(sl_http_req_t *r, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  sl_http_error(r, status, msg ? msg : "error");
  free(msg);
}

/* Sets field to the bytes as a string, adding enc_field: "base64" when they
 * are not UTF-8 and had to be encoded. */
static void set_bytes(json_t *e, const char *field, const char *enc_field, const char *p, size_t n) {
  int b64;
  json_object_set_new(e, field, sl_json_bytes(p, n, &b64));
  if (b64) json_object_set_new(e, enc_field, json_string("base64"));
}

json_t *sl_api_event(const sl_record_t *rec, int partition) {
  json_t *e = json_pack("{s:I, s:i}", "offset", (json_int_t)rec->offset, "partition", partition);
  set_bytes(e, "event", "event_encoding", rec->event, rec->event_len);
  /* data: the value itself when it is JSON, else a string (base64 when the
   * bytes are not UTF-8). */
  json_t *data = json_loadb(rec->value, rec->value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (data) json_object_set_new(e, "data", data);
  else set_bytes(e, "data", "encoding", rec->value, rec->value_len);
  json_object_set_new(e, "timestamp", json_integer((json_int_t)rec->ts_ms));
  if (rec->key_len) set_bytes(e, "key", "key_encoding", rec->key, rec->key_len);
  else json_object_set_new(e, "key", json_null());
  if (rec->headers_len) {
    json_t *h = json_loadb(rec->headers, rec->headers_len, JSON_ALLOW_NUL, NULL);
    if (json_is_object(h)) json_object_set_new(e, "headers", h);
    else set_bytes(e, "headers", "headers_encoding", rec->headers, rec->headers_len);
    if (h && !json_is_object(h)) json_decref(h);
  }
  return e;
}

/* A query parameter as an unsigned integer: 0 absent, 1 read, -1 malformed. */
int sl_api_uint(sl_http_req_t *r, const char *name, uint64_t *out) {
  char *v = sl_http_query(r, name);
  if (!v) return 0;
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  int ok = *v && !*end && v[0] != '-';
  free(v);
  if (!ok) return -1;
  *out = x;
  return 1;
}

/* The stream named in the path, or an answered 404. */
sl_sstream_t *sl_api_stream(sl_http_req_t *r, sl_store_t *st, const char *name) {
  sl_sstream_t *s = sl_store_find(st, name);
  const char *bad = s ? NULL : sl_store_broken(st, name);
  if (bad) sl_api_error(r, 503, "stream %s cannot be opened: %s", name, bad);
  else if (!s) sl_api_error(r, 404, "no stream named %s", name);
  return s;
}

/* One number cannot name a position in each of several partitions, whose
 * offsets grow apart: across partitions, next_offset is the highest next
 * offset, and a from_offset is taken per partition as at most where the
 * subscriber got to, so that from_offset=next_offset goes on exactly where
 * the last answer ended, and a lower one rewinds (never skips). */
uint64_t sl_api_next_offset(const uint64_t *pos, int P, int partition) {
  if (partition >= 0) return pos[partition];
  uint64_t max = 0;
  for (int p = 0; p < P; p++)
    if (pos[p] > max) max = pos[p];
  return max;
}

uint64_t sl_api_from_offset(uint64_t from, uint64_t saved, int P, int partition) {
  return P > 1 && partition < 0 && saved < from ? saved : from;
}

/* Resolves where a reader of partition p starts when asked for `from`: the
 * earliest kept offset is the floor unless the caller asked for a reset.
 * 0 with *pos, or an answered 416 naming the valid range. */
int sl_api_position(sl_http_req_t *r, sl_sstream_t *s, int p, uint64_t from, const char *reset, uint64_t *pos) {
  uint64_t lo = sl_sstream_start(s, p), hi = sl_sstream_end(s, p);
  if (from >= lo && from <= hi) {
    *pos = from;
    return 0;
  }
  if (reset && !strcmp(reset, "earliest")) {
    *pos = from < lo ? lo : hi;
    return 0;
  }
  if (reset && !strcmp(reset, "latest")) {
    *pos = hi;
    return 0;
  }
  json_t *e = json_pack("{s:s, s:i, s:i, s:I, s:I}", "error", "", "status", 416, "partition", p, "min_offset",
                        (json_int_t)lo, "max_offset", (json_int_t)hi - 1);
  char *msg = from < lo ? sl_xasprintf("offset %llu of partition %d was removed by retention; the earliest is %llu "
                                       "(offset_reset=earliest|latest moves there)",
                                       (unsigned long long)from, p, (unsigned long long)lo)
                        : sl_xasprintf("offset %llu of partition %d is past the end (%llu)", (unsigned long long)from, p,
                                       (unsigned long long)hi);
  json_object_set_new(e, "error", json_string(msg));
  free(msg);
  sl_api_json(r, 416, e);
  return -1;
}

/* ---------- create, list, info, delete, stats ---------- */

int sl_api_sconf(json_t *body, sl_sconf_t *c, char **why) {
  json_t *v;
  if ((v = json_object_get(body, "partitions"))) {
    if (!json_is_integer(v)) return *why = sl_xstrdup("partitions must be an integer"), -1;
    c->partitions = (int)json_integer_value(v);
  }
  if ((v = json_object_get(body, "retention_hours"))) {
    if (!json_is_number(v) || json_number_value(v) < 0) return *why = sl_xstrdup("retention_hours must be a number >= 0"), -1;
    c->retention_hours = json_number_value(v);
  }
  if ((v = json_object_get(body, "retention_bytes"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return *why = sl_xstrdup("retention_bytes must be an integer >= 0"), -1;
    c->retention_bytes = json_integer_value(v);
  }
  if ((v = json_object_get(body, "segment_bytes"))) {
    if (!json_is_integer(v) || json_integer_value(v) < 1024) return *why = sl_xstrdup("segment_bytes must be an integer >= 1024"), -1;
    c->segment_bytes = json_integer_value(v);
  }
  if ((v = json_object_get(body, "end_events"))) {
    if (!json_is_string(v) || json_string_length(v) >= sizeof c->end_events)
      return *why = sl_xstrdup("end_events is a comma-separated list of event names (under 256 bytes)"), -1;
    snprintf(c->end_events, sizeof c->end_events, "%s", json_string_value(v));
  }
  if ((v = json_object_get(body, "fsync"))) {
    int f = sl_fsync_parse(json_string_value(v));
    if (f < 0) return *why = sl_xstrdup("fsync must be always, interval or never"), -1;
    c->fsync = (sl_fsync_t)f;
  }
  return 0;
}

json_t *sl_api_body(sl_http_req_t *r) {
  json_error_t je;
  json_t *j = r->body->len ? json_loadb(r->body->data, r->body->len, 0, &je) : json_object();
  if (!j) sl_api_error(r, 400, "the body is not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
  else if (!json_is_object(j)) {
    json_decref(j);
    j = NULL;
    sl_api_error(r, 400, "the body must be a JSON object");
  }
  return j;
}

int sl_api_pubs(sl_http_req_t *r, sl_pubs_t *out) {
  char *why = NULL;
  if (sl_pub_parse(r->body->data, r->body->len, out, &why) == 0) return 0;
  sl_api_error(r, 400, "%s", why);
  free(why);
  return -1;
}

char *sl_api_consumer(sl_http_req_t *r) {
  char *c = sl_http_query(r, "consumer");
  if (c && *c) return c;
  free(c);
  return sl_xstrdup(SL_API_DEFAULT_CONSUMER);
}

int sl_api_group_settings(sl_http_req_t *r, int *auto_commit, int64_t *session_ms) {
  json_t *b = sl_api_body(r);
  if (!b) return -1;
  json_t *ac = json_object_get(b, "auto_commit"), *to = json_object_get(b, "session_timeout_ms");
  int bad = (ac && !json_is_boolean(ac)) || (to && (!json_is_integer(to) || json_integer_value(to) < 100));
  *auto_commit = ac ? json_is_true(ac) : -1;
  *session_ms = to && !bad ? (int64_t)json_integer_value(to) : -1;
  json_decref(b);
  if (bad) sl_api_error(r, 400, "auto_commit is a boolean, session_timeout_ms an integer >= 100");
  return bad ? -1 : 0;
}

json_t *sl_api_info(json_t *info, int P, const int64_t *lo, const int64_t *hi, const int64_t *bytes, json_t *subs) {
  json_t *parts = json_array();
  json_int_t count = 0, total = 0;
  int64_t min = P ? INT64_MAX : 0, max = 0;
  for (int p = 0; p < P; p++) {
    count += hi[p] - lo[p];
    total += bytes ? bytes[p] : 0;
    if (lo[p] < min) min = lo[p];
    if (hi[p] > max) max = hi[p];
    json_t *pj = json_pack("{s:i, s:I, s:I, s:I}", "partition", p, "message_count", (json_int_t)(hi[p] - lo[p]),
                           "min_offset", (json_int_t)lo[p], "max_offset", (json_int_t)hi[p] - 1);
    json_object_set_new(pj, "bytes", bytes ? json_integer(bytes[p]) : json_null());
    json_array_append_new(parts, pj);
  }
  json_object_set_new(info, "message_count", json_integer(count));
  json_object_set_new(info, "bytes", bytes ? json_integer(total) : json_null());
  json_object_set_new(info, "min_offset", json_integer(min));
  json_object_set_new(info, "max_offset", json_integer(max - 1));
  json_object_set_new(info, "subscribers", json_integer((json_int_t)json_array_size(subs)));
  json_object_set_new(info, "subscriber_names", subs);
  json_object_set_new(info, "partitions", parts);
  return info;
}

void sl_api_info_visible(const sl_http_req_t *r, json_t *info) {
  json_t *names = json_object_get(info, "subscriber_names");
  if (!names) return;
  sl_api_keep_consumers(r, names, NULL);
  json_object_set_new(info, "subscribers", json_integer((json_int_t)json_array_size(names)));
}

static json_t *info_json(const sl_http_req_t *r, sl_sstream_t *s) {
  const sl_sconf_t *c = sl_sstream_conf(s);
  int P = c->partitions;
  int64_t *lo = sl_xcalloc((size_t)P, sizeof(int64_t)), *hi = sl_xcalloc((size_t)P, sizeof(int64_t)),
          *bytes = sl_xcalloc((size_t)P, sizeof(int64_t));
  for (int p = 0; p < P; p++) {
    lo[p] = (int64_t)sl_sstream_start(s, p);
    hi[p] = (int64_t)sl_sstream_end(s, p);
    bytes[p] = sl_sstream_bytes(s, p);
  }
  int nsubs;
  const char **subs = sl_sstream_cursors(s, "subscriber", &nsubs);
  json_t *sj = json_array();
  for (int i = 0; i < nsubs; i++)
    if (sl_api_may_see_consumer(r, subs[i])) json_array_append_new(sj, json_string(subs[i]));
  free(subs);
  json_t *info = json_pack("{s:s, s:i, s:f, s:I, s:s, s:s}", "name", sl_sstream_name(s), "partition_count", P,
                           "retention_hours", c->retention_hours, "retention_bytes", (json_int_t)c->retention_bytes,
                           "fsync", sl_fsync_names[c->fsync], "end_events", c->end_events);
  sl_api_info(info, P, lo, hi, bytes, sj);
  free(lo);
  free(hi);
  free(bytes);
  return info;
}

static void create(sl_http_req_t *r, sl_store_t *st, const char *name) {
  json_t *body = sl_api_body(r);
  if (!body) return;
  /* Of a stream that exists, only the settings given are compared: a
   * create without a body finds it (200), whatever it was made with. */
  sl_sstream_t *had = sl_store_find(st, name);
  sl_sconf_t c = had ? *sl_sstream_conf(had) : sl_store_defaults(st);
  char *why = NULL;
  if (sl_api_sconf(body, &c, &why) != 0) {
    sl_api_error(r, 400, "%s", why);
    free(why);
    json_decref(body);
    return;
  }
  json_decref(body);
  sl_sstream_t *s = NULL;
  int status = sl_store_create(st, name, &c, &s, &why);
  if (status >= 400) {
    sl_api_error(r, status, "%s", why);
    free(why);
    return;
  }
  sl_api_json(r, status, info_json(r, s));
}

static void list(sl_http_req_t *r, sl_store_t *st) {
  int n;
  const char **names = sl_store_names(st, &n);
  json_t *a = json_array();
  for (int i = 0; i < n; i++)
    if (sl_api_may_see_stream(r, names[i])) json_array_append_new(a, json_string(names[i]));
  free(names);
  sl_api_json(r, 200, json_pack("{s:o}", "streams", a));
}

/* ---------- publish ---------- */

typedef struct pub_req {
  sl_http_req_t *r;
  int batch;
} pub_req_t;

static void gone_while_publishing(sl_http_req_t *r, void *arg) {
  pub_req_t *p = arg;
  (void)r;
  sl_http_respond(p->r, 499, NULL, NULL, 0, NULL);   /* frees it */
  p->r = NULL;
}

void sl_api_published(sl_http_req_t *r, int batch, int status, const char *err, const int *parts,
                      const uint64_t *offs, size_t n) {
  if (status >= 400) {
    sl_api_error(r, status, "not stored: %s", err ? err : "I/O error");
  } else if (!batch) {
    sl_api_json(r, 200, json_pack("{s:I, s:i}", "offset", (json_int_t)offs[0], "partition", parts[0]));
  } else {
    /* Written by hand: jansson would build n objects to print them. */
    size_t cap = 16 + n * 48, len = 0;
    char *out = sl_xmalloc(cap);
    len += (size_t)snprintf(out, cap, "{\"offsets\":[");
    for (size_t i = 0; i < n; i++)
      len += (size_t)snprintf(out + len, cap - len, "%s{\"offset\":%llu,\"partition\":%d}", i ? "," : "",
                              (unsigned long long)offs[i], parts[i]);
    len += (size_t)snprintf(out + len, cap - len, "]}");
    sl_http_respond(r, 200, "application/json", out, len, NULL);
    free(out);
  }
}

static void published(void *arg, int status, const char *err, const int *parts, const uint64_t *offs, size_t n) {
  pub_req_t *p = arg;
  if (p->r) {
    p->r->on_gone = NULL;
    sl_api_published(p->r, p->batch, status ? status : 200, err, parts, offs, n);
  }
  free(p);
}

static void publish(sl_http_req_t *r, sl_sstream_t *s) {
  sl_pubs_t pubs;
  if (sl_api_pubs(r, &pubs) != 0) return;
  pub_req_t *p = sl_xcalloc(1, sizeof(*p));
  p->r = r;
  p->batch = pubs.batch;
  r->on_gone = gone_while_publishing;
  r->gone_arg = p;
  /* The records point into the body: it is written before this returns. */
  sl_sstream_publish(s, pubs.recs, pubs.n, published, p);
  sl_pubs_free(&pubs);
}

/* ---------- consume by subscriber ---------- */

typedef struct consume {
  sl_http_req_t *r;
  sl_sstream_t *s;
  char *sub;
  int partition;             /* -1: all */
  uint64_t *pos;             /* next offset per partition */
  uint64_t limit;
} consume_t;

static int add_event(const sl_record_t *rec, void *arg) {
  json_t **ctx = arg;
  json_array_append_new(ctx[0], sl_api_event(rec, (int)json_integer_value(ctx[1])));
  return 0;
}

/* Reads what there is; 1 when something was answered. */
static int consume_try(consume_t *c, int answer_empty) {
  sl_sstream_t *s = c->s;
  int P = sl_sstream_conf(s)->partitions;
  json_t *events = json_array();
  char *err = NULL;
  for (int p = 0; p < P && json_array_size(events) < c->limit; p++) {
    if (c->partition >= 0 && p != c->partition) continue;
    json_t *pj = json_integer(p);
    json_t *ctx[2] = {events, pj};
    size_t before = json_array_size(events);
    int64_t n = sl_sstream_read(s, p, c->pos[p], (size_t)(c->limit - before), 4 << 20, add_event, ctx, &err);
    json_decref(pj);
    if (n < 0) {
      sl_api_error(c->r, 500, "%s", err);
      free(err);
      json_decref(events);
      return 1;
    }
    c->pos[p] += (uint64_t)n;
  }
  if (!json_array_size(events) && !answer_empty) {
    json_decref(events);
    return 0;
  }
  char *err2 = NULL;
  if (json_array_size(events) && sl_sstream_set_cursor(s, "subscriber", c->sub, c->pos, &err2) != 0) {
    sl_logf(SL_LOG_ERROR, NULL, "store", "subscriber %s of %s: position not saved: %s", c->sub, sl_sstream_name(s), err2);
    free(err2);
  }
  json_t *next = json_array();
  for (int p = 0; p < P; p++) json_array_append_new(next, json_integer((json_int_t)c->pos[p]));
  json_t *res = json_pack("{s:o, s:o}", "events", events, "next_offsets", next);
  json_object_set_new(res, "next_offset", json_integer((json_int_t)sl_api_next_offset(c->pos, P, c->partition)));
  sl_api_json(c->r, 200, res);
  return 1;
}

/* ---------- long-polls (subscriber and group consumes) ---------- */

typedef struct poll {
  sl_http_req_t *r;
  sl_sstream_t *s;
  int (*try)(void *arg, int answer_empty);
  void (*done)(void *arg);
  void *arg;
  sl_swatch_t watch;
  uv_timer_t timer;
} poll_t;

static void poll_closed(uv_handle_t *h) {
  poll_t *p = h->data;
  p->done(p->arg);
  free(p);
}

static void poll_end(poll_t *p) {
  sl_sstream_unwatch(p->s, &p->watch);
  uv_close((uv_handle_t *)&p->timer, poll_closed);
}

static void poll_gone(sl_http_req_t *r, void *arg) {
  poll_t *p = arg;
  sl_http_respond(r, 499, NULL, NULL, 0, NULL);   /* frees it: the client is gone */
  poll_end(p);
}

static void poll_wait_on(poll_t *p) {
  p->r->on_gone = poll_gone;
  p->r->gone_arg = p;
}

/* try answers r itself or returns 0 to wait on; the client cannot leave
 * while it runs (on the loop), so on_gone is off meanwhile. */
static int poll_try(poll_t *p, int answer_empty) {
  p->r->on_gone = NULL;
  if (p->try(p->arg, answer_empty)) return 1;
  poll_wait_on(p);
  return 0;
}

static void poll_wake(sl_swatch_t *w) {
  poll_t *p = (poll_t *)((char *)w - offsetof(poll_t, watch));
  if (sl_sstream_deleted(p->s)) {
    p->r->on_gone = NULL;
    sl_api_error(p->r, 404, "the stream was deleted");
    poll_end(p);
  } else if (poll_try(p, 0)) {
    poll_end(p);
  }
}

static void poll_timeout(uv_timer_t *t) {
  poll_t *p = t->data;
  poll_try(p, 1);
  poll_end(p);
}

void sl_api_longpoll(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, uint64_t wait_ms,
                     int (*try)(void *arg, int answer_empty), void (*done)(void *arg), void *arg) {
  r->on_gone = NULL;
  if (try(arg, wait_ms == 0)) {
    done(arg);
    return;
  }
  poll_t *p = sl_xcalloc(1, sizeof(*p));
  *p = (poll_t){.r = r, .s = s, .try = try, .done = done, .arg = arg};
  /* The next append wakes it (no polling loop). */
  p->watch.wake = poll_wake;
  sl_sstream_watch(s, &p->watch);
  uv_timer_init(sl_store_loop(st), &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, poll_timeout, wait_ms, 0);
  poll_wait_on(p);
}

static int consume_try_cb(void *arg, int answer_empty) { return consume_try(arg, answer_empty); }

static void consume_free(void *arg) {
  consume_t *c = arg;
  free(c->pos);
  free(c->sub);
  free(c);
}

static void consume(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, const char *sub) {
  int P = sl_sstream_conf(s)->partitions;
  uint64_t from = 0, limit = 100, partition = 0, wait_ms = 0;
  int has_from = sl_api_uint(r, "from_offset", &from), has_part = sl_api_uint(r, "partition", &partition);
  if (has_from < 0 || has_part < 0 || sl_api_uint(r, "limit", &limit) < 0 || sl_api_uint(r, "wait_ms", &wait_ms) < 0) {
    sl_api_error(r, 400, "from_offset, partition, limit and wait_ms are non-negative integers");
    return;
  }
  if (has_part && partition >= (uint64_t)P) {
    sl_api_error(r, 400, "partition %llu does not exist (the stream has %d)", (unsigned long long)partition, P);
    return;
  }
  const char *bad = sl_sstream_cursor_problem(s, "subscriber", sub);
  if (bad) {
    sl_api_error(r, 503, "%s", bad);
    return;
  }
  if (limit == 0 || limit > 10000) limit = limit ? 10000 : 100;
  if (wait_ms > 60000) wait_ms = 60000;
  consume_t *c = sl_xcalloc(1, sizeof(*c));
  c->r = r;
  c->s = s;
  c->sub = sl_xstrdup(sub);
  c->partition = has_part ? (int)partition : -1;
  c->limit = limit;
  c->pos = sl_xcalloc((size_t)P, sizeof(uint64_t));
  const uint64_t *saved = sl_sstream_cursor(s, "subscriber", sub);
  char *reset = sl_http_query(r, "offset_reset");
  for (int p = 0; p < P; p++) {
    uint64_t want = has_from ? sl_api_from_offset(from, saved ? saved[p] : UINT64_MAX, P, c->partition)
                    : saved ? saved[p] : sl_sstream_start(s, p);
    if ((c->partition < 0 || p == c->partition) && sl_api_position(r, s, p, want, reset, &c->pos[p]) != 0) {
      free(reset);
      free(c->pos);
      free(c->sub);
      free(c);
      return;
    }
    if (c->partition >= 0 && p != c->partition) c->pos[p] = saved ? saved[p] : sl_sstream_start(s, p);
  }
  free(reset);
  sl_api_longpoll(r, st, s, wait_ms, consume_try_cb, consume_free, c);
}

/* ---------- dispatch ---------- */

int sl_api_split(sl_http_req_t *r, char **path, char *seg[6]) {
  *path = sl_xstrdup(r->path + strlen(SL_STORE_API_PREFIX));
  int n = 0;
  memset(seg, 0, 6 * sizeof(char *));
  for (char *save = NULL, *t = strtok_r(*path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (n == 5) return 6;
    seg[n++] = t;
  }
  return n;
}

static void api(sl_http_req_t *r, void *arg) {
  sl_worker_t *w = arg;
  sl_store_t *st = sl_store_of(w);
  if (!st) {
    sl_api_error(r, 503, "the store could not open its data_dir (see the log)");
    return;
  }
  char *path, *seg[6];
  int n = sl_api_split(r, &path, seg);
  const char *m = r->method;
  int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
  sl_sstream_t *s = NULL;
  if (n == 0 || n > 5) {
    sl_api_error(r, 404, "not found");
  } else if (n == 1 && !strcmp(seg[0], "list")) {
    if (get) list(r, st);
    else sl_api_error(r, 405, "method %s not allowed", m);
  } else if (n == 1 && post) {
    create(r, st, seg[0]);
  } else if (n == 1 && del) {
    if (sl_store_delete(st, seg[0]) == 0) sl_api_json(r, 200, json_pack("{s:s}", "deleted", seg[0]));
    else sl_api_error(r, 404, "no stream named %s", seg[0]);
  } else if (!(s = sl_api_stream(r, st, seg[0]))) {
    /* answered 404 */
  } else if (n == 1) {
    if (get) sl_api_json(r, 200, info_json(r, s));
    else sl_api_error(r, 405, "method %s not allowed", m);
  } else if (n == 2 && (!strcmp(seg[1], "info") || !strcmp(seg[1], "stats")) && get) {
    sl_api_json(r, 200, info_json(r, s));
  } else if (n == 2 && !strcmp(seg[1], "publish") && post) {
    publish(r, s);
  } else if (n == 3 && !strcmp(seg[1], "consume") && get) {
    consume(r, st, s, seg[2]);
  } else if (n == 3 && (!strcmp(seg[1], "sse") || !strcmp(seg[1], "ws")) && get) {
    sl_store_live(r, st, s, seg[1], seg[2]);
  } else if (!strcmp(seg[1], "group") || !strcmp(seg[1], "groups")) {
    sl_store_group_api(r, st, s, seg + 1, n - 1);
  } else {
    sl_api_error(r, 404, "no %s route for %s", m, r->path);
  }
  free(path);
}

static void openapi(sl_http_req_t *r, void *arg) {
  (void)arg;
  for (const sl_embedded_t *e = sl_embedded_store; e->name; e++)
    if (!strcmp(e->name, "docs.openapi")) {
      sl_http_respond(r, 200, "application/json", e->src, e->len, NULL);
      return;
    }
  sl_api_error(r, 404, "no OpenAPI document in this build");
}

/* The API's entry: access rules first (store.access), then the backend. */
typedef struct front {
  sl_store_access_t *access;
  sl_http_handler handler;
  void *arg;
} front_t;

static void front(sl_http_req_t *r, void *arg) {
  front_t *f = arg;
  char *path, *seg[6];
  int n = sl_api_split(r, &path, seg);
  int ok = sl_store_access_check(f->access, r, seg, n) == 0;
  free(path);
  if (ok) f->handler(r, f->arg);
}

static void front_free(void *arg) {
  front_t *f = arg;
  sl_store_access_free(f->access);
  free(f);
}

int sl_store_api_route(sl_worker_t *w, sl_diags_t *d, const sl_cnode_t *at, void (*handler)(sl_http_req_t *r, void *arg),
                       void *arg) {
  front_t *f = sl_xcalloc(1, sizeof(*f));
  *f = (front_t){sl_store_access_new(sl_cnode_get(at, "access")), handler ? handler : api, handler ? arg : w};
  /* The worker frees it after the backends, which may answer held requests until then. */
  w->slot[SL_SLOT_STORE_API] = f;
  w->slot_free[SL_SLOT_STORE_API] = front_free;
  if (sl_http_route(w, SL_STORE_API_PREFIX, NULL, front, f, "store.api", d, at) != 0) return -1;
  return sl_http_route_get(w, "/openapi.json", openapi, NULL, "store.api", d, at);
}

enum { MAX_BACKENDS = 4 };
/* Filled by constructors before main; read-only afterwards. */
static const sl_store_backend_t *backends[MAX_BACKENDS];
static int nbackends;

void sl_store_backend_register(const sl_store_backend_t *b) {
  if (nbackends < MAX_BACKENDS) backends[nbackends++] = b;
}

const sl_store_backend_t *sl_store_backend_find(const char *name) {
  for (int i = 0; i < nbackends; i++)
    if (!strcmp(backends[i]->name, name)) return backends[i];
  return NULL;
}
