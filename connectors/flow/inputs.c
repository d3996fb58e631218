#include "inputs.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <stdlib.h>

/* The parent is not ready while any child is not; it says which, by path and
 * label, and why (the first such child; the log has the others). */
static void report(sl_inputs_t *k) {
  for (unsigned i = 0; i < k->n; i++)
    if (k->why[i]) {
      char *r = sl_xasprintf("%s (%s): %s", k->path[i], k->v[i]->label, k->why[i]);
      sl_input_set_connected(k->parent, 0, r);
      free(r);
      return;
    }
  sl_input_set_connected(k->parent, 1, NULL);
}

static unsigned index_of(const sl_inputs_t *k, const sl_input_t *child) {
  unsigned i = 0;
  while (i < k->n && k->v[i] != child) i++;
  return i;
}

static void child_connected(sl_input_parent_t *p, sl_input_t *child, int connected, const char *why) {
  sl_inputs_t *k = (sl_inputs_t *)p;
  unsigned i = index_of(k, child);
  if (i == k->n || (connected && !k->why[i])) return;
  free(k->why[i]);
  k->why[i] = connected ? NULL : sl_xstrdup(why ? why : "input not connected");
  report(k);
}

static void child_eof(sl_input_parent_t *p, sl_input_t *child) {
  sl_inputs_t *k = (sl_inputs_t *)p;
  unsigned i = index_of(k, child);
  /* What its processors hold (a batch processor) goes on before the end. */
  if (child->chain) sl_chain_flush(child->chain);
  /* An input that ended has no source left to be connected to. */
  if (i < k->n && k->why[i]) child_connected(p, child, 1, NULL);
  if (i < k->n) k->on_eof(k, i);
}

int sl_inputs_build(sl_inputs_t *k, sl_build_t *b, const sl_cnode_t *conf, const char *name, int64_t copies) {
  const sl_cnode_t *seq = sl_cnode_get(conf, "inputs");
  int rc = 0;
  for (uint32_t i = 0; seq && seq->type == SL_CN_SEQ && i < seq->n; i++) {
    char *p = sl_xasprintf("%s.%s.inputs.%u", b->path, name, i);
    const sl_cnode_t *procs = sl_cnode_get(seq->items[i], "processors");
    for (int64_t c = 0; c < copies; c++) {
      /* A child may carry processors of its own, as the stream's input may. */
      int top = b->top_level;
      b->top_level = 1;
      sl_input_t *in = sl_build_input(b, seq->items[i], p);
      b->top_level = top;
      if (!in) {
        rc = -1;
        break;
      }
      if (procs && procs->type == SL_CN_SEQ && procs->n) {
        char *pp = sl_xasprintf("%s.processors", p);
        in->chain = sl_chain_build(b, procs, pp);
        free(pp);
        if (!in->chain) {
          sl_input_destroy(in);
          rc = -1;
          break;
        }
      }
      k->v = sl_xrealloc(k->v, (k->n + 1) * sizeof(*k->v));
      k->why = sl_xrealloc(k->why, (k->n + 1) * sizeof(*k->why));
      k->path = sl_xrealloc(k->path, (k->n + 1) * sizeof(*k->path));
      k->v[k->n] = in;
      k->why[k->n] = NULL;
      k->path[k->n++] = sl_xstrdup(p);
    }
    free(p);
  }
  if (rc == 0 && k->n == 0) {
    sl_diag_add(b->diags, seq ? seq : conf, "inputs", "at least one input is required");
    rc = -1;
  }
  return rc;
}

int sl_inputs_start(sl_inputs_t *k, sl_input_t *parent, unsigned i) {
  k->parent = parent;
  k->hooks.eof = child_eof;
  k->hooks.connected = child_connected;
  sl_input_t *in = k->v[i];
  in->stream = parent->stream;
  in->parent = &k->hooks;
  if (in->chain) sl_chain_connect(in->chain, &parent->stream->chain->sink, parent->stream);
  if (k->started <= i) k->started = i + 1;
  if (in->vt->start(in) != 0) {
    sl_logf(SL_LOG_ERROR, parent->stream ? parent->stream->name : NULL, in->label, "input failed to start");
    return -1;
  }
  return 0;
}

void sl_inputs_resume(sl_inputs_t *k) {
  for (unsigned i = 0; i < k->started; i++)
    if (!k->v[i]->eof && k->v[i]->vt->resume) k->v[i]->vt->resume(k->v[i]);
}

void sl_inputs_stop(sl_inputs_t *k) {
  for (unsigned i = 0; i < k->started; i++) {
    if (k->v[i]->vt->stop) k->v[i]->vt->stop(k->v[i]);
    if (k->v[i]->chain) sl_chain_flush(k->v[i]->chain);
  }
}

static void child_closed(sl_input_t *in, void *arg) {
  (void)in;
  sl_inputs_t *k = arg;
  if (--k->closing == 0) k->done(k->parent, k->done_arg);
}

void sl_inputs_close(sl_inputs_t *k, void (*done)(sl_input_t *, void *), void *arg) {
  k->done = done;
  k->done_arg = arg;
  /* One extra count so that children closing synchronously cannot finish early. */
  k->closing = 1;
  for (unsigned i = 0; i < k->started; i++) k->closing += k->v[i]->vt->close != NULL;
  for (unsigned i = 0; i < k->started; i++)
    if (k->v[i]->vt->close) k->v[i]->vt->close(k->v[i], child_closed, k);
  child_closed(k->parent, k);
}

void sl_inputs_destroy(sl_inputs_t *k) {
  for (unsigned i = 0; i < k->n; i++) {
    sl_chain_free(k->v[i]->chain);
    sl_input_destroy(k->v[i]);
    free(k->why[i]);
    free(k->path[i]);
  }
  free(k->v);
  free(k->why);
  free(k->path);
}

void sl_inwrapper_resume(sl_input_t *in) { sl_inputs_resume(&((sl_inwrapper_t *)in)->kids); }

void sl_inwrapper_close(sl_input_t *in, void (*done)(sl_input_t *, void *), void *arg) {
  sl_inputs_close(&((sl_inwrapper_t *)in)->kids, done, arg);
}

void sl_inwrapper_destroy(sl_input_t *in) {
  sl_inputs_destroy(&((sl_inwrapper_t *)in)->kids);
  free(in);
}
