/* What the `kafka` input and output (connectors/kafka/) and the Kafka
 * backend of the store share: their librdkafka configuration
 * (`addresses` plus any librdkafka property, checked by librdkafka itself
 * at load), and a librdkafka queue woken into the worker's loop through
 * rd_kafka_queue_io_event_enable and a uv_poll on a pipe, so that no thread
 * blocks the loop and nothing polls on a timer.
 * Ownership: the component owns both; sl_kafka_wake_close takes the wake's
 * memory (freed after its handle closes). */
#ifndef SL_KAFKA_COMMON_H
#define SL_KAFKA_COMMON_H
#include "core/component.h"
#include <librdkafka/rdkafka.h>

#define SL_KAFKA_COMMON_FIELDS                                                                          \
  {"addresses", SL_F_STRLIST, NULL, SL_REQUIRED,                                                         \
   "Brokers to bootstrap from (`host:port`; a comma list in one item works too).", NULL, NULL},         \
  {"librdkafka", SL_F_MAP, NULL, 0,                                                                      \
   "Any librdkafka property (`security.protocol`, `sasl.*`, `ssl.*`, `compression.type`, ...), "         \
   "checked at load with librdkafka's own error text; these win over the fields above.", NULL, NULL}

/* A librdkafka configuration from conf: bootstrap.servers from `addresses`,
 * then `defaults` (NULL-terminated key, value pairs set by the component),
 * then the `librdkafka` map. NULL with diags on a bad property. */
rd_kafka_conf_t *sl_kafka_conf(sl_build_t *b, const sl_cnode_t *conf, const char *const *defaults);

/* librdkafka's log callback (served on the loop: log.queue is set). */
void sl_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *msg);

/* rd_kafka_produceva's error as a code (the error is freed): produceva
 * instead of the variadic producev, which a library loaded on first use
 * cannot forward (core/lazylib.h). */
rd_kafka_resp_err_t sl_kafka_produce(rd_kafka_t *rk, const rd_kafka_vu_t *vus, size_t n);

/* Destroys a consumer whose group was left or given up (no close:
 * rd_kafka_destroy_flags' NO_CONSUMER_CLOSE), then calls done(arg) if done
 * is set, on a thread of its own (here if none starts): rd_kafka_destroy
 * joins librdkafka's threads, which wait out librdkafka's timeouts for
 * whatever a gone broker left unanswered. sl_kafka_exit waits for them. */
void sl_kafka_destroy_later(rd_kafka_t *rk, void (*done)(void *arg), void *arg);
/* The main thread, at the process's end: waits (bounded, core/detached.h) for
 * sl_kafka_destroy_later's threads, which over TLS still free OpenSSL
 * objects (issue 16). */
void sl_kafka_exit(void);

typedef struct sl_kafka_wake sl_kafka_wake_t;
/* Calls cb(arg) on the loop whenever q turns non-empty. NULL on failure. */
sl_kafka_wake_t *sl_kafka_wake_new(uv_loop_t *loop, rd_kafka_queue_t *q, void (*cb)(void *arg), void *arg);
/* Stops waking: q is told to stop signalling first. */
void sl_kafka_wake_close(sl_kafka_wake_t *w, rd_kafka_queue_t *q);

#endif
