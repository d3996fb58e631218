/* Consumer groups of a stored stream. Members are the `consumer` names that
 * consume; partitions are spread over them (sorted by name, partition p to
 * member p mod n) and spread again when one joins, leaves or stays silent
 * past session_timeout_ms. Committed offsets (the next offset to consume,
 * as in Kafka) are durable; with auto_commit a member's next consume commits
 * what it was given before; without it, what is not committed within the
 * session timeout is given again (at-least-once). */
#include "store_rest.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "store/store_access.h"
#include "store/store_api.h"
#include <stdlib.h>
#include <string.h>

typedef struct member {
  char *id;
  uint64_t last_seen;
} member_t;

typedef struct group {
  struct group *next;
  sl_store_t *st;
  char *stream, *name;
  uint64_t stream_id;        /* a deleted and re-created stream starts afresh */
  int P;
  uint64_t *committed, *delivered, *given_at;
  int *owner;                /* member index per partition, -1 none */
  member_t *members;
  int nmembers;
  uint64_t generation;
  int auto_commit;
  int64_t session_ms;
} group_t;

static group_t *groups;

static void group_free(group_t *g) {
  for (int i = 0; i < g->nmembers; i++) free(g->members[i].id);
  free(g->members);
  free(g->committed);
  free(g->delivered);
  free(g->given_at);
  free(g->owner);
  free(g->stream);
  free(g->name);
  free(g);
}

static group_t *find(sl_store_t *st, sl_sstream_t *s, const char *name) {
  for (group_t **pp = &groups; *pp;) {
    group_t *g = *pp;
    if (g->st == st && !strcmp(g->stream, sl_sstream_name(s)) && !strcmp(g->name, name)) {
      if (g->stream_id == sl_sstream_id(s)) return g;
      *pp = g->next;   /* its stream was deleted since */
      group_free(g);
      continue;
    }
    pp = &g->next;
  }
  return NULL;
}

static group_t *create(sl_store_t *st, sl_sstream_t *s, const char *name, int auto_commit, int64_t session_ms) {
  group_t *g = sl_xcalloc(1, sizeof(*g));
  g->st = st;
  g->stream = sl_xstrdup(sl_sstream_name(s));
  g->name = sl_xstrdup(name);
  g->stream_id = sl_sstream_id(s);
  g->P = sl_sstream_conf(s)->partitions;
  g->committed = sl_xcalloc((size_t)g->P, sizeof(uint64_t));
  g->delivered = sl_xcalloc((size_t)g->P, sizeof(uint64_t));
  g->given_at = sl_xcalloc((size_t)g->P, sizeof(uint64_t));
  g->owner = sl_xcalloc((size_t)g->P, sizeof(int));
  const uint64_t *saved = sl_sstream_cursor(s, "group", name);
  for (int p = 0; p < g->P; p++) {
    uint64_t lo = sl_sstream_start(s, p);
    g->committed[p] = saved && saved[p] > lo ? saved[p] : lo;
    g->delivered[p] = g->committed[p];
    g->owner[p] = -1;
  }
  g->auto_commit = auto_commit;
  g->session_ms = session_ms;
  g->next = groups;
  groups = g;
  return g;
}

/* A pipeline's `stream` input may commit for the same group: what is on
 * disk is the truth, the memory only knows what was handed out. */
static void refresh(group_t *g, sl_sstream_t *s) {
  const uint64_t *c = sl_sstream_cursor(s, "group", g->name);
  for (int p = 0; c && p < g->P; p++) {
    if (c[p] > g->committed[p]) g->committed[p] = c[p];
    if (g->delivered[p] < g->committed[p]) g->delivered[p] = g->committed[p];
  }
}

static int cmp_member(const void *a, const void *b) {
  return strcmp(((const member_t *)a)->id, ((const member_t *)b)->id);
}

/* Who owns each partition now (by name: member indexes move). */
static char **owners(const group_t *g) {
  char **o = sl_xcalloc((size_t)g->P, sizeof(char *));
  for (int p = 0; p < g->P; p++) o[p] = g->owner[p] >= 0 ? sl_xstrdup(g->members[g->owner[p]].id) : NULL;
  return o;
}

