/* Pushes the metrics text to a Prometheus Pushgateway every interval and a
 * last time when sluice stops (PUT {url}/metrics/job/{job}, which replaces
 * the job's previous push).
 * Ownership: the pusher is process-wide (one loop); started by the
 * `metrics:` section, flushed and freed by sl_obs_shutdown (core/obs.h). */
#ifndef SL_METRICS_PUSH_H
#define SL_METRICS_PUSH_H
#include <stdint.h>
#include <uv.h>

/* Replaces any earlier pusher. */
void sl_metrics_push_start(uv_loop_t *loop, const char *url, const char *job, int64_t interval_ms);
/* The final push; the pusher's handles close once it is answered. */
void sl_metrics_push_stop(void);

#endif
