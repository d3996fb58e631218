/* Reading a Kafka-backed stream: consume by subscriber (positions are the
 * committed offsets of the Kafka group "sluice-sub:<stream>:<subscriber>"),
 * consume as a member of a consumer group (one consumer per member on the
 * node that serves it, closed after a silent session timeout), commits and
 * leaves, and live SSE/WebSocket readers. A long-poll is woken by the
 * reader's queue; a reader that has not reached the end of its partitions
 * yet (just created, joining its group) gets the request timeout to do so. */
#include "kafka_store.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/http_ws.h"
#include <stdlib.h>
#include <string.h>

typedef struct kpoll {
  sl_http_req_t *r;          /* NULL once answered */
  sl_ks_t *ks;
  sl_kreader_t *rd;
  char *consumer;            /* a group member's answer */
  int P;
  json_t *events;
  uint64_t limit, wait_ms, started;
  int extended;              /* waiting past wait_ms for the reader to catch up */
  uv_timer_t timer;
} kpoll_t;

static char *sub_group(const char *stream, const char *sub) {
  return sl_xasprintf(SL_KS_SUB_PREFIX "%s:%s", stream, sub);
}

static void poll_free(kpoll_t *p) {
  json_decref(p->events);
  free(p->consumer);
  free(p);
}

static void poll_closed(uv_handle_t *h) { poll_free(h->data); }

static void poll_end(kpoll_t *p) {
  p->r = NULL;
  sl_kreader_on_ready(p->rd, NULL, NULL);
  sl_kreader_touch(p->rd);   /* silence counts from the last answer */
  uv_close((uv_handle_t *)&p->timer, poll_closed);
}

static void poll_answer(kpoll_t *p) {
  sl_http_req_t *r = p->r;
  r->on_gone = NULL;
  const char *err = sl_kreader_error(p->rd);
  if (!json_array_size(p->events) && err && !sl_kreader_at_end(p->rd)) {
    sl_api_error(r, 503, "kafka: %s", err);
    return;
  }
  int64_t *pos = sl_kreader_positions(p->rd);
  json_t *res;
  if (p->consumer) {
    uint64_t gen;
    const char *assigned = sl_kreader_assigned(p->rd, &gen);
    json_t *parts = json_array();
    for (int i = 0; i < p->P; i++)
      if (assigned[i]) json_array_append_new(parts, json_integer(i));
    res = json_pack("{s:O, s:o, s:I, s:s}", "events", p->events, "partitions", parts, "generation", (json_int_t)gen,
                    "consumer", p->consumer);
  } else {
    if (json_array_size(p->events)) sl_kreader_commit(p->rd, pos, NULL, NULL);
    json_t *next = json_array();
    uint64_t *at = sl_xcalloc((size_t)p->P, sizeof(uint64_t));
    for (int i = 0; i < p->P; i++) {
      at[i] = pos[i] < 0 ? 0 : (uint64_t)pos[i];
      json_array_append_new(next, json_integer((json_int_t)at[i]));
    }
    res = json_pack("{s:O, s:o, s:I}", "events", p->events, "next_offsets", next, "next_offset",
                    (json_int_t)sl_api_next_offset(at, p->P, -1));
    free(at);
  }
  sl_api_json(r, 200, res);
}

/* Takes what is ready; answers (1) when there is something, when final, or
 * when the reader is at the end and the caller would not wait. */
static int poll_try(kpoll_t *p, int final) {
  rd_kafka_message_t *m;
  while (json_array_size(p->events) < p->limit && (m = sl_kreader_next(p->rd))) {
    json_array_append_new(p->events, sl_ks_event(m));
    rd_kafka_message_destroy(m);
  }
  if (!json_array_size(p->events) && !final && !(p->wait_ms == 0 && sl_kreader_at_end(p->rd))) return 0;
  poll_answer(p);
  poll_end(p);
  return 1;
}

static void poll_timeout(uv_timer_t *t) { poll_try(t->data, 1); }

static void poll_ready(void *arg) {
  kpoll_t *p = arg;
  if (sl_kreader_closing(p->rd)) {
    poll_try(p, 1);
    return;
  }
  if (poll_try(p, 0) || !p->extended || !sl_kreader_at_end(p->rd)) return;
  /* Caught up: the caller's own wait_ms is what is left. */
  p->extended = 0;
  uint64_t spent = uv_now(p->ks->w->loop) - p->started;
  uv_timer_start(&p->timer, poll_timeout, spent >= p->wait_ms ? 0 : p->wait_ms - spent, 0);
}

static void poll_gone(sl_http_req_t *r, void *arg) {
  sl_http_respond(r, 499, NULL, NULL, 0, NULL);   /* frees it: the client is gone */
  poll_end(arg);
}

