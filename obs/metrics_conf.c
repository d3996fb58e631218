/* The `metrics:` section (Benthos' shape): GET /metrics is always served;
 * `prometheus.push_url` adds periodic pushes to a Pushgateway. */
#include "metrics_push.h"
#include "core/log.h"
#include "core/section.h"

static const sl_field_t prometheus_fields[] = {
  {"push_url", SL_F_STRING, "", 0,
   "Base URL of a Prometheus Pushgateway (`http://host:9091`); empty: no push. The text of `GET /metrics` "
   "is PUT to `{push_url}/metrics/job/{push_job_name}` every `push_interval` and once more at shutdown, "
   "after the streams drained.", NULL, NULL},
  {"push_interval", SL_F_DURATION, "10s", 0, "Period of the pushes.", SL_BOUNDS("1ms", ""), NULL},
  {"push_job_name", SL_F_STRING, "sluice_push", 0, "The `job` the pushes are grouped under.", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  {"prometheus", SL_F_OBJECT, NULL, 0, "Prometheus exposition (`GET /metrics`) and Pushgateway pushes.", NULL,
   prometheus_fields},
  {0}};

/* stream NULL: the top-level section, else that stream's own (its series
 * are pushed apart). */
static void apply_stream(sl_worker_t *w, const sl_cnode_t *node, const char *stream) {
  const sl_cnode_t *p = sl_cnode_get(node, "prometheus");
  const char *url = sl_conf_str(p, "push_url", "");
  if (!*url) {
    sl_metrics_push_remove(stream);
    return;
  }
  int64_t every = sl_conf_duration_ms(p, "push_interval", 10000);   /* validated: within bounds */
  sl_metrics_push_start(w->loop, url, sl_conf_str(p, "push_job_name", "sluice_push"), every, stream);
}

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)d;
  apply_stream(w, node, NULL);
  return 0;
}

static const sl_section_t metrics_section = {
  .name = "metrics",
  .desc = "Metrics. `GET /metrics` on the HTTP server serves every series in Prometheus' text format "
          "(see docs/observability.md for the names); `prometheus.push_url` also pushes them to a "
          "Pushgateway.",
  .fields = fields,
  .apply = apply,
  .stream_desc = "This stream's own Pushgateway pushes (Tyk's shape): its series only, under its `push_job_name`. "
                 "Fields as the top-level `metrics:`.",
  .apply_stream = apply_stream,
};
SL_REGISTER_SECTION(metrics_section)
