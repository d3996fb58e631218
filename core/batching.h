/* Benthos's batch policy: the `batching` field of inputs and outputs, and
 * the processors it stands for. The stream puts them after its input and
 * before its output; a parent (a broker) applies its own the same way.
 * Static data; the nodes sl_batching_stages adds belong to the caller's list. */
#ifndef SL_BATCHING_H
#define SL_BATCHING_H
#include "conf.h"
#include "spec.h"

extern const sl_field_t sl_batching_fields[];

#define SL_BATCHING_DOC \
  "Gather messages (of any number of transactions) into batches: a batch is formed once it holds `count` " \
  "messages or `byte_size` bytes, once `check` holds on a message, or `period` after its first message; " \
  "`processors` then run on the formed batch. Each transaction is acknowledged once all its messages are " \
  "delivered; what is held when the stream stops or the input ends is passed on."
#define SL_BATCHING_FIELD {"batching", SL_F_OBJECT, NULL, 0, SL_BATCHING_DOC, NULL, sl_batching_fields}
/* The same policy on an input that forms its transactions by it itself
 * (spec->batches_itself). */
#define SL_BATCHING_OWN_FIELD                                                                                  \
  {"batching", SL_F_OBJECT, NULL, 0,                                                                          \
   "Form batches as Benthos does: each batch is one transaction, formed once it holds `count` messages or "   \
   "`byte_size` bytes, once `check` holds on a message, or `period` after its first message; `processors` " \
   "then run on it. It is acknowledged once delivered; a batch still forming when the stream stops is not "   \
   "(its source sends it again).", NULL, sl_batching_fields}

/* Does spec take the generic `batching` (SL_BATCHING_FIELD)? */
int sl_batching_generic(const sl_spec_t *spec);

/* A policy's triggers, as a component that applies them itself reads them
 * (spec->batches_itself; `check` is Lua: the component compiles it). */
typedef struct sl_batch_policy {
  int64_t count, byte_size, period_ms;
} sl_batch_policy_t;
/* Fills p from a `batching` node (NULL: no policy, all 0); 1 when it sets a
 * trigger (check included), else 0. */
int sl_batch_policy_read(const sl_cnode_t *batching, sl_batch_policy_t *p);

/* Appends to seq (a processor list) what the `batching` of body (a validated
 * component config of spec) stands for: a `batch` processor with its triggers
 * (none when the spec batches itself), then its processors. Nothing when
 * there is none; -1 with a diag when it sets no trigger (it would hold every
 * message until shutdown). */
int sl_batching_stages(const sl_spec_t *spec, const sl_cnode_t *body, sl_cnode_t *seq, sl_diags_t *d);

#endif
