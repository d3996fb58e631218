/* Observability wiring shared by the engine, the config and streams.
 * Process-wide: pushers and exporters belong to core/metrics_push.c and
 * core/trace_export.c; these only start and finish them. */
#ifndef SL_OBS_H
#define SL_OBS_H
#include "conf.h"
#include "spec.h"
#include <uv.h>

/* The fields of `metrics:` and `tracer:`, at the top level and in a stream
 * (Tyk writes them per stream). */
extern const sl_field_t sl_metrics_fields[];
extern const sl_field_t sl_tracer_fields[];

/* Applies a validated `metrics:` / `tracer:` node; stream NULL for the top
 * level, else that stream's own (its series are pushed apart, its spans
 * exported with its tags). */
void sl_metrics_apply(uv_loop_t *loop, const sl_cnode_t *node, const char *stream);
void sl_tracer_apply(uv_loop_t *loop, const sl_cnode_t *node, const char *stream);

/* A stream's own `metrics:` and `tracer:` (called when it is built). */
void sl_obs_stream_apply(uv_loop_t *loop, const sl_cnode_t *node, const char *name);

/* What observability still has to send when a run ends: the last metrics
 * pushes and the spans not exported yet. The engine calls this once its
 * streams have drained; the loop then runs until those requests finish
 * (each bounded by its timeout). */
void sl_obs_shutdown(void);

#endif
