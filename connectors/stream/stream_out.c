/* `stream` output: appends each message to a stream of the embedded store;
 * a batch is acknowledged once its records are as durable as the stream's
 * fsync policy promises. With store.backend kafka the records go to the
 * stream's topic through the backend's producer, as REST publishes do. */
#include "core/component.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include "store/embedded/store.h"
#include "store/kafka/kafka_store.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const fsyncs[] = {"default", "always", "interval", "never", NULL};

static const sl_field_t fields[] = {
  {"name", SL_F_STRING, NULL, SL_REQUIRED,
   "The stream's name; interpolated per message (`task-${! this.task_id }`) to spread messages over "
   "streams, each created on first use when `create` is set.", NULL, NULL},
  {"partition_key", SL_F_STRING, "", 0,
   "Interpolated per message (`${! this.user_id }`): records with the same key go to the same partition "
   "(Kafka's murmur2 partitioner) and keep their order; empty: round robin.", NULL, NULL},
  {"event", SL_F_STRING, "", 0, "Interpolated event name of each record; empty: the message's `meta.event`.", NULL, NULL},
  {"create", SL_F_BOOL, "true", 0, "Create the stream at start when it does not exist (with `partitions`).", NULL, NULL},
  {"partitions", SL_F_INT, "0", 0, "Partitions of a created stream (0: `store.partitions`).", SL_BOUNDS("0", "1024"),
   NULL},
  {"retention_hours", SL_F_FLOAT, "-1", 0, "Retention of a created stream (-1: `store.retention_hours`).", NULL, NULL},
  {"fsync", SL_F_ENUM, "default", 0, "Durability of a created stream (`default`: `store.fsync`).", fsyncs, NULL},
  {0}};

typedef struct sout {
  sl_output_t base;
  sl_interp_t *name, *key, *event;
  char *fixed[3];            /* name, key, event when they do not depend on the message */
  int create, partitions, fsync;
  double retention_hours;
  int64_t in_flight;
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
  sl_ks_t *ks;               /* store.backend kafka */
  /* With `create`, a topic is created before its first write (a fixed
   * name's at start); writes naming a topic being created wait in `held`
   * until no creation is left, then run again. */
  struct topic *topics;
  int creating, destroyed;
  struct held *held, **held_tail;
} sout_t;

typedef struct topic {
  struct topic *next;
  sout_t *o;
  char *name;
  int ready;                 /* created, or there already; else being created, or failed (err) */
  char *err;
} topic_t;

typedef struct held {
  struct held *next;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
} held_t;

/* A batch on its way: one publish per stream it touches. */
typedef struct write_req {
  sout_t *o;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  char **texts;              /* 4 per message: stream name, key, event, headers */
  int pending, failed;
  char *err;
} write_req_t;

static const char *const what[3] = {"name", "partition_key", "event"};

/* Field f for message m: the fixed value, or a new string (see owned()). */
static char *eval(sout_t *o, int f, sl_msg_t *m, uint32_t k, char **err) {
  if (o->fixed[f]) return o->fixed[f];
  sl_interp_t *i = f == 0 ? o->name : f == 1 ? o->key : o->event;
  char *e = NULL;
  char *v = sl_interp_eval(i, m, k, NULL, &e);
  if (!v) *err = sl_xasprintf("%s: %s", what[f], e ? e : "evaluation failed");
  free(e);
  return v;
}

static char empty[] = "";

/* Texts of a write that are the write's to free (not fixed, not borrowed). */
static void free_texts(sout_t *o, char **t, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (t[i] && t[i] != empty && t[i] != o->fixed[0] && t[i] != o->fixed[1] && t[i] != o->fixed[2]) free(t[i]);
  free(t);
}

/* The stream named `name`, created with the output's settings when allowed.
 * NULL with *err. */
