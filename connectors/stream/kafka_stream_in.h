/* The `stream` input on `store.backend: kafka` (kafka_stream_in.c), which
 * stream_in.c builds instead of reading the embedded store. */
#ifndef SL_KAFKA_STREAM_IN_H
#define SL_KAFKA_STREAM_IN_H
#include "core/component.h"
#include "store/kafka/kafka_store.h"

/* A `stream` input of a pipeline on this backend: a `kafka` input of
 * group `group` on topic `name`, naming metadata as the embedded one does.
 * The caller owns the input (NULL with diags). */
sl_input_t *sl_ks_stream_input(sl_ks_t *ks, sl_build_t *b, const sl_cnode_t *at, const char *name,
                               const char *group, const char *start, int64_t batch_size, int64_t commit_ms);

#endif
