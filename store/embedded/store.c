#include "store.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What a publish with fsync `always` waits for: every partition it wrote
 * synced up to its last record. */
typedef struct pending_pub {
  int waits;                 /* partitions not yet synced far enough */
  sl_pub_cb cb;
  void *arg;
  int *parts;
  uint64_t *offs;
  size_t n;
} pending_pub_t;

typedef struct sync_wait {
  struct sync_wait *next;
  uint64_t need;             /* synced end must reach this */
  pending_pub_t *pub;
} sync_wait_t;

typedef struct partition {
  sl_seglog_t *log;
  uint64_t synced;           /* records below this are on disk */
  int syncing;               /* an fsync is in flight */
  uint64_t sync_t0;
  uv_fs_t req;
  uint64_t sync_target;      /* end of the log when that fsync started */
  sl_seglog_sync_t sync_at;  /* what it covers */
  sync_wait_t *waits;
  struct sl_sstream *s;
} partition_t;

struct sl_sstream {
  sl_store_t *st;
  char *name, *dir;
  sl_sconf_t c;
  partition_t *parts;
  unsigned rr;
  int deleted;
  int busy;                  /* fsyncs in flight: the files stay open meanwhile */
  sl_swatch_t watchers;      /* list head */
  json_t *cursors;           /* {"subscriber": {name: [next...]}, "group": {...}} */
  char *cursors_bad;         /* offsets.json cannot be read: no cursor is served or written */
  json_t *bad_cursors;       /* {"group g": why}: entries that cannot be used */
  uint64_t id;               /* unique in the process: tells a re-created stream apart */
  int64_t *m_appended;       /* sluice_store_appended_total{stream} */
  int64_t *m_bytes;          /* sluice_store_appended_bytes_total{stream} */
  sl_histo_t *m_fsync;       /* sluice_store_fsync_latency_ns{stream} */
  struct sl_sstream *next;
};

struct sl_store {
  sl_worker_t *w;
  char *data_dir;
  sl_sconf_t defaults;
  int64_t sync_interval_ms;
  int opened;
  char *failed;              /* why data_dir cannot be used */
  json_t *broken;            /* {name: why}: stream directories that cannot be opened */
  sl_sstream_t *streams, **tail;
  uv_timer_t tick;           /* interval fsyncs and retention */
  int64_t retention_check_ms, last_retention;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), so a key
 * lands on the same partition number here as with Kafka's default partitioner. */
