/* Readers of the Kafka backend: one librdkafka consumer each, either a
 * member of a Kafka consumer group (partitions assigned by Kafka) or
 * assigned every partition at given offsets (subscribers, live readers).
 * Their queue is woken into the loop; whatever arrives while nobody asks is
 * moved to a FIFO so that the queue keeps waking (rebalances and errors are
 * served at once). End-of-partition events mark a reader caught up. Closing
 * (leaving the group) blocks, so it runs in the pool (bounded: leave). */
#include "kafka_common.h"
#include "kafka_store.h"
#include "core/list.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FIFO_MAX = 10000 };

struct sl_kreader {
  sl_kreader_t *next;        /* in ks->readers when kept */
  sl_ks_t *ks;
  char *topic, *group, *client;
  int P, kept, closing;
  int busy;                  /* pool jobs using rk: closing waits for them */
  sl_dlist_t commits;        /* commit_t: sent, not answered yet */
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  sl_kafka_wake_t *wake;
  rd_kafka_message_t **fifo; /* messages and end-of-partition events, in order */
  size_t head, n, cap;
  char *assigned, *eof;
  int64_t *pos;
  uint64_t generation;
  char *err;
  void (*cb)(void *arg);
  void *cb_arg;
  uv_timer_t idle;
  int64_t idle_ms;
};

static int in_range(const sl_kreader_t *r, int32_t p) { return p >= 0 && p < r->P; }

static void fifo_clear(sl_kreader_t *r, int only_unassigned) {
  size_t keep = 0;
  for (size_t i = r->head; i < r->head + r->n; i++) {
    rd_kafka_message_t *m = r->fifo[i];
    if (only_unassigned && in_range(r, m->partition) && r->assigned[m->partition]) r->fifo[keep++] = m;
    else rd_kafka_message_destroy(m);
  }
  r->head = 0;
  r->n = keep;
}

/* Runs inside rd_kafka_consumer_poll (on the loop), or inside
 * rd_kafka_consumer_close in the pool, when the reader is the pool's alone. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque) {
  sl_kreader_t *r = opaque;
  memset(r->assigned, 0, (size_t)r->P);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    rd_kafka_assign(rk, parts);
    for (int i = 0; i < parts->cnt; i++)
      if (in_range(r, parts->elems[i].partition)) {
        r->assigned[parts->elems[i].partition] = 1;
        r->eof[parts->elems[i].partition] = 0;
        r->pos[parts->elems[i].partition] = -1;
      }
  } else {
    rd_kafka_assign(rk, NULL);
  }
  /* What the partitions' new owners will be given is not ours to give. */
  fifo_clear(r, 1);
  r->generation++;
}

static void set_err(sl_kreader_t *r, const char *e) {
  free(r->err);
  r->err = e ? sl_xstrdup(e) : NULL;
}

static void fifo_push(sl_kreader_t *r, rd_kafka_message_t *m) {
  if (r->head + r->n == r->cap) {
    if (r->head) {
      memmove(r->fifo, r->fifo + r->head, r->n * sizeof(*r->fifo));
      r->head = 0;
    } else {
      r->cap = r->cap ? r->cap * 2 : 64;
      r->fifo = sl_xrealloc(r->fifo, r->cap * sizeof(*r->fifo));
    }
  }
  r->fifo[r->head + r->n++] = m;
}

/* Moves what the queue holds to the FIFO (errors are noted, not kept). */
static void drain(sl_kreader_t *r) {
  while (!r->closing && r->n < FIFO_MAX) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 0);
    if (!m) return;
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      set_err(r, rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    fifo_push(r, m);
  }
}

rd_kafka_message_t *sl_kreader_next(sl_kreader_t *r) {
  for (;;) {
    if (!r->n) drain(r);
    if (!r->n) return NULL;
    rd_kafka_message_t *m = r->fifo[r->head++];
    r->n--;
    int32_t p = m->partition;
    if (!in_range(r, p)) {
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      r->eof[p] = 1;
      if (m->offset > r->pos[p]) r->pos[p] = m->offset;
      rd_kafka_message_destroy(m);
      continue;
    }
    set_err(r, NULL);   /* the brokers answer */
    r->eof[p] = 0;
    r->pos[p] = m->offset + 1;
    return m;
  }
}

