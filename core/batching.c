#include "batching.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

const sl_field_t sl_batching_fields[] = {
  {"count", SL_F_INT, "0", 0, "Messages per batch (0: no count).", SL_BOUNDS("0", "10000000"), NULL},
  {"byte_size", SL_F_SIZE, "0", 0, "A batch is formed once its contents hold this many bytes (0: no size).",
   NULL, NULL},
  {"period", SL_F_DURATION, "0", 0,
   "A partial batch is passed on this long after its first message (0 or \"\": never). Held messages keep "
   "their transactions open and the stream admits `max_in_flight` of those: once they are all open and "
   "nothing is being written, what is held is passed on at once (a `count` that needs more transactions "
   "would never come).", NULL, NULL},
  {"check", SL_F_CODE, "", 0,
   "Lua expression evaluated on each message; when true, the batch ending with it is formed (Benthos writes "
   "Bloblang here: `this.type == \"end\"` reads the same in Lua).", NULL, NULL},
  {"processors", SL_F_PROCESSORS, "[]", 0, "Processors run on each formed batch (an `archive` of it, say).",
   NULL, NULL},
  {0}};

int sl_batching_generic(const sl_spec_t *spec) {
  if (!spec) return 0;
  for (const sl_field_t *f = spec->fields; f && f->name; f++)
    if (!strcmp(f->name, "batching")) return f->fields == sl_batching_fields;
  return 0;
}

int sl_batch_policy_read(const sl_cnode_t *bt, sl_batch_policy_t *p) {
  p->count = sl_conf_int(bt, "count", 0);
  p->byte_size = sl_conf_size(bt, "byte_size", 0);
  p->period_ms = sl_conf_duration_ms(bt, "period", 0);
  const sl_cnode_t *check = bt ? sl_cnode_get(bt, "check") : NULL;
  int has_check = check && check->str && check->str[strspn(check->str, " \t\r\n")];
  return p->count > 0 || p->byte_size > 0 || p->period_ms > 0 || has_check;
}

int sl_batching_stages(const sl_spec_t *spec, const sl_cnode_t *body, sl_cnode_t *seq, sl_diags_t *d) {
  const sl_cnode_t *bt = sl_cnode_get(body, "batching");
  if (!bt || bt->type != SL_CN_MAP || !sl_batching_generic(spec)) return 0;
  sl_batch_policy_t p;
  if (!sl_batch_policy_read(bt, &p)) {
    sl_diag_add(d, bt, "batching",
                "no count, byte_size, period or check: such a batch would hold every message until the stream "
                "stops (Benthos reads it as no batching: remove the block, or set a trigger)");
    return -1;
  }
  if (!spec->batches_itself) {   /* else the component forms the batches */
    sl_cnode_t *policy = sl_cnode_new(SL_CN_MAP, bt);
    static const char *const triggers[] = {"count", "byte_size", "period", "check"};
    for (unsigned i = 0; i < 4; i++) {
      const sl_cnode_t *v = sl_cnode_get(bt, triggers[i]);
      if (v) sl_cnode_map_set(policy, triggers[i], sl_cnode_dup(v));
    }
    sl_cnode_t *wrapper = sl_cnode_new(SL_CN_MAP, bt);
    sl_cnode_map_set(wrapper, "batch", policy);
    sl_cnode_seq_push(seq, wrapper);
  }
  const sl_cnode_t *procs = sl_cnode_get(bt, "processors");
  if (procs && procs->type == SL_CN_SEQ)
    for (uint32_t i = 0; i < procs->n; i++) sl_cnode_seq_push(seq, sl_cnode_dup(procs->items[i]));
  return 0;
}
