/* A stream's processor pool (`pipeline.threads` > 1): N pool workers, each a
 * thread with its own loop, Lua VM and copy of the processor chain. The
 * stream's loop keeps the input, the transactions, the output, acks and
 * retries; it hands each batch to the least busy worker, and takes the
 * results back in input order (or as they come, unordered).
 * Ownership: the stream creates, starts and frees its pool, on its loop;
 * every callback (the sink's push) runs on that loop. */
#ifndef SL_POOL_H
#define SL_POOL_H
#include "component.h"
#include "log.h"

typedef struct sl_pool sl_pool_t;

/* n workers spawned from parent (sl_worker_spawn); results go to out. */
sl_pool_t *sl_pool_new(sl_worker_t *parent, int n, int ordered, sl_sink_t *out);
int sl_pool_size(const sl_pool_t *p);
sl_worker_t *sl_pool_worker(sl_pool_t *p, int i);
/* The chain built on worker i (owned by the pool from now on). */
void sl_pool_set_chain(sl_pool_t *p, int i, sl_chain_t *c);
/* Wires the chains and starts the threads. */
void sl_pool_start(sl_pool_t *p, sl_stream_t *s);
/* b's messages all carry t (held by the caller): they run on a worker under
 * a proxy of t, which this keeps a ref on until they have all come back or
 * been dropped. Takes ownership of b. */
void sl_pool_push(sl_pool_t *p, sl_batch_t *b, sl_txn_t *t);
/* On a pool worker, about to run processors on b: where the lines they log
 * go (the hold of b's batch, written in the stream's order), or NULL (not a
 * pool's batch, or ordered: false). With a hold, *pin is a ref on the
 * batch's proxy that the caller releases (sl_txn_unref) once it logs no
 * more: the batch is not done, nor its lines sent, before. */
sl_log_hold_t *sl_pool_hold(const sl_batch_t *b, sl_txn_t **pin);
/* Reload epochs, one switch point for all of a pool's workers: a batch
 * carries the epoch current when the stream's loop handed it out.
 * sl_pool_epoch_next starts a new epoch (any thread; it returns it):
 * every batch handed out from then on carries it or a later one, none
 * before. sl_pool_epoch: the epoch b's pool batch carries (on its worker,
 * any processor of the chain), or 0 for a batch that is not a pool's. */
uint64_t sl_pool_epoch_next(void);
uint64_t sl_pool_epoch(const sl_batch_t *b);
/* Every worker flushes its chain (batching processors push what they hold). */
void sl_pool_flush(sl_pool_t *p);
/* Stops and joins the threads, frees the chains and workers. */
void sl_pool_free(sl_pool_t *p);

#endif