static sl_sstream_t *target(sout_t *o, const char *name, char **err) {
  sl_store_t *st = sl_store_of(o->base.worker);
  if (!st) {
    *err = sl_xstrdup("the store could not open its data_dir");
    return NULL;
  }
  sl_sstream_t *s = sl_store_find(st, name);
  const char *bad = s ? NULL : sl_store_broken(st, name);
  if (s || bad || !o->create) {
    if (bad) *err = sl_xasprintf("stream %s cannot be opened: %s", name, bad);
    else if (!s) *err = sl_xasprintf("no stream named %s", name);
    return s;
  }
  sl_sconf_t c = sl_store_defaults(st);
  if (o->partitions > 0) c.partitions = o->partitions;
  if (o->retention_hours >= 0) c.retention_hours = o->retention_hours;
  if (o->fsync >= 0) c.fsync = (sl_fsync_t)o->fsync;
  int status = sl_store_create(st, name, &c, &s, err);
  if (status >= 300 && status != 409) return NULL;
  free(*err);
  *err = NULL;
  return s;
}

static void sout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg);

static void maybe_closed(sout_t *o) {
  if (o->in_flight || o->creating || !o->closed) return;
  void (*done)(sl_output_t *, void *) = o->closed;
  o->closed = NULL;
  done(&o->base, o->closed_arg);
}

static void sout_free(sout_t *o);

static topic_t *topic_find(sout_t *o, const char *name) {
  for (topic_t *t = o->topics; t; t = t->next)
    if (!strcmp(t->name, name)) return t;
  return NULL;
}

/* The last creation ended: held writes run again (those naming a topic that
 * failed fail with its error), then failed topics are forgotten, so the
 * stream's retry of those writes creates them again. */
static void creations_done(sout_t *o) {
  held_t *h = o->held;
  o->held = NULL;
  o->held_tail = &o->held;
  while (h) {
    held_t *next = h->next;
    if (o->destroyed) sl_batch_free(h->b);
    else sout_write(&o->base, h->b, h->cb, h->arg);
    free(h);
    h = next;
  }
  const char *why = NULL;
  for (topic_t **pt = &o->topics, *t; (t = *pt);) {
    if (t->ready) {
      pt = &t->next;
      continue;
    }
    if (!why && !o->destroyed) sl_output_set_connected(&o->base, 0, why = t->err);
    *pt = t->next;
    free(t->name);
    free(t->err);
    free(t);
  }
  if (!why && !o->destroyed) sl_output_set_connected(&o->base, 1, NULL);
}

static void topic_created(void *arg, int status, const char *err) {
  topic_t *t = arg;
  sout_t *o = t->o;
  /* 409: there with other settings, as with the embedded store */
  t->ready = !status || status == 409;
  if (!t->ready) t->err = sl_xasprintf("stream %s not created: %s", t->name, err ? err : "");
  if (--o->creating) return;
  creations_done(o);
  if (o->destroyed) sout_free(o);
  else maybe_closed(o);
}

static void create_topic(sout_t *o, const char *name) {
  topic_t *t = sl_xcalloc(1, sizeof(*t));
  *t = (topic_t){o->topics, o, sl_xstrdup(name), 0, NULL};
  o->topics = t;
  if (o->creating++ == 0) sl_output_set_connected(&o->base, 0, "creating the stream's topic");
  sl_ks_create_topic(o->ks, name, o->partitions, o->retention_hours, topic_created, t);
}

/* 1: the write must wait for topics being created (it is held), -1: one
 * of them failed (*err), 0: go on. */
static int wait_for_topics(sout_t *o, char *const *texts, uint32_t n, char **err) {
  for (uint32_t i = 0; o->ks && i < n; i++)
    if (!sl_store_valid_name(texts[4 * i])) {
      *err = sl_xasprintf("%s is not a stream name (1-200 letters, digits, '.', '_' or '-')", texts[4 * i]);
      return -1;
    }
  if (!o->ks || !o->create) return 0;
  for (uint32_t i = 0; i < n; i++) {
    topic_t *t = topic_find(o, texts[4 * i]);
    if (!t) create_topic(o, texts[4 * i]);
    else if (t->err) {
      *err = sl_xstrdup(t->err);
      return -1;
    }
  }
  for (uint32_t i = 0; i < n; i++)
    if (!topic_find(o, texts[4 * i])->ready) return 1;
  return 0;
}

