/* Sinks that hand a child chain's results back to the parent processor's
 * next sink; shared by switch, catch and try. Owned by the parent. */
#ifndef SL_PROC_FWD_H
#define SL_PROC_FWD_H
#include "order.h"

typedef struct sl_fwd {
  sl_sink_t sink;
  sl_processor_t *parent;
  sl_sink_t *to;            /* NULL: the parent's next sink */
  int clear_errors;         /* catch: handled messages are no longer failed */
  sl_order_t *order;        /* set: results go back into their batch's order (to the parent only) */
} sl_fwd_t;

void sl_fwd_init(sl_fwd_t *f, sl_processor_t *parent, sl_sink_t *to, int clear_errors);
/* Push b to the parent's next sink, or free it when empty. */
void sl_proc_emit_nonempty(sl_processor_t *p, sl_batch_t *b);
/* Builds a child chain from body[key] and connects it to out. NULL on error. */
sl_chain_t *sl_proc_child_chain(sl_build_t *b, const sl_cnode_t *body, const char *key, const char *name);

#endif
