/* `store.backend: kafka`: the `/stream/` API on Kafka. A stream is a topic
 * (its partitions, its offsets); publishes go through one idempotent
 * producer (acks=all, murmur2 keys as Java's client and the embedded store)
 * and are answered from delivery reports; calls that only exist in blocking
 * form (metadata, watermarks) and admin requests run in the libuv pool,
 * everything else is woken into the loop (sl_kafka_wake). The nodes keep no
 * state of their own beyond caches, so any number of them serve the same
 * streams. Reads are in kafka_store_read.c, groups in kafka_store_groups.c. */
#include "kafka_store.h"
#include "kafka_common.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "store/store_access.h"
#include "store/store_pub.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FRESH_MS = 2000, STALE_MS = 10000 };

/* ---------- held requests and pool work ---------- */

/* While this many requests answered on their deadline still wait on their
 * calls, new requests are answered 503 at once: each would start one more
 * call as stuck, and each holds one of the libuv pool's few threads (shared
 * with the rest of the process) until the brokers answer. */
enum { MAX_LATE = 2, RECHECK_MS = 100 };

typedef struct work {
  uv_work_t req;
  sl_ks_t *ks;
  sl_dnode_t node;                    /* in ks->works */
  _Atomic uint64_t call_ms;           /* when its current call to the brokers began (uv_hrtime ms); 0: none */
  void (*run)(void *arg), (*done)(void *arg);
  void *arg;
} work_t;

static _Thread_local work_t *current;   /* the pool job this thread runs */

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000;
}

void sl_ks_calling(void) {
  if (current) atomic_store(&current->call_ms, now_ms());
}

/* One of the store's calls has waited on the brokers for request_timeout:
 * those still waiting are not answered in time. Slow work that goes on
 * (several calls in a row on a loaded machine) is not cut short. */
static int stuck(const sl_ks_t *ks) {
  uint64_t now = now_ms();
  for (const work_t *w = SL_DLIST_FIRST(&ks->works, work_t, node); w; w = SL_DLIST_NEXT(w, work_t, node)) {
    uint64_t at = atomic_load(&w->call_ms);
    if (at && now > at && now - at >= (uint64_t)ks->timeout_ms) return 1;
  }
  return 0;
}

struct hold_timer {
  uv_timer_t t;
  sl_ks_hold_t *h;
};

static void hold_timer_closed(uv_handle_t *t) {
  free(t->data);
}

sl_http_req_t *sl_ks_unhold(sl_ks_hold_t *h) {
  sl_http_req_t *r = h->r;
  if (r) r->on_gone = NULL;
  h->r = NULL;
  if (h->timer) {
    uv_timer_stop(&h->timer->t);
    uv_close((uv_handle_t *)&h->timer->t, hold_timer_closed);
    h->timer = NULL;
  }
  if (h->late) h->ks->late--;
  h->late = 0;
  return r;
}

static void hold_gone(sl_http_req_t *r, void *arg) {
  sl_ks_unhold(arg);
  sl_http_respond(r, 499, NULL, NULL, 0, NULL);   /* frees it: the client is gone */
}

static void hold_expired(uv_timer_t *t) {
  sl_ks_hold_t *h = ((struct hold_timer *)t->data)->h;
  if (!stuck(h->ks)) {
    uv_timer_start(t, hold_expired, RECHECK_MS, 0);
    return;
  }
  sl_http_req_t *r = sl_ks_unhold(h);
  h->expired = 1;
  h->late = 1;
  h->ks->late++;
  sl_api_error(r, 503, "the Kafka brokers did not answer within request_timeout (%lld ms)",
               (long long)h->ks->timeout_ms);
}

void sl_ks_hold(sl_ks_hold_t *h, sl_http_req_t *r, sl_ks_t *ks) {
  *h = (sl_ks_hold_t){.r = r, .ks = ks};
  if (!r) return;
  r->on_gone = hold_gone;
  r->gone_arg = h;
  if (!ks) return;
  h->timer = sl_xcalloc(1, sizeof(*h->timer));
  h->timer->h = h;
  h->timer->t.data = h->timer;
  uv_timer_init(ks->w->loop, &h->timer->t);
  uv_timer_start(&h->timer->t, hold_expired, (uint64_t)ks->timeout_ms, 0);
}

static void work_run(uv_work_t *req) {
  work_t *w = req->data;
  current = w;
  w->run(w->arg);
  current = NULL;
  atomic_store(&w->call_ms, 0);
}

static void work_done(uv_work_t *req, int status) {
  (void)status;
  work_t *w = req->data;
  sl_ks_t *ks = w->ks;
  sl_dlist_remove(&ks->works, &w->node);
  if (w->done) w->done(w->arg);
  free(w);
}

void sl_ks_work(sl_ks_t *ks, void (*run)(void *arg), void (*done)(void *arg), void *arg) {
  work_t *w = sl_xcalloc(1, sizeof(*w));
  *w = (work_t){.ks = ks, .run = run, .done = done, .arg = arg};
  w->req.data = w;
  sl_dlist_push(&ks->works, &w->node);
  uv_queue_work(ks->w->loop, &w->req, work_run, work_done);
}

