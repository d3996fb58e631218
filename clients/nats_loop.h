/* A cnats connection's socket read and written on a libuv loop (cnats's
 * event-loop mode, natsOptions_SetEventLoop) instead of by cnats's reader
 * and flusher threads: what arrives is parsed on the loop, and a
 * subscription made synchronous can be drained right after, on the same
 * thread, without a hand-over per message (a NATS input's CPU went to
 * thread switches: perf, bench/RESULTS.md).
 *
 * Unlike cnats's libuv adapter, attach may come from any thread (cnats
 * connects and reconnects on threads of its own; nothing that waits runs
 * on the loop): every change cnats asks for from another thread is applied
 * on the loop through a uv_async. The poll watches a dup of cnats's socket,
 * so that cnats closing its descriptor before the loop stopped watching
 * cannot leave the loop watching a number the process reused.
 *
 * Ownership: the link makes it on the loop (sl_nats_io_new) and lets go of
 * it twice: the loop with sl_nats_io_close, the connection's thread with
 * sl_nats_io_release once the connection is destroyed; freed after both.
 * after_read runs on the loop after each read, never after
 * sl_nats_io_close. */
#ifndef SL_NATS_LOOP_H
#define SL_NATS_LOOP_H
#include <nats/nats.h>
#include <uv.h>

typedef struct sl_nats_io sl_nats_io_t;

sl_nats_io_t *sl_nats_io_new(uv_loop_t *loop, void (*after_read)(void *arg), void *arg);
/* Puts the connection that o makes on the loop (and sends without
 * cnats's flusher thread: a write is one more poll turn away). */
natsStatus sl_nats_io_options(sl_nats_io_t *io, natsOptions *o);
/* Loop: 1 and the connection may be used (its subscriptions drained) until
 * sl_nats_io_leave; 0 once sl_nats_io_dead was called. */
int sl_nats_io_enter(sl_nats_io_t *io);
void sl_nats_io_leave(sl_nats_io_t *io);
/* Connection's thread, before it destroys the connection and its
 * subscriptions: the loop stops touching them (waits for it to leave). */
void sl_nats_io_dead(sl_nats_io_t *io);
/* Loop: applies what cnats asked of the socket now (a connection it closed
 * and detached is about to be freed: no poll may call into it after). */
void sl_nats_io_settle(sl_nats_io_t *io);
void sl_nats_io_release(sl_nats_io_t *io);
void sl_nats_io_close(sl_nats_io_t *io);

#endif