/* A fixed name is checked (and its stream created) at start. */
static int sout_start(sl_output_t *out) {
  sout_t *o = (sout_t *)out;
  if (!o->fixed[0]) return 0;
  if (o->ks) {
    if (o->create) create_topic(o, o->fixed[0]);
    return 0;
  }
  char *err = NULL;
  sl_sstream_t *s = target(o, o->fixed[0], &err);
  if (!s) sl_logf(SL_LOG_ERROR, out->stream ? out->stream->name : NULL, out->label, "stream %s: %s", o->fixed[0], err);
  free(err);
  return s ? 0 : -1;
}

static void written(void *arg, int status, const char *err, const int *parts, const uint64_t *offs, size_t n) {
  (void)parts;
  (void)offs;
  (void)n;
  write_req_t *w = arg;
  if (status != 0 && !w->failed) {
    w->failed = 1;
    w->err = sl_xstrdup(err ? err : "not stored");
  }
  if (--w->pending > 0) return;
  sout_t *o = w->o;
  free_texts(o, w->texts, 4 * (size_t)w->b->n);
  w->cb(&o->base, w->b, w->failed ? -1 : 0, w->err, w->arg);
  free(w->err);
  free(w);
  o->in_flight--;
  maybe_closed(o);
}

static void sout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sout_t *o = (sout_t *)out;
  write_req_t *w = sl_xcalloc(1, sizeof(*w));
  *w = (write_req_t){o, b, cb, arg, sl_xcalloc((size_t)b->n * 4 + 1, sizeof(char *)), 0, 0, NULL};
  sl_pub_t *recs = sl_xcalloc(b->n ? b->n : 1, sizeof(*recs));
  char *err = NULL;
  for (uint32_t i = 0; i < b->n && !err; i++) {
    sl_msg_t *m = b->msgs[i];
    char *name = eval(o, 0, m, i, &err);
    char *key = name ? eval(o, 1, m, i, &err) : NULL;
    char *ev = key ? eval(o, 2, m, i, &err) : NULL;
    w->texts[4 * i] = name;
    w->texts[4 * i + 1] = key;
    w->texts[4 * i + 2] = ev;
    if (err) break;
    const char *event = *ev ? ev : sl_kv_get(&m->meta, "event");
    /* Metadata travels as the record's headers, and comes back as metadata
     * through the `stream` input. */
    char *hs = empty;
    sl_kv_load(&m->meta);
    if (m->meta.n) {
      json_t *h = json_object();
      for (uint32_t k = 0; k < m->meta.n; k++)
        json_object_set_new(h, m->meta.v[k].key, sl_json_header_value(m->meta.v[k].val, m->meta.v[k].vlen));
      hs = json_dumps(h, JSON_COMPACT);
      json_decref(h);
    }
    w->texts[4 * i + 3] = hs;
    recs[i] = (sl_pub_t){key, strlen(key), event, event ? strlen(event) : 0, hs, strlen(hs),
                         m->content->data, m->content->len, 0};
  }
  if (!err && wait_for_topics(o, w->texts, b->n, &err) > 0) {
    free_texts(o, w->texts, 4 * (size_t)b->n);
    free(w);
    free(recs);
    held_t *h = sl_xmalloc(sizeof(*h));
    *h = (held_t){NULL, b, cb, arg};
    *o->held_tail = h;
    o->held_tail = &h->next;
    return;
  }
  /* The streams of the batch, each published once with its messages in order. */
  sl_sstream_t **dest = sl_xcalloc(b->n ? b->n : 1, sizeof(*dest));
  for (uint32_t i = 0; i < b->n && !err && !o->ks; i++) {   /* Kafka: topics by name */
    uint32_t j = 0;
    while (j < i && strcmp(w->texts[4 * j], w->texts[4 * i]) != 0) j++;
    dest[i] = j < i ? dest[j] : target(o, w->texts[4 * i], &err);
    if (!err && sl_sstream_deleted(dest[i])) err = sl_xasprintf("stream %s was deleted", w->texts[4 * i]);
  }
  if (err) {
    free_texts(o, w->texts, 4 * (size_t)b->n);
    free(w);
    free(recs);
    free(dest);
    cb(out, b, -1, err, arg);
    free(err);
    return;
  }
  sl_pub_t *group = sl_xcalloc(b->n ? b->n : 1, sizeof(*group));
  o->in_flight++;
  w->pending = 1;   /* held until every publish is under way */
  char *sent = sl_xcalloc(b->n ? b->n : 1, 1);
  for (uint32_t i = 0; i < b->n; i++) {
    if (sent[i]) continue;
    size_t n = 0;
    for (uint32_t k = i; k < b->n; k++)
      if (!sent[k] && !strcmp(w->texts[4 * k], w->texts[4 * i])) {
        group[n++] = recs[k];
        sent[k] = 1;
      }
    w->pending++;
    if (o->ks) sl_ks_publish(o->ks, w->texts[4 * i], group, n, written, w);
    else sl_sstream_publish(dest[i], group, n, written, w);
  }
  free(sent);
  free(group);
  free(recs);
  free(dest);
  written(w, 0, NULL, NULL, NULL, 0);
}