static void on_wake(void *arg) {
  sl_kreader_t *r = arg;
  if (r->cb) r->cb(r->cb_arg);
  drain(r);   /* an empty queue wakes again */
}

void sl_kreader_on_ready(sl_kreader_t *r, void (*cb)(void *arg), void *arg) {
  r->cb = cb;
  r->cb_arg = arg;
  if (cb) uv_timer_stop(&r->idle);   /* a reader waited on is not silent */
}

int sl_kreader_at_end(const sl_kreader_t *r) {
  int any = 0;
  for (int p = 0; p < r->P; p++) {
    if (r->assigned[p] && !r->eof[p]) return 0;
    any |= r->assigned[p];
  }
  return any && r->n == 0;
}

const char *sl_kreader_assigned(const sl_kreader_t *r, uint64_t *generation) {
  if (generation) *generation = r->generation;
  return r->assigned;
}

const char *sl_kreader_error(const sl_kreader_t *r) { return r->err; }
int64_t *sl_kreader_positions(sl_kreader_t *r) { return r->pos; }
int sl_kreader_partitions(const sl_kreader_t *r) { return r->P; }

static rd_kafka_topic_partition_list_t *offsets_list(const sl_kreader_t *r, const int64_t *off) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->P);
  for (int p = 0; p < r->P; p++)
    if (off[p] >= 0 || off[p] == RD_KAFKA_OFFSET_STORED) rd_kafka_topic_partition_list_add(l, r->topic, p)->offset = off[p];
  return l;
}

void sl_kreader_seek(sl_kreader_t *r, const int64_t *start) {
  rd_kafka_topic_partition_list_t *l = offsets_list(r, start);
  rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  memset(r->assigned, 0, (size_t)r->P);
  memset(r->eof, 0, (size_t)r->P);
  for (int p = 0; p < r->P; p++) {
    r->assigned[p] = start[p] >= 0 || start[p] == RD_KAFKA_OFFSET_STORED;
    r->pos[p] = start[p] >= 0 ? start[p] : -1;
  }
  fifo_clear(r, 0);
  r->generation++;
}

typedef struct commit {
  sl_dnode_t node;           /* in r->commits */
  sl_kreader_t *r;
  void (*done)(void *arg, const char *err);
  void *arg;
} commit_t;

/* Served by rd_kafka_consumer_poll: on the loop, or where the reader
 * leaves its group (leave). */
static void committed(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  (void)rk;
  commit_t *c = opaque;
  sl_dlist_remove(&c->r->commits, &c->node);
  for (int i = 0; !err && offsets && i < offsets->cnt; i++)
    if (offsets->elems[i].err) err = offsets->elems[i].err;
  const char *e = err && err != RD_KAFKA_RESP_ERR__NO_OFFSET ? rd_kafka_err2str(err) : NULL;
  if (c->done) c->done(c->arg, e);
  else if (e)
    sl_logf(SL_LOG_WARN, NULL, "store", "kafka: offsets of group %s on %s not committed: %s", c->r->group, c->r->topic, e);
  free(c);
}

void sl_kreader_commit(sl_kreader_t *r, const int64_t *next, void (*done)(void *arg, const char *err), void *arg) {
  rd_kafka_topic_partition_list_t *l = offsets_list(r, next);
  for (int i = l->cnt - 1; i >= 0; i--)
    if (l->elems[i].offset < 0) rd_kafka_topic_partition_list_del_by_idx(l, i);
  if (!l->cnt) {
    if (done) done(arg, NULL);
  } else {
    commit_t *c = sl_xcalloc(1, sizeof(*c));
    *c = (commit_t){.r = r, .done = done, .arg = arg};
    sl_dlist_push(&r->commits, &c->node);
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(r->rk, l, r->q, committed, c);
    if (err) committed(r->rk, err, NULL, c);
  }
  rd_kafka_topic_partition_list_destroy(l);
}

