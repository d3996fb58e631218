/* `split` processor: cuts batches into smaller ones. */
#include "core/component.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  {"size", SL_F_INT, "1", 0, "Most messages per resulting batch.", NULL, NULL},
  {"byte_size", SL_F_SIZE, "0", 0,
   "Most content bytes per resulting batch (0: no limit). A single larger message still forms its own batch.",
   NULL, NULL},
  {0}};

typedef struct split {
  sl_processor_t base;
  int64_t size, byte_size;
} split_t;

static void split_process(sl_processor_t *p, sl_batch_t *b) {
  split_t *s = (split_t *)p;
  sl_batch_t *cur = NULL;
  int64_t bytes = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    int64_t len = (int64_t)m->content->len;
    if (cur && ((int64_t)cur->n >= s->size || (s->byte_size && bytes + len > s->byte_size))) {
      sl_processor_emit(p, cur);
      cur = NULL;
    }
    if (!cur) {
      cur = sl_batch_new((uint32_t)(s->size < 64 ? s->size : 64));
      bytes = 0;
    }
    sl_batch_push(cur, m);
    bytes += len;
  }
  sl_batch_free_shell(b);
  if (cur) sl_processor_emit(p, cur);
}

static void split_destroy(sl_processor_t *p) { free(p); }

static const sl_processor_vt vt = {split_process, NULL, split_destroy};
static const sl_spec_t spec;

static void *split_create(sl_build_t *b, const sl_cnode_t *conf) {
  split_t *s = sl_xcalloc(1, sizeof(*s));
  sl_component_init_processor(&s->base, &vt, &spec, b);
  s->size = sl_conf_int(conf, "size", 1);
  s->byte_size = sl_conf_size(conf, "byte_size", 0);
  if (s->size < 1) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "size"), "size", "must be 1 or more");
    free(s);
    return NULL;
  }
  return s;
}

static const sl_spec_t spec = {
  .name = "split",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Splits batches into batches of at most `size` messages (and `byte_size` bytes).",
  .desc = "Order is kept. Each message keeps its own transaction, so acknowledgement still "
          "happens per input batch once all its messages are delivered.",
  .fields = fields,
  .shorthand = "size",
  .example = "pipeline:\n  processors:\n    - split: {size: 10}\n",
  .create = split_create,
};
SL_REGISTER(spec)
