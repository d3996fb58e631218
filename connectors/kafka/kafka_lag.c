#include "kafka_lag.h"
#include "core/component.h"
#include "core/metrics.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* {"topics": {T: {"partitions": {"0": {"consumer_lag": N}, "-1": ...}}}};
 * -1 is librdkafka's "unknown" (nothing fetched or committed yet). */
static int on_stats(rd_kafka_t *rk, char *text, size_t len, void *opaque) {
  (void)rk;
  const sl_input_t *in = opaque;
  json_t *j = json_loadb(text, len, 0, NULL);
  const char *topic, *part;
  json_t *t, *p;
  char *stream = in->stream ? sl_xstrndup(in->stream->name, strcspn(in->stream->name, "{")) : sl_xstrdup("");
  json_object_foreach(json_object_get(j, "topics"), topic, t) {
    json_object_foreach(json_object_get(t, "partitions"), part, p) {
      json_t *lag = json_object_get(p, "consumer_lag");
      if (!strcmp(part, "-1") || !json_is_integer(lag) || json_integer_value(lag) < 0) continue;
      *sl_metric(SL_GAUGE, "sluice_kafka_consumer_lag",
                 "Messages of a partition the kafka input has not committed yet (librdkafka's consumer_lag).",
                 "stream", stream, "label", in->label, "topic", topic, "partition", part, NULL) =
        (int64_t)json_integer_value(lag);
    }
  }
  free(stream);
  json_decref(j);
  return 0;   /* librdkafka frees text */
}

void sl_kafka_lag_enable(rd_kafka_conf_t *conf) {
  char v[32];
  size_t n = sizeof v;
  if (rd_kafka_conf_get(conf, "statistics.interval.ms", v, &n) == RD_KAFKA_CONF_OK && !strcmp(v, "0"))
    rd_kafka_conf_set(conf, "statistics.interval.ms", "5000", NULL, 0);
  rd_kafka_conf_set_stats_cb(conf, on_stats);
}
