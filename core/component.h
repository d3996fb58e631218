/* Runtime interfaces of inputs, processors and outputs, and the build context
 * their constructors receive. All callbacks run on the owning worker's loop. */
#ifndef SL_COMPONENT_H
#define SL_COMPONENT_H
#include "conf.h"
#include "log.h"
#include "msg.h"
#include "spec.h"
#include "txn.h"
#include "worker.h"

typedef struct sl_stream sl_stream_t;

/* Passed to constructors. Ownership: the stream/lint run owns it. */
typedef struct sl_build {
  sl_worker_t *worker;      /* NULL when only linting: do not start anything */
  sl_diags_t *diags;
  const char *stream_name;
  const char *path;         /* config path of the component, e.g. streams.a.input */
  const char *config_dir;   /* directory of the config file, for relative paths */
  int lint_only;
  int top_level;            /* set by the stream for its own input/output only */
  int mounted;              /* a request-scoped instance: its http_server output takes
                               clients from control/scoped.c and routes nothing itself */
  unsigned processors;      /* built so far for this stream, at most SL_MAX_PROCESSORS */
  unsigned holders;         /* of those, the ones that keep a message until later ones come (a
                               batch by count, size or check): a parent counts before and after
                               building its children to learn whether they may */
} sl_build_t;

/* Processors of one stream, nested ones included: each passes its batch on
 * by calling the next, so the chain's length is a depth of the C stack (a
 * chain of 5k overflowed it under ASan, one of 100k in a release build). */
#define SL_MAX_PROCESSORS 1024

/* Builds a component (wrapper node {name: body, label: ...}) of a kind.
 * Returns the instance or NULL with diags. */
struct sl_input *sl_build_input(sl_build_t *b, const sl_cnode_t *wrapper, const char *path);
struct sl_output *sl_build_output(sl_build_t *b, const sl_cnode_t *wrapper, const char *path);
struct sl_processor *sl_build_processor(sl_build_t *b, const sl_cnode_t *wrapper, const char *path);

/* ---- sinks: where processors and stages push batches ---- */
typedef struct sl_sink sl_sink_t;
struct sl_sink { void (*push)(sl_sink_t *s, sl_batch_t *b); };   /* push takes ownership of b */

/* ---- inputs ---- */
typedef struct sl_input sl_input_t;

/* Optional: an input that reads a log it can read again (the `stream`
 * input on the embedded store) replays part of it for one consumer of its
 * pipeline (an SSE client of an http_server output resuming after
 * Last-Event-ID): records [from[p], to[p]) of each partition go through the
 * pipeline once more, one batch at a time and in order, each message tagged
 * with meta SL_REPLAY_META = token; nothing is committed for them.
 * Ownership: the input owns a replay; done(arg) runs once when every
 * replayed transaction has completed, or at once when there is nothing. */
#define SL_REPLAY_META "sl_replay"
typedef struct sl_replay_vt {
  int (*partitions)(const sl_input_t *in);          /* of its log, once started (0 before) */
  uint64_t (*first)(const sl_input_t *in, int p);   /* where it started reading p: what comes next
                                                       through its pipeline, if nothing has yet */
  uint64_t (*end)(const sl_input_t *in, int p);     /* the next offset to be written to p */
  /* n is the length of from and to (copied). */
  void (*replay)(sl_input_t *in, const uint64_t *from, const uint64_t *to, int n, const char *token,
                 void (*done)(void *arg), void *arg);
} sl_replay_vt;

typedef struct sl_input_vt {
  int  (*start)(sl_input_t *in);        /* begin producing; 0 or -1 (logged) */
  void (*resume)(sl_input_t *in);       /* capacity is available again (optional) */
  void (*stop)(sl_input_t *in);         /* stop producing; may still see acks after */
  void (*destroy)(sl_input_t *in);      /* called once every txn has completed */
  /* Every txn has completed and the stream is stopping (optional): settle with
   * the source (a final commit, leaving a group) without blocking the loop,
   * then call done, later or before returning. The stream ends after it. */
  void (*close)(sl_input_t *in, void (*done)(sl_input_t *in, void *arg), void *arg);
  const sl_replay_vt *replay;           /* optional */
} sl_input_vt;

/* What a parent input (broker, sequence) hears of its children: their end
 * and their connection state go to it instead of the stream. The parent owns
 * it; its callbacks run on the loop, from the child's own calls. */
typedef struct sl_input_parent {
  void (*eof)(struct sl_input_parent *p, sl_input_t *child);
  void (*connected)(struct sl_input_parent *p, sl_input_t *child, int connected, const char *why);
} sl_input_parent_t;

struct sl_input {
  const sl_input_vt *vt;
  const sl_spec_t *spec;
  char *label;
  sl_stream_t *stream;       /* set when attached */
  sl_worker_t *worker;
  int eof;                   /* set by sl_input_eof */
  sl_input_parent_t *parent; /* set on the children of a parent input, else NULL */
  /* A child's own processors (Benthos's `processors` on a broker's input):
   * its batches pass them, then the stream's. Set and owned by the parent. */
  struct sl_chain *chain;
};

/* For inputs: may another batch be emitted now? When this returns 0 stop
 * producing until vt->resume is called. */
int sl_input_ready(sl_input_t *in);
/* Emit a batch under one new transaction; ack_cb (may be NULL) runs when it
 * completes. Takes ownership of b. */
