#include "obs.h"
#include "metrics_push.h"
#include "trace_export.h"

void sl_obs_shutdown(void) {
  sl_trace_export_stop();
  sl_metrics_push_stop();
}
