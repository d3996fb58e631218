/* `broker` input: several child inputs merged into one stream. */
#include "inputs.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"copies", SL_F_INT, "1", 0,
   "How many copies of each child input to run side by side (each its own connection or "
   "reader).", SL_BOUNDS("1", "1024"), NULL},
  {"inputs", SL_F_INPUTS, NULL, SL_REQUIRED, "The child inputs (at least one).", NULL, NULL},
  {0},
};

typedef struct broker_in {
  sl_input_t base;           /* base and kids first: an sl_inwrapper_t */
  sl_inputs_t kids;
  unsigned ended;
} broker_in_t;

static void kid_ended(sl_inputs_t *k, unsigned i) {
  (void)i;
  broker_in_t *br = (broker_in_t *)k->parent;
  if (++br->ended == k->n) sl_input_eof(&br->base);
}

static int bin_start(sl_input_t *in) {
  broker_in_t *br = (broker_in_t *)in;
  br->kids.on_eof = kid_ended;
  for (unsigned i = 0; i < br->kids.n; i++)
    if (sl_inputs_start(&br->kids, in, i) != 0) return -1;
  return 0;
}

static void bin_stop(sl_input_t *in) { sl_inputs_stop(&((broker_in_t *)in)->kids); }

static const sl_input_vt vt = {bin_start, sl_inwrapper_resume, bin_stop, sl_inwrapper_destroy, sl_inwrapper_close, NULL};
static const sl_spec_t spec;

static void *bin_create(sl_build_t *b, const sl_cnode_t *conf) {
  broker_in_t *br = sl_xcalloc(1, sizeof(*br));
  sl_component_init_input(&br->base, &vt, &spec, b);
  if (sl_inputs_build(&br->kids, b, conf, "broker", sl_conf_int(conf, "copies", 1)) != 0) {
    sl_inwrapper_destroy(&br->base);
    return NULL;
  }
  return br;
}

static const sl_spec_t spec = {
  .name = "broker",
  .kind = SL_KIND_INPUT,
  .summary = "Merges several inputs into one stream.",
  .desc =
    "Every child input runs at once and emits into the stream as if it were the stream's "
    "own input: each batch is its child's transaction, acknowledged to that child (a Kafka "
    "offset, an MQTT PUBACK, an AMQP ack) when the pipeline delivered it. The stream's "
    "`max_in_flight` bounds all of them together; when it is full every child waits.\n\n"
    "The stream is ready while every child is connected; `/ready` names the first child "
    "that is not, by its config path and label, with its reason. A child that cannot reach "
    "its source does not hold the others back. A child may carry `processors` of its own (as "
    "in Benthos): they run on its messages only, before the pipeline's. The input ends when every "
    "child has ended "
    "(finite inputs such as `file` or `generate` with `count`); on shutdown every child "
    "stops and drains.",
  .fields = fields,
  .example =
    "input:\n"
    "  broker:\n"
    "    inputs:\n"
    "      - file: { paths: [./a.ndjson] }\n"
    "      - generate: { interval: 1s, mapping: 'return { tick = i }' }\n",
  .create = bin_create,
};
SL_REGISTER(spec)
