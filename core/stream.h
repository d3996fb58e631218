/* A stream: one input, a processor chain and one output, with in-flight limits,
 * output retries with backoff, and graceful draining.
 * Ownership: the engine creates streams from config and frees them once drained. */
#ifndef SL_STREAM_H
#define SL_STREAM_H
#include "component.h"
#include "metrics.h"

typedef struct sl_retry_policy {
  int64_t max_retries;        /* 0 = retry until shutdown */
  int64_t initial_ms, max_ms;
} sl_retry_policy_t;

struct sl_stream {
  char *name;
  sl_worker_t *worker;
  sl_input_t *input;
  sl_chain_t *chain;          /* empty when a pool runs the processors */
  struct sl_pool *pool;       /* pipeline.threads > 1 (core/pool.h) */
  sl_output_t *output;
  sl_retry_policy_t retry;
  int64_t max_in_flight;      /* transactions */
  int64_t in_flight;
  int stopping, stopped, input_done;
  sl_sink_t out_sink;         /* end of chain: hands batches to the output */
  sl_sink_t pool_entry;       /* or, with a pool, to the pool's workers */
  void (*on_done)(sl_stream_t *s, void *arg);
  void *on_done_arg;
  int64_t pending_writes;
  char *not_ready;            /* reason the input is not connected, or NULL */
  char *out_not_ready;        /* reason the output is not connected, or NULL */
  sl_cmetrics_t m_in, m_out;   /* Benthos-named metrics of its input and output */
  const struct sl_trace_site *t_in, *t_out;   /* their span names */
  sl_ctx_t *ctx;              /* ref: a request-scoped instance's context, given to
                                 every message its input emits without one */
  /* Called when input and output both report connected again (a reload
   * waits for it before handing traffic over); may be NULL. */
  void (*on_connected)(sl_stream_t *s, void *arg);
  void *on_connected_arg;
  /* failed deliveries and writes (a flood while an output is down), made on
   * first use: here rather than in the stream's own part, since outputs
   * tested alone have a stream of this struct only */
  struct sl_loglimit *retry_log;
};

/* Build from a stream node {input, pipeline, output, ...}. NULL on error (diags). */
sl_stream_t *sl_stream_build(sl_build_t *b, const sl_cnode_t *node, const char *name);
int sl_stream_start(sl_stream_t *s, void (*on_done)(sl_stream_t *, void *), void *arg);
/* Stop input, drain what is in flight, close the output; on_done runs after. */
void sl_stream_stop(sl_stream_t *s);
void sl_stream_free(sl_stream_t *s);
/* What a stopping stream still waits for, in words (for the shutdown log). */
void sl_stream_describe(const sl_stream_t *s, char *buf, size_t cap);

/* Deliver a batch to an output with the stream's retry policy (unless
 * o->no_retry); cb gets the final outcome. Used by the stream and brokers. */
void sl_output_write_retry(sl_output_t *o, const sl_retry_policy_t *p, sl_batch_t *b,
                           sl_write_cb cb, void *arg);

#endif