static void sout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  sout_t *o = (sout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  maybe_closed(o);
}

static void sout_free(sout_t *o) {
  for (topic_t *t = o->topics, *next; t; t = next) {
    next = t->next;
    free(t->name);
    free(t->err);
    free(t);
  }
  for (int f = 0; f < 3; f++) free(o->fixed[f]);
  free(o);
}

/* While its topic is being created the output is freed by topic_created. */
static void sout_destroy(sl_output_t *out) {
  sout_t *o = (sout_t *)out;
  sl_interp_free(o->name);
  sl_interp_free(o->key);
  sl_interp_free(o->event);
  o->name = o->key = o->event = NULL;
  o->destroyed = 1;
  if (!o->creating) sout_free(o);
}

static const sl_output_vt vt = {sout_start, sout_write, sout_close, sout_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *sout_create(sl_build_t *b, const sl_cnode_t *conf) {
  sout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->ks = b->worker ? b->worker->slot[SL_SLOT_KSTORE] : NULL;
  o->held_tail = &o->held;
  o->name = sl_lua_interp_field(b->worker, conf, b->diags, "name");
  o->create = sl_conf_bool(conf, "create", 1);
  o->partitions = (int)sl_conf_int(conf, "partitions", 0);
  o->retention_hours = sl_conf_float(conf, "retention_hours", -1);
  const char *f = sl_conf_str(conf, "fsync", "default");
  o->fsync = sl_fsync_parse(f);   /* -1: `default` */
  o->key = sl_lua_interp_field(b->worker, conf, b->diags, "partition_key");
  o->event = sl_lua_interp_field(b->worker, conf, b->diags, "event");
  const char *fixed = sl_conf_str(conf, "name", "");
  int bad_name = !strstr(fixed, "${!") && !sl_store_valid_name(fixed);
  if (bad_name)
    sl_diag_add(b->diags, sl_cnode_get(conf, "name"), "name",
                "stream names are 1-200 letters, digits, '.', '_' or '-', not starting with '.'");
  if (!o->name || !o->key || !o->event || bad_name) {
    sout_destroy(&o->base);
    return NULL;
  }
  sl_interp_t *ip[3] = {o->name, o->key, o->event};
  for (int f = 0; f < 3; f++)
    if (sl_interp_is_static(ip[f])) {
      char *e = NULL;
      o->fixed[f] = sl_interp_eval(ip[f], NULL, 0, NULL, &e);
      free(e);
    }
  return o;
}

static const sl_spec_t spec = {
  .name = "stream",
  .kind = SL_KIND_OUTPUT,
  .summary = "Appends messages to a durable stream (embedded store or Kafka topic).",
  .desc =
    "Each message becomes a record: its content is the value, its metadata the headers, "
    "`partition_key` and `event` are evaluated per message. A batch is acknowledged after "
    "its records are written and, for a stream with `fsync: always`, fsynced (concurrent "
    "batches share one fsync). The store's settings are in the `store:` section. With "
    "`store.backend: kafka` records go to the stream's topic as REST publishes do (acknowledged "
    "from the delivery reports); with `create` each topic is created before its first write "
    "(a fixed `name` at start), and `fsync` is refused.",
  .fields = fields,
  .example =
    "output:\n"
    "  stream:\n"
    "    name: jobs\n"
    "    partition_key: '${! this.user_id }'\n",
  .create = sout_create,
};
SL_REGISTER(spec)
