/* `catch` processor: runs its processors on failed messages only, then
 * clears their failure flag (the error was handled). */
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
} catch_t;

static void catch_process(sl_processor_t *p, sl_batch_t *b) {
  catch_t *c = (catch_t *)p;
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
static const sl_spec_t spec;

static void *catch_create(sl_build_t *b, const sl_cnode_t *conf) {
  catch_t *c = sl_xcalloc(1, sizeof(*c));
  sl_component_init_processor(&c->base, &vt, &spec, b);
  c->chain = sl_proc_child_chain(b, conf, "processors", "catch");
  if (!c->chain) {
    free(c);
    return NULL;
  }
  sl_fwd_init(&c->out, &c->base, NULL, 1);
  sl_order_init(&c->order, &c->base);
  c->out.order = &c->order;
  sl_chain_connect(c->chain, &c->out.sink, NULL);
  return c;
}

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
