/* `catch` processor: runs its processors on failed messages only, then
 * clears their failure flag (the error was handled). And Benthos's
 * `for_each`, the same machinery sending every message, each as a batch of
 * one, and leaving flags alone. */
#include "fwd.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"processors", SL_F_PROCESSORS, NULL, 0,
   "Run, in order, on each message flagged as failed. Inside them `errored()` is true and "
   "`error_message()` gives the error; afterwards the flag is cleared.", NULL, NULL},
  {0}};

typedef struct catch_proc {
  sl_processor_t base;
  sl_chain_t *chain;
  sl_fwd_t out;
  sl_order_t order;
  int each;                  /* for_each */
} catch_t;

/* for_each: every message into the chain as a batch of its own, so that
 * batch-wide processors (dedupe, batch, split) see one message. */
static void each_process(catch_t *c, sl_batch_t *b) {
  sl_ojob_t *j = sl_order_begin(&c->order, b->n);
  uint32_t n = b->n;
  sl_msg_t **msgs = b->msgs;
  for (uint32_t i = 0; i < n; i++) sl_order_send(j, i, msgs[i]);
  for (uint32_t i = 0; i < n; i++) {
    sl_batch_t *one = sl_batch_new(1);
    sl_batch_push(one, msgs[i]);
    c->chain->sink.push(&c->chain->sink, one);
  }
  sl_batch_free_shell(b);
  sl_order_end(j);
}

static void catch_process(sl_processor_t *p, sl_batch_t *b) {
  catch_t *c = (catch_t *)p;
  if (c->each && b->n) {
    each_process(c, b);
    return;
  }
  sl_batch_t *failed = NULL;
  for (uint32_t i = 0; i < b->n && !failed; i++)
    if (b->msgs[i]->error) failed = sl_batch_new(b->n);
  if (!failed && !c->order.head) {   /* nothing to handle nor to wait for: the batch goes on as it is */
    sl_proc_emit_nonempty(p, b);
    return;
  }
  sl_ojob_t *j = sl_order_begin(&c->order, b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    if (m->error) {
      sl_order_send(j, i, m);
      sl_batch_push(failed, m);
    } else {
      sl_order_pass(j, i, m);
    }
  }
  sl_batch_free_shell(b);
  if (failed) c->chain->sink.push(&c->chain->sink, failed);
  sl_order_end(j);
}

static void catch_flush(sl_processor_t *p) { sl_chain_flush(((catch_t *)p)->chain); }

static void catch_destroy(sl_processor_t *p) {
  sl_order_destroy(&((catch_t *)p)->order);
  sl_chain_free(((catch_t *)p)->chain);
  free(p);
}

static const sl_processor_vt vt = {catch_process, catch_flush, catch_destroy};
static const sl_spec_t spec, each_spec;

static void *create(sl_build_t *b, const sl_cnode_t *conf, const sl_spec_t *sp, int each) {
  catch_t *c = sl_xcalloc(1, sizeof(*c));
  sl_component_init_processor(&c->base, &vt, sp, b);
  c->chain = sl_proc_child_chain(b, conf, "processors", sp->name);
  if (!c->chain) {
    free(c);
    return NULL;
  }
  c->each = each;
  sl_fwd_init(&c->out, &c->base, NULL, !each);
  sl_order_init(&c->order, &c->base);
  c->out.order = &c->order;
  sl_chain_connect(c->chain, &c->out.sink, NULL);
  return c;
}

static void *catch_create(sl_build_t *b, const sl_cnode_t *conf) { return create(b, conf, &spec, 0); }

static const sl_spec_t spec = {
  .name = "catch",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Handles failed messages with its own processors, then clears the failure.",
  .desc =
    "Messages that an earlier processor flagged as failed (a Lua `error(...)`, a bad JSON "
    "document) go through `processors`; the others pass untouched. After the catch processors "
    "the failure flag is cleared, as in Benthos. With no processors, `catch` just clears it.\n\n"
    "Within a batch, each handled message keeps its place (what its processors split it into takes "
    "that place), and batches go on in the order they came.",
  .fields = fields,
  .shorthand = "processors",
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - lua: 'this.total = this.price * this.qty'\n"
    "    - catch:\n"
    "        - lua: 'return {error = error_message(), original = content()}'\n",
  .create = catch_create,
};
SL_REGISTER(spec)

static const sl_field_t each_fields[] = {
  {"processors", SL_F_PROCESSORS, "[]", 0,
   "Run, in order, on each message of the batch as a batch of its own.", NULL, NULL},
  {0}};

static void *each_create(sl_build_t *b, const sl_cnode_t *conf) { return create(b, conf, &each_spec, 1); }

static const sl_spec_t each_spec = {
  .name = "for_each",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Runs its processors on each message of a batch as though it were a batch of one (Benthos's).",
  .desc =
    "For processors that act on a whole batch (`dedupe` within a batch, `batch`, `split`): each message "
    "goes through `processors` alone. What its processors make of a message (none, one, or several) takes "
    "its place, so the batch goes on in its order, as one batch; batches go on in the order they came. "
    "Most processors already act per message and need no `for_each`.",
  .fields = each_fields,
  .shorthand = "processors",
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - for_each:\n"
    "        - split: {size: 1}\n"
    "        - lua: 'this.seen = true'\n",
  .create = each_create,
};
SL_REGISTER(each_spec)
