/* Per-message OpenTelemetry spans: a root span per message from the input's
 * emit to its acknowledgement, and a child per processor call and output
 * write. The message's context travels in its `traceparent` metadata (W3C):
 * an incoming one (HTTP header, Kafka header) becomes the root's parent, the
 * root replaces it for the pipeline, and the output sets its own span there
 * so that what it sends (Kafka headers) names it as parent.
 * Spans leave the process through a sink that the exporter sets
 * (obs/trace_export.c): this file only makes them.
 * Ownership: sites live until exit (like metric series); a spans set belongs
 * to whoever began it until sl_trace_end hands it to the sink. Hot paths
 * test sl_trace_on first: nothing else runs when no tracer is configured. */
#ifndef SL_TRACE_H
#define SL_TRACE_H
#include "msg.h"
#include <stdint.h>

typedef enum { SL_TS_INPUT, SL_TS_PROCESSOR, SL_TS_OUTPUT } sl_tskind_t;

/* A component spans are named after: its label, stream, Benthos path and type. */
typedef struct sl_trace_site {
  sl_tskind_t kind;
  char *name, *stream, *path, *type;
} sl_trace_site_t;

typedef struct sl_span {
  uint64_t trace_hi, trace_lo, id, parent;
} sl_span_t;

/* The sampled messages' spans of one batch, begun together. */
typedef struct sl_spans {
  const sl_trace_site_t *site;
  uint64_t start_ns;         /* wall clock */
  uint32_t n;
  sl_span_t s[];
} sl_spans_t;

extern int sl_trace_on;     /* some exporter samples: kept by obs/trace_export.c */
/* sl_trace_on as pool workers read it too, while a reload rewrites it. */
static inline int sl_tracing(void) { return __atomic_load_n(&sl_trace_on, __ATOMIC_RELAXED); }

/* ratio(stream): the sample ratio of the traces stream starts (0: none);
 * add: copies the spans (ended at end_ns) to their stream's exporter. */
typedef struct sl_trace_sink {
  double (*ratio)(const char *stream);
  void (*add)(const sl_spans_t *sp, uint64_t end_ns, int failed);
} sl_trace_sink_t;
/* Set before sl_trace_on is; sink is static data of its owner. */
void sl_trace_set_sink(const sl_trace_sink_t *sink);

sl_trace_site_t *sl_trace_site(sl_tskind_t kind, const char *stream, const char *label, const char *type,
                               const char *cfg_path);

/* Begins the spans of b's sampled messages (NULL when none is). Inputs
 * decide sampling and set `traceparent`; outputs set it to their span. */
sl_spans_t *sl_trace_begin(const sl_trace_site_t *site, sl_batch_t *b);
/* Ends them now less excluded_ns (a processor's time spent in the stages
 * it called) and queues them for export; failed marks them as errors. NULL
 * is ignored. */
void sl_trace_end(sl_spans_t *sp, int failed, uint64_t excluded_ns);

#endif
