/* Kafka consumer lag as a gauge, from librdkafka's statistics: the stats
 * callback is served by rd_kafka_consumer_poll on the loop (the main queue is
 * forwarded to the consumer's), so nothing waits on a broker round trip.
 * The conf's opaque must be the consuming sl_input_t (its stream and label
 * name the series). */
#ifndef SL_KAFKA_LAG_H
#define SL_KAFKA_LAG_H
#include <librdkafka/rdkafka.h>

/* Sets the stats callback, and statistics.interval.ms to 5s unless the
 * `librdkafka` map set it. */
void sl_kafka_lag_enable(rd_kafka_conf_t *conf);

#endif
