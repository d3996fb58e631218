/* Single flight for the `cached` processor: of the messages of one key that
 * miss the cache while a result for that key is being made, only the first
 * (the leader) runs the processors; the others wait for its result, process-
 * wide, whichever pool worker holds them. A leader's result lands when its
 * message comes back from the processors (or every part of it was dropped):
 * the waiters then take its content, or, when the leader made no cacheable
 * result (failed, skipped, split, dropped), run the processors themselves.
 * Ownership: each `cached` instance embeds an sl_flights_t, made on its
 * worker's loop; waiters are handed back there (sl_flights_cb, on that loop).
 * A waiter's message is the flights' until handed back; the instance must
 * outlive its waiters, which it does, as they hold its transactions. */
#ifndef SL_PROC_CACHED_FLIGHT_H
#define SL_PROC_CACHED_FLIGHT_H
#include "core/msg.h"
#include "core/xq.h"

/* Waiters handed back (either batch may be NULL, the callee owns both):
 * got, with their leader's result as content; own, as they were, to run
 * the processors themselves. */
typedef void (*sl_flights_cb)(void *arg, sl_batch_t *got, sl_batch_t *own);

typedef struct sl_flights {
  sl_xq_t q;                 /* waiters coming back to this instance */
  char *group;               /* which flights are the same: resource and config path */
  size_t glen;
  sl_flights_cb cb;
  void *arg;
  void (*done)(struct sl_flights *f);   /* set by close */
} sl_flights_t;

/* group: bytes naming what shares flights (copies of one processor on
 * several workers give the same). The async handle does not keep the loop
 * alive. */
void sl_flights_init(sl_flights_t *f, uv_loop_t *loop, const char *group, size_t glen, sl_flights_cb cb, void *arg);
/* Closes the handle; done(f) runs on the loop once closed. */
void sl_flights_close(sl_flights_t *f, void (*done)(sl_flights_t *f));

/* m missed under key: returns 1 when m leads (m->txn is now the flight's
 * proxy, carried through the processors), or 0 having taken m as a waiter. */
int sl_flights_join(sl_flights_t *f, sl_msg_t *m, const char *key, size_t klen);
/* For a message coming back from the processors: if it is (a part of) a
 * leader, puts its own transaction back and, with cacheable set, records
 * its content as the flight's result. Returns whether it was a leader's. */
int sl_flights_back(sl_msg_t *m, int cacheable);

#endif