/* Spreads the partitions again; `before` (from owners(), freed here) tells
 * which partitions change hands. */
static void rebalance(group_t *g, char **before) {
  qsort(g->members, (size_t)g->nmembers, sizeof(*g->members), cmp_member);
  for (int p = 0; p < g->P; p++) {
    g->owner[p] = g->nmembers ? p % g->nmembers : -1;
    const char *now = g->owner[p] >= 0 ? g->members[g->owner[p]].id : NULL;
    /* What the old owner was given but did not commit goes to the new one. */
    if (!before[p] || !now || strcmp(before[p], now) != 0) g->delivered[p] = g->committed[p];
    free(before[p]);
  }
  free(before);
  g->generation++;
}

/* -1 when the offsets could not be written: *why (may be NULL) says why
 * (caller frees). */
static int save(group_t *g, sl_sstream_t *s, char **why) {
  char *err = NULL;
  if (sl_sstream_set_cursor(s, "group", g->name, g->committed, &err) == 0) return 0;
  sl_logf(SL_LOG_ERROR, NULL, "store", "group %s of %s: offsets not saved: %s", g->name, g->stream, err);
  if (why) *why = err;
  else free(err);
  return -1;
}

/* Joins (or refreshes) `consumer`, drops silent members; returns its index. */
static int join(group_t *g, const char *consumer, uint64_t now) {
  int changed = 0;
  char **before = owners(g);
  for (int i = 0; i < g->nmembers;) {
    if (strcmp(g->members[i].id, consumer) != 0 && now - g->members[i].last_seen > (uint64_t)g->session_ms) {
      sl_logf(SL_LOG_INFO, NULL, "store", "group %s of %s: member %s timed out", g->name, g->stream, g->members[i].id);
      free(g->members[i].id);
      g->members[i] = g->members[--g->nmembers];
      changed = 1;
    } else {
      i++;
    }
  }
  int me = -1;
  for (int i = 0; i < g->nmembers; i++)
    if (!strcmp(g->members[i].id, consumer)) me = i;
  if (me < 0) {
    g->members = sl_xrealloc(g->members, (size_t)(g->nmembers + 1) * sizeof(*g->members));
    g->members[g->nmembers++] = (member_t){sl_xstrdup(consumer), now};
    changed = 1;
  }
  if (changed) rebalance(g, before);
  else {
    for (int p = 0; p < g->P; p++) free(before[p]);
    free(before);
  }
  for (int i = 0; i < g->nmembers; i++)
    if (!strcmp(g->members[i].id, consumer)) me = i;
  g->members[me].last_seen = now;
  return me;
}

/* ---------- consume ---------- */

typedef struct gconsume {
  sl_http_req_t *r;
  sl_sstream_t *s;
  group_t *g;
  char *consumer;
  uint64_t limit;
} gconsume_t;

typedef struct collect { json_t *events; int p; } collect_t;

static int collect(const sl_record_t *rec, void *arg) {
  collect_t *c = arg;
  json_array_append_new(c->events, sl_api_event(rec, c->p));
  return 0;
}

static int try_consume(gconsume_t *c, int answer_empty) {
  group_t *g = c->g;
  int me = -1;
  for (int i = 0; i < g->nmembers; i++)
    if (!strcmp(g->members[i].id, c->consumer)) me = i;
  json_t *events = json_array(), *assigned = json_array();
  uint64_t now = uv_now(sl_store_loop(g->st));
  for (int p = 0; p < g->P; p++) {
    if (me < 0 || g->owner[p] != me) continue;
    json_array_append_new(assigned, json_integer(p));
    if (!g->auto_commit && g->delivered[p] > g->committed[p] && now - g->given_at[p] > (uint64_t)g->session_ms)
      g->delivered[p] = g->committed[p];
    size_t have = json_array_size(events);
    if (have >= c->limit) continue;
    collect_t cc = {events, p};
    char *err = NULL;
    int64_t n = sl_sstream_read(c->s, p, g->delivered[p], (size_t)(c->limit - have), 4 << 20, collect, &cc, &err);
    if (n < 0) {
      sl_api_error(c->r, 500, "%s", err);
      free(err);
      json_decref(events);
      json_decref(assigned);
      return 1;
    }
    if (n > 0) {
      g->delivered[p] += (uint64_t)n;
      g->given_at[p] = now;
    }
  }
  if (!json_array_size(events) && !answer_empty) {
    json_decref(events);
    json_decref(assigned);
    return 0;
  }
  sl_api_json(c->r, 200, json_pack("{s:o, s:o, s:I, s:s}", "events", events, "partitions", assigned, "generation",
                                   (json_int_t)g->generation, "consumer", c->consumer));
  return 1;
}

