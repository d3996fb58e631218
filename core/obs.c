#include "obs.h"
#include "metrics_push.h"

void sl_obs_shutdown(void) { sl_metrics_push_stop(); }
