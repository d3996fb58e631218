/* What the `nats` and `nats_jetstream` inputs share: a link whose queue
 * becomes batches while the stream has room, metadata read from each
 * message only when the pipeline looks at it, and, for JetStream, each
 * message acknowledged once its transaction is (a nak with a delay when
 * it failed). Ownership: the input owns its link and its setup data (given
 * to the link when it starts). All of it runs on the loop. */
#ifndef SL_NATS_INPUT_H
#define SL_NATS_INPUT_H
#include "clients/nats_link.h"

#define SL_NATS_BATCH_FIELD                                                                                 \
  {"batch_count", SL_F_INT, "64", 0,                                                                         \
   "Messages per transaction at most: as many as have arrived, up to this (sluice's; Benthos makes one "    \
   "transaction per message, which `1` gives).", SL_BOUNDS("1", "4096"), NULL}

typedef struct sl_nats_in {
  sl_input_t base;
  sl_nats_conf_t *conf;
  sl_nats_t *link;
  sl_nats_cbs_t cbs;        /* setup and setup_free; the rest is the input's */
  void *setup_arg;          /* until start hands it to the link */
  int js;                   /* acknowledge each message to JetStream */
  int64_t batch_count, nak_ms, queue_max;
  int stopped;
  void (*closed)(sl_input_t *in, void *arg);   /* the stream's close callback */
} sl_nats_in_t;

/* A new input of spec s (sl_nats_in_vt drives it); the caller sets
 * setup_arg and cbs.setup/setup_free. */
sl_nats_in_t *sl_nats_in_new(sl_build_t *b, const sl_cnode_t *conf, const sl_spec_t *s, int js);
extern const sl_input_vt sl_nats_in_vt;

/* What both inputs subscribe with: `subject` and `queue`, checked (an
 * empty subject is left to the caller). Returns the number of problems
 * added to diags. */
typedef struct sl_nats_sub { char *subject, *queue; } sl_nats_sub_t;
int sl_nats_sub_read(sl_nats_sub_t *s, sl_build_t *b, const sl_cnode_t *conf);
void sl_nats_sub_free(sl_nats_sub_t *s);

#endif
