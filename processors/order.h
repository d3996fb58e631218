/* Keeps a batch's order across a parent processor's child chains (catch,
 * switch, for_each): each message sent into a child chain travels under a proxy
 * transaction tagged with its place, and the batch goes on to the parent's
 * next sink once every one came back or was dropped, each message in its
 * place (what a child splits one into takes its place; messages a child
 * makes up go on at once); batches go on in the order they came.
 * Ownership: the parent embeds the sl_order_t; a job lives from
 * sl_order_begin until its batch went on, or, once the parent is
 * destroyed, until the last of its messages is freed. */
#ifndef SL_PROC_ORDER_H
#define SL_PROC_ORDER_H
#include "core/component.h"

typedef struct sl_ojob sl_ojob_t;
typedef struct sl_order {
  sl_processor_t *parent;
  sl_ojob_t *head, **tail;
  uint32_t last_id;
  int destroying;
} sl_order_t;

void sl_order_init(sl_order_t *o, sl_processor_t *parent);
/* Before the child chains are freed: held messages are freed, and what
 * comes back later is dropped. */
void sl_order_destroy(sl_order_t *o);
/* A job for a batch of n messages, each given once by place below. */
sl_ojob_t *sl_order_begin(sl_order_t *o, uint32_t n);
void sl_order_pass(sl_ojob_t *j, uint32_t i, sl_msg_t *m);   /* m goes on as it is */
void sl_order_send(sl_ojob_t *j, uint32_t i, sl_msg_t *m);   /* m is about to enter a child chain */
void sl_order_end(sl_ojob_t *j);                             /* every message was given */
/* What the child chains pass on (takes b). */
void sl_order_back(sl_order_t *o, sl_batch_t *b);

#endif
