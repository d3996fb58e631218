/* Component specs: the single description of every input, processor and output.
 * Validation, `sluice lint`, `sluice doc`, `sluice list` and docs/components/
 * all read these. Specs are static data owned by the component's file. */
#ifndef SL_SPEC_H
#define SL_SPEC_H
#include "conf.h"

typedef enum {
  SL_F_STRING, SL_F_INT, SL_F_FLOAT, SL_F_BOOL, SL_F_DURATION, SL_F_SIZE,
  SL_F_ENUM,        /* string from enums[] */
  SL_F_STRLIST,     /* list of strings; a single scalar is accepted as a one-item list */
  SL_F_MAP,         /* map of string -> string */
  SL_F_OBJECT,      /* nested object described by fields[] */
  SL_F_OBJLIST,     /* list of objects described by fields[] */
  SL_F_CODE,        /* Lua source */
  SL_F_ADDRESS,     /* host:port to listen on (sl_parse_address) */
  SL_F_INPUT, SL_F_OUTPUT, SL_F_PROCESSOR,
  SL_F_INPUTS, SL_F_OUTPUTS, SL_F_PROCESSORS,
  SL_F_ANY          /* free-form YAML, checked by the component */
} sl_ftype_t;

enum {
  SL_REQUIRED = 1 << 0,
  SL_INTERP   = 1 << 1,   /* string may contain ${! lua expression } */
  SL_ADVANCED = 1 << 2,
  SL_MOVED    = 1 << 3    /* no longer a field: giving it is an error whose text is desc (the new
                           * spelling); left out of docs and suggestions */
};

typedef struct sl_field {
  const char *name;
  sl_ftype_t type;
  const char *def;                  /* default as YAML scalar text, NULL = none */
  unsigned flags;
  const char *desc;
  /* SL_F_ENUM: the accepted values, NULL-terminated. Int, float, duration
   * and size fields: SL_BOUNDS(min, max), inclusive, written as values of
   * the field ("1ms", "1KiB"; "" = unbounded); NULL = any value. */
  const char *const *values;
  const struct sl_field *fields;    /* SL_F_OBJECT / SL_F_OBJLIST: terminated by {0} */
} sl_field_t;

/* Inclusive bounds of a number, duration or size field (its values). */
#define SL_BOUNDS(min, max) ((const char *const[]){min, max})

typedef enum { SL_KIND_INPUT, SL_KIND_PROCESSOR, SL_KIND_OUTPUT } sl_kind_t;

struct sl_build;
typedef struct sl_spec {
  const char *name;
  sl_kind_t kind;
  const char *summary;              /* one line */
  const char *desc;                 /* Markdown paragraphs */
  const sl_field_t *fields;         /* terminated by {0} */
  const char *shorthand;            /* field that takes a bare scalar or list value */
  const char *example;              /* YAML snippet */
  /* Builds an instance from a validated config. Returns NULL and adds diags on
   * error. Must not touch the outside world (lint builds every component). */
  void *(*create)(struct sl_build *b, const sl_cnode_t *conf);
  /* Processors: copies built on `pipeline.threads` pool workers may run side
   * by side (each keeps its own state, and what they share is thread-safe).
   * A chain with any other processor runs on the stream's loop. */
  int pooled;
  /* Inputs: forms its transactions by its `batching` policy's triggers itself
   * (Kafka's, one partition per batch); the stream adds only its `processors`. */
  int batches_itself;
  /* Outputs: write may run on a pool worker's thread (it keeps no state but
   * what a message's own request reads after its transaction completed, and
   * the order of writes means nothing to it): a pooled batch is written, and
   * freed, on the worker that ran its processors (core/pool.c). */
  int writes_anywhere;
} sl_spec_t;

void sl_registry_add(const sl_spec_t *spec);
const sl_spec_t *sl_registry_find(sl_kind_t kind, const char *name);
/* Iterate: returns the i-th spec in name order within kind, NULL past the end. */
const sl_spec_t *sl_registry_at(sl_kind_t kind, unsigned i);
const char *sl_kind_name(sl_kind_t kind);

#define SL_REGISTER(spec_var) \
  static void __attribute__((constructor)) sl_register_##spec_var(void) { sl_registry_add(&spec_var); }

/* Validate `node` (the body under a component's name) against spec fields and
 * insert defaults. Reports every problem. Returns number of errors added. */
int sl_spec_validate_fields(const sl_field_t *fields, sl_cnode_t *node, const char *path, sl_diags_t *d);
/* Validate one value against one field (type, nested fields, components). */
int sl_spec_validate_value(const sl_field_t *f, sl_cnode_t *v, const char *path, sl_diags_t *d);
/* Validate a component wrapper such as {generate: {...}, label: x}. */
int sl_spec_validate_component(sl_kind_t kind, sl_cnode_t *node, const char *path, sl_diags_t *d);
/* Name of the component in a wrapper node, or NULL. */
const char *sl_component_name(const sl_cnode_t *wrapper, const sl_cnode_t **body);
/* Nearest of candidates[] to word by edit distance (a swap of neighbours is
 * one edit), or NULL if none is close. */
const char *sl_nearest(const char *word, const char *const *candidates, unsigned n);

/* A Benthos component name sluice lacks, and what to write instead. */
typedef struct sl_hint { sl_kind_t kind; const char *name, *text; } sl_hint_t;
const sl_hint_t *sl_hint_at(unsigned i);   /* NULL past the end; static data */

#endif
