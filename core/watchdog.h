/* A deadline kept by a thread of its own: when the loop thread is stuck in
 * a call that does not return (a library waiting on a peer that is gone),
 * no timer of the loop can fire, and the process would never exit.
 * Ownership: sl_watchdog_start allocates; sl_watchdog_stop joins the thread
 * and frees. The thread touches nothing but its own struct and stderr. */
#ifndef SL_WATCHDOG_H
#define SL_WATCHDOG_H
#include <stdint.h>

typedef struct sl_watchdog sl_watchdog_t;

/* After ms, logs why (an error line) and ends the process with exit code 1
 * unless stopped before. NULL if no thread could be started. */
sl_watchdog_t *sl_watchdog_start(int64_t ms, const char *why);
void sl_watchdog_stop(sl_watchdog_t *w);   /* NULL is fine */

#endif
