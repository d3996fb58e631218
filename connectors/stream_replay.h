/* Replays part of a `stream` input's stream again, for one consumer of its
 * pipeline (an SSE client of an http_server output resuming after
 * Last-Event-ID): records [from[p], to[p]) of each partition go through the
 * pipeline once more, one batch at a time and in order, each message tagged
 * with meta `sl_replay` = token; nothing is committed for them.
 * Ownership: the input owns the replay; done(arg) runs once when every
 * replayed transaction has completed, or at once when there is nothing. */
#ifndef SL_STREAM_REPLAY_H
#define SL_STREAM_REPLAY_H
#include "../core/component.h"

#define SL_REPLAY_META "sl_replay"

/* Is `in` a `stream` input (so that sl_stream_replay applies)? */
int sl_stream_is_input(const sl_input_t *in);
/* Partitions of its stream, once started (0 before). */
int sl_stream_partitions(const sl_input_t *in);
/* The offset of partition p it started reading at (what comes through its
 * pipeline next, if nothing has yet). */
uint64_t sl_stream_first(const sl_input_t *in, int p);
/* The end (next offset to be written) of partition p of its stream. */
uint64_t sl_stream_end(const sl_input_t *in, int p);
/* Starts a replay; n is the length of from and to (copied). */
void sl_stream_replay(sl_input_t *in, const uint64_t *from, const uint64_t *to, int n, const char *token,
                      void (*done)(void *arg), void *arg);

#endif
