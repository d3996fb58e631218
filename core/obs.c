#include "obs.h"
#include "metrics_push.h"
#include "trace_export.h"
#include <string.h>

void sl_obs_shutdown(void) {
  sl_trace_export_stop();
  sl_metrics_push_stop();
}

int sl_obs_stream_apply(uv_loop_t *loop, const sl_cnode_t *node, const char *name, sl_diags_t *d) {
  /* A request-scoped instance counts and traces as its template. */
  if (strchr(name, '{')) return 0;
  const sl_cnode_t *m = sl_cnode_get(node, "metrics"), *t = sl_cnode_get(node, "tracer");
  int rc = 0;
  if (m && sl_metrics_apply(loop, m, name, d) != 0) rc = -1;
  if (t && sl_tracer_apply(loop, t, name, d) != 0) rc = -1;
  return rc;
}
