/* Bloblang to Lua (processors/bloblang.lua), for the mapping processors and
 * `sluice migrate`. mode: "mapping" or "mutation". Returns the Lua (caller
 * frees), or NULL with *line, *col (1-based, within src) and *why (caller
 * frees) saying what is not translated. */
#ifndef SL_PROCESSORS_MAPPING_H
#define SL_PROCESSORS_MAPPING_H

char *sl_bloblang_translate(const char *src, const char *mode, int *line, int *col, char **why);

#endif