static void poll_start(kpoll_t *p) {
  uv_timer_init(p->ks->w->loop, &p->timer);
  p->timer.data = p;
  uint64_t wait = p->wait_ms;
  p->started = uv_now(p->ks->w->loop);
  p->extended = !sl_kreader_at_end(p->rd) && wait < (uint64_t)p->ks->timeout_ms;
  if (p->extended) wait = (uint64_t)p->ks->timeout_ms;
  if (poll_try(p, 0)) return;
  p->r->on_gone = poll_gone;
  p->r->gone_arg = p;
  sl_kreader_on_ready(p->rd, poll_ready, p);
  uv_timer_start(&p->timer, poll_timeout, wait, 0);
}

/* limit and wait_ms of a consume, as the embedded store takes them. */
static int poll_params(sl_http_req_t *r, uint64_t *limit, uint64_t *wait_ms) {
  *limit = 100;
  *wait_ms = 0;
  if (sl_api_uint(r, "limit", limit) < 0 || sl_api_uint(r, "wait_ms", wait_ms) < 0) return -1;
  if (*limit == 0 || *limit > 10000) *limit = *limit ? 10000 : 100;
  if (*wait_ms > 60000) *wait_ms = 60000;
  return 0;
}

static kpoll_t *poll_new(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, uint64_t limit, uint64_t wait_ms) {
  kpoll_t *p = sl_xcalloc(1, sizeof(*p));
  *p = (kpoll_t){.r = r, .ks = ks, .P = t->partitions, .events = json_array(),
                 .limit = limit, .wait_ms = wait_ms};
  return p;
}

/* ---------- by subscriber ---------- */

typedef struct sub_open {
  sl_ks_hold_t h;
  kpoll_t *p;
  int64_t *start;
  int fresh;                 /* a new reader, to keep once it is placed */
} sub_open_t;

static void sub_resolved(void *arg, const char *err) {
  sub_open_t *o = arg;
  kpoll_t *p = o->p;
  sl_http_req_t *r = sl_ks_unhold(&o->h);
  int fresh = o->fresh;
  free(o->start);
  free(o);
  if (!r || err) {
    if (r) sl_api_error(r, 503, "%s", err);
    if (fresh) sl_kreader_close(p->rd);
    poll_free(p);
    return;
  }
  p->r = r;
  if (fresh) sl_kreader_keep(p->rd, p->ks->session_ms);
  poll_start(p);
}

void sl_ks_consume(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *sub) {
  uint64_t limit, wait_ms, from = 0, part;
  int has_from = sl_api_uint(r, "from_offset", &from);
  if (has_from < 0 || poll_params(r, &limit, &wait_ms) != 0) {
    sl_api_error(r, 400, "from_offset, limit and wait_ms are non-negative integers");
    return;
  }
  if (sl_api_uint(r, "partition", &part) != 0) {
    sl_api_error(r, 400, "partition= is not served with store.backend kafka: a subscriber reads every partition "
                         "(a consumer group splits them)");
    return;
  }
  char *group = sub_group(t->name, sub);
  sl_kreader_t *rd = sl_kreader_find(ks, t->name, group, sub);
  /* Across several partitions from_offset is at most where the subscriber
   * got to (sl_api_from_offset): this node's reader knows where it answered
   * up to; otherwise the group's committed offsets tell (resolved below). */
  int P = t->partitions, capped = has_from && P > 1;
  int64_t *start = sl_xcalloc((size_t)P, sizeof(int64_t));
  for (int i = 0; i < P; i++) {
    int64_t at = rd && capped ? sl_kreader_positions(rd)[i] : -1;
    start[i] = at >= 0 ? (int64_t)sl_api_from_offset(from, (uint64_t)at, P, -1)
               : has_from && !capped ? (int64_t)from : RD_KAFKA_OFFSET_STORED;
  }
  if (rd && has_from) sl_kreader_close(rd);   /* a new position: a new reader */
  int fresh = !rd || has_from;
  char *err = NULL;
  if (fresh) rd = sl_kreader_new(ks, t->name, t->partitions, group, sub, 0, 0, &err);
  free(group);
  if (!rd) {
    sl_api_error(r, 500, "kafka consumer: %s", err);
    free(err);
    free(start);
    return;
  }
  /* The rest from the group's committed offsets: another node may have
   * moved them since this one's reader last answered. */
  kpoll_t *p = poll_new(ks, r, t, limit, wait_ms);
  p->rd = rd;
  sub_open_t *o = sl_xcalloc(1, sizeof(*o));
  *o = (sub_open_t){.p = p, .start = start, .fresh = fresh};
  sl_ks_hold(&o->h, r, ks);
  if (!fresh) sl_kreader_touch(rd);
  sl_kreader_resolve(rd, start, capped ? (int64_t)from : -1, !fresh, sub_resolved, o);
}

