/* Metrics in Prometheus' text format (served at GET /metrics, pushed by
 * obs/metrics_push.c). A series is a family name plus a label set; counters
 * and gauges are a plain int64 and histograms a bucket array that the owner
 * updates in place: everything runs on the one worker loop, so the hot path
 * is a few plain adds, no atomics and no locks.
 * Ownership: series live until the process exits; the pointers returned by
 * sl_metric and sl_histogram stay valid and may be kept by components. */
#ifndef SL_METRICS_H
#define SL_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum { SL_COUNTER, SL_GAUGE, SL_HISTOGRAM } sl_mkind_t;

/* The value of name{labels} (created at 0). labels are alternating key and
 * value strings ending with NULL; values are escaped here. */
int64_t *sl_metric(sl_mkind_t kind, const char *name, const char *help, ...) __attribute__((sentinel));

/* Latency histogram in nanoseconds; bucket bounds are sl_histo_bounds. */
#define SL_HISTO_BUCKETS 14
extern const uint64_t sl_histo_bounds[SL_HISTO_BUCKETS];
typedef struct sl_histo {
  uint64_t count, sum;
  uint64_t bucket[SL_HISTO_BUCKETS + 1];   /* not cumulative; the last is +Inf */
} sl_histo_t;

sl_histo_t *sl_histogram(const char *name, const char *help, ...) __attribute__((sentinel));

/* Every series has one writer, but a pool worker's private series (core/
 * component.c) is read by a collector on the stream's loop: a relaxed load
 * and store is still a plain add (no lock prefix) and is no data race. */
#define SL_COUNT(p, n) __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define SL_READ(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static inline void sl_histo_observe(sl_histo_t *h, uint64_t ns) {
  unsigned i = 0;
  while (i < SL_HISTO_BUCKETS && ns > sl_histo_bounds[i]) i++;
  SL_COUNT(&h->bucket[i], 1);
  SL_COUNT(&h->count, 1);
  SL_COUNT(&h->sum, ns);
}

static inline uint64_t sl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Benthos' per-component series: `<kind>_received`, `_sent`, `_error` and
 * `_latency_ns` labelled {stream, label, path}. Members a kind does not have
 * (an input sends nothing) are NULL. The stream name loses a request-scoped
 * instance's `{…}` (one series per user would grow without bound) and the
 * config path `streams.NAME.x.y` becomes Benthos' `root.x.y`. */
typedef struct sl_cmetrics {
  int64_t *received, *sent, *error;
  sl_histo_t *latency;
} sl_cmetrics_t;

/* Benthos' path of a component from its config path: `streams.NAME.x.y`
 * becomes `root.x.y` (caller frees). */
char *sl_metrics_path(const char *stream, const char *cfg_path);

typedef enum { SL_CM_INPUT, SL_CM_PROCESSOR, SL_CM_OUTPUT } sl_cmkind_t;
void sl_cmetrics_init(sl_cmetrics_t *m, sl_cmkind_t kind, const char *stream, const char *label, const char *cfg_path);

/* Benthos' connection series of a component that connects somewhere:
 * `<kind>_connection_up`, `_lost` and `_failed`, labelled as sl_cmetrics. */
typedef struct sl_connmetrics {
  int64_t *up, *lost, *failed;
} sl_connmetrics_t;
void sl_connmetrics_init(sl_connmetrics_t *m, sl_cmkind_t kind, const char *stream, const char *label,
                         const char *cfg_path);

/* Gauges computed when the text is produced (lags): fn runs on the loop
 * before every scrape or push until removed. */
void sl_metrics_collector_add(void (*fn)(void *arg), void *arg);
void sl_metrics_collector_remove(void (*fn)(void *arg), void *arg);

/* Calls fn for every series of the families whose name starts with prefix
 * (a counter's or gauge's value; a histogram's h, value 0), on the loop,
 * without running the collectors: a live view reads the counters as they are. */
typedef void (*sl_metrics_each_fn)(const char *name, const char *labels, int64_t value, const sl_histo_t *h,
                                   void *arg);
void sl_metrics_each(const char *prefix, sl_metrics_each_fn fn, void *arg);
/* Label key's value in a series' labels, unescaped, into out (cap bytes,
 * cut to fit): 0, or -1 when the labels lack it. */
int sl_metrics_label(const char *labels, const char *key, char *out, size_t cap);

/* The exposition text of every series (caller frees). */
char *sl_metrics_text(size_t *len);
/* The same, limited to the series labelled stream="stream" (NULL: all). */
char *sl_metrics_text_stream(const char *stream, size_t *len);

#endif
