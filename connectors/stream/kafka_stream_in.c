/* A pipeline's `stream` input on `store.backend: kafka`: the `kafka` input
 * on the stream's topic, as a member of the same Kafka group that the
 * streams API's group `{group}` is, so that REST consumers, other nodes'
 * pipelines and this one share the group's partitions and offsets. */
#include "kafka_stream_in.h"
#include "connectors/kafka/kafka_in.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>

static void set(sl_cnode_t *map, const char *key, const char *val, const sl_cnode_t *at) {
  sl_cnode_map_set(map, key, sl_cnode_scalar(val, at));
}

sl_input_t *sl_ks_stream_input(sl_ks_t *ks, sl_build_t *b, const sl_cnode_t *at, const char *name,
                               const char *group, const char *start, int64_t batch_size, int64_t commit_ms) {
  const sl_spec_t *kafka = sl_registry_find(SL_KIND_INPUT, "kafka");
  sl_cnode_t *c = sl_cnode_new(SL_CN_MAP, at);
  sl_cnode_map_set(c, "addresses", sl_cnode_dup(sl_cnode_get(ks->kconf, "addresses")));
  const sl_cnode_t *props = sl_cnode_get(ks->kconf, "librdkafka");
  sl_cnode_t *lib = props && props->type == SL_CN_MAP ? sl_cnode_dup(props) : sl_cnode_new(SL_CN_MAP, at);
  char num[32];
  if (!sl_cnode_get(lib, "session.timeout.ms")) {
    snprintf(num, sizeof num, "%lld", (long long)ks->session_ms);
    set(lib, "session.timeout.ms", num, at);
  }
  sl_cnode_map_set(c, "librdkafka", lib);
  sl_cnode_t *topics = sl_cnode_new(SL_CN_SEQ, at);
  sl_cnode_seq_push(topics, sl_cnode_scalar(name, at));
  sl_cnode_map_set(c, "topics", topics);
  set(c, "consumer_group", group, at);
  set(c, "start_offset", start, at);
  snprintf(num, sizeof num, "%lldms", (long long)commit_ms);
  set(c, "commit_period", num, at);
  sl_input_t *in = kafka->create(b, c);
  sl_cnode_free(c);
  if (in) sl_kafka_in_stream_meta(in, batch_size);
  return in;
}
