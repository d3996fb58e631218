/* What observability still has to send when a run ends: the last metrics
 * push and the spans not exported yet. The engine calls this once its
 * streams have drained; the loop then runs until those requests finish
 * (each bounded by its timeout). */
#ifndef SL_OBS_H
#define SL_OBS_H

void sl_obs_shutdown(void);

#endif