static int try_cb(void *arg, int answer_empty) { return try_consume(arg, answer_empty); }

static void gc_free(void *arg) {
  gconsume_t *c = arg;
  free(c->consumer);
  free(c);
}

static void consume(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, group_t *g) {
  uint64_t limit = 100, wait_ms = 0;
  if (sl_api_uint(r, "limit", &limit) < 0 || sl_api_uint(r, "wait_ms", &wait_ms) < 0) {
    sl_api_error(r, 400, "limit and wait_ms are non-negative integers");
    return;
  }
  char *consumer = sl_api_consumer(r);
  if (limit == 0 || limit > 10000) limit = limit ? 10000 : 100;
  if (wait_ms > 60000) wait_ms = 60000;
  uv_update_time(sl_store_loop(st));
  uint64_t now = uv_now(sl_store_loop(st));
  int me = join(g, consumer, now);
  if (g->auto_commit) {
    int changed = 0;
    for (int p = 0; p < g->P; p++)
      if (g->owner[p] == me && g->committed[p] != g->delivered[p]) {
        g->committed[p] = g->delivered[p];
        changed = 1;
      }
    if (changed) save(g, s, NULL);
  }
  gconsume_t *c = sl_xcalloc(1, sizeof(*c));
  *c = (gconsume_t){.r = r, .s = s, .g = g, .consumer = consumer, .limit = limit};
  sl_api_longpoll(r, st, s, wait_ms, try_cb, gc_free, c);
}

static void commit(sl_http_req_t *r, sl_sstream_t *s, group_t *g) {
  json_t *b = sl_api_body(r);
  if (!b) return;
  json_t *pj = json_object_get(b, "partition"), *oj = json_object_get(b, "offset");
  json_int_t p = json_integer_value(pj), o = json_integer_value(oj);
  if (!json_is_integer(pj) || !json_is_integer(oj) || p < 0 || p >= g->P || o < 0 ||
      (uint64_t)o > sl_sstream_end(s, (int)p)) {
    sl_api_error(r, 400, "commit takes {\"partition\": P, \"offset\": O}: a partition of the stream and the next offset "
                         "to consume, at most its end");
    json_decref(b);
    return;
  }
  json_decref(b);
  uint64_t before = g->committed[p];
  g->committed[p] = (uint64_t)o;
  char *why = NULL;
  if (save(g, s, &why) != 0) {
    g->committed[p] = before;   /* what is on disk */
    sl_api_error(r, 500, "the offset could not be stored: %s", why);
    free(why);
    return;
  }
  if (g->delivered[p] < (uint64_t)o) g->delivered[p] = (uint64_t)o;
  sl_api_json(r, 200, json_pack("{s:s, s:I, s:I}", "group", g->name, "partition", p, "committed", o));
}

static json_t *describe(group_t *g, sl_sstream_t *s) {
  json_t *members = json_array(), *committed = json_array(), *lag = json_array();
  for (int i = 0; i < g->nmembers; i++) {
    json_t *parts = json_array();
    for (int p = 0; p < g->P; p++)
      if (g->owner[p] == i) json_array_append_new(parts, json_integer(p));
    json_array_append_new(members, json_pack("{s:s, s:o}", "consumer", g->members[i].id, "partitions", parts));
  }
  for (int p = 0; p < g->P; p++) {
    json_array_append_new(committed, json_integer((json_int_t)g->committed[p]));
    json_array_append_new(lag, json_integer((json_int_t)(sl_sstream_end(s, p) - g->committed[p])));
  }
  return json_pack("{s:s, s:o, s:o, s:o, s:b, s:I, s:I}", "group", g->name, "members", members, "committed", committed,
                   "lag", lag, "auto_commit", g->auto_commit, "session_timeout_ms", (json_int_t)g->session_ms,
                   "generation", (json_int_t)g->generation);
}

