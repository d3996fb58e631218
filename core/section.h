/* Top-level config sections owned by subsystems outside the kernel (http:,
 * store:, metrics:, tracer:, lua:, logger:). The engine applies each section
 * to every worker before streams are built. A section may also be a key of
 * each stream (Tyk writes metrics: and tracer: per stream): the stream
 * applies it when it is built. Sections are listed and applied in name
 * order, whatever the order their files were linked in.
 * Ownership: sections are static data of their owner. */
#ifndef SL_SECTION_H
#define SL_SECTION_H
#include "conf.h"
#include "spec.h"
#include "worker.h"

typedef struct sl_section {
  const char *name;
  const char *desc;              /* Markdown, for the generated reference */
  const sl_field_t *fields;      /* validated like a component body; terminated by {0} */
  /* node may be NULL when the section is absent (apply defaults). */
  int (*apply)(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d);
  /* Optional, also run by lint once the fields are valid: what the fields
   * cannot say (root: the whole config). Returns the number of errors added. */
  int (*check)(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d);
  /* Optional: also a key of each stream, described so (the fields are the
   * same); apply_stream runs when a stream is built on a worker, with the
   * stream's node (NULL when absent: undo what an earlier config of the
   * stream started). */
  const char *stream_desc;
  void (*apply_stream)(sl_worker_t *w, const sl_cnode_t *node, const char *stream);
  int list;                      /* the section is a list of objects, each described by fields */
  int reload;                    /* a reload applies it again before rebuilding streams (a change
                                  * needs no restart); apply must then keep what it already runs */
} sl_section_t;

void sl_section_register(const sl_section_t *s);
const sl_section_t *sl_section_find(const char *name);
const sl_section_t *sl_section_at(unsigned i);   /* NULL past the end */
int sl_sections_apply(sl_worker_t *w, const sl_cnode_t *root, sl_diags_t *d);
/* The stream sections of stream `name` (its node). */
void sl_sections_apply_stream(sl_worker_t *w, const sl_cnode_t *stream, const char *name);

#define SL_REGISTER_SECTION(var) \
  static void __attribute__((constructor)) sl_register_section_##var(void) { sl_section_register(&var); }

#endif