/* The handle admin request op goes through. librdkafka 2.0's handler of an
 * OffsetFetch answer (rd_kafka_handle_OffsetFetch), on NOT_COORDINATOR or
 * another error that calls for a refresh, queues a coordinator query on the
 * handle's own consumer group without checking that it has one: through
 * the producer, which has none, a NULL dereference (librdkafka issue 5040;
 * a broker just started, a coordinator moving). Through a consumer with a
 * group id the query is queued (for its own group: harmless) and the
 * request fails with the broker's error. No other answer of the admin
 * requests the store makes reaches the handle's group. */
static rd_kafka_t *admin_handle(const sl_ks_t *ks, rd_kafka_admin_op_t op) {
  return op == RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS ? ks->grk : ks->rk;
}

rd_kafka_event_t *sl_ks_admin(sl_ks_t *ks, rd_kafka_admin_op_t op, sl_ks_ask_fn ask, void *arg, char **err) {
  rd_kafka_t *rk = admin_handle(ks, op);
  rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
  char why[256];
  rd_kafka_AdminOptions_set_request_timeout(o, (int)ks->timeout_ms, why, sizeof why);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  sl_ks_calling();
  ask(rk, o, q, arg);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)ks->timeout_ms + 1000);
  rd_kafka_queue_destroy(q);
  if (!ev) *err = sl_xstrdup("no answer from the Kafka brokers in time");
  else if (rd_kafka_event_error(ev)) {
    *err = sl_xasprintf("%s%s", rd_kafka_event_error_string(ev),
                        sl_ks_settling(rd_kafka_event_error(ev)) ? " (try again)" : "");
    rd_kafka_event_destroy(ev);
    ev = NULL;
  }
  return ev;
}

int sl_ks_status(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
  case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
  case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
  case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
  case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
  case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    return 503;
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    return 404;
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    return 413;
  default:
    return 500;
  }
}

int sl_ks_settling(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION || e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
         e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
         e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
}

rd_kafka_resp_err_t sl_ks_watermarks(sl_ks_t *ks, const char *topic, int p, int64_t *lo, int64_t *hi) {
  uint64_t waited = 0;
  for (;;) {
    sl_ks_calling();
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(ks->rk, topic, p, lo, hi, (int)ks->timeout_ms);
    if (!sl_ks_settling(e) || waited >= (uint64_t)ks->timeout_ms) return e;
    usleep(100 * 1000);   /* in the pool, never on the loop */
    waited += 100;
  }
}

/* ---------- records ---------- */

sl_record_t sl_ks_record(const rd_kafka_message_t *m) {
  sl_record_t rec = {0};
  rec.offset = (uint64_t)m->offset;
  rec.ts_ms = rd_kafka_message_timestamp(m, NULL);
  rec.key = m->key;
  rec.key_len = (uint32_t)m->key_len;
  rec.value = m->payload;
  rec.value_len = (uint32_t)m->len;
  rd_kafka_headers_t *hs = NULL;
  const void *v;
  size_t vl;
  if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      rd_kafka_header_get_last(hs, "event", &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rec.event = v;
    rec.event_len = (uint32_t)vl;
  }
  return rec;
}