int sl_store_partition_of(const char *key, size_t len, int partitions) {
  const uint32_t m = 0x5bd1e995;
  uint32_t h = 0x9747b28c ^ (uint32_t)len;
  const unsigned char *d = (const unsigned char *)key;
  size_t n4 = len / 4;
  for (size_t i = 0; i < n4; i++) {
    uint32_t k = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 | (uint32_t)d[4 * i + 3] << 24;
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (len % 4) {
  case 3: h ^= (uint32_t)d[(len & ~3u) + 2] << 16; /* fall through */
  case 2: h ^= (uint32_t)d[(len & ~3u) + 1] << 8;  /* fall through */
  case 1: h ^= d[len & ~3u]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int)((h & 0x7fffffff) % (uint32_t)partitions);
}

/* ---------- files ---------- */

static int write_file_durably(const char *path, const char *data, size_t n, char **err) {
  char *tmp = sl_xasprintf("%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0;
  /* Until done: a short write (a full disk) is followed by one that says why. */
  for (size_t at = 0; ok && at < n;) {
    ssize_t w = write(fd, data + at, n - at);
    ok = w > 0 || (w < 0 && errno == EINTR);
    if (w > 0) at += (size_t)w;
  }
  ok = ok && fdatasync(fd) == 0;
  int e = errno;
  if (fd >= 0) close(fd);
  if (ok && rename(tmp, path) != 0) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    *err = sl_xasprintf("%s: %s", path, strerror(e));
    unlink(tmp);   /* the file it was to replace is still whole */
  }
  free(tmp);
  return ok ? 0 : -1;
}

static int save_json(const char *dir, const char *file, json_t *j, char **err) {
  char *path = sl_xasprintf("%s/%s", dir, file);
  char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  int rc = write_file_durably(path, text, strlen(text), err);
  free(text);
  free(path);
  return rc;
}

static json_t *conf_json(const sl_sconf_t *c) {
  return json_pack("{s:i, s:f, s:I, s:s, s:I, s:I, s:s}", "partitions", c->partitions, "retention_hours",
                   c->retention_hours, "retention_bytes", (json_int_t)c->retention_bytes, "fsync", sl_fsync_names[c->fsync],
                   "segment_bytes", (json_int_t)c->segment_bytes, "segment_age_ms", (json_int_t)c->segment_age_ms,
                   "end_events", c->end_events);
}

static void rmtree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = sl_xasprintf("%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rmtree(p);
    else unlink(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}

/* ---------- streams ---------- */

static void stream_free(sl_sstream_t *s) {
  for (int p = 0; s->parts && p < s->c.partitions; p++) {
    sl_seglog_close(s->parts[p].log);
    for (sync_wait_t *w = s->parts[p].waits, *n; w; w = n) {
      n = w->next;
      free(w);
    }
  }
  free(s->parts);
  json_decref(s->cursors);
  json_decref(s->bad_cursors);
  free(s->cursors_bad);
  free(s->name);
  free(s->dir);
  free(s);
}

/* Reads offsets.json. A file that cannot be read is kept as it is and
 * serves no position (a silent reset would re-deliver or skip records);
 * so is an entry that is not a list of offsets, for its cursor alone. */
static void load_cursors(sl_sstream_t *s) {
  char *cp = sl_xasprintf("%s/offsets.json", s->dir);
  json_error_t je;
  s->cursors = json_load_file(cp, 0, &je);
  s->bad_cursors = json_object();
  if (!s->cursors && access(cp, F_OK) == 0) {
    s->cursors_bad = sl_xasprintf("%s cannot be read (%s, line %d): no subscriber or group position is served or "
                                  "saved until it is repaired or removed",
                                  cp, je.text, je.line);
  } else if (s->cursors && !json_is_object(s->cursors)) {
    s->cursors_bad = sl_xasprintf("%s is not a JSON object: no subscriber or group position is served or saved until "
                                  "it is repaired or removed",
                                  cp);
  }
  if (s->cursors_bad) sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s: %s", s->name, s->cursors_bad);
  if (!json_is_object(s->cursors)) {
    json_decref(s->cursors);
    s->cursors = json_object();
  }
  const char *kind, *name;
  json_t *k, *arr;
  json_object_foreach(s->cursors, kind, k) {
    json_object_foreach(k, name, arr) {
      int ok = json_is_array(arr) && json_array_size(arr) == (size_t)s->c.partitions;
      for (size_t i = 0; ok && i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        ok = json_is_integer(v) && json_integer_value(v) >= 0;
      }
      if (ok) continue;
      char *key = sl_xasprintf("%s %s", kind, name);
      char *why = sl_xasprintf("%s: its position in %s/offsets.json is not a list of %d offsets: it is not served "
                               "until that entry is repaired",
                               key, s->dir, s->c.partitions);
      sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s: %s", s->name, why);
      json_object_set_new(s->bad_cursors, key, json_string(why));
      free(why);
      free(key);
    }
  }
  free(cp);
}

static sl_sstream_t *stream_open(sl_store_t *st, const char *name, const sl_sconf_t *c, char **err) {
  static uint64_t ids;
  sl_sstream_t *s = sl_xcalloc(1, sizeof(*s));
  s->st = st;
  s->id = ++ids;
  s->m_appended = sl_metric(SL_COUNTER, "sluice_store_appended_total", "Records appended to a stored stream.", "stream",
                            name, NULL);
  s->m_bytes = sl_metric(SL_COUNTER, "sluice_store_appended_bytes_total",
                         "Bytes of record values appended to a stored stream.", "stream", name, NULL);
  s->m_fsync = sl_histogram("sluice_store_fsync_latency_ns", "Nanoseconds an fsync of a stored stream's partition took.",
                            "stream", name, NULL);
  s->name = sl_xstrdup(name);
  s->dir = sl_xasprintf("%s/%s", st->data_dir, name);
  s->c = *c;
  s->watchers.next = s->watchers.prev = &s->watchers;
  s->parts = sl_xcalloc((size_t)c->partitions, sizeof(*s->parts));
  sl_seglog_opts_t o = {c->segment_bytes, c->segment_age_ms, 4096};
  for (int p = 0; p < c->partitions; p++) {
    char *pd = sl_xasprintf("%s/%d", s->dir, p);
    char *repaired = NULL;
    s->parts[p].s = s;
    s->parts[p].log = sl_seglog_open(pd, &o, err, &repaired);
    free(pd);
    if (repaired) {
      sl_logf(SL_LOG_WARN, NULL, "store", "stream %s: partition %d: %s", name, p, repaired);
      free(repaired);
    }
    if (!s->parts[p].log) {
      stream_free(s);
      return NULL;
    }
    if (sl_seglog_stopped(s->parts[p].log))
      sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s: partition %d is stopped: %s", name, p,
              sl_seglog_stopped(s->parts[p].log));
    s->parts[p].synced = sl_seglog_end(s->parts[p].log);
  }
  load_cursors(s);
  return s;
}

static void link_stream(sl_store_t *st, sl_sstream_t *s) {
  *st->tail = s;
  st->tail = &s->next;
}

/* A stream.json's settings over c: NULL, or why they cannot be used
 * (caller frees). */
static char *parse_conf(json_t *j, sl_sconf_t *c) {
  if (!json_is_object(j)) return sl_xstrdup("not a JSON object");
  json_t *v = json_object_get(j, "partitions");
  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1024)
    return sl_xstrdup("`partitions` must be an integer between 1 and 1024");
  c->partitions = (int)json_integer_value(v);
  if ((v = json_object_get(j, "retention_hours"))) {
    if (!json_is_number(v) || json_number_value(v) < 0) return sl_xstrdup("`retention_hours` must be a number >= 0");
    c->retention_hours = json_number_value(v);
  }
  static const char *const ints[] = {"retention_bytes", "segment_bytes", "segment_age_ms"};
  int64_t *dst[] = {&c->retention_bytes, &c->segment_bytes, &c->segment_age_ms};
  for (int i = 0; i < 3; i++) {
    if (!(v = json_object_get(j, ints[i]))) continue;
    if (!json_is_integer(v) || json_integer_value(v) < 0) return sl_xasprintf("`%s` must be an integer >= 0", ints[i]);
    *dst[i] = json_integer_value(v);
  }
  if ((v = json_object_get(j, "fsync"))) {
    int f = sl_fsync_parse(json_string_value(v));
    if (f < 0) return sl_xstrdup("`fsync` must be always, interval or never");
    c->fsync = (sl_fsync_t)f;
  }
  if ((v = json_object_get(j, "end_events"))) {
    if (!json_is_string(v) || json_string_length(v) >= sizeof c->end_events)
      return sl_xstrdup("`end_events` must be a string (under 256 bytes)");
    snprintf(c->end_events, sizeof c->end_events, "%s", json_string_value(v));
  }
  return NULL;
}

