/* Observability's end of a run. Process-wide: pushers and exporters belong
 * to obs/metrics_push.c and obs/trace_export.c, started by the `metrics:`
 * and `tracer:` sections (top level and per stream). */
#ifndef SL_OBS_H
#define SL_OBS_H

/* What observability still has to send when a run ends: the last metrics
 * pushes and the spans not exported yet. The engine calls this once its
 * streams have drained; the loop then runs until those requests finish
 * (each bounded by its timeout). */
void sl_obs_shutdown(void);

#endif
