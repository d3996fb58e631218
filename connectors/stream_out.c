/* `stream` output: appends each message to a stream of the embedded store;
 * a batch is acknowledged once its records are as durable as the stream's
 * fsync policy promises. */
#include "../core/component.h"
#include "../core/log.h"
#include "../core/stream.h"
#include "../core/store.h"
#include "../core/xalloc.h"
#include "../lua/lhost.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  {"name", SL_F_STRING, NULL, SL_REQUIRED, "The stream's name.", NULL, NULL},
  {"partition_key", SL_F_STRING, "", 0,
   "Interpolated per message (`${! this.user_id }`): records with the same key go to the same partition "
   "(Kafka's murmur2 partitioner) and keep their order; empty: round robin.", NULL, NULL},
  {"event", SL_F_STRING, "${! meta.event or \"\" }", 0, "Interpolated event name of each record.", NULL, NULL},
  {"create", SL_F_BOOL, "true", 0, "Create the stream at start when it does not exist (with `partitions`).", NULL, NULL},
  {"partitions", SL_F_INT, "0", 0, "Partitions of a created stream (0: `store.partitions`).", NULL, NULL},
  {0}};

typedef struct sout {
  sl_output_t base;
  char *name;
  sl_interp_t *key, *event;
  int create, partitions;
  sl_sstream_t *s;
  int64_t in_flight;
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
} sout_t;

typedef struct write_req {
  sout_t *o;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  char **texts;
} write_req_t;

static int sout_start(sl_output_t *out) {
  sout_t *o = (sout_t *)out;
  sl_store_t *st = sl_store_of(out->worker);
  if (!st) return -1;
  o->s = sl_store_find(st, o->name);
  if (o->s || !o->create) {
    if (!o->s) sl_logf(SL_LOG_ERROR, out->stream ? out->stream->name : NULL, out->label, "no stream named %s", o->name);
    return o->s ? 0 : -1;
  }
  sl_sconf_t c = sl_store_defaults(st);
  if (o->partitions > 0) c.partitions = o->partitions;
  char *err = NULL;
  int status = sl_store_create(st, o->name, &c, &o->s, &err);
  if (status >= 300 && status != 409) {
    sl_logf(SL_LOG_ERROR, out->stream ? out->stream->name : NULL, out->label, "stream %s: %s", o->name, err);
    free(err);
    return -1;
  }
  free(err);
  return 0;
}

static void written(void *arg, int status, const char *err, const int *parts, const uint64_t *offs, size_t n) {
  (void)parts;
  (void)offs;
  write_req_t *w = arg;
  sout_t *o = w->o;
  (void)n;
  for (size_t i = 0; i < 3 * (size_t)w->b->n; i++) free(w->texts[i]);
  free(w->texts);
  w->cb(&o->base, w->b, status, err, w->arg);
  free(w);
  if (--o->in_flight == 0 && o->closed) o->closed(&o->base, o->closed_arg);
}

static char *eval(sl_interp_t *i, sl_msg_t *m, uint32_t k, const char *what, char **err) {
  char *e = NULL;
  char *v = sl_interp_eval(i, m, k, NULL, &e);
  if (!v) *err = sl_xasprintf("%s: %s", what, e ? e : "evaluation failed");
  free(e);
  return v;
}

static void sout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sout_t *o = (sout_t *)out;
  if (!o->s || sl_sstream_deleted(o->s)) {
    o->s = o->s ? sl_store_find(sl_store_of(out->worker), o->name) : NULL;
    if (!o->s) {
      cb(out, b, -1, "the stream does not exist", arg);
      return;
    }
  }
  write_req_t *w = sl_xcalloc(1, sizeof(*w));
  *w = (write_req_t){o, b, cb, arg, sl_xcalloc((size_t)b->n * 3 + 1, sizeof(char *))};
  sl_pub_t *recs = sl_xcalloc(b->n ? b->n : 1, sizeof(*recs));
  char *err = NULL;
  for (uint32_t i = 0; i < b->n && !err; i++) {
    sl_msg_t *m = b->msgs[i];
    char *key = eval(o->key, m, i, "partition_key", &err);
    char *ev = key ? eval(o->event, m, i, "event", &err) : NULL;
    /* Metadata travels as the record's headers, and comes back as metadata
     * through the `stream` input. */
    json_t *h = json_object();
    for (uint32_t k = 0; k < m->meta.n; k++)
      json_object_set_new(h, m->meta.v[k].key, json_stringn_nocheck(m->meta.v[k].val, m->meta.v[k].vlen));
    char *hs = m->meta.n ? json_dumps(h, JSON_COMPACT) : sl_xstrdup("");
    json_decref(h);
    w->texts[3 * i] = key;
    w->texts[3 * i + 1] = ev;
    w->texts[3 * i + 2] = hs;
    recs[i] = (sl_pub_t){key, key ? strlen(key) : 0, ev, ev ? strlen(ev) : 0, hs, strlen(hs),
                         m->content->data, m->content->len, 0};
  }
  if (err) {
    for (uint32_t i = 0; i < 3 * b->n; i++) free(w->texts[i]);
    free(w->texts);
    free(w);
    free(recs);
    cb(out, b, -1, err, arg);
    free(err);
    return;
  }
  o->in_flight++;
  sl_sstream_publish(o->s, recs, b->n, written, w);
  free(recs);
}

static void sout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  sout_t *o = (sout_t *)out;
  if (o->in_flight == 0) {
    done(out, arg);
    return;
  }
  o->closed = done;
  o->closed_arg = arg;
}

static void sout_destroy(sl_output_t *out) {
  sout_t *o = (sout_t *)out;
  sl_interp_free(o->key);
  sl_interp_free(o->event);
  free(o->name);
  free(o);
}

static const sl_output_vt vt = {sout_start, sout_write, sout_close, sout_destroy};
static const sl_spec_t spec;

static void *sout_create(sl_build_t *b, const sl_cnode_t *conf) {
  sout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->name = sl_xstrdup(sl_conf_str(conf, "name", ""));
  o->create = sl_conf_bool(conf, "create", 1);
  o->partitions = (int)sl_conf_int(conf, "partitions", 0);
  o->key = sl_lua_interp_field(b->worker, conf, b->diags, "partition_key");
  o->event = sl_lua_interp_field(b->worker, conf, b->diags, "event");
  if (!sl_store_valid_name(o->name))
    sl_diag_add(b->diags, sl_cnode_get(conf, "name"), "name",
                "stream names are 1-200 letters, digits, '.', '_' or '-', not starting with '.'");
  if (!o->key || !o->event || !sl_store_valid_name(o->name) || o->partitions < 0 || o->partitions > 1024) {
    sout_destroy(&o->base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "stream",
  .kind = SL_KIND_OUTPUT,
  .summary = "Appends messages to a durable stream of the embedded store.",
  .desc =
    "Each message becomes a record: its content is the value, its metadata the headers, "
    "`partition_key` and `event` are evaluated per message. A batch is acknowledged after "
    "its records are written and, for a stream with `fsync: always`, fsynced (concurrent "
    "batches share one fsync). The store's settings are in the `store:` section.",
  .fields = fields,
  .example =
    "output:\n"
    "  stream:\n"
    "    name: jobs\n"
    "    partition_key: '${! this.user_id }'\n",
  .create = sout_create,
};
SL_REGISTER(spec)