/* Partition directories beyond what stream.json says: their records would
 * silently vanish. NULL, or why (caller frees). */
static char *extra_partitions(const char *dir, int partitions) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char *why = NULL;
  while (d && !why && (e = readdir(d))) {
    char *end;
    long p = strtol(e->d_name, &end, 10);
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && !*end && p >= partitions)
      why = sl_xasprintf("it holds partition directory %s but `partitions` is %d", e->d_name, partitions);
  }
  if (d) closedir(d);
  return why;
}

/* ---------- durability ---------- */

static void sync_start(partition_t *pt);

static void pub_done(pending_pub_t *pp) {
  pp->cb(pp->arg, 0, NULL, pp->parts, pp->offs, pp->n);
  free(pp->parts);
  free(pp->offs);
  free(pp);
}

/* The HTTP status of a failed write: 507 when the disk is full. */
static int status_of(int e) { return e == ENOSPC || e == EDQUOT ? 507 : 500; }

/* Answers every publish waiting on pt's fsync as failed. */
static void fail_waits(partition_t *pt, int status, const char *why) {
  for (sync_wait_t *w = pt->waits, *n; w; w = n) {
    n = w->next;
    if (--w->pub->waits == 0) {
      w->pub->cb(w->pub->arg, status, why, NULL, NULL, 0);
      free(w->pub->parts);
      free(w->pub->offs);
      free(w->pub);
    }
    free(w);
  }
  pt->waits = NULL;
}