void sl_store_group_api(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, char **seg, int n) {
  int get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");
  if (n == 1 && !strcmp(seg[0], "groups") && get) {
    const char *unreadable = sl_sstream_cursor_problem(s, "group", NULL);
    if (unreadable) {
      sl_api_error(r, 503, "%s", unreadable);
      return;
    }
    json_t *a = json_array();
    int k;
    const char **names = sl_sstream_cursors(s, "group", &k);
    /* Groups with committed offsets, and those only in memory so far. */
    for (int i = 0; i < k; i++) {
      const char *bad = sl_sstream_cursor_problem(s, "group", names[i]);
      if (bad) json_array_append_new(a, json_pack("{s:s, s:s}", "group", names[i], "error", bad));
      else if (!find(st, s, names[i])) create(st, s, names[i], 1, 30000);
    }
    free(names);
    for (group_t *g = groups; g; g = g->next)
      if (g->st == st && !strcmp(g->stream, sl_sstream_name(s)) && g->stream_id == sl_sstream_id(s) &&
          sl_api_may_see_consumer(r, g->name)) {
        refresh(g, s);
        json_array_append_new(a, describe(g, s));
      }
    sl_api_json(r, 200, json_pack("{s:o}", "groups", a));
    return;
  }
  if (strcmp(seg[0], "group") != 0 || n < 2 || n > 4) {
    sl_api_error(r, 404, "no route %s %s", r->method, r->path);
    return;
  }
  if (!sl_store_valid_name(seg[1])) {
    sl_api_error(r, 400, "group names are 1-200 letters, digits, '.', '_' or '-'");
    return;
  }
  const char *bad = sl_sstream_cursor_problem(s, "group", seg[1]);
  if (bad) {
    sl_api_error(r, 503, "%s", bad);   /* never started over from a guess */
    return;
  }
  group_t *g = find(st, s, seg[1]);
  if (g) refresh(g, s);
  if (n == 2 && post) {
    int ac;
    int64_t to;
    if (sl_api_group_settings(r, &ac, &to) != 0) return;
    int created = !g;
    if (!g) g = create(st, s, seg[1], ac != 0, to >= 0 ? to : 30000);
    if (created) save(g, s, NULL);
    /* An upsert, as the Kafka store's: a POST on an existing group changes what it names. */
    if (ac >= 0) g->auto_commit = ac;
    if (to >= 0) g->session_ms = to;
    sl_api_json(r, created ? 201 : 200, describe(g, s));
  } else if (n == 2 && get) {
    if (!g) sl_api_error(r, 404, "no group %s on stream %s", seg[1], sl_sstream_name(s));
    else sl_api_json(r, 200, describe(g, s));
  } else if (n == 3 && !strcmp(seg[2], "consume") && get) {
    if (!g) g = create(st, s, seg[1], 1, 30000);
    consume(r, st, s, g);
  } else if (n == 4 && !strcmp(seg[2], "members") && !strcmp(r->method, "DELETE")) {
    /* A consumer leaving: its partitions go to the others at once. */
    int at = -1;
    for (int i = 0; g && i < g->nmembers; i++)
      if (!strcmp(g->members[i].id, seg[3])) at = i;
    if (at < 0) {
      sl_api_error(r, 404, "%s is not a member of group %s", seg[3], seg[1]);
      return;
    }
    char **before = owners(g);
    free(g->members[at].id);
    g->members[at] = g->members[--g->nmembers];
    for (int p = 0; p < g->P; p++)   /* indexes moved: rebalance goes by the names in `before` */
      g->owner[p] = -1;
    rebalance(g, before);
    sl_api_json(r, 200, describe(g, s));
  } else if (n == 3 && !strcmp(seg[2], "commit") && post) {
    if (!g) sl_api_error(r, 404, "no group %s on stream %s", seg[1], sl_sstream_name(s));
    else commit(r, s, g);
  } else {
    sl_api_error(r, 404, "no route %s %s", r->method, r->path);
  }
}
