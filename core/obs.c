#include "obs.h"
#include "metrics_push.h"
#include "trace_export.h"
#include <string.h>

void sl_obs_shutdown(void) {
  sl_trace_export_stop();
  sl_metrics_push_stop();
}

void sl_obs_stream_apply(uv_loop_t *loop, const sl_cnode_t *node, const char *name) {
  /* A request-scoped instance counts and traces as its template. */
  if (strchr(name, '{')) return;
  /* Absent blocks stop what an earlier config of this stream started. */
  sl_metrics_apply(loop, sl_cnode_get(node, "metrics"), name);
  sl_tracer_apply(loop, sl_cnode_get(node, "tracer"), name);
}