static void on_synced(uv_fs_t *req) {
  partition_t *pt = req->data;
  sl_sstream_t *s = pt->s;
  int ok = req->result >= 0;
  uv_fs_req_cleanup(req);
  pt->syncing = 0;
  s->busy--;
  sl_histo_observe(s->m_fsync, sl_now_ns() - pt->sync_t0);
  if (s->deleted) {
    if (s->busy == 0) stream_free(s);
    return;
  }
  if (!ok) {
    /* The kernel may have dropped the written pages (and reports an fsync
     * error once): nothing can be promised for what is not synced, so the
     * partition stops taking writes; a restart verifies what is on disk. */
    int e = -(int)req->result, p = (int)(pt - s->parts);
    char *why = sl_xasprintf("fsync failed: %s: records written since the last fsync may not survive a crash; the "
                             "partition takes no writes until a restart",
                             strerror(e));
    sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s: partition %d: %s", s->name, p, why);
    sl_seglog_stop(pt->log, why);
    char *answer = sl_xasprintf("partition %d: %s", p, why);
    fail_waits(pt, status_of(e), answer);
    free(answer);
    free(why);
    return;
  }
  sl_seglog_synced(pt->log, &pt->sync_at);
  pt->synced = pt->sync_target;
  sync_wait_t **pp = &pt->waits;
  while (*pp) {
    sync_wait_t *w = *pp;
    if (w->need <= pt->synced) {
      *pp = w->next;
      if (--w->pub->waits == 0) pub_done(w->pub);
      free(w);
    } else {
      pp = &w->next;
    }
  }
  /* Group commit: what was appended meanwhile shares the next fsync. */
  if (pt->waits) sync_start(pt);
}

static void sync_start(partition_t *pt) {
  if (pt->syncing || sl_seglog_end(pt->log) <= pt->synced) return;
  pt->syncing = 1;
  pt->s->busy++;
  pt->sync_target = sl_seglog_end(pt->log);
  pt->sync_at = sl_seglog_sync_point(pt->log);
  pt->sync_t0 = sl_now_ns();
  pt->req.data = pt;
  uv_fs_fdatasync(pt->s->st->w->loop, &pt->req, pt->sync_at.fd, on_synced);
}

static void wake_all(sl_sstream_t *s) {
  /* A woken reader may unwatch itself (or others): walk a snapshot. */
  int n = 0;
  for (sl_swatch_t *w = s->watchers.next; w != &s->watchers; w = w->next) n++;
  if (!n) return;
  sl_swatch_t **list = sl_xmalloc((size_t)n * sizeof(*list));
  int i = 0;
  for (sl_swatch_t *w = s->watchers.next; w != &s->watchers; w = w->next) list[i++] = w;
  for (i = 0; i < n; i++) {
    int still = 0;
    for (sl_swatch_t *w = s->watchers.next; w != &s->watchers; w = w->next)
      if (w == list[i]) still = 1;
    if (still) list[i]->wake(list[i]);
  }
  free(list);
}

/* The partition of each record: by key, else round robin over the
 * partitions that take writes (as Kafka's producer skips unavailable ones).
 * 0, or an HTTP status with *err naming the stopped partition. */
static int place(sl_sstream_t *s, const sl_pub_t *recs, size_t n, int *parts, char **err) {
  int P = s->c.partitions;
  for (size_t i = 0; i < n; i++) {
    int p = -1;
    if (recs[i].key_len) {
      p = sl_store_partition_of(recs[i].key, recs[i].key_len, P);
    } else {
      for (int k = 0; k < P && p < 0; k++) {
        int q = (int)(s->rr++ % (unsigned)P);
        if (!sl_seglog_stopped(s->parts[q].log)) p = q;
      }
      if (p < 0) p = 0;   /* every partition is stopped: say why, below */
    }
    const char *why = sl_seglog_stopped(s->parts[p].log);
    if (why) {
      *err = sl_xasprintf("partition %d is stopped: %s", p, why);
      return 503;
    }
    parts[i] = p;
  }
  return 0;
}