json_t *sl_ks_event(const rd_kafka_message_t *m) {
  sl_record_t rec = sl_ks_record(m);
  json_t *e = sl_api_event(&rec, m->partition);
  rd_kafka_headers_t *hs = NULL;
  if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR) return e;
  json_t *h = json_object();
  const char *name;
  const void *v;
  size_t vl;
  for (size_t i = 0; rd_kafka_header_get_all(hs, i, &name, &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
    if (strcmp(name, "event") != 0) json_object_set_new(h, name, v ? sl_json_header_value(v, vl) : json_null());
  if (json_object_size(h)) json_object_set_new(e, "headers", h);
  else json_decref(h);
  return e;
}

/* ---------- topics (metadata) ---------- */

typedef struct ks_wait {
  struct ks_wait *next;
  sl_ks_hold_t h;
  char *name;
  sl_ks_found_cb found;
  char *seg[3];
} ks_wait_t;

typedef struct meta {
  sl_ks_t *ks;
  sl_ks_topic_t *topics;
  int n;
  char *err;
} meta_t;

static void topics_free(sl_ks_topic_t *t, int n) {
  for (int i = 0; i < n; i++) free(t[i].name);
  free(t);
}

static void meta_run(void *arg) {
  meta_t *m = arg;
  const struct rd_kafka_metadata *md = NULL;
  sl_ks_calling();
  /* All topics: asking for one would let a broker with
   * auto.create.topics.enable create it. */
  rd_kafka_resp_err_t e = rd_kafka_metadata(m->ks->rk, 1, NULL, &md, (int)m->ks->timeout_ms);
  if (e) {
    m->err = sl_xasprintf("the Kafka brokers did not answer: %s", rd_kafka_err2str(e));
    return;
  }
  m->topics = sl_xcalloc((size_t)md->topic_cnt + 1, sizeof(*m->topics));
  for (int i = 0; i < md->topic_cnt; i++) {
    const char *name = md->topics[i].topic;
    if (md->topics[i].err || !sl_store_valid_name(name) || !strncmp(name, "__", 2)) continue;
    m->topics[m->n++] = (sl_ks_topic_t){sl_xstrdup(name), md->topics[i].partition_cnt};
  }
  rd_kafka_metadata_destroy(md);
}

static const sl_ks_topic_t *lookup(sl_ks_t *ks, const char *name) {
  for (int i = 0; i < ks->ntopics; i++)
    if (!strcmp(ks->topics[i].name, name)) return &ks->topics[i];
  return NULL;
}

static void list_found(sl_ks_t *ks, sl_http_req_t *r);

static void meta_done(void *arg) {
  meta_t *m = arg;
  sl_ks_t *ks = m->ks;
  ks->fetching = 0;
  if (!m->err) {
    topics_free(ks->topics, ks->ntopics);
    ks->topics = m->topics;
    ks->ntopics = m->n;
    ks->fetched_at = uv_now(ks->w->loop);
  }
  ks_wait_t *w = ks->waiters;
  ks->waiters = NULL;
  while (w) {
    ks_wait_t *next = w->next;
    sl_http_req_t *r = sl_ks_unhold(&w->h);
    const sl_ks_topic_t *t = m->err || !w->name ? NULL : lookup(ks, w->name);
    if (!r) {
    } else if (m->err) {
      sl_api_error(r, 503, "%s", m->err);
    } else if (!w->name) {
      list_found(ks, r);
    } else if (!t) {
      sl_api_error(r, 404, "no stream named %s", w->name);
    } else {
      w->found(ks, r, t, w->seg);
    }
    for (int i = 0; i < 3; i++) free(w->seg[i]);
    free(w->name);
    free(w);
    w = next;
  }
  free(m->err);
  free(m);
}

static void refresh(sl_ks_t *ks) {
  if (ks->fetching) return;
  ks->fetching = 1;
  meta_t *m = sl_xcalloc(1, sizeof(*m));
  m->ks = ks;
  sl_ks_work(ks, meta_run, meta_done, m);
}

void sl_ks_topic(sl_ks_t *ks, sl_http_req_t *r, const char *name,
                 sl_ks_found_cb found, char *const *seg, int n) {
  uint64_t age = uv_now(ks->w->loop) - ks->fetched_at;
  const sl_ks_topic_t *t = ks->fetched_at && name ? lookup(ks, name) : NULL;
  if (t && age < STALE_MS) {
    if (age > FRESH_MS) refresh(ks);   /* served from what is known meanwhile */
    found(ks, r, t, seg);
    return;
  }
  ks_wait_t *w = sl_xcalloc(1, sizeof(*w));
  w->name = name ? sl_xstrdup(name) : NULL;   /* NULL: the list */
  w->found = found;
  for (int i = 0; i < n && i < 3; i++) w->seg[i] = sl_xstrdup(seg[i]);
  sl_ks_hold(&w->h, r, ks);
  w->next = ks->waiters;
  ks->waiters = w;
  refresh(ks);
}

/* ---------- list, info, create, delete ---------- */

typedef struct job {
  sl_ks_t *ks;
  sl_ks_hold_t h;
  char *name;
  int P, status;
  int fresh;                 /* just created: empty, whatever the leaders say yet */
  json_t *body, *out;
  char *err;
  void (*cb)(void *arg, int status, const char *err);   /* instead of a request */
  void *cb_arg;
} job_t;

static job_t *job_new(sl_ks_t *ks, sl_http_req_t *r, const char *name, int P) {
  job_t *j = sl_xcalloc(1, sizeof(*j));
  j->ks = ks;
  j->name = name ? sl_xstrdup(name) : NULL;
  j->P = P;
  sl_ks_hold(&j->h, r, ks);
  return j;
}

/* Answers the job's request with out, or err under status. */
static void job_done(void *arg) {
  job_t *j = arg;
  sl_http_req_t *r = sl_ks_unhold(&j->h);
  if (j->cb) j->cb(j->cb_arg, j->err ? (j->status ? j->status : 503) : 0, j->err);
  if (r && j->err) {
    sl_api_error(r, j->status ? j->status : 503, "%s", j->err);
  } else if (r) {
    sl_api_info_visible(r, j->out);
    sl_api_json(r, j->status ? j->status : 200, j->out);
    j->out = NULL;
  }
  json_decref(j->out);
  json_decref(j->body);
  free(j->err);
  free(j->name);
  free(j);
}

static void list_groups(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
  (void)arg;
  rd_kafka_ListConsumerGroups(rk, o, q);
}

/* A broker that failed to list its groups is reported in the result's
 * errors, not the event's (ListConsumerGroups asks every broker): the list
 * is then partial. */
char **sl_ks_group_ids(sl_ks_t *ks, size_t *n, char **err) {
  char *why = NULL;
  rd_kafka_event_t *ev = sl_ks_admin(ks, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, list_groups, NULL, &why);
  const rd_kafka_ListConsumerGroups_result_t *res = ev ? rd_kafka_event_ListConsumerGroups_result(ev) : NULL;
  size_t k = 0;
  const rd_kafka_error_t **errs = res ? rd_kafka_ListConsumerGroups_result_errors(res, &k) : NULL;
  if (k) {
    rd_kafka_resp_err_t e = rd_kafka_error_code(errs[0]);
    why = sl_xasprintf("%s%s", rd_kafka_error_string(errs[0]), sl_ks_settling(e) ? " (try again)" : "");
  }
  if (why) {
    *err = sl_xasprintf("ListConsumerGroups: %s", why);
    free(why);
    if (ev) rd_kafka_event_destroy(ev);
    return NULL;
  }
  const rd_kafka_ConsumerGroupListing_t **gs = rd_kafka_ListConsumerGroups_result_valid(res, &k);
  char **ids = sl_xcalloc(k + 1, sizeof(char *));
  for (size_t i = 0; i < k; i++) ids[i] = sl_xstrdup(rd_kafka_ConsumerGroupListing_group_id(gs[i]));
  *n = k;
  rd_kafka_event_destroy(ev);
  return ids;
}

static void describe_configs(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *topic) {
  rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
  rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
  rd_kafka_ConfigResource_destroy(res);
}

int sl_ks_retention(sl_ks_t *ks, const char *topic, double *hours, int64_t *bytes, char **err) {
  char *why = NULL;
  rd_kafka_event_t *ev = sl_ks_admin(ks, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, describe_configs, (void *)topic, &why);
  size_t nres = 0;
  const rd_kafka_ConfigResource_t **res =
    ev ? rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres) : NULL;
  rd_kafka_resp_err_t e = nres ? rd_kafka_ConfigResource_error(res[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
  if (ev && !why && (!nres || e))
    why = sl_xasprintf("%s%s", nres ? rd_kafka_ConfigResource_error_string(res[0]) : "no topic in the answer",
                       sl_ks_settling(e) ? " (try again)" : "");
  if (why) {
    *err = sl_xasprintf("DescribeConfigs of %s: %s", topic, why);
    free(why);
    if (ev) rd_kafka_event_destroy(ev);
    return -1;
  }
  *hours = 0;
  *bytes = 0;
  size_t nc;
  const rd_kafka_ConfigEntry_t **c = rd_kafka_ConfigResource_configs(res[0], &nc);
  for (size_t k = 0; k < nc; k++) {
    const char *name = rd_kafka_ConfigEntry_name(c[k]), *v = rd_kafka_ConfigEntry_value(c[k]);
    long long x = v ? atoll(v) : 0;
    if (!strcmp(name, "retention.ms")) *hours = x < 0 ? 0 : (double)x / 3600000.0;
    if (!strcmp(name, "retention.bytes")) *bytes = x < 0 ? 0 : x;
  }
  rd_kafka_event_destroy(ev);
  return 0;
}

/* A create body's retention setting as the info shows it (0: none, as
 * new_topic gives -1 to Kafka); null when the body left it to the broker,
 * whose default is not known without DescribeConfigs. */
static json_t *asked(const json_t *body, const char *name) {
  json_t *v = json_object_get(body, name);
  return !v ? json_null() : json_number_value(v) > 0 ? json_copy(v) : json_integer(0);
}

/* In the pool: the embedded store's info shape from watermarks, the
 * subscribers' group ids and the topic's retention; bytes are not known to
 * Kafka clients (null). Either call failing answers 503, never made-up
 * figures (a broker busy creating __consumer_offsets, a leader moving),
 * except right after a create (fresh): the topic exists, so a 503 would
 * have the client's retry told 200 instead of 201 for a stream it made;
 * the create is answered 201 with what it asked for, and null where it left
 * a figure to the broker or the subscribers could not be listed. */
static void info_run(void *arg) {
  job_t *j = arg;
  int64_t *lo = sl_xcalloc((size_t)j->P, sizeof(int64_t)), *hi = sl_xcalloc((size_t)j->P, sizeof(int64_t));
  for (int p = 0; p < j->P; p++) {
    rd_kafka_resp_err_t e = j->fresh ? RD_KAFKA_RESP_ERR_NO_ERROR : sl_ks_watermarks(j->ks, j->name, p, &lo[p], &hi[p]);
    if (e) {
      j->status = sl_ks_status(e) == 404 ? 404 : 503;
      j->err = sl_xasprintf("offsets of %s[%d]: %s", j->name, p, rd_kafka_err2str(e));
      free(lo);
      free(hi);
      return;
    }
  }
  size_t n = 0;
  char *gerr = NULL, *cerr = NULL;
  double hours = 0;
  int64_t bytes = 0;
  char **ids = sl_ks_group_ids(j->ks, &n, &gerr);
  int known = (!gerr || j->fresh) && !sl_ks_retention(j->ks, j->name, &hours, &bytes, &cerr);
  if (!j->fresh && !known) {
    j->status = 503;
    j->err = sl_xasprintf("stream %s: %s", j->name, gerr ? gerr : cerr);
    free(gerr);
    free(cerr);
    free(lo);
    free(hi);
    return;
  }
  json_t *subs = json_array();
  char *prefix = sl_xasprintf(SL_KS_SUB_PREFIX "%s:", j->name);
  for (size_t i = 0; i < n; i++) {
    if (!strncmp(ids[i], prefix, strlen(prefix))) json_array_append_new(subs, json_string(ids[i] + strlen(prefix)));
    free(ids[i]);
  }
  free(ids);
  free(prefix);
  json_t *info = json_pack("{s:s, s:i}", "name", j->name, "partition_count", j->P);
  json_object_set_new(info, "retention_hours", known ? json_real(hours) : asked(j->body, "retention_hours"));
  json_object_set_new(info, "retention_bytes", known ? json_integer(bytes) : asked(j->body, "retention_bytes"));
  json_object_set_new(info, "fsync", json_string("kafka"));
  json_object_set_new(info, "end_events", json_string(""));
  j->out = sl_api_info(info, j->P, lo, hi, NULL, subs);
  if (gerr) {
    json_object_set_new(j->out, "subscribers", json_null());
    json_object_set_new(j->out, "subscriber_names", json_null());
  }
  free(gerr);
  free(cerr);
  free(lo);
  free(hi);
}

static void info_found(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, char *const *seg) {
  (void)seg;
  sl_ks_work(ks, info_run, job_done, job_new(ks, r, t->name, t->partitions));
}

static void list_found(sl_ks_t *ks, sl_http_req_t *r) {
  json_t *a = json_array();
  for (int i = 0; i < ks->ntopics; i++)
    if (sl_api_may_see_stream(r, ks->topics[i].name)) json_array_append_new(a, json_string(ks->topics[i].name));
  sl_api_json(r, 200, json_pack("{s:o}", "streams", a));
}

static void create_topic(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *t) {
  rd_kafka_NewTopic_t *nt = t;
  rd_kafka_CreateTopics(rk, &nt, 1, o, q);
}

/* The topic asked for by a create body (checked by check_create). */
static rd_kafka_NewTopic_t *new_topic(job_t *j, char *err, size_t len) {
  rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(j->name, j->P, -1, err, len);
  json_t *v;
  char buf[32];
  if (t && (v = json_object_get(j->body, "retention_hours"))) {
    double h = json_number_value(v);
    snprintf(buf, sizeof buf, "%lld", h > 0 ? (long long)(h * 3600000.0) : -1LL);
    rd_kafka_NewTopic_set_config(t, "retention.ms", buf);
  }
  if (t && (v = json_object_get(j->body, "retention_bytes"))) {
    snprintf(buf, sizeof buf, "%lld", json_integer_value(v) > 0 ? (long long)json_integer_value(v) : -1LL);
    rd_kafka_NewTopic_set_config(t, "retention.bytes", buf);
  }
  if (t && (v = json_object_get(j->body, "segment_bytes"))) {
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    rd_kafka_NewTopic_set_config(t, "segment.bytes", buf);
  }
  return t;
}

/* In the pool: creates the topic (201), or finds it with the same number
 * of partitions (200) or another (409), then reads its info. */
static void create_run(void *arg) {
  job_t *j = arg;
  char why[256];
  rd_kafka_NewTopic_t *t = new_topic(j, why, sizeof why);
  if (!t) {
    j->status = 400;
    j->err = sl_xasprintf("stream %s not created: %s", j->name, why);
    return;
  }
  rd_kafka_event_t *ev = sl_ks_admin(j->ks, RD_KAFKA_ADMIN_OP_CREATETOPICS, create_topic, t, &j->err);
  rd_kafka_NewTopic_destroy(t);
  if (!ev) return;
  size_t n;
  const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
  rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
  if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    int st = sl_ks_status(e);
    j->status = st == 500 ? 400 : st;   /* the broker refused these settings */
    j->err = sl_xasprintf("stream %s not created: %s", j->name, n ? rd_kafka_topic_result_error_string(res[0]) : "?");
    rd_kafka_event_destroy(ev);
    return;
  }
  rd_kafka_event_destroy(ev);
  int want = j->P;
  if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(j->ks->rk, j->name, NULL);
    const struct rd_kafka_metadata *md = NULL;
    sl_ks_calling();
    rd_kafka_resp_err_t me = rd_kafka_metadata(j->ks->rk, 0, t, &md, (int)j->ks->timeout_ms);
    rd_kafka_topic_destroy(t);
    if (me) {
      j->err = sl_xasprintf("stream %s exists; its metadata: %s", j->name, rd_kafka_err2str(me));
      return;
    }
    j->P = md->topic_cnt ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    /* Only what the body gives is compared: a create without one finds the topic. */
    if (j->P != want && json_object_get(j->body, "partitions")) {
      j->status = 409;
      j->err = sl_xasprintf("stream %s exists with %d partitions", j->name, j->P);
      return;
    }
  }
  j->fresh = !e;
  info_run(j);
  if (!j->err) j->status = e ? 200 : 201;
}

