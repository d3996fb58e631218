/* The span exporter: ended spans wait in a bounded queue and are POSTed in
 * batches as OTLP/HTTP JSON to {endpoint}/v1/traces every flush interval (or
 * as soon as a batch is full), off the message path; what does not fit is
 * dropped and counted (sluice_tracer_spans_dropped_total).
 * Ownership: exporters are process-wide, started by the `tracer:` section
 * or a stream's `tracer:`; the last spans are sent by sl_obs_shutdown, then
 * their handles close. */
#ifndef SL_TRACE_EXPORT_H
#define SL_TRACE_EXPORT_H
#include "core/trace.h"
#include <uv.h>

typedef struct sl_trace_export_opts {
  const char *endpoint, *service;
  double ratio;              /* sample_ratio of the traces its streams start */
  const char *const *tags;   /* key, value, ..., NULL: resource attributes */
  int64_t flush_ms, max_queue, batch;
} sl_trace_export_opts_t;

/* Exports the spans of stream (a stream's own `tracer:`), or of every
 * stream without one (NULL: the top-level section); replaces an earlier
 * exporter of the same. */
void sl_trace_export_start(uv_loop_t *loop, const sl_trace_export_opts_t *o, const char *stream);
/* Sends what that exporter holds and closes it. */
void sl_trace_export_remove(const char *stream);
/* Sends what every exporter holds and closes them. */
void sl_trace_export_stop(void);

#endif