void sl_sstream_publish(sl_sstream_t *s, const sl_pub_t *recs, size_t n, sl_pub_cb cb, void *arg) {
  int P = s->c.partitions;
  int *parts = sl_xmalloc((n ? n : 1) * sizeof(int));
  uint64_t *offs = sl_xmalloc((n ? n : 1) * sizeof(uint64_t));
  sl_record_t *rr = sl_xmalloc((n ? n : 1) * sizeof(*rr));
  size_t *order = sl_xmalloc((n ? n : 1) * sizeof(size_t));
  sl_seglog_mark_t *marks = sl_xmalloc((size_t)P * sizeof(*marks));
  int *touched = sl_xcalloc((size_t)P, sizeof(int));
  int64_t now = now_ms();
  char *err = NULL;
  int status = place(s, recs, n, parts, &err);
  /* One append per partition, records in their publish order; all or
   * nothing: when one fails, what the others wrote is cut again before
   * anyone (a reader, an fsync) can have seen it. */
  for (int p = 0; p < P && !err; p++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
      if (parts[i] != p) continue;
      const sl_pub_t *r = &recs[i];
      rr[m] = (sl_record_t){0, r->ts_ms ? r->ts_ms : now, r->key, (uint32_t)r->key_len, r->event, (uint32_t)r->event_len,
                            r->headers, (uint32_t)r->headers_len, r->value, (uint32_t)r->value_len};
      order[m++] = i;
    }
    if (!m) continue;
    sl_seglog_mark(s->parts[p].log, &marks[p]);
    if (sl_seglog_append(s->parts[p].log, rr, m, &err) < 0) {
      status = status_of(sl_seglog_errno(s->parts[p].log));
      char *which = sl_xasprintf("partition %d: %s", p, err);
      free(err);
      err = which;
      break;
    }
    for (size_t k = 0; k < m; k++) offs[order[k]] = rr[k].offset;
    touched[p] = 1;
  }
  for (int p = 0; p < P && err; p++) {
    char *undo = NULL;
    if (touched[p] && sl_seglog_rollback(s->parts[p].log, &marks[p], &undo) != 0) {
      sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s: partition %d: %s", s->name, p, undo);
      char *both = sl_xasprintf("%s; partition %d: %s", err, p, undo);
      free(err);
      err = both;
      free(undo);
    }
  }
  free(rr);
  free(order);
  free(marks);
  if (err) {
    sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s: %d records not stored: %s", s->name, (int)n, err);
    cb(arg, status, err, NULL, NULL, 0);
    free(err);
    free(parts);
    free(offs);
    free(touched);
    return;
  }
  *s->m_appended += (int64_t)n;
  for (size_t i = 0; i < n; i++) *s->m_bytes += (int64_t)recs[i].value_len;
  if (s->c.fsync != SL_FSYNC_ALWAYS) {
    cb(arg, 0, NULL, parts, offs, n);
    free(parts);
    free(offs);
  } else {
    pending_pub_t *pp = sl_xcalloc(1, sizeof(*pp));
    *pp = (pending_pub_t){0, cb, arg, parts, offs, n};
    for (int p = 0; p < P; p++) {
      if (!touched[p]) continue;
      sync_wait_t *w = sl_xcalloc(1, sizeof(*w));
      w->need = sl_seglog_end(s->parts[p].log);
      w->pub = pp;
      w->next = s->parts[p].waits;
      s->parts[p].waits = w;
      pp->waits++;
    }
    for (int p = 0; p < P; p++)
      if (touched[p]) sync_start(&s->parts[p]);
    if (pp->waits == 0) pub_done(pp);
  }
  free(touched);
  wake_all(s);
}

/* ---------- the store ---------- */

static void tick(uv_timer_t *t) {
  sl_store_t *st = t->data;
  int64_t now = now_ms();
  int retain = now - st->last_retention >= st->retention_check_ms;
  if (retain) st->last_retention = now;
  for (sl_sstream_t *s = st->streams; s; s = s->next)
    for (int p = 0; p < s->c.partitions; p++) {
      if (s->c.fsync == SL_FSYNC_INTERVAL) sync_start(&s->parts[p]);
      if (retain)
        sl_seglog_retain(s->parts[p].log, (int64_t)(s->c.retention_hours * 3600000.0), s->c.retention_bytes, now);
    }
}

static void store_free(void *p) {
  sl_store_t *st = p;
  for (sl_sstream_t *s = st->streams, *n; s; s = n) {
    n = s->next;
    /* An fsync still in the pool frees its stream when it completes (the
     * worker runs its loop until then), as after a delete. */
    s->deleted = 1;
    if (s->busy == 0) stream_free(s);
  }
  free(st->data_dir);
  free(st->failed);
  json_decref(st->broken);
  free(st);
}

/* What /ready and /admin/status report: {"store": {name: why}}. */
static void health(void *arg, json_t *problems) {
  sl_store_t *st = arg;
  json_t *o = json_object();
  if (st->failed) json_object_set_new(o, "data_dir", json_string(st->failed));
  json_object_update(o, st->broken);
  for (sl_sstream_t *s = st->streams; s; s = s->next) {
    char *all = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&all, &len);
    for (int p = 0; p < s->c.partitions; p++) {
      const char *why = sl_seglog_stopped(s->parts[p].log);
      if (why) fprintf(f, "%spartition %d is stopped: %s", ftell(f) ? "; " : "", p, why);
    }
    if (s->cursors_bad) fprintf(f, "%s%s", ftell(f) ? "; " : "", s->cursors_bad);
    const char *key;
    json_t *why;
    json_object_foreach(s->bad_cursors, key, why) fprintf(f, "%s%s", ftell(f) ? "; " : "", json_string_value(why));
    fclose(f);
    if (len) json_object_set_new(o, s->name, json_string(all));
    free(all);
  }
  if (json_object_size(o)) json_object_set_new(problems, "store", o);
  else json_decref(o);
}

