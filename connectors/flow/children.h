/* Child outputs of the wrapper outputs (broker, switch, fallback,
 * reject_errored): building, starting, closing and destroying them, and the
 * retry policy the parent applies to each child.
 * Ownership: the parent output owns the set and every child in it. */
#ifndef SL_CONN_CHILDREN_H
#define SL_CONN_CHILDREN_H
#include "core/stream.h"

typedef struct sl_children {
  sl_output_t **v;
  unsigned n;
  /* Policy for child writes: the stream's, or NULL when a parent of ours
   * handles failures itself (it set our no_retry). Set by sl_children_start. */
  const sl_retry_policy_t *policy;
  unsigned closing;
  void (*done)(sl_output_t *, void *);
  void *done_arg;
  sl_output_t *parent;
} sl_children_t;

/* Builds a child from a wrapper node (NULL: reported at `at`); path names it
 * in errors. 0 or -1. */
int sl_children_add(sl_children_t *c, sl_build_t *b, const sl_cnode_t *wrapper, const sl_cnode_t *at,
                    const char *path);
/* Builds every item of a sequence, path "<prefix>.<i>". 0 or -1 (all reported). */
int sl_children_add_list(sl_children_t *c, sl_build_t *b, const sl_cnode_t *seq, const char *prefix);
/* Starts every child. The parent retries each child itself, so it sets its own
 * no_retry: the stream must not re-send a whole batch to children that already
 * delivered it. */
int sl_children_start(sl_children_t *c, sl_output_t *parent);
void sl_children_close(sl_children_t *c, sl_output_t *parent, void (*done)(sl_output_t *, void *), void *arg);
void sl_children_destroy(sl_children_t *c);
/* The head every wrapper output's struct starts with, so the vt functions
 * below serve them all. */
typedef struct sl_wrapper {
  sl_output_t base;
  sl_children_t kids;
} sl_wrapper_t;

int sl_wrapper_start(sl_output_t *o);
void sl_wrapper_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg);
void sl_wrapper_destroy(sl_output_t *o);   /* children, then the struct */
void sl_wrapper_stopping(sl_output_t *o);  /* tells every child */

/* Writes to child i with the set's policy; cb gets child i as its output. */
void sl_children_write(sl_children_t *c, unsigned i, sl_batch_t *b, sl_write_cb cb, void *arg);
/* Writes to child i and reports the outcome to cb as the parent's own write. */
void sl_children_relay(sl_children_t *c, unsigned i, sl_batch_t *b, sl_write_cb cb, void *arg);

#endif
