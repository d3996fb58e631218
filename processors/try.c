/* `try` processor: runs processors in order; a message that fails in one of
 * them skips the rest (and stays failed). */
#include "fwd.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"processors", SL_F_PROCESSORS, NULL, 0,
   "Run in order; once a message is flagged as failed, the remaining ones skip it.", NULL, NULL},
  {0}};

/* After processor i, failed messages leave for the parent's next sink and the
 * others go on to processor i+1. */
typedef struct gate {
  sl_sink_t sink;
  struct try_proc *t;
  unsigned i;
} gate_t;

typedef struct try_proc {
  sl_processor_t base;
  sl_chain_t *chain;         /* built as a chain, wired here gate by gate */
  gate_t *gates;
} try_t;

static void gate_push(sl_sink_t *s, sl_batch_t *b) {
  gate_t *g = (gate_t *)s;
  try_t *t = g->t;
  sl_batch_t *failed = sl_batch_new(0), *ok = sl_batch_new(b->n);
  for (uint32_t i = 0; i < b->n; i++) sl_batch_push(b->msgs[i]->error ? failed : ok, b->msgs[i]);
  sl_batch_free_shell(b);
  sl_proc_emit_nonempty(&t->base, failed);
  if (g->i + 1 < t->chain->n && ok->n) {
    sl_processor_t *nx = t->chain->procs[g->i + 1];
    nx->vt->process(nx, ok);
  } else {
    sl_proc_emit_nonempty(&t->base, ok);
  }
}

static void try_process(sl_processor_t *p, sl_batch_t *b) {
  try_t *t = (try_t *)p;
  if (!t->chain->n) {
    sl_processor_emit(p, b);
    return;
  }
  /* Messages already failed on entry skip every processor. */
  gate_t entry = {.sink.push = gate_push, .t = t, .i = (unsigned)-1};
  gate_push(&entry.sink, b);
}

static void try_flush(sl_processor_t *p) { sl_chain_flush(((try_t *)p)->chain); }

static void try_destroy(sl_processor_t *p) {
  try_t *t = (try_t *)p;
  sl_chain_free(t->chain);
  free(t->gates);
  free(t);
}

static const sl_processor_vt vt = {try_process, try_flush, try_destroy};
static const sl_spec_t spec;

static void *try_create(sl_build_t *b, const sl_cnode_t *conf) {
  try_t *t = sl_xcalloc(1, sizeof(*t));
  sl_component_init_processor(&t->base, &vt, &spec, b);
  t->chain = sl_proc_child_chain(b, conf, "processors", "try");
  if (!t->chain) {
    free(t);
    return NULL;
  }
  unsigned n = t->chain->n;
  t->gates = sl_xcalloc(n ? n : 1, sizeof(*t->gates));
  for (unsigned i = 0; i < n; i++) {
    t->gates[i].sink.push = gate_push;
    t->gates[i].t = t;
    t->gates[i].i = i;
    t->chain->procs[i]->next = &t->gates[i].sink;
  }
  return t;
}

static const sl_spec_t spec = {
  .name = "try",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Runs processors in order, skipping the rest for a message once it fails.",
  .desc =
    "Like listing the processors directly, except that a message flagged as failed by one "
    "of them (or on entry) is not given to the following ones; it leaves `try` still flagged, "
    "for a later `catch` or `reject_errored`.",
  .fields = fields,
  .shorthand = "processors",
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - try:\n"
    "        - lua: 'this.n = tonumber(this.raw) or error(\"not a number: \" .. this.raw)'\n"
    "        - lua: 'this.double = this.n * 2'\n"
    "    - catch:\n"
    "        - log: {level: warn, message: '${! error_message() }'}\n",
  .create = try_create,
};
SL_REGISTER(spec)
