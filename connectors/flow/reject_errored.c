/* `reject_errored` output: refuses batches holding messages flagged as failed
 * (so that a `fallback` routes them on) and writes the others to its child. */
#include "children.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"output", SL_F_OUTPUT, NULL, SL_REQUIRED,
   "Where messages that are not flagged as failed go. Given directly as the body: "
   "`reject_errored: { stdout: {} }`.", NULL, NULL},
  {0},
};

typedef struct rej {
  sl_output_t base;
  sl_children_t kids;
} rej_t;

static void rej_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  rej_t *rj = (rej_t *)o;
  for (uint32_t i = 0; i < b->n; i++) {
    if (b->msgs[i]->error) {
      cb(o, b, -1, b->msgs[i]->error, arg);
      return;
    }
  }
  sl_children_relay(&rj->kids, 0, b, cb, arg);
}

static const sl_output_vt vt = {sl_wrapper_start, rej_write, sl_wrapper_close, sl_wrapper_destroy, sl_wrapper_stopping, NULL};
static const sl_spec_t spec;

static void *rej_create(sl_build_t *b, const sl_cnode_t *conf) {
  rej_t *rj = sl_xcalloc(1, sizeof(*rj));
  sl_component_init_output(&rj->base, &vt, &spec, b);
  char *p = sl_xasprintf("%s.reject_errored.output", b->path);
  int rc = sl_children_add(&rj->kids, b, sl_cnode_get(conf, "output"), conf, p);
  free(p);
  if (rc) {
    sl_wrapper_destroy(&rj->base);
    return NULL;
  }
  return rj;
}

static const sl_spec_t spec = {
  .name = "reject_errored",
  .kind = SL_KIND_OUTPUT,
  .summary = "Refuses messages flagged as failed; writes the others to its output.",
  .desc =
    "Messages that a processor flagged as failed (a Lua `error(...)`, a failed check) are "
    "refused: the write fails with the message's error text. Inside a `fallback` this "
    "sends them to the next output (a dead-letter queue) with that text in the metadata "
    "`fallback_error`; at the top of a stream it is a negative acknowledgement, so the "
    "input re-delivers them per the stream's `retry` policy.\n\n"
    "A batch holding any failed message is refused whole, without writing its clean "
    "messages; `fallback` then retries the clean and the failed messages separately. "
    "Batches without failed messages are written to the child output.",
  .fields = fields,
  .shorthand = "output",
  .example =
    "output:\n"
    "  fallback:\n"
    "    - reject_errored:\n"
    "        stdout: {}\n"
    "    - file: { path: ./dead-letter.ndjson }\n",
  .create = rej_create,
};
SL_REGISTER(spec)
