/* Pushes the metrics text to a Prometheus Pushgateway every interval and a
 * last time when sluice stops (PUT {url}/metrics/job/{job}, which replaces
 * the job's previous push).
 * Ownership: pushers are process-wide (one loop); started by the `metrics:`
 * section or a stream's `metrics:`, flushed and freed by sl_obs_shutdown
 * (obs/obs.h). */
#ifndef SL_METRICS_PUSH_H
#define SL_METRICS_PUSH_H
#include <stdint.h>
#include <uv.h>

/* Pushes the series of stream (a stream's own `metrics:`), or all of them
 * (NULL: the top-level section); replaces an earlier pusher of the same. */
void sl_metrics_push_start(uv_loop_t *loop, const char *url, const char *job, int64_t interval_ms,
                           const char *stream);
/* Stops that pusher (a reload dropped its config) without a last push. */
void sl_metrics_push_remove(const char *stream);
/* The final pushes; the pushers' handles close once they are answered. */
void sl_metrics_push_stop(void);

#endif
