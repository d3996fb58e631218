/* What the `kafka` input offers the `stream` input on store.backend kafka
 * (connectors/stream/kafka_stream_in.c), which is a `kafka` input. */
#ifndef SL_KAFKA_IN_H
#define SL_KAFKA_IN_H
#include "core/component.h"

/* Names a `kafka` input's metadata as the `stream` input does
 * (`stream_partition`, `stream_offset`, `stream_key`, headers), and makes a
 * turn's messages of a partition batches of batch_size at most. */
void sl_kafka_in_stream_meta(sl_input_t *in, int64_t batch_size);

#endif
