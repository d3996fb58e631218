/* Reference documentation generated from component specs (sluice doc/list).
 * Writes to the given FILE*; nothing is allocated for the caller. */
#ifndef SL_DOC_H
#define SL_DOC_H
#include <stdio.h>
#include "core/spec.h"

void sl_doc_component(FILE *f, const sl_spec_t *s);        /* Markdown page */
void sl_doc_list(FILE *f, int json);                        /* every component by kind */
void sl_doc_config(FILE *f);                                /* the config file's own keys and sections */
int sl_doc_write_all(const char *dir);                      /* docs/components tree + config.md; 0 ok */

#endif