static void created(void *arg) {
  job_t *j = arg;
  j->ks->fetched_at = 0;   /* the next request learns the new topic */
  job_done(j);
}

void sl_ks_create_topic(sl_ks_t *ks, const char *name, int P, double retention_hours,
                        void (*cb)(void *arg, int status, const char *err), void *arg) {
  job_t *j = job_new(ks, NULL, name, P > 0 ? P : ks->default_partitions);
  j->body = retention_hours >= 0 ? json_pack("{s:f}", "retention_hours", retention_hours) : json_object();
  if (P > 0) json_object_set_new(j->body, "partitions", json_integer(P));
  j->cb = cb;
  j->cb_arg = arg;
  sl_ks_work(ks, create_run, created, j);
}

static int check_create(sl_http_req_t *r, json_t *b, int *P) {
  sl_sconf_t c = {.partitions = *P};
  char *why = NULL;
  if (json_object_get(b, "fsync"))
    why = sl_xstrdup("fsync is not a stream setting with store.backend kafka: a publish is answered once the in-sync "
                     "replicas have it (acks=all); durability is the brokers' replication (min.insync.replicas)");
  else if (json_object_get(b, "end_events"))
    why = sl_xstrdup("end_events is not kept with store.backend kafka (topics have no such setting): pass "
                     "?end_events= to SSE/WebSocket readers");
  else if (sl_api_sconf(b, &c, &why) == 0 && (c.partitions < 1 || c.partitions > 1024))
    why = sl_xstrdup("partitions must be an integer between 1 and 1024");
  if (why) {
    sl_api_error(r, 400, "%s", why);
    free(why);
    return -1;
  }
  *P = c.partitions;
  return 0;
}

