#include "children.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <stdlib.h>

int sl_children_add(sl_children_t *c, sl_build_t *b, const sl_cnode_t *wrapper, const sl_cnode_t *at,
                    const char *path) {
  if (!wrapper) {
    sl_diag_add(b->diags, at, path, "an output is required here");
    return -1;
  }
  sl_output_t *o = sl_build_output(b, wrapper, path);
  if (!o) return -1;
  c->v = sl_xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
  c->v[c->n++] = o;
  return 0;
}

int sl_children_add_list(sl_children_t *c, sl_build_t *b, const sl_cnode_t *seq, const char *prefix) {
  int rc = 0;
  for (uint32_t i = 0; seq && seq->type == SL_CN_SEQ && i < seq->n; i++) {
    char *p = sl_xasprintf("%s.%u", prefix, i);
    if (sl_children_add(c, b, seq->items[i], seq, p) != 0) rc = -1;
    free(p);
  }
  return rc;
}

int sl_children_start(sl_children_t *c, sl_output_t *parent) {
  c->parent = parent;
  c->policy = parent->no_retry || !parent->stream ? NULL : &parent->stream->retry;
  parent->no_retry = 1;
  for (unsigned i = 0; i < c->n; i++) {
    sl_output_t *o = c->v[i];
    o->stream = parent->stream;
    if (o->vt->start && o->vt->start(o) != 0) {
      sl_logf(SL_LOG_ERROR, parent->stream ? parent->stream->name : NULL, o->label, "output failed to start");
      return -1;
    }
  }
  return 0;
}

static void child_closed(sl_output_t *o, void *arg) {
  (void)o;
  sl_children_t *c = arg;
  if (--c->closing == 0 && c->done) c->done(c->parent, c->done_arg);
}

void sl_children_close(sl_children_t *c, sl_output_t *parent, void (*done)(sl_output_t *, void *), void *arg) {
  c->parent = parent;
  c->done = done;
  c->done_arg = arg;
  /* One extra count so that children closing synchronously cannot finish early. */
  c->closing = c->n + 1;
  for (unsigned i = 0; i < c->n; i++) c->v[i]->vt->close(c->v[i], child_closed, c);
  child_closed(parent, c);
}

void sl_children_destroy(sl_children_t *c) {
  for (unsigned i = 0; i < c->n; i++) sl_output_destroy(c->v[i]);
  free(c->v);
  c->v = NULL;
  c->n = 0;
}

void sl_children_write(sl_children_t *c, unsigned i, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sl_output_write_retry(c->v[i], c->policy, b, cb, arg);
}

int sl_wrapper_start(sl_output_t *o) { return sl_children_start(&((sl_wrapper_t *)o)->kids, o); }

void sl_wrapper_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  sl_children_close(&((sl_wrapper_t *)o)->kids, o, done, arg);
}

void sl_wrapper_stopping(sl_output_t *o) {
  sl_children_t *c = &((sl_wrapper_t *)o)->kids;
  for (unsigned i = 0; i < c->n; i++)
    if (c->v[i]->vt->stopping) c->v[i]->vt->stopping(c->v[i]);
}

void sl_wrapper_destroy(sl_output_t *o) {
  sl_children_destroy(&((sl_wrapper_t *)o)->kids);
  free(o);
}

typedef struct relay {
  sl_output_t *parent;
  sl_write_cb cb;
  void *arg;
} relay_t;

static void relay_done(sl_output_t *child, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)child;
  relay_t r = *(relay_t *)arg;
  free(arg);
  r.cb(r.parent, b, status, err, r.arg);
}

void sl_children_relay(sl_children_t *c, unsigned i, sl_batch_t *b, sl_write_cb cb, void *arg) {
  relay_t *r = sl_xmalloc(sizeof(*r));
  *r = (relay_t){c->parent, cb, arg};
  sl_children_write(c, i, b, relay_done, r);
}
