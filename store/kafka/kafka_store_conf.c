/* `store.backend: kafka`: its fields of the `store:` section (`kafka:`),
 * what lint checks of a config on it (pipelines' `stream` components that
 * ask for what Kafka cannot do), and its registration as a backend (the
 * setup is sl_ks_apply, kafka_store.c). */
#include "kafka_common.h"
#include "kafka_store.h"
#include <string.h>

static const sl_field_t kafka_fields[] = {
  SL_KAFKA_COMMON_FIELDS,
  {"session_timeout", SL_F_DURATION, "30s", 0,
   "Default session timeout of consumer-group members (`session.timeout.ms`, at least the broker's "
   "`group.min.session.timeout.ms`); a member silent this long also has its consumer closed on its node.", NULL, NULL},
  {"request_timeout", SL_F_DURATION, "5s", 0,
   "How long an API call waits for the brokers (metadata, offsets, admin requests) before answering 503, "
   "whether or not librdkafka's call has returned.", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  {"kafka", SL_F_OBJECT, NULL, 0, "The brokers of `backend: kafka`.", NULL, kafka_fields},
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
  if (!sl_cnode_get(node, "kafka"))
    sl_diag_add(d, sl_cnode_get(node, "backend"), "store.kafka", "backend kafka needs store.kafka.addresses");
  else
    sl_ks_apply(NULL, node, 0, d);
  find_stream_components(root, d);
  return (int)(d->n - before);
}

static const sl_store_backend_t kafka_backend = {.name = "kafka", .fields = fields, .check = check, .apply = sl_ks_apply};
SL_REGISTER_STORE_BACKEND(kafka_backend)