static void create(sl_ks_t *ks, sl_http_req_t *r, const char *name) {
  if (!sl_store_valid_name(name)) {
    sl_api_error(r, 400, "stream names are 1-200 letters, digits, '.', '_' or '-'");
    return;
  }
  json_t *b = sl_api_body(r);
  if (!b) return;
  int P = ks->default_partitions;
  if (check_create(r, b, &P) != 0) {
    json_decref(b);
    return;
  }
  job_t *j = job_new(ks, r, name, P);
  j->body = b;
  sl_ks_work(ks, create_run, created, j);
}

static void delete_topic(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *name) {
  rd_kafka_DeleteTopic_t *t = rd_kafka_DeleteTopic_new(name);
  rd_kafka_DeleteTopics(rk, &t, 1, o, q);
  rd_kafka_DeleteTopic_destroy(t);
}

static void delete_run(void *arg) {
  job_t *j = arg;
  rd_kafka_event_t *ev = sl_ks_admin(j->ks, RD_KAFKA_ADMIN_OP_DELETETOPICS, delete_topic, j->name, &j->err);
  if (!ev) return;
  size_t n;
  const rd_kafka_topic_result_t **res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
  rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
  if (e) {
    j->status = sl_ks_status(e);
    j->err = j->status == 404 ? sl_xasprintf("no stream named %s", j->name)
                              : sl_xasprintf("stream %s not deleted: %s", j->name, rd_kafka_err2str(e));
  } else {
    j->out = json_pack("{s:s}", "deleted", j->name);
  }
  rd_kafka_event_destroy(ev);
}