/* ---------- where a subscriber goes on from ---------- */

typedef struct resolve {
  sl_kreader_t *r;
  int64_t *start;
  int64_t cap;
  int if_moved;
  char *err;
  void (*done)(void *arg, const char *err);
  void *arg;
} resolve_t;

/* In the pool: the group's committed offsets, or the earliest kept. */
static void resolve_run(void *arg) {
  resolve_t *v = arg;
  sl_kreader_t *r = v->r;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->P);
  for (int p = 0; p < r->P; p++)
    if (v->start[p] == RD_KAFKA_OFFSET_STORED) rd_kafka_topic_partition_list_add(l, r->topic, p);
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  /* A group's coordinator may still be taking its place (the first group
   * of a cluster creates __consumer_offsets): retried within the timeout. */
  for (int64_t waited = 0; l->cnt; waited += 100) {
    sl_ks_calling();
    e = rd_kafka_committed(r->rk, l, (int)r->ks->timeout_ms);
    if (!sl_ks_settling(e) || waited >= r->ks->timeout_ms) break;
    usleep(100 * 1000);   /* in the pool, never on the loop */
  }
  for (int i = 0; !e && i < l->cnt; i++) {
    int32_t p = l->elems[i].partition;
    int64_t lo = 0, hi = 0;
    if (l->elems[i].offset >= 0) v->start[p] = v->cap >= 0 && v->cap < l->elems[i].offset ? v->cap : l->elems[i].offset;
    else if (v->cap >= 0) v->start[p] = v->cap;
    else if (!(e = sl_ks_watermarks(r->ks, r->topic, p, &lo, &hi)))
      v->start[p] = lo;
  }
  if (e) v->err = sl_xasprintf("the Kafka brokers did not give the offsets of %s: %s", r->group, rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(l);
}

/* Another node moved the group's offsets since this reader last gave
 * something (its own commits all answered). */
static int moved(const sl_kreader_t *r, const int64_t *committed) {
  if (r->commits.first) return 0;
  for (int p = 0; p < r->P; p++)
    if (r->assigned[p] && r->pos[p] >= 0 && committed[p] != r->pos[p]) return 1;
  return 0;
}

static void really_close(sl_kreader_t *r);

static void resolve_done(void *arg) {
  resolve_t *v = arg;
  sl_kreader_t *r = v->r;
  if (!v->err && r->closing) v->err = sl_xstrdup("the reader closed meanwhile (another consume moved the subscriber)");
  if (!v->err && (!v->if_moved || moved(r, v->start))) sl_kreader_seek(r, v->start);
  v->done(v->arg, v->err);   /* still busy: a close it asks for waits for the line below */
  if (--r->busy == 0 && r->closing) really_close(r);
  free(v->err);
  free(v);
}

void sl_kreader_resolve(sl_kreader_t *r, int64_t *start, int64_t cap, int if_moved,
                        void (*done)(void *arg, const char *err), void *arg) {
  resolve_t *v = sl_xcalloc(1, sizeof(*v));
  *v = (resolve_t){.r = r, .start = start, .cap = cap, .if_moved = if_moved, .done = done, .arg = arg};
  r->busy++;
  sl_ks_work(r->ks, resolve_run, resolve_done, v);
}

/* Frees what a reader owns once its librdkafka handles are gone (or were never made). */
static void reader_free(void *arg) {
  sl_kreader_t *r = arg;
  free(r->topic);
  free(r->group);
  free(r->client);
  free(r->assigned);
  free(r->eof);
  free(r->pos);
  free(r->err);
  free(r);
}

