/* The `store:` section: which backend serves streams (the embedded event
 * store, or Kafka for several stateless nodes), where the embedded store
 * keeps its files, the defaults of new streams, and whether the
 * REST/SSE/WebSocket API is served. */
#include "store_access.h"
#include "store_api.h"
#include "core/section.h"
#include "store/kafka/kafka_common.h"
#include <string.h>

static const char *const backend_names[] = {"embedded", "kafka", NULL};

static const sl_field_t kafka_fields[] = {
  SL_KAFKA_COMMON_FIELDS,
  {"session_timeout", SL_F_DURATION, "30s", 0,
   "Default session timeout of consumer-group members (`session.timeout.ms`, at least the broker's "
   "`group.min.session.timeout.ms`); a member silent this long also has its consumer closed on its node.", NULL, NULL},
  {"request_timeout", SL_F_DURATION, "5s", 0,
   "How long an API call waits for the brokers (metadata, admin requests) before answering 503.", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  {"backend", SL_F_ENUM, "embedded", 0,
   "`embedded`: streams are files under `data_dir`, served by this node alone. `kafka`: streams are Kafka topics "
   "(see `kafka`), so any number of sluice nodes serve the same streams (docs/streams-api.md, \"Kafka backend\").",
   backend_names, NULL},
  {"kafka", SL_F_OBJECT, NULL, 0, "The brokers of `backend: kafka`.", NULL, kafka_fields},
  {"data_dir", SL_F_STRING, "./data", 0, "Directory of the streams' files (relative to the working directory).", NULL, NULL},
  {"api", SL_F_BOOL, "true", 0,
   "Serve the streams API under `/stream/` on the HTTP server (see docs/streams-api.md).", NULL, NULL},
  {"access", SL_F_OBJECT, NULL, 0,
   "Who may do what on the streams API, once `http.auth` says who asks: scopes per user or JWT claim, and the "
   "streams and consumer names of users who are not admins (docs/security.md). Without `http.auth` the API is "
   "open to whoever reaches it; with it and no `access`, authenticated users read and publish to every stream "
   "and only admins (`http.auth.admin`) create and delete streams.", NULL, sl_store_access_fields},
  {"partitions", SL_F_INT, "1", 0, "Partitions of a stream created without saying.", SL_BOUNDS("1", "1024"), NULL},
  {"fsync", SL_F_ENUM, "interval", 0,
   "Default durability: `always` answers a publish after its records are fsynced (concurrent publishes "
   "share one fsync); `interval` answers at once and fsyncs every `fsync_interval`; `never` leaves it "
   "to the OS.", sl_fsync_names, NULL},
  {"fsync_interval", SL_F_DURATION, "50ms", 0, "Period of `interval` fsyncs.", NULL, NULL},
  {"segment_bytes", SL_F_SIZE, "64MiB", 0, "Segment files roll at this size.", NULL, NULL},
  {"segment_age", SL_F_DURATION, "0", 0, "Segment files also roll when their first record is this old (0: never).", NULL, NULL},
  {"retention_hours", SL_F_FLOAT, "168", 0, "Closed segments whose newest record is older are deleted (0: keep).", NULL, NULL},
  {"retention_bytes", SL_F_SIZE, "0", 0, "Per partition: oldest closed segments are deleted beyond this size (0: no limit).", NULL, NULL},
  {"retention_check", SL_F_DURATION, "10s", SL_ADVANCED, "How often retention is applied.", NULL, NULL},
  {0}};

/* What a pipeline's `stream` input or output (body c) cannot do on Kafka:
 * the name of the offending field and why, or NULL. */
static const char *kafka_unsupported(const sl_cnode_t *c, int input, const char **why) {
  if (!input) {
    *why = "fsync is not a stream setting with store.backend kafka: durability is the brokers' replication "
           "(acks=all, min.insync.replicas)";
    return strcmp(sl_conf_str(c, "fsync", "default"), "default") ? "fsync" : NULL;
  }
  if (*sl_conf_str(c, "subscriber", "")) {
    *why = "a pipeline reads a stream as a consumer group with store.backend kafka (its `group`); subscribers "
           "are served by the streams API";
    return "subscriber";
  }
  if (sl_conf_bool(c, "until_end", 0)) {
    *why = "until_end needs store.backend embedded";
    return "until_end";
  }
  const char *st = sl_conf_str(c, "start", "earliest");
  if (strcmp(st, "earliest") && strcmp(st, "latest")) {
    *why = "start is earliest or latest with store.backend kafka (a group without committed offsets)";
    return "start";
  }
  return NULL;
}

static void check_stream_component(const sl_cnode_t *w, int input, sl_diags_t *d) {
  const sl_cnode_t *c = w && w->type == SL_CN_MAP ? sl_cnode_get(w, "stream") : NULL;
  const char *why = NULL, *field = c && c->type == SL_CN_MAP ? kafka_unsupported(c, input, &why) : NULL;
  if (field) sl_diag_add(d, sl_cnode_get(c, field), field, "%s", why);
}

/* Pipelines' `stream` inputs and outputs, wherever they are nested. */
static void find_stream_components(const sl_cnode_t *n, sl_diags_t *d) {
  if (!n || n->type == SL_CN_SCALAR) return;
  for (uint32_t i = 0; i < n->n; i++) {
    const sl_cnode_t *c = n->items[i];
    const char *k = n->type == SL_CN_MAP ? n->keys[i] : "";
    if (!strcmp(k, "input") || !strcmp(k, "output")) check_stream_component(c, k[0] == 'i', d);
    int list = !strcmp(k, "inputs") || !strcmp(k, "outputs") || !strcmp(k, "fallback");
    for (uint32_t j = 0; list && c->type == SL_CN_SEQ && j < c->n; j++) check_stream_component(c->items[j], k[0] == 'i', d);
    find_stream_components(c, d);
  }
}

static int check(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  uint32_t before = d->n;
  sl_store_access_lint(sl_cnode_get(node, "access"), root, d);
  const char *b = sl_conf_str(node, "backend", "embedded");
  if (!strcmp(b, "embedded")) return (int)(d->n - before);
  if (!sl_cnode_get(node, "kafka"))
    sl_diag_add(d, sl_cnode_get(node, "backend"), "store.kafka", "backend kafka needs store.kafka.addresses");
  else
    sl_store_backend_find(b)->apply(NULL, node, 0, d);
  find_stream_components(root, d);
  return (int)(d->n - before);
}

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  if (!node) return 0;
  const char *b = sl_conf_str(node, "backend", "embedded");
  if (strcmp(b, "embedded") != 0) return sl_store_backend_find(b)->apply(w, node, sl_conf_bool(node, "api", 1), d);
  sl_sconf_t c = {
    .partitions = (int)sl_conf_int(node, "partitions", 1),   /* validated: within bounds */
    .retention_hours = sl_conf_float(node, "retention_hours", 168),
    .retention_bytes = sl_conf_size(node, "retention_bytes", 0),
    .fsync = (sl_fsync_t)sl_fsync_parse(sl_conf_str(node, "fsync", "interval")),   /* validated: one of them */
    .segment_bytes = sl_conf_size(node, "segment_bytes", 64 << 20),
    .segment_age_ms = sl_conf_duration_ms(node, "segment_age", 0),
  };
  sl_store_configure(w, sl_conf_str(node, "data_dir", "./data"), &c, sl_conf_duration_ms(node, "fsync_interval", 50),
                     sl_conf_duration_ms(node, "retention_check", 10000));
  /* Opened now, not at the first request: what it finds damaged is
   * reported (log, /ready) from the start. */
  sl_store_of(w);
  if (sl_conf_bool(node, "api", 1)) return sl_store_api_route(w, d, node, NULL, NULL);
  return 0;
}

static const sl_section_t store_section = {
  .name = "store",
  .desc = "Durable partitioned streams with offsets, consumer groups, retention and replay, served over REST, SSE "
          "and WebSocket under `/stream/`: kept by the embedded event store (files under `data_dir`, also used by "
          "pipelines through the `stream` input and output), or in Kafka topics with `backend: kafka` (any number of "
          "nodes serve the same streams; `data_dir`, `fsync*`, `segment_*` and `retention_*` are the embedded "
          "store's).",
  .fields = fields,
  .apply = apply,
  .check = check,
};
SL_REGISTER_SECTION(store_section)