static void deleted(void *arg) {
  job_t *j = arg;
  j->ks->fetched_at = 0;
  if (j->out) sl_ks_live_deleted(j->ks, j->name);
  job_done(j);
}

/* ---------- publish ---------- */

typedef struct kpub kpub_t;
typedef struct kslot { kpub_t *p; size_t i; } kslot_t;
struct kpub {
  int status;
  size_t n, left;
  int *parts;
  uint64_t *offs;
  char *err;
  kslot_t *slots;
  sl_pub_cb cb;
  void *arg;
};

static void pub_one_done(kpub_t *p, size_t i, int partition, int64_t offset, rd_kafka_resp_err_t e) {
  if (e && !p->err) {
    p->status = sl_ks_status(e);
    p->err = sl_xstrdup(rd_kafka_err2str(e));
  }
  p->parts[i] = partition;
  p->offs[i] = offset < 0 ? 0 : (uint64_t)offset;
  if (--p->left) return;
  p->cb(p->arg, p->err ? p->status : 0, p->err, p->parts, p->offs, p->n);
  free(p->err);
  free(p->parts);
  free(p->offs);
  free(p->slots);
  free(p);
}

/* Runs inside rd_kafka_poll, on the loop. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  kslot_t *s = m->_private;
  pub_one_done(s->p, s->i, m->partition, m->offset, m->err);
}

/* The record's JSON headers as Kafka headers, its event name as `event`. */
static rd_kafka_headers_t *headers_of(const sl_pub_t *rec) {
  rd_kafka_headers_t *hs = rd_kafka_headers_new(4);
  if (rec->event_len) rd_kafka_header_add(hs, "event", 5, rec->event, (ssize_t)rec->event_len);
  json_t *h = rec->headers_len ? json_loadb(rec->headers, rec->headers_len, 0, NULL) : NULL;
  const char *k;
  json_t *v;
  json_object_foreach(h, k, v) {
    char *b;
    size_t bl;
    if (sl_json_header_bytes(v, &b, &bl) == 0) {   /* a string, or bytes as {"base64"} */
      rd_kafka_header_add(hs, k, -1, b, (ssize_t)bl);
      free(b);
    } else {
      char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      rd_kafka_header_add(hs, k, -1, s, -1);
      free(s);
    }
  }
  json_decref(h);
  return hs;
}

void sl_ks_publish(sl_ks_t *ks, const char *topic, const sl_pub_t *recs, size_t n, sl_pub_cb cb, void *arg) {
  kpub_t *p = sl_xcalloc(1, sizeof(*p));
  p->n = p->left = n;
  p->parts = sl_xcalloc(n ? n : 1, sizeof(int));
  p->offs = sl_xcalloc(n ? n : 1, sizeof(uint64_t));
  p->slots = sl_xcalloc(n ? n : 1, sizeof(kslot_t));
  p->cb = cb;
  p->arg = arg;
  p->left++;   /* held until every record is handed over */
  for (size_t i = 0; i < n; i++) {
    const sl_pub_t *rec = &recs[i];
    p->slots[i] = (kslot_t){p, i};
    rd_kafka_headers_t *hs = headers_of(rec);
    rd_kafka_vu_t vu[] = {
      {.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
      {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)rec->value, rec->value_len}},
      {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {rec->key_len ? (void *)rec->key : NULL, rec->key_len}},
      {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
      {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hs},
      {.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = rec->ts_ms},
      {.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = &p->slots[i]},
    };
    rd_kafka_resp_err_t e = sl_kafka_produce(ks->rk, vu, sizeof(vu) / sizeof(vu[0]));
    if (e) {
      rd_kafka_headers_destroy(hs);   /* kept by librdkafka only on success */
      pub_one_done(p, i, -1, -1, e);
    }
  }
  pub_one_done(p, 0, n ? p->parts[0] : 0, n ? (int64_t)p->offs[0] : 0, RD_KAFKA_RESP_ERR_NO_ERROR);
}

typedef struct api_pub { sl_ks_hold_t h; int batch; } api_pub_t;