sl_kreader_t *sl_kreader_new(sl_ks_t *ks, const char *topic, int P, const char *group, const char *client, int member,
                             int64_t session_ms, char **err) {
  sl_kreader_t *r = sl_xcalloc(1, sizeof(*r));
  r->ks = ks;
  r->topic = sl_xstrdup(topic);
  r->group = sl_xstrdup(group);
  r->client = sl_xstrdup(client);
  r->P = P;
  r->assigned = sl_xcalloc((size_t)P, 1);
  r->eof = sl_xcalloc((size_t)P, 1);
  r->pos = sl_xcalloc((size_t)P, sizeof(int64_t));
  for (int p = 0; p < P; p++) r->pos[p] = -1;
  rd_kafka_conf_t *c = rd_kafka_conf_dup(ks->consumer_conf);
  char e[512], ms[32];
  snprintf(ms, sizeof ms, "%lld", (long long)session_ms);
  if (rd_kafka_conf_set(c, "group.id", group, e, sizeof e) || rd_kafka_conf_set(c, "client.id", client, e, sizeof e) ||
      (session_ms > 0 && rd_kafka_conf_set(c, "session.timeout.ms", ms, e, sizeof e))) {
    rd_kafka_conf_destroy(c);
    goto fail;
  }
  rd_kafka_conf_set_opaque(c, r);
  if (member) rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, e, sizeof e);
  if (!r->rk) {
    rd_kafka_conf_destroy(c);
    goto fail;
  }
  rd_kafka_set_log_queue(r->rk, NULL);
  rd_kafka_poll_set_consumer(r->rk);   /* logs, errors and rebalances come with the messages */
  r->q = rd_kafka_queue_get_consumer(r->rk);
  r->wake = sl_kafka_wake_new(ks->w->loop, r->q, on_wake, r);
  uv_timer_init(ks->w->loop, &r->idle);
  r->idle.data = r;
  sl_logf(SL_LOG_DEBUG, NULL, "store", "kafka: %s of group %s on %s opened", client, group, topic);
  if (member) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (se) {
      snprintf(e, sizeof e, "%s", rd_kafka_err2str(se));
      sl_kreader_close(r);
      *err = sl_xstrdup(e);
      return NULL;
    }
  }
  return r;
fail:
  *err = sl_xstrdup(e);
  reader_free(r);
  return NULL;
}

/* ---------- kept readers and closing ---------- */