/* Lag of every consumer group with saved offsets, at scrape time. */
static void collect_lag(void *arg) {
  sl_store_t *st = arg;
  for (sl_sstream_t *s = st->streams; s; s = s->next) {
    const char *group;
    json_t *arr;
    json_object_foreach(json_object_get(s->cursors, "group"), group, arr) {
      int64_t lag = 0;
      for (int p = 0; p < s->c.partitions; p++) {
        uint64_t at = (uint64_t)json_integer_value(json_array_get(arr, (size_t)p)), end = sl_sstream_end(s, p);
        if (end > at) lag += (int64_t)(end - at);
      }
      *sl_metric(SL_GAUGE, "sluice_store_group_lag", "Records of a stored stream a consumer group has not committed.",
                 "stream", s->name, "group", group, NULL) = lag;
    }
  }
}

static void tick_closed(uv_handle_t *h) { store_free(h->data); }

static void store_release(void *p) {
  sl_store_t *st = p;
  sl_metrics_collector_remove(collect_lag, st);
  sl_health_check_remove(health, st);
  if (st->opened) {
    /* Nothing is promised for `never`/`interval` beyond this last sync. */
    for (sl_sstream_t *s = st->streams; s; s = s->next)
      for (int q = 0; q < s->c.partitions; q++) {
        sl_seglog_sync_t at = sl_seglog_sync_point(s->parts[q].log);
        if (fdatasync(at.fd) == 0) sl_seglog_synced(s->parts[q].log, &at);
      }
    uv_close((uv_handle_t *)&st->tick, tick_closed);
  } else {
    store_free(st);
  }
}

static sl_store_t *store_slot(sl_worker_t *w) {
  if (!w->slot[SL_SLOT_STORE]) {
    sl_store_t *st = sl_xcalloc(1, sizeof(*st));
    st->w = w;
    st->data_dir = sl_xstrdup("./data");
    st->defaults = (sl_sconf_t){.partitions = 1, .retention_hours = 168, .fsync = SL_FSYNC_INTERVAL, .segment_bytes = 64 << 20};
    st->sync_interval_ms = 50;
    st->retention_check_ms = 10000;
    st->tail = &st->streams;
    w->slot[SL_SLOT_STORE] = st;
    w->slot_free[SL_SLOT_STORE] = store_release;
    st->broken = json_object();
    sl_metrics_collector_add(collect_lag, st);
    sl_health_check_add(health, st);
  }
  return w->slot[SL_SLOT_STORE];
}

void sl_store_configure(sl_worker_t *w, const char *data_dir, const sl_sconf_t *defaults, int64_t sync_interval_ms,
                        int64_t retention_check_ms) {
  sl_store_t *st = store_slot(w);
  free(st->data_dir);
  st->data_dir = sl_xstrdup(data_dir);
  st->defaults = *defaults;
  st->sync_interval_ms = sync_interval_ms > 0 ? sync_interval_ms : 50;
  st->retention_check_ms = retention_check_ms;
}

/* A directory of data_dir that cannot be served: logged, kept as it is,
 * and reported (health) until it is repaired or deleted. */
static void broken(sl_store_t *st, const char *name, const char *why) {
  sl_logf(SL_LOG_ERROR, NULL, "store", "stream %s not opened: %s", name, why);
  json_object_set_new(st->broken, name, json_string(why));
}

/* Opens the stream whose directory is data_dir/name. */
static void open_existing(sl_store_t *st, const char *name) {
  char *dir = sl_xasprintf("%s/%s", st->data_dir, name), *mp = sl_xasprintf("%s/stream.json", dir);
  json_error_t je;
  json_t *j = json_load_file(mp, 0, &je);
  sl_sconf_t c = st->defaults;
  char *why = !j ? sl_xasprintf("%s: %s", mp, je.text) : parse_conf(j, &c);
  if (j && why) {
    char *w2 = sl_xasprintf("%s: %s", mp, why);
    free(why);
    why = w2;
  }
  if (!why) why = extra_partitions(dir, c.partitions);
  json_decref(j);
  sl_sstream_t *s = why ? NULL : stream_open(st, name, &c, &why);
  if (s) link_stream(st, s);
  else broken(st, name, why);
  free(why);
  free(mp);
  free(dir);
}

