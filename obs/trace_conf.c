/* The `tracer:` section: OpenTelemetry spans exported over OTLP/HTTP. */
#include "trace_export.h"
#include "core/section.h"
#include "core/trace.h"
#include <stdlib.h>

static const sl_field_t otlp_fields[] = {
  {"endpoint", SL_F_STRING, NULL, SL_REQUIRED,
   "Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo…: `http://localhost:4318`); "
   "spans are POSTed as JSON to `{endpoint}/v1/traces`.", NULL, NULL},
  {"sample_ratio", SL_F_FLOAT, "1", 0,
   "Share of traces recorded, decided on the trace id (so every service with the same ratio "
   "keeps the same traces); an incoming `traceparent` whose sampled flag is off is not recorded. "
   "0 records nothing.", SL_BOUNDS("0", "1"), NULL},
  {"tags", SL_F_MAP, "{}", 0, "Resource attributes of every span (`{stream: Worker, env: prod}`).", NULL, NULL},
  {"service_name", SL_F_STRING, "sluice", 0, "The `service.name` resource attribute.", NULL, NULL},
  {"flush_interval", SL_F_DURATION, "1s", 0, "Longest wait of an ended span before it is sent.", NULL, NULL},
  {"batch_size", SL_F_INT, "512", SL_ADVANCED, "Spans per export request (a full batch goes at once).", NULL, NULL},
  {"max_queue", SL_F_INT, "20000", SL_ADVANCED,
   "Spans waiting for export; beyond it new spans are dropped (`sluice_tracer_spans_dropped_total`).", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  {"otlp", SL_F_OBJECT, NULL, 0, "Export to an OTLP/HTTP endpoint (JSON encoding).", NULL, otlp_fields},
  {0}};

/* stream NULL: the top-level section, else that stream's own (its spans
 * are exported with its tags). */
static void apply_stream(sl_worker_t *w, const sl_cnode_t *node, const char *stream) {
  const sl_cnode_t *o = sl_cnode_get(node, "otlp");
  if (!o) {
    sl_trace_export_remove(stream);
    return;
  }
  double ratio = sl_conf_float(o, "sample_ratio", 1);   /* validated: within bounds */
  const char **kv = sl_conf_pairs(o, "tags");
  sl_trace_export_opts_t eo = {
    .endpoint = sl_conf_str(o, "endpoint", ""),
    .service = sl_conf_str(o, "service_name", "sluice"),
    .tags = kv,
    .flush_ms = sl_conf_duration_ms(o, "flush_interval", 1000),
    .max_queue = sl_conf_int(o, "max_queue", 20000),
    .batch = sl_conf_int(o, "batch_size", 512),
    .ratio = ratio,
  };
  if (eo.flush_ms < 1) eo.flush_ms = 1;
  sl_trace_export_start(w->loop, &eo, stream);
  free(kv);
}

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)d;
  apply_stream(w, node, NULL);
  return 0;
}

static const sl_section_t tracer_section = {
  .name = "tracer",
  .desc = "Tracing: an OpenTelemetry span per message through the input (from receipt to "
          "acknowledgement), each processor and the output, exported over OTLP/HTTP. W3C `traceparent` "
          "is taken from HTTP request headers and Kafka headers (the message's metadata) and set on "
          "what outputs send (Kafka headers). See docs/observability.md.",
  .fields = fields,
  .apply = apply,
  .stream_desc = "This stream's own span export (Tyk's shape): its spans go there with its `tags` and `sample_ratio`. "
                 "Fields as the top-level `tracer:`.",
  .apply_stream = apply_stream,
};
SL_REGISTER_SECTION(tracer_section)
