/* A warning that may repeat in a flood (a script failing messages, an
 * output failing writes while its destination is down), rate-limited per
 * owner so that it costs a bounded number of lines: up to 5 lines at once,
 * then one a second; occurrences left out are counted, and the count goes
 * out with the next line (`not_logged=N`), or on its own in a summary line a
 * second after the first one left out (or when the owner frees it).
 * Ownership: the owner creates and frees it on the loop's thread; stream,
 * component and summary are copied (component: the last one given). */
#ifndef SL_LOGLIMIT_H
#define SL_LOGLIMIT_H
#include <uv.h>

typedef struct sl_loglimit sl_loglimit_t;

/* summary: the message of the line that only counts what was left out. */
sl_loglimit_t *sl_loglimit_new(uv_loop_t *loop, const char *stream, const char *summary);
void sl_loglimit_free(sl_loglimit_t *l);   /* NULL is fine */
/* n occurrences of a warning: msg with the field error=text (text may be
 * NULL), logged for component, or counted. */
void sl_loglimit_warn(sl_loglimit_t *l, const char *component, unsigned n, const char *msg, const char *text);

#endif