sl_store_t *sl_store_of(sl_worker_t *w) {
  sl_store_t *st = store_slot(w);
  if (st->opened) return st;
  if (st->failed) return NULL;
  DIR *d = NULL;
  if ((mkdir(st->data_dir, 0755) != 0 && errno != EEXIST) || !(d = opendir(st->data_dir))) {
    st->failed = sl_xasprintf("data_dir %s: %s", st->data_dir, strerror(errno));
    sl_logf(SL_LOG_ERROR, NULL, "store", "%s", st->failed);
    return NULL;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    struct stat sb;
    char *p = sl_xasprintf("%s/%s", st->data_dir, e->d_name);
    int dir = stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(p);
    if (dir && sl_store_valid_name(e->d_name)) open_existing(st, e->d_name);
  }
  closedir(d);
  uv_timer_init(w->loop, &st->tick);
  st->tick.data = st;
  uv_timer_start(&st->tick, tick, (uint64_t)st->sync_interval_ms, (uint64_t)st->sync_interval_ms);
  uv_unref((uv_handle_t *)&st->tick);
  st->opened = 1;
  return st;
}

const char *sl_store_broken(const sl_store_t *st, const char *name) {
  return json_string_value(json_object_get(st->broken, name));
}

sl_sconf_t sl_store_defaults(const sl_store_t *st) { return st->defaults; }

sl_sstream_t *sl_store_find(sl_store_t *st, const char *name) {
  for (sl_sstream_t *s = st->streams; s; s = s->next)
    if (!strcmp(s->name, name)) return s;
  return NULL;
}

static int same_conf(const sl_sconf_t *a, const sl_sconf_t *b) {
  return a->partitions == b->partitions && a->retention_hours == b->retention_hours &&
         a->retention_bytes == b->retention_bytes && a->fsync == b->fsync && a->segment_bytes == b->segment_bytes &&
         a->segment_age_ms == b->segment_age_ms && !strcmp(a->end_events, b->end_events);
}

int sl_store_create(sl_store_t *st, const char *name, const sl_sconf_t *c, sl_sstream_t **out, char **err) {
  if (!sl_store_valid_name(name)) {
    *err = sl_xstrdup("stream names are 1-200 letters, digits, '.', '_' or '-', not starting with '.'");
    return 400;
  }
  if (c->partitions < 1 || c->partitions > 1024) {
    *err = sl_xstrdup("partitions must be between 1 and 1024");
    return 400;
  }
  const char *bad = sl_store_broken(st, name);
  if (bad) {
    /* Its files are kept for the operator: never written over. */
    *err = sl_xasprintf("stream %s exists in %s but cannot be opened (%s); repair it and restart, or delete it", name,
                        st->data_dir, bad);
    return 409;
  }
  sl_sstream_t *s = sl_store_find(st, name);
  if (s) {
    *out = s;
    if (same_conf(&s->c, c)) return 200;
    *err = sl_xasprintf("stream %s exists with other settings", name);
    return 409;
  }
  s = stream_open(st, name, c, err);
  if (!s) return 500;
  json_t *j = conf_json(c);
  int rc = save_json(s->dir, "stream.json", j, err);
  json_decref(j);
  if (rc != 0) {
    stream_free(s);
    return 500;
  }
  link_stream(st, s);
  *out = s;
  return 201;
}

int sl_store_delete(sl_store_t *st, const char *name) {
  if (sl_store_broken(st, name)) {
    char *dir = sl_xasprintf("%s/%s", st->data_dir, name);
    sl_logf(SL_LOG_WARN, NULL, "store", "stream %s deleted: %s removed as it was", name, dir);
    rmtree(dir);
    free(dir);
    json_object_del(st->broken, name);
    return 0;
  }
  sl_sstream_t **pp = &st->streams;
  while (*pp && strcmp((*pp)->name, name) != 0) pp = &(*pp)->next;
  if (!*pp) return -1;
  sl_sstream_t *s = *pp;
  *pp = s->next;
  st->tail = &st->streams;
  while (*st->tail) st->tail = &(*st->tail)->next;
  s->deleted = 1;
  rmtree(s->dir);
  wake_all(s);
  /* Publishes waiting on an fsync of a deleted stream are answered as failed. */
  for (int p = 0; p < s->c.partitions; p++) fail_waits(&s->parts[p], 404, "stream deleted");
  if (s->busy == 0) stream_free(s);
  return 0;
}

