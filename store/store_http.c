/* The streams API's entry and the helpers its backends answer with: JSON
 * answers and errors, request bodies and parameters, events, stream info,
 * publish answers; the access rules (store.access) checked before any
 * backend looks anything up; GET /openapi.json.
 * Every error is JSON with a fitting status. */
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
  if (!json_is_array(names)) return;   /* none, or null: not known */
  sl_api_keep_consumers(r, names, NULL);
  json_object_set_new(info, "subscribers", json_integer((json_int_t)json_array_size(names)));
}

/* ---------- publish ---------- */

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
  *f = (front_t){sl_store_access_new(sl_cnode_get(at, "access")), handler, arg};
  /* The worker frees it after the backends, which may answer held requests until then. */
  w->slot[SL_SLOT_STORE_API] = f;
  w->slot_free[SL_SLOT_STORE_API] = front_free;
  if (sl_http_route(w, SL_STORE_API_PREFIX, NULL, front, f, "store.api", d, at) != 0) return -1;
  return sl_http_route_get(w, "/openapi.json", openapi, NULL, "store.api", d, at);
}