static void api_published(void *arg, int status, const char *err, const int *parts, const uint64_t *offs, size_t n) {
  api_pub_t *a = arg;
  sl_http_req_t *r = sl_ks_unhold(&a->h);
  if (r) sl_api_published(r, a->batch, status ? status : 200, err, parts, offs, n);
  free(a);
}

static void publish_found(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, char *const *seg) {
  (void)seg;
  sl_pubs_t pubs;
  if (sl_api_pubs(r, &pubs) != 0) return;
  api_pub_t *a = sl_xcalloc(1, sizeof(*a));
  a->batch = pubs.batch;
  /* No deadline: its delivery reports answer it (message.timeout.ms), as a
   * 503 before them could be told of records stored anyway. */
  sl_ks_hold(&a->h, r, NULL);
  sl_ks_publish(ks, t->name, pubs.recs, pubs.n, api_published, a);
  sl_pubs_free(&pubs);
}

/* ---------- dispatch ---------- */

static void consume_found(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, char *const *seg) {
  if (!strcmp(seg[0], "consume")) sl_ks_consume(ks, r, t, seg[1]);
  else sl_ks_live(ks, r, t, seg[0], seg[1]);
}

/* seg: "groups", or "group" {group} [consume|commit]. */
static void group_found(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, char *const *seg) {
  if (!strcmp(seg[0], "groups")) sl_ks_groups(ks, r, t, NULL, 0);
  else if (!seg[2]) sl_ks_groups(ks, r, t, seg[1], !strcmp(r->method, "POST"));
  else if (!strcmp(seg[2], "consume")) sl_ks_group_consume(ks, r, t, seg[1]);
  else sl_ks_group_commit(ks, r, t, seg[1]);
}

static void leave_found(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, char *const *seg) {
  sl_ks_group_leave(ks, r, t, seg[0], seg[1]);
}

static void api(sl_http_req_t *r, void *arg) {
  sl_ks_t *ks = arg;
  char *path, *seg[6];
  int n = sl_api_split(r, &path, seg);
  const char *m = r->method;
  int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
  if (ks->late >= MAX_LATE) {
    sl_api_error(r, 503, "%d requests answered 503 after request_timeout (%lld ms) still wait on the Kafka brokers: "
                 "no more calls are started until theirs end", ks->late, (long long)ks->timeout_ms);
  } else if (n == 0 || n > 5) {
    sl_api_error(r, 404, "not found");
  } else if (n == 1 && !strcmp(seg[0], "list")) {
    if (!get) sl_api_error(r, 405, "method %s not allowed", m);
    else if (uv_now(ks->w->loop) - ks->fetched_at < FRESH_MS && ks->fetched_at) list_found(ks, r);
    else sl_ks_topic(ks, r, NULL, NULL, NULL, 0);   /* answered by meta_done */
  } else if (n == 1 && post) {
    create(ks, r, seg[0]);
  } else if (n == 1 && del) {
    sl_ks_work(ks, delete_run, deleted, job_new(ks, r, seg[0], 0));
  } else if ((n == 1 && get) || (n == 2 && (!strcmp(seg[1], "info") || !strcmp(seg[1], "stats")) && get)) {
    sl_ks_topic(ks, r, seg[0], info_found, NULL, 0);
  } else if (n == 2 && !strcmp(seg[1], "publish") && post) {
    sl_ks_topic(ks, r, seg[0], publish_found, NULL, 0);
  } else if (n == 3 && get && (!strcmp(seg[1], "consume") || !strcmp(seg[1], "sse") || !strcmp(seg[1], "ws"))) {
    sl_ks_topic(ks, r, seg[0], consume_found, seg + 1, 2);
  } else if ((n == 2 && !strcmp(seg[1], "groups") && get) ||
             (n == 3 && !strcmp(seg[1], "group") && (get || post)) ||
             (n == 4 && !strcmp(seg[1], "group") && !strcmp(seg[3], "consume") && get) ||
             (n == 4 && !strcmp(seg[1], "group") && !strcmp(seg[3], "commit") && post)) {
    if (n >= 3 && !sl_store_valid_name(seg[2])) sl_api_error(r, 400, "group names are 1-200 letters, digits, '.', '_' or '-'");
    else sl_ks_topic(ks, r, seg[0], group_found, seg + 1, n - 1);
  } else if (n == 5 && !strcmp(seg[1], "group") && !strcmp(seg[3], "members") && del) {
    char *two[2] = {seg[2], seg[4]};
    sl_ks_topic(ks, r, seg[0], leave_found, two, 2);
  } else {
    sl_api_error(r, 404, "no %s route for %s", m, r->path);
  }
  free(path);
}

/* ---------- setup ---------- */

static void serve(void *rk) {
  rd_kafka_poll(rk, 0);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk;
  (void)opaque;
  sl_logf(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? SL_LOG_WARN : SL_LOG_DEBUG, NULL, "store", "kafka: %s", reason);
}

