/* `drop` output: acknowledges and discards everything. */
#include "core/component.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {{0}};

static void drop_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) { cb(o, b, 0, NULL, arg); }

static void drop_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) { done(o, arg); }

static void drop_destroy(sl_output_t *o) { free(o); }

static const sl_output_vt vt = {NULL, drop_write, drop_close, drop_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *drop_create(sl_build_t *b, const sl_cnode_t *conf) {
  (void)conf;
  sl_output_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(o, &vt, &spec, b);
  return o;
}

static const sl_spec_t spec = {
  .name = "drop",
  .kind = SL_KIND_OUTPUT,
  .summary = "Discards every message and acknowledges it.",
  .desc = "Every batch written is acknowledged at once and discarded. Useful for benchmarks, "
          "for pipelines run only for their side effects, and as a `switch` case that "
          "deliberately discards.",
  .fields = fields,
  .example = "output:\n  drop: {}\n",
  .create = drop_create,
  .writes_anywhere = 1,
};
SL_REGISTER(spec)
