#include "fwd.h"
#include "core/xalloc.h"
#include <stdlib.h>

static void fwd_push(sl_sink_t *s, sl_batch_t *b) {
  sl_fwd_t *f = (sl_fwd_t *)s;
  if (f->clear_errors)
    for (uint32_t i = 0; i < b->n; i++) sl_msg_set_error(b->msgs[i], NULL);
  if (!f->to && f->order) {
    sl_order_back(f->order, b);
    return;
  }
  sl_sink_t *to = f->to ? f->to : f->parent->next;
  if (b->n) to->push(to, b);
  else sl_batch_free(b);
}

void sl_fwd_init(sl_fwd_t *f, sl_processor_t *parent, sl_sink_t *to, int clear_errors) {
  f->sink.push = fwd_push;
  f->parent = parent;
  f->to = to;
  f->clear_errors = clear_errors;
  f->order = NULL;
}

void sl_proc_emit_nonempty(sl_processor_t *p, sl_batch_t *b) {
  if (b->n) sl_processor_emit(p, b);
  else sl_batch_free(b);
}

sl_chain_t *sl_proc_child_chain(sl_build_t *b, const sl_cnode_t *body, const char *key, const char *name) {
  char *path = sl_xasprintf("%s.%s.%s", b->path ? b->path : "", name, key);
  sl_chain_t *c = sl_chain_build(b, sl_cnode_get(body, key), path);
  free(path);
  return c;
}
