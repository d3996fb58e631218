/* `sequence` input: child inputs one after the other, each to its end. */
#include "inputs.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"inputs", SL_F_INPUTS, NULL, SL_REQUIRED, "The child inputs, in the order they run (at least one).", NULL, NULL},
  {0},
};

typedef struct seq_in {
  sl_input_t base;           /* base and kids first: an sl_inwrapper_t */
  sl_inputs_t kids;
  int stopping;
} seq_in_t;

/* Starts child i, or the next that starts, or ends the sequence. */
static void run_from(seq_in_t *q, unsigned i) {
  for (; i < q->kids.n && !q->stopping; i++) {
    if (sl_inputs_start(&q->kids, &q->base, i) == 0) return;
    sl_logf(SL_LOG_ERROR, q->base.stream ? q->base.stream->name : NULL, q->base.label,
            "%s did not start: going on with the next input", q->kids.path[i]);
  }
  if (!q->stopping) sl_input_eof(&q->base);
}

static void kid_ended(sl_inputs_t *k, unsigned i) { run_from((seq_in_t *)k->parent, i + 1); }

static int seq_start(sl_input_t *in) {
  seq_in_t *q = (seq_in_t *)in;
  q->kids.on_eof = kid_ended;
  /* The first child failing is the stream's failure, as a plain input's is. */
  if (sl_inputs_start(&q->kids, in, 0) != 0) return -1;
  return 0;
}

static void seq_stop(sl_input_t *in) {
  seq_in_t *q = (seq_in_t *)in;
  q->stopping = 1;
  sl_inputs_stop(&q->kids);
}

static const sl_input_vt vt = {seq_start, sl_inwrapper_resume, seq_stop, sl_inwrapper_destroy, sl_inwrapper_close, NULL};
static const sl_spec_t spec;

static void *seq_create(sl_build_t *b, const sl_cnode_t *conf) {
  seq_in_t *q = sl_xcalloc(1, sizeof(*q));
  sl_component_init_input(&q->base, &vt, &spec, b);
  if (sl_inputs_build(&q->kids, b, conf, "sequence", 1) != 0) {
    sl_inwrapper_destroy(&q->base);
    return NULL;
  }
  return q;
}

static const sl_spec_t spec = {
  .name = "sequence",
  .kind = SL_KIND_INPUT,
  .summary = "Reads several inputs one after the other, each to its end.",
  .desc =
    "The first child runs until it ends (a `file` read to its end, a `generate` with "
    "`count`, `stdin` at end of file); then the next one starts, and so on. The input ends "
    "after the last child. Each batch is acknowledged to the child that read it, so a child "
    "that settles with its source when it closes (a final commit) does so on shutdown as "
    "it would alone. A child after the first that fails to start is logged and skipped. "
    "Readiness is the running child's.",
  .fields = fields,
  .example =
    "input:\n"
    "  sequence:\n"
    "    inputs:\n"
    "      - file: { paths: [./backlog.ndjson] }\n"
    "      - stdin: {}\n",
  .create = seq_create,
};
SL_REGISTER(spec)
