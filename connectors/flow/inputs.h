/* Child inputs of the wrapper inputs (broker, sequence): building, starting,
 * resuming, stopping, closing and destroying them, and the readiness of the
 * set. Each child emits into the parent's stream itself, so every message
 * keeps its own child's transaction and acknowledgement.
 * Ownership: the parent input owns the set and every child in it. */
#ifndef SL_CONN_INPUTS_H
#define SL_CONN_INPUTS_H
#include "core/component.h"

typedef struct sl_inputs {
  sl_input_parent_t hooks;   /* first: children call back through it */
  sl_input_t *parent;
  sl_input_t **v;
  char **why;                /* per child: why it is not connected, or NULL */
  char **path;               /* per child: its config path, for readiness */
  unsigned n;
  unsigned started;          /* children [0, started) were started */
  /* The parent's reaction to child i's end (set before start). */
  void (*on_eof)(struct sl_inputs *k, unsigned i);
  unsigned closing;
  void (*done)(sl_input_t *, void *);
  void *done_arg;
} sl_inputs_t;

/* Builds every item of the `inputs` list of conf `copies` times, paths
 * "<b->path>.<name>.inputs.<i>"; an empty list is an error. 0 or -1 (all reported). */
int sl_inputs_build(sl_inputs_t *k, sl_build_t *b, const sl_cnode_t *conf, const char *name, int64_t copies);
/* Attaches child i to the parent's stream and starts it. 0 or -1 (logged). */
int sl_inputs_start(sl_inputs_t *k, sl_input_t *parent, unsigned i);
/* Resumes every started child that has not ended. */
void sl_inputs_resume(sl_inputs_t *k);
void sl_inputs_stop(sl_inputs_t *k);
/* Closes every started child that settles with its source; done runs after. */
void sl_inputs_close(sl_inputs_t *k, void (*done)(sl_input_t *, void *), void *arg);
void sl_inputs_destroy(sl_inputs_t *k);

/* The head every wrapper input's struct starts with, so that these serve as
 * its vt functions. */
typedef struct sl_inwrapper {
  sl_input_t base;
  sl_inputs_t kids;
} sl_inwrapper_t;

void sl_inwrapper_resume(sl_input_t *in);
void sl_inwrapper_close(sl_input_t *in, void (*done)(sl_input_t *, void *), void *arg);
void sl_inwrapper_destroy(sl_input_t *in);   /* children, then the struct */

#endif
