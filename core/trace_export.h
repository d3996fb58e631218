/* The span exporter: ended spans wait in a bounded queue and are POSTed in
 * batches as OTLP/HTTP JSON to {endpoint}/v1/traces every flush interval (or
 * as soon as a batch is full), off the message path; what does not fit is
 * dropped and counted (sluice_tracer_spans_dropped_total).
 * Ownership: process-wide, started by the `tracer:` section; the last spans
 * are sent by sl_obs_shutdown, then its handles close. */
#ifndef SL_TRACE_EXPORT_H
#define SL_TRACE_EXPORT_H
#include "trace.h"
#include <uv.h>

typedef struct sl_trace_export_opts {
  const char *endpoint, *service;
  const char *const *tags;   /* key, value, ..., NULL: resource attributes */
  int64_t flush_ms, max_queue, batch;
} sl_trace_export_opts_t;

void sl_trace_export_start(uv_loop_t *loop, const sl_trace_export_opts_t *o);
/* Copies the spans (ended at end_ns); a no-op when no exporter runs. */
void sl_trace_export_add(const sl_spans_t *sp, uint64_t end_ns, int failed);
void sl_trace_export_stop(void);

#endif
