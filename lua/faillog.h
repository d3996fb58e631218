/* Log lines for the messages a script fails, rate-limited per owner (a `lua`
 * processor) so that a flood of failures costs a bounded number of lines: up
 * to 5 lines at once, then one a second; failures left out are counted,
 * and the count goes out with the next line, or on its own a second after
 * the first one left out (or when the owner goes: core/loglimit.h). Lines are warnings naming the stream, the
 * processor's label and the error ("file:line: text").
 * Ownership: the owner creates and frees it on the loop's thread; stream is
 * copied, *label is read when a line is written (the owner keeps it). */
#ifndef SL_LUA_FAILLOG_H
#define SL_LUA_FAILLOG_H
#include "lhost.h"

sl_lfaillog_t *sl_lfaillog_new(uv_loop_t *loop, const char *stream, char *const *label);
void sl_lfaillog_free(sl_lfaillog_t *l);
/* n messages failed with text (lua/runtime.lua calls it through FFI). */
void sl_lfaillog_note(sl_lfaillog_t *l, const char *text, unsigned n);
/* Messages failed since the last call (for the owner's metrics). */
uint64_t sl_lfaillog_take(sl_lfaillog_t *l);

#endif