void sl_input_emit(sl_input_t *in, sl_batch_t *b, sl_txn_cb ack_cb, void *arg);
/* The same, but a failed delivery is re-sent by the stream (its retry
 * policy) and ack_cb only gets the final outcome. */
void sl_input_emit_retry(sl_input_t *in, sl_batch_t *b, sl_txn_cb ack_cb, void *arg);
/* The input is finite and has produced everything. */
void sl_input_eof(sl_input_t *in);
/* The input lost its source or failed to start: logged, reported by readiness. */
void sl_input_set_connected(sl_input_t *in, int connected, const char *why);

/* ---- processors ---- */
typedef struct sl_processor sl_processor_t;
typedef struct sl_processor_vt {
  /* Process an owned batch and push results (zero or more batches, now or
   * later) to p->next. Messages removed must be freed (which acks them). */
  void (*process)(sl_processor_t *p, sl_batch_t *b);
  void (*flush)(sl_processor_t *p);     /* optional: push anything held (shutdown/EOF) */
  void (*destroy)(sl_processor_t *p);
} sl_processor_vt;

struct sl_processor {
  const sl_processor_vt *vt;
  const sl_spec_t *spec;
  char *label;
  sl_sink_t *next;            /* set by the chain before the first process call */
  sl_worker_t *worker;
  sl_stream_t *stream;
  /* Set around an emit outside process() (a run that yielded to the loop):
   * how many messages of that batch the processor failed, for its metrics. */
  int64_t late_errors;
};

static inline void sl_processor_emit(sl_processor_t *p, sl_batch_t *b) { p->next->push(p->next, b); }

/* Makes the log scope (core/log.h) that of p working on b: its stream and
 * label, and on a pool worker the hold of b's batch. Returns the scope it
 * replaced, to put back with sl_processor_scope_end once p logs no more for
 * b. The chain does this around every process call; a processor that
 * starts work on b later (a queued batch) does it itself. */
typedef struct sl_scope_save {
  struct sl_log_scope saved;
  sl_txn_t *pin;
} sl_scope_save_t;
sl_scope_save_t sl_processor_scope(const sl_processor_t *p, const sl_batch_t *b);
void sl_processor_scope_end(sl_scope_save_t s);

/* A processor list wired in order; push into chain.sink, results go to out. */
typedef struct sl_chain {
  sl_sink_t sink;             /* entry point */
  sl_processor_t **procs;
  unsigned n;
  sl_sink_t *out;
} sl_chain_t;

/* Builds every processor in seq (a YAML list node); NULL seq means empty chain. */
sl_chain_t *sl_chain_build(sl_build_t *b, const sl_cnode_t *seq, const char *path);
void sl_chain_connect(sl_chain_t *c, sl_sink_t *out, sl_stream_t *stream);
void sl_chain_flush(sl_chain_t *c);
void sl_chain_free(sl_chain_t *c);

/* ---- outputs ---- */
typedef struct sl_output sl_output_t;
/* status 0: every message in the batch was delivered; -1: none or some were not;
 * SL_WRITE_ABANDONED: not delivered, and not to be retried: the stream is
 * stopping and what the write waited for (a client) will not come. */
enum { SL_WRITE_ABANDONED = -2 };
typedef void (*sl_write_cb)(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg);
typedef struct sl_output_vt {
  int  (*start)(sl_output_t *o);        /* connect; 0 or -1 */
  /* Deliver b. The output does not own b and must not change it; it calls cb
   * exactly once, later or before returning. */
  void (*write)(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg);
  /* Flush anything buffered and call done once writes in flight finished. */
  void (*close)(sl_output_t *o, void (*done)(sl_output_t *o, void *arg), void *arg);
  void (*destroy)(sl_output_t *o);
  /* The stream is stopping (optional): writes waiting for something a
   * shutdown will not bring end now with SL_WRITE_ABANDONED. */
  void (*stopping)(sl_output_t *o);
  /* b's last write failed and b will not be written again (optional): state
   * kept so that a retry of b resumes where it failed can go. */
  void (*forget)(sl_output_t *o, sl_batch_t *b);
} sl_output_vt;

struct sl_output {
  const sl_output_vt *vt;
  const sl_spec_t *spec;
  char *label;
  sl_worker_t *worker;
  sl_stream_t *stream;
  int no_retry;               /* set by parents (fallback) that handle failure themselves */
};

/* Common init of the base struct from a spec; label may be NULL. */
void sl_component_init_input(sl_input_t *in, const sl_input_vt *vt, const sl_spec_t *s, sl_build_t *b);
void sl_component_init_processor(sl_processor_t *p, const sl_processor_vt *vt, const sl_spec_t *s, sl_build_t *b);
void sl_component_init_output(sl_output_t *o, const sl_output_vt *vt, const sl_spec_t *s, sl_build_t *b);

/* Destroy a built component (vt->destroy plus what sl_build_* allocated).
 * Parents use these for their children. */
void sl_input_destroy(sl_input_t *in);
void sl_processor_destroy(sl_processor_t *p);
void sl_output_destroy(sl_output_t *o);

/* The output lost its destination (or found it again): reported by readiness. */
void sl_output_set_connected(sl_output_t *o, int connected, const char *why);

/* Resolve a path relative to the config file's directory (caller frees). */
char *sl_build_path(const sl_build_t *b, const char *p);

#endif