static void unlink_reader(sl_kreader_t *r) {
  for (sl_kreader_t **pp = &r->ks->readers; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  r->kept = 0;
}

sl_kreader_t *sl_kreader_find(sl_ks_t *ks, const char *topic, const char *group, const char *client) {
  for (sl_kreader_t *r = ks->readers; r; r = r->next)
    if (!strcmp(r->topic, topic) && !strcmp(r->group, group) && (!client || !strcmp(r->client, client))) return r;
  return NULL;
}

static void on_idle(uv_timer_t *t) {
  sl_kreader_t *r = t->data;
  sl_logf(SL_LOG_DEBUG, NULL, "store", "kafka: %s of group %s on %s idle: closed", r->client, r->group, r->topic);
  sl_kreader_close(r);
}

void sl_kreader_keep(sl_kreader_t *r, int64_t idle_ms) {
  r->idle_ms = idle_ms;
  r->kept = 1;
  r->next = r->ks->readers;
  r->ks->readers = r;
  sl_kreader_touch(r);
}

void sl_kreader_touch(sl_kreader_t *r) {
  if (r->kept) uv_timer_start(&r->idle, on_idle, (uint64_t)r->idle_ms, 0);
}

/* The consumer is destroyed, and the reader freed, on a thread of its own
 * (sl_kafka_destroy_later): a broker thread still holding a request of the
 * group (a reader of a stream deleted meanwhile) kept the pool job, and the
 * worker's end waiting for it, past the process's shutdown_timeout. After
 * leave: one that could not leave in time is let go as is. */
static void destroy(sl_kreader_t *r) {
  fifo_clear(r, 0);
  free(r->fifo);
  rd_kafka_queue_destroy(r->q);
  sl_kafka_destroy_later(r->rk, reader_free, r);
}

/* The readers leave their groups (their partitions move at once) together,
 * LEAVE_MS at most: rd_kafka_consumer_close waits on librdkafka's own
 * timeouts when a group cannot be left, one reader after the other (a
 * reader of a stream deleted meanwhile held the process's end past
 * shutdown_timeout under ASan). One that did not leave in time is left
 * behind as a killed one would be: its group moves on after
 * session.timeout.ms. Rebalances are served here (rd_kafka_consumer_poll),
 * on the pool when a reader closes alone, on the loop at the worker's end. */
enum { LEAVE_MS = 5000 };

static void leave(sl_kreader_t **rs, size_t n) {
  char *gone = sl_xcalloc(n ? n : 1, 1);
  for (size_t i = 0; i < n; i++) {
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(rs[i]->rk, rs[i]->q);
    if (!e) continue;
    sl_logf(SL_LOG_WARN, NULL, "store", "kafka: %s of group %s leaving: %s", rs[i]->client, rs[i]->group,
            rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    gone[i] = 1;
  }
  uint64_t end = uv_hrtime() + (uint64_t)LEAVE_MS * 1000000u;
  for (;;) {
    size_t open = 0;
    for (size_t i = 0; i < n; i++) {
      for (rd_kafka_message_t *m; !gone[i] && (m = rd_kafka_consumer_poll(rs[i]->rk, 0));) rd_kafka_message_destroy(m);
      if (!gone[i] && !rd_kafka_consumer_closed(rs[i]->rk)) open++;
    }
    if (!open) break;
    if (uv_hrtime() >= end) {
      sl_logf(SL_LOG_WARN, NULL, "store", "kafka: %zu reader(s) did not leave their groups within %d ms", open,
              (int)LEAVE_MS);
      break;
    }
    uv_sleep(10);
  }
  /* Nothing serves their queues any more: commits still unanswered fail
   * now (their answers would be dropped with the queues, and their
   * records with them). */
  for (size_t i = 0; i < n; i++)
    for (commit_t *c; (c = SL_DLIST_FIRST(&rs[i]->commits, commit_t, node));)
      committed(rs[i]->rk, RD_KAFKA_RESP_ERR__TIMED_OUT, NULL, c);
  free(gone);
}

static void close_run(void *arg) {
  sl_kreader_t *r = arg;
  leave(&r, 1);
  destroy(r);
}

static void idle_closed(uv_handle_t *h) {
  sl_kreader_t *r = h->data;
  sl_ks_work(r->ks, close_run, NULL, r);
}

static void really_close(sl_kreader_t *r) {
  sl_kafka_wake_close(r->wake, r->q);
  uv_close((uv_handle_t *)&r->idle, idle_closed);
}

void sl_kreader_close(sl_kreader_t *r) {
  if (r->closing) return;
  r->closing = 1;
  void (*cb)(void *arg) = r->cb;
  r->cb = NULL;
  if (r->kept) unlink_reader(r);
  if (cb) cb(r->cb_arg);   /* its waiter answers with what it has, and lets go */
  if (!r->busy) really_close(r);
}

int sl_kreader_closing(const sl_kreader_t *r) { return r->closing; }

static void idle_freed(uv_handle_t *h) { destroy(h->data); }

void sl_kreader_close_all(sl_ks_t *ks) {
  size_t n = 0;
  for (sl_kreader_t *r = ks->readers; r; r = r->next) n++;
  sl_kreader_t **rs = sl_xcalloc(n ? n : 1, sizeof(*rs));
  for (size_t i = 0; i < n; i++) {
    sl_kreader_t *r = rs[i] = ks->readers;
    unlink_reader(r);
    r->closing = 1;
    r->cb = NULL;
    sl_kafka_wake_close(r->wake, r->q);
  }
  leave(rs, n);   /* blocks: the worker is going */
  for (size_t i = 0; i < n; i++) uv_close((uv_handle_t *)&rs[i]->idle, idle_freed);
  free(rs);
}
