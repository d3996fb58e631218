/* The embedded store's side of the streams API under /stream/ (Synap's
 * paths): create, list, info, delete, publish (single and batch), consume by
 * subscriber with long-poll, stats, and the source of its live (SSE and
 * WebSocket) readers; consumer groups are in store_group.c. The shared
 * helpers and the entry (access rules) are the API's (store/store_api.h).
 * Every error is JSON with a fitting status. */
#include "store.h"
#include "store_rest.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/http_ws.h"
#include "store/store_access.h"
#include "store/store_api.h"
#include "store/store_pub.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The stream named in the path, or an answered 404. */
sl_sstream_t *sl_api_stream(sl_http_req_t *r, sl_store_t *st, const char *name) {
  sl_sstream_t *s = sl_store_find(st, name);
  const char *bad = s ? NULL : sl_store_broken(st, name);
  if (bad) sl_api_error(r, 503, "stream %s cannot be opened: %s", name, bad);
  else if (!s) sl_api_error(r, 404, "no stream named %s", name);
  return s;
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

void sl_store_rest(sl_http_req_t *r, void *arg) {
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

/* ---------- the embedded store's source ---------- */

typedef struct emb {
  sl_sstream_t *s;           /* NULL once the stream is gone */
  char *sub;
  sl_live_t *l;
  sl_swatch_t watch;
} emb_t;

typedef struct turn { sl_live_t *l; int p, stopped; } turn_t;

static int send_cb(const sl_record_t *rec, void *arg) {
  turn_t *t = arg;
  return t->stopped = sl_live_send(t->l, rec, t->p);
}

enum { TURN = 256 };

static int emb_pump(void *arg, sl_live_t *l) {
  emb_t *e = arg;
  e->l = l;
  const uint64_t *pos = sl_live_pos(l);
  for (int p = 0; p < sl_sstream_conf(e->s)->partitions; p++) {
    turn_t t = {l, p, 0};
    char *err = NULL;
    int64_t n = sl_sstream_read(e->s, p, pos[p], TURN, 4 << 20, send_cb, &t, &err);
    if (n < 0) {
      sl_logf(SL_LOG_ERROR, NULL, "store", "reader %s: %s", e->sub, err);
      free(err);
      return -1;
    }
    if (t.stopped) return 0;
    /* More there (a turn ends at TURN records or 4 MiB): yield, then go on. */
    if (pos[p] < sl_sstream_end(e->s, p)) return 1;
  }
  return 0;
}

static void emb_end(void *arg, const uint64_t *pos, int P) {
  emb_t *e = arg;
  (void)P;
  if (e->s) sl_sstream_unwatch(e->s, &e->watch);
  if (e->s && pos) {
    char *err = NULL;
    if (sl_sstream_set_cursor(e->s, "subscriber", e->sub, pos, &err) != 0) {
      sl_logf(SL_LOG_WARN, NULL, "store", "subscriber %s: position not saved: %s", e->sub, err);
      free(err);
    }
  }
  free(e->sub);
  free(e);
}

static void emb_wake(sl_swatch_t *w) {
  emb_t *e = (emb_t *)((char *)w - offsetof(emb_t, watch));
  if (!e->l) return;   /* its first pump is still to come */
  if (sl_sstream_deleted(e->s)) {
    sl_sstream_unwatch(e->s, &e->watch);
    e->s = NULL;
    sl_live_stop(e->l, 1001, "stream deleted");
    return;
  }
  sl_live_wake(e->l);
}

static const sl_live_src_t emb_src = {emb_pump, emb_end};

void sl_store_live(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, const char *kind, const char *sub) {
  if (!strcmp(kind, "ws") && !sl_ws_is_upgrade(r)) {
    sl_api_error(r, 426, "this path speaks WebSocket");
    return;
  }
  const char *bad = sl_sstream_cursor_problem(s, "subscriber", sub);
  if (bad) {
    sl_api_error(r, 503, "%s", bad);
    return;
  }
  int P = sl_sstream_conf(s)->partitions;
  uint64_t *pos = sl_xcalloc((size_t)P, sizeof(uint64_t));
  const uint64_t *saved = sl_sstream_cursor(s, "subscriber", sub);
  int *given = sl_xcalloc((size_t)P, sizeof(int));
  int rc = sl_live_start_positions(r, saved, pos, P, given);
  char *reset = rc == 0 ? sl_http_query(r, "offset_reset") : NULL;
  for (int p = 0; p < P && rc == 0; p++) {
    if (!given[p] && !saved) pos[p] = sl_sstream_start(s, p);
    rc = sl_api_position(r, s, p, pos[p], reset, &pos[p]);
  }
  free(reset);
  free(given);
  if (rc != 0) {
    free(pos);
    return;
  }
  emb_t *e = sl_xcalloc(1, sizeof(*e));
  e->s = s;
  e->sub = sl_xstrdup(sub);
  e->watch.wake = emb_wake;
  /* Watched before the first pump: no append is missed. */
  sl_sstream_watch(s, &e->watch);
  sl_live_open(r, sl_store_worker(st), kind, P, pos, sl_sstream_conf(s)->end_events, sl_sstream_id(s), &emb_src, e);
}