/* ---------- live: SSE and WebSocket ---------- */

typedef struct klive {
  struct klive *next;        /* in ks->lives once answered */
  sl_ks_hold_t h;
  sl_ks_t *ks;
  char *topic;
  sl_kreader_t *rd;
  sl_live_t *l;
  char *kind;
  int64_t *start;
} klive_t;

static int klive_pump(void *arg, sl_live_t *l) {
  klive_t *k = arg;
  k->l = l;
  rd_kafka_message_t *m;
  for (int n = 0; n < 1024; n++) {
    if (!(m = sl_kreader_next(k->rd))) return 0;
    sl_record_t rec = sl_ks_record(m);
    int stop = sl_live_send(l, &rec, m->partition);
    rd_kafka_message_destroy(m);
    if (stop) return 0;
  }
  return 1;   /* more may be waiting: after other work */
}

static void klive_end(void *arg, const uint64_t *pos, int P) {
  klive_t *k = arg;
  (void)P;
  /* The reader's own positions: partitions nothing was sent from stay where they were. */
  if (pos) sl_kreader_commit(k->rd, sl_kreader_positions(k->rd), NULL, NULL);
  sl_kreader_on_ready(k->rd, NULL, NULL);
  sl_kreader_close(k->rd);
  for (klive_t **pp = &k->ks->lives; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  free(k->topic);
  free(k->kind);
  free(k);
}

void sl_ks_live_deleted(sl_ks_t *ks, const char *topic) {
  for (klive_t *k = ks->lives, *next; k; k = next) {
    next = k->next;
    if (k->l && !strcmp(k->topic, topic)) sl_live_stop(k->l, 1001, "stream deleted");   /* klive_end frees k */
  }
}

static void klive_ready(void *arg) {
  klive_t *k = arg;
  if (k->l) sl_live_wake(k->l);
}

static const sl_live_src_t klive_src = {klive_pump, klive_end};

static void live_resolved(void *arg, const char *err) {
  klive_t *k = arg;
  sl_http_req_t *r = sl_ks_unhold(&k->h);
  if (!r || err) {
    if (r) sl_api_error(r, 503, "%s", err);
    free(k->start);
    sl_kreader_close(k->rd);
    free(k->topic);
    free(k->kind);
    free(k);
    return;
  }
  int P = sl_kreader_partitions(k->rd);
  uint64_t *pos = sl_xcalloc((size_t)P, sizeof(uint64_t));
  for (int p = 0; p < P; p++) pos[p] = k->start[p] < 0 ? 0 : (uint64_t)k->start[p];
  free(k->start);
  k->start = NULL;
  sl_kreader_on_ready(k->rd, klive_ready, k);
  k->next = k->ks->lives;
  k->ks->lives = k;
  /* cache_id 0: a topic deleted and made again starts its offsets afresh
   * under the same name, so records' JSON is not shared between readers. */
  sl_live_open(r, k->ks->w, k->kind, P, pos, NULL, 0, &klive_src, k);
}

void sl_ks_live(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *kind, const char *sub) {
  if (!strcmp(kind, "ws") && !sl_ws_is_upgrade(r)) {
    sl_api_error(r, 426, "this path speaks WebSocket");
    return;
  }
  int P = t->partitions;
  uint64_t *pos = sl_xcalloc((size_t)P, sizeof(uint64_t));
  int *given = sl_xcalloc((size_t)P, sizeof(int));
  if (sl_live_start_positions(r, NULL, pos, P, given) != 0) {
    free(pos);
    free(given);
    return;
  }
  int64_t *start = sl_xcalloc((size_t)P, sizeof(int64_t));
  for (int p = 0; p < P; p++) start[p] = given[p] ? (int64_t)pos[p] : RD_KAFKA_OFFSET_STORED;
  free(pos);
  free(given);
  char *group = sub_group(t->name, sub), *err = NULL;
  sl_kreader_t *rd = sl_kreader_new(ks, t->name, P, group, sub, 0, 0, &err);
  free(group);
  if (!rd) {
    sl_api_error(r, 500, "kafka consumer: %s", err);
    free(err);
    free(start);
    return;
  }
  klive_t *k = sl_xcalloc(1, sizeof(*k));
  *k = (klive_t){.ks = ks, .topic = sl_xstrdup(t->name), .rd = rd, .kind = sl_xstrdup(kind), .start = start};
  sl_ks_hold(&k->h, r, ks);
  sl_kreader_resolve(rd, start, -1, 0, live_resolved, k);
}

/* ---------- consumer groups ---------- */

sl_ks_gconf_t *sl_ks_gconf(sl_ks_t *ks, const char *stream, const char *group) {
  for (sl_ks_gconf_t *g = ks->gconfs; g; g = g->next)
    if (!strcmp(g->stream, stream) && !strcmp(g->group, group)) return g;
  return NULL;
}

void sl_ks_group_consume(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group) {
  uint64_t limit, wait_ms;
  if (poll_params(r, &limit, &wait_ms) != 0) {
    sl_api_error(r, 400, "limit and wait_ms are non-negative integers");
    return;
  }
  char *consumer = sl_api_consumer(r);
  sl_ks_gconf_t *gc = sl_ks_gconf(ks, t->name, group);
  int64_t session = gc ? gc->session_ms : ks->session_ms;
  sl_kreader_t *rd = sl_kreader_find(ks, t->name, group, consumer);
  if (!rd) {
    char *err = NULL;
    rd = sl_kreader_new(ks, t->name, t->partitions, group, consumer, 1, session, &err);
    if (!rd) {
      sl_api_error(r, 400, "kafka consumer: %s", err);
      free(err);
      free(consumer);
      return;
    }
    sl_kreader_keep(rd, session);
  } else if (!gc || gc->auto_commit) {
    /* What it was given last time counts as processed. */
    int64_t *pos = sl_kreader_positions(rd);
    const char *assigned = sl_kreader_assigned(rd, NULL);
    int64_t *next = sl_xcalloc((size_t)t->partitions, sizeof(int64_t));
    for (int p = 0; p < t->partitions; p++) next[p] = assigned[p] ? pos[p] : -1;
    sl_kreader_commit(rd, next, NULL, NULL);
    free(next);
  }
  sl_kreader_touch(rd);
  kpoll_t *p = poll_new(ks, r, t, limit, wait_ms);
  p->rd = rd;
  p->consumer = consumer;
  poll_start(p);
}

typedef struct kcommit {
  sl_ks_hold_t h;
  char *group;
  int partition;
  int64_t offset;
} kcommit_t;

static void commit_done(void *arg, const char *err) {
  kcommit_t *c = arg;
  sl_http_req_t *r = sl_ks_unhold(&c->h);
  if (r && err) sl_api_error(r, 503, "not committed: %s", err);
  else if (r)
    sl_api_json(r, 200, json_pack("{s:s, s:i, s:I}", "group", c->group, "partition", c->partition, "committed",
                                  (json_int_t)c->offset));
  free(c->group);
  free(c);
}

void sl_ks_group_commit(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group) {
  json_t *b = sl_api_body(r);
  if (!b) return;
  json_t *pj = json_object_get(b, "partition"), *oj = json_object_get(b, "offset"), *cj = json_object_get(b, "consumer");
  json_int_t p = json_integer_value(pj), o = json_integer_value(oj);
  if (!json_is_integer(pj) || !json_is_integer(oj) || p < 0 || p >= t->partitions || o < 0 || (cj && !json_is_string(cj))) {
    sl_api_error(r, 400, "commit takes {\"partition\": P, \"offset\": O[, \"consumer\": C]}: a partition of the stream "
                         "and the next offset to consume");
    json_decref(b);
    return;
  }
  /* Kafka takes commits from the group's members: one on this node. */
  char *q = cj ? NULL : sl_api_consumer(r);
  sl_kreader_t *rd = sl_kreader_find(ks, t->name, group, cj ? json_string_value(cj) : q);
  free(q);
  json_decref(b);
  if (!rd) {
    sl_api_error(r, 409, "no member of group %s consumes %s on this node: commit through the node that served the "
                         "consume (Kafka takes commits from the group's members)", group, t->name);
    return;
  }
  int64_t *next = sl_xcalloc((size_t)t->partitions, sizeof(int64_t));
  for (int i = 0; i < t->partitions; i++) next[i] = i == p ? o : -1;
  kcommit_t *c = sl_xcalloc(1, sizeof(*c));
  *c = (kcommit_t){.group = sl_xstrdup(group), .partition = (int)p, .offset = o};
  sl_ks_hold(&c->h, r, ks);
  sl_kreader_commit(rd, next, commit_done, c);
  free(next);
}

void sl_ks_group_leave(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group, const char *consumer) {
  sl_kreader_t *rd = sl_kreader_find(ks, t->name, group, consumer);
  if (!rd) {
    sl_api_error(r, 404, "%s is not a member of group %s on this node", consumer, group);
    return;
  }
  sl_kreader_close(rd);   /* leaves the group: Kafka gives its partitions to the others */
  sl_api_json(r, 200, json_pack("{s:s, s:s}", "group", group, "left", consumer));
}
