/* `broker` output: sends every batch to all child outputs (fan_out) or each
 * batch to the next child in turn (round_robin). */
#include "children.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static const char *const patterns[] = {"fan_out", "round_robin", NULL};

static const sl_field_t fields[] = {
  {"pattern", SL_F_ENUM, "fan_out", 0,
   "`fan_out`: every batch goes to every output; it is acknowledged once all of them "
   "delivered it. `round_robin`: each batch goes to one output, the next one each time.",
   patterns, NULL},
  {"outputs", SL_F_OUTPUTS, NULL, SL_REQUIRED, "The child outputs (at least one).", NULL, NULL},
  {0},
};

typedef struct broker {
  sl_output_t base;          /* base and kids first: an sl_wrapper_t */
  sl_children_t kids;
  int round_robin;
  unsigned next;
} broker_t;

/* One batch on its way to every child. Children never own or change a batch,
 * so all of them are handed the same one. */
typedef struct fan {
  broker_t *br;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  unsigned pending;
  char *err;
} fan_t;

static void fan_done(sl_output_t *child, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)child;
  (void)b;
  fan_t *f = arg;
  if (status != 0 && !f->err) f->err = sl_xasprintf("%s: %s", child->label, err ? err : "delivery failed");
  if (--f->pending) return;
  f->cb(&f->br->base, f->b, f->err ? -1 : 0, f->err, f->arg);
  free(f->err);
  free(f);
}

static void broker_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  broker_t *br = (broker_t *)o;
  if (br->round_robin) {
    unsigned i = br->next++ % br->kids.n;
    sl_children_relay(&br->kids, i, b, cb, arg);
    return;
  }
  fan_t *f = sl_xcalloc(1, sizeof(*f));
  *f = (fan_t){br, b, cb, arg, br->kids.n, NULL};
  for (unsigned i = 0; i < br->kids.n; i++) sl_children_write(&br->kids, i, b, fan_done, f);
}

static const sl_output_vt vt = {sl_wrapper_start, broker_write, sl_wrapper_close, sl_wrapper_destroy, sl_wrapper_stopping, NULL};
static const sl_spec_t spec;

static void *broker_create(sl_build_t *b, const sl_cnode_t *conf) {
  broker_t *br = sl_xcalloc(1, sizeof(*br));
  sl_component_init_output(&br->base, &vt, &spec, b);
  br->round_robin = strcmp(sl_conf_str(conf, "pattern", "fan_out"), "round_robin") == 0;
  const sl_cnode_t *outs = sl_cnode_get(conf, "outputs");
  char *prefix = sl_xasprintf("%s.broker.outputs", b->path);
  int rc = sl_children_add_list(&br->kids, b, outs, prefix);
  free(prefix);
  if (rc == 0 && br->kids.n == 0) {
    sl_diag_add(b->diags, outs ? outs : conf, "outputs", "at least one output is required");
    rc = -1;
  }
  if (rc) {
    sl_wrapper_destroy(&br->base);
    return NULL;
  }
  return br;
}

static const sl_spec_t spec = {
  .name = "broker",
  .kind = SL_KIND_OUTPUT,
  .summary = "Sends batches to several outputs: all of them, or one after the other.",
  .desc =
    "With `fan_out` every batch is written to every child and acknowledged only when all "
    "of them delivered it. Each child is retried on its own with the stream's `retry` "
    "policy, so a child that already delivered a batch does not get it again because "
    "another child failed. If a child still fails once its retries are exhausted "
    "(`retry.max_retries`), the batch fails.\n\n"
    "With `round_robin` each batch goes to one child, the next one each time, retried on "
    "that child.",
  .fields = fields,
  .example =
    "output:\n"
    "  broker:\n"
    "    pattern: fan_out\n"
    "    outputs:\n"
    "      - stdout: {}\n"
    "      - file: { path: ./copy.ndjson }\n",
  .create = broker_create,
};
SL_REGISTER(spec)
