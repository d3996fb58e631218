/* Reference documentation generated from component specs (sluice doc/list).
 * Writes to the given FILE*; nothing is allocated for the caller. */
#ifndef SL_DOC_H
#define SL_DOC_H
#include <stdio.h>
#include "core/spec.h"

void sl_doc_component(FILE *f, const sl_spec_t *s);        /* Markdown page */
/* Every component by kind, as text, json or yaml, or the config's JSON
 * Schema (jsonschema); -1 for another format or a failed write. */
int sl_doc_list(FILE *f, const char *format);
void sl_doc_config(FILE *f);                                /* the config file's own keys and sections */
int sl_doc_write_all(const char *dir);                      /* docs/components tree + config.md; 0 ok */
/* `sluice doc lua --format F [--out PATH] [--check]`: the Lua API (lua/api.h)
 * as md (default), luals or json, to stdout or PATH (a directory gets
 * sluice.lua for luals); check compares it with the sandbox. Exit code. */
int sl_doc_lua_api(const char *format, const char *out, int check);

#endif
