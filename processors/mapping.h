/* Bloblang to Lua (processors/bloblang.lua), for the mapping processors and
 * `sluice migrate`. mode: "mapping" or "mutation"; config: the file the
 * mapping is in (`import` and `from` paths are relative to it; may be NULL).
 * Returns the Lua (caller frees), or NULL with *line, *col (1-based) and
 * *why (caller frees) saying what is not translated: within src, or, when
 * *where is set (where may be NULL; caller frees), within that imported file. */
#ifndef SL_PROCESSORS_MAPPING_H
#define SL_PROCESSORS_MAPPING_H

char *sl_bloblang_translate(const char *src, const char *mode, const char *config, int *line, int *col, char **why,
                            char **where);

#endif
