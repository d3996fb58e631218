/* Metrics in Prometheus' text format (served at GET /metrics). A series is
 * a family name plus a label set; its value is a plain int64 that the owner
 * updates in place (one worker: no atomics needed).
 * Ownership: series live until the process exits; the pointer returned by
 * sl_metric stays valid and may be kept by components. */
#ifndef SL_METRICS_H
#define SL_METRICS_H
#include <stddef.h>
#include <stdint.h>

typedef enum { SL_COUNTER, SL_GAUGE } sl_mkind_t;

/* The value of name{labels} (created at 0). labels are alternating key and
 * value strings ending with NULL; values are escaped here. */
int64_t *sl_metric(sl_mkind_t kind, const char *name, const char *help, ...) __attribute__((sentinel));

/* The exposition text of every series (caller frees). */
char *sl_metrics_text(size_t *len);

#endif
