/* The redis_* outputs' shared write path: one command per message, all of
 * a batch pipelined on one connection, the batch acknowledged once every
 * reply came back without an error. `max_in_flight` batches are written
 * at once; later ones wait their turn, in order, and all wait while Redis
 * is down (abandoned when the stream stops). A message's success is
 * kept: a retry of a failed batch sends only what failed (a reply lost
 * with the connection counts as failed: Redis may have applied it, so a
 * retry may write it twice; at-least-once).
 * Ownership: the output embeds sl_rout_t first and owns it; writes follow
 * sl_output_vt's rules. */
#ifndef SL_REDIS_OUT_H
#define SL_REDIS_OUT_H
#include "redis_common.h"
#include "core/kept.h"

#define SL_REDIS_OUT_FIELDS \
  SL_REDIS_FIELDS, \
  {"max_in_flight", SL_F_INT, "64", 0, "Batches written at once (their commands are pipelined).", \
   SL_BOUNDS("1", "100000"), NULL}

typedef struct sl_rwrite sl_rwrite_t;
typedef struct sl_rout sl_rout_t;
/* Fills a (empty) with message m's command (index k of its batch); 0, or -1
 * with *err (caller frees): the message fails without a command. */
typedef int (*sl_rout_build)(sl_rout_t *o, sl_msg_t *m, uint32_t k, sl_rargs_t *a, char **err);

struct sl_rout {
  sl_output_t base;
  sl_rconn_t *conn;
  sl_rout_build build;
  int64_t max_in_flight, active;
  int stopping;
  sl_rwrite_t *queue, **queue_tail;
  sl_kept_t *kept;           /* failed writes, until retried or forgotten */
  sl_rargs_t args;
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
};

/* Fills o from the shared fields. 0 or -1 (diags). */
int sl_rout_init(sl_rout_t *o, const sl_output_vt *vt, const sl_spec_t *s, sl_build_t *b, const sl_cnode_t *conf,
                 sl_rout_build build);
/* vt members for outputs made of sl_rout_t. */
int sl_rout_start(sl_output_t *out);
void sl_rout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg);
void sl_rout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg);
void sl_rout_forget(sl_output_t *out, sl_batch_t *b);
void sl_rout_stopping(sl_output_t *out);
/* Frees what sl_rout_init made (not o itself). */
void sl_rout_fini(sl_rout_t *o);

/* The metadata of m as field/value pairs appended to a (borrowed from m). */
void sl_rout_meta_args(sl_msg_t *m, sl_rargs_t *a);

#endif