static void ks_free(sl_ks_t *ks) {
  ks_wait_t *w = ks->waiters;
  while (w) {
    ks_wait_t *next = w->next;
    free(w->name);
    free(w);
    w = next;
  }
  for (sl_ks_gconf_t *g = ks->gconfs, *next; g; g = next) {
    next = g->next;
    free(g->stream);
    free(g->group);
    free(g);
  }
  topics_free(ks->topics, ks->ntopics);
  if (ks->rk) {
    rd_kafka_queue_destroy(ks->q);
    rd_kafka_destroy(ks->rk);
  }
  if (ks->grk) {
    rd_kafka_queue_destroy(ks->gq);
    /* As the readers' consumers: their destroy may wait on brokers gone. */
    sl_kafka_destroy_later(ks->grk, NULL, NULL);
  }
  if (ks->consumer_conf) rd_kafka_conf_destroy(ks->consumer_conf);
  sl_cnode_free(ks->kconf);
  free(ks);
}

/* The worker is going: pool jobs (which use the readers' and the
 * store's handles) end first, then the kept readers close (blocking: the
 * loop is done), published messages still waiting get a last chance, and
 * the readers that closed with their clients finish leaving in the pool. */
static void ks_release(void *arg) {
  sl_ks_t *ks = arg;
  while (ks->works.first) uv_run(ks->w->loop, UV_RUN_ONCE);
  sl_kreader_close_all(ks);
  sl_kafka_wake_close(ks->wake, ks->q);
  sl_kafka_wake_close(ks->gwake, ks->gq);
  ks->wake = ks->gwake = NULL;
  if (ks->rk) rd_kafka_flush(ks->rk, 2000);
  while (ks->works.first) uv_run(ks->w->loop, UV_RUN_ONCE);
  ks_free(ks);
}

/* A handle of the store (c taken on success): its main queue, which its
 * logs go through too, served on the loop. NULL with err. */
static rd_kafka_t *handle(sl_ks_t *ks, rd_kafka_type_t type, rd_kafka_conf_t *c, rd_kafka_queue_t **q,
                          struct sl_kafka_wake **wake, char *err, size_t len) {
  rd_kafka_t *rk = rd_kafka_new(type, c, err, len);
  if (!rk) return NULL;
  *q = rd_kafka_queue_get_main(rk);
  rd_kafka_set_log_queue(rk, NULL);
  *wake = sl_kafka_wake_new(ks->w->loop, *q, serve, rk);
  return rk;
}

/* Made on the first request that needs it, not with the store: its group
 * looks for its coordinator from the start, which on a fresh cluster has
 * the broker create __consumer_offsets (50 partitions) while the first
 * streams are being created. It never subscribes nor assigns: it is never
 * a member of its group. Its errors are the producer's (the same brokers),
 * said by the producer's callback: its own only log (debug). */
int sl_ks_admin_consumer(sl_ks_t *ks, char **err) {
  if (ks->grk) return 0;
  rd_kafka_conf_t *c = rd_kafka_conf_dup(ks->consumer_conf);
  char why[512];
  if (rd_kafka_conf_set(c, "group.id", SL_KS_ADMIN_GROUP, why, sizeof why) == RD_KAFKA_CONF_OK &&
      (ks->grk = handle(ks, RD_KAFKA_CONSUMER, c, &ks->gq, &ks->gwake, why, sizeof why)))
    return 0;
  rd_kafka_conf_destroy(c);
  *err = sl_xasprintf("the store's admin consumer: librdkafka: %s", why);
  return -1;
}

static const char *const producer_defaults[] = {
  "acks", "all", "enable.idempotence", "true", "partitioner", "murmur2_random", "linger.ms", "1",
  "message.timeout.ms", "30000", NULL};

int sl_ks_apply(sl_worker_t *w, const sl_cnode_t *node, int api_on, sl_diags_t *d) {
  const sl_cnode_t *kc = sl_cnode_get(node, "kafka");
  sl_build_t b = {.diags = d, .lint_only = !w};
  int64_t session = sl_conf_duration_ms(kc, "session_timeout", 30000);
  char session_s[32];
  snprintf(session_s, sizeof session_s, "%lld", (long long)session);
  const char *const consumer_defaults[] = {
    "enable.auto.commit", "false", "enable.auto.offset.store", "false", "enable.partition.eof", "true",
    "auto.offset.reset", "earliest", "session.timeout.ms", session_s, NULL};
  rd_kafka_conf_t *pc = sl_kafka_conf(&b, kc, producer_defaults);
  rd_kafka_conf_t *cc = sl_kafka_conf(&b, kc, consumer_defaults);
  if (!pc || !cc || !w) {
    if (pc) rd_kafka_conf_destroy(pc);
    if (cc) rd_kafka_conf_destroy(cc);
    return pc && cc ? 0 : -1;
  }
  sl_ks_t *ks = sl_xcalloc(1, sizeof(*ks));
  ks->w = w;
  ks->consumer_conf = cc;
  ks->kconf = sl_cnode_dup(kc);
  ks->session_ms = session;
  ks->timeout_ms = sl_conf_duration_ms(kc, "request_timeout", 5000);
  ks->default_partitions = (int)sl_conf_int(node, "partitions", 1);
  rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
  rd_kafka_conf_set_error_cb(pc, on_error);
  char err[512];
  ks->rk = handle(ks, RD_KAFKA_PRODUCER, pc, &ks->q, &ks->wake, err, sizeof err);
  if (!ks->rk) {
    rd_kafka_conf_destroy(pc);
    sl_diag_add(d, kc, "store.kafka", "librdkafka: %s", err);
    ks_free(ks);
    return -1;
  }
  w->slot[SL_SLOT_KSTORE] = ks;
  w->slot_free[SL_SLOT_KSTORE] = ks_release;
  return api_on ? sl_store_api_route(w, d, node, api, ks) : 0;
}