const char **sl_store_names(sl_store_t *st, int *n) {
  int k = 0;
  for (sl_sstream_t *s = st->streams; s; s = s->next) k++;
  const char **v = sl_xmalloc((size_t)(k ? k : 1) * sizeof(*v));
  k = 0;
  for (sl_sstream_t *s = st->streams; s; s = s->next) v[k++] = s->name;
  *n = k;
  return v;
}

const char *sl_sstream_name(const sl_sstream_t *s) { return s->name; }
const sl_sconf_t *sl_sstream_conf(const sl_sstream_t *s) { return &s->c; }
int sl_sstream_deleted(const sl_sstream_t *s) { return s->deleted; }
uint64_t sl_sstream_start(sl_sstream_t *s, int p) { return sl_seglog_start(s->parts[p].log); }
uint64_t sl_sstream_end(sl_sstream_t *s, int p) { return sl_seglog_end(s->parts[p].log); }
int64_t sl_sstream_bytes(sl_sstream_t *s, int p) { return sl_seglog_bytes(s->parts[p].log); }

int64_t sl_sstream_read(sl_sstream_t *s, int p, uint64_t from, size_t max_records, size_t max_bytes,
                        int (*cb)(const sl_record_t *r, void *arg), void *arg, char **err) {
  return sl_seglog_read(s->parts[p].log, from, max_records, max_bytes, cb, arg, err);
}

void sl_sstream_watch(sl_sstream_t *s, sl_swatch_t *w) {
  w->next = &s->watchers;
  w->prev = s->watchers.prev;
  s->watchers.prev->next = w;
  s->watchers.prev = w;
}

void sl_sstream_unwatch(sl_sstream_t *s, sl_swatch_t *w) {
  (void)s;
  if (!w->next) return;
  w->prev->next = w->next;
  w->next->prev = w->prev;
  w->next = w->prev = NULL;
}

/* ---------- cursors ---------- */

const char *sl_sstream_cursor_problem(sl_sstream_t *s, const char *kind, const char *name) {
  if (s->cursors_bad || !name) return s->cursors_bad;
  char *key = sl_xasprintf("%s %s", kind, name);
  const char *why = json_string_value(json_object_get(s->bad_cursors, key));
  free(key);
  return why;
}

const uint64_t *sl_sstream_cursor(sl_sstream_t *s, const char *kind, const char *name) {
  json_t *arr = json_object_get(json_object_get(s->cursors, kind), name);
  if (!json_is_array(arr)) return NULL;
  static __thread uint64_t buf[1024];   /* partitions are capped at 1024 */
  for (int p = 0; p < s->c.partitions; p++) {
    json_t *v = json_array_get(arr, (size_t)p);
    buf[p] = v ? (uint64_t)json_integer_value(v) : 0;
  }
  return buf;
}

int sl_sstream_set_cursor(sl_sstream_t *s, const char *kind, const char *name, const uint64_t *next, char **err) {
  const char *bad = sl_sstream_cursor_problem(s, kind, name);
  if (bad) {
    *err = sl_xstrdup(bad);
    return -1;
  }
  json_t *k = json_object_get(s->cursors, kind);
  if (!k) {
    k = json_object();
    json_object_set_new(s->cursors, kind, k);
  }
  json_t *arr = json_array(), *was = json_incref(json_object_get(k, name));
  for (int p = 0; p < s->c.partitions; p++) json_array_append_new(arr, json_integer((json_int_t)next[p]));
  json_object_set_new(k, name, arr);
  int rc = save_json(s->dir, "offsets.json", s->cursors, err);
  /* Not saved: the position is still what the file holds. */
  if (rc != 0 && was) json_object_set(k, name, was);
  else if (rc != 0) json_object_del(k, name);
  json_decref(was);
  return rc;
}

const char **sl_sstream_cursors(sl_sstream_t *s, const char *kind, int *n) {
  json_t *k = json_object_get(s->cursors, kind);
  *n = (int)json_object_size(k);
  const char **v = sl_xmalloc((size_t)(*n ? *n : 1) * sizeof(*v));
  int i = 0;
  const char *key;
  json_t *val;
  json_object_foreach(k, key, val) v[i++] = key;
  return v;
}

uv_loop_t *sl_store_loop(sl_store_t *st) { return st->w->loop; }
sl_worker_t *sl_store_worker(sl_store_t *st) { return st->w; }
uint64_t sl_sstream_id(const sl_sstream_t *s) { return s->id; }
