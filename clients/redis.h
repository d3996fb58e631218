/* An asynchronous Redis client on a libuv loop: hiredis's async API on a
 * libuv poll (the shape of hiredis's libuv adapter, with its error case
 * fixed: redis.c), one TCP connection per client, reconnected with backoff.
 * Commands are pipelined: each call queues one command, the loop writes
 * what is queued when the socket is writable, and replies come back in
 * order. A connection (re)opens with AUTH and SELECT from the URL before
 * any command queued behind them. A blocking command (XREADGROUP BLOCK,
 * BLMOVE) holds every command queued behind it: give it a client of its own.
 * TLS: Debian's hiredis (0.14) has no hiredis_ssl, so with a TLS context
 * each connection goes through a tunnel of ours (redis_tls.h) that hiredis
 * reaches on a private Unix socket.
 * With a Sentinel master name, each connection first asks the Sentinel of
 * the URL where that master is; a connection lost, or a READONLY answer (a
 * failover made the server a replica), makes the next one ask again. A
 * comma-separated list of URLs (Benthos's form) is tried in turn: a
 * Sentinel down or not knowing the master, the next is asked.
 * With `cluster`, the client routes each command to the master owning its
 * key's hash slot, over a client per node (redis_cluster.c).
 * Ownership and threads: everything runs on the loop that created the
 * client; a client belongs to whoever called sl_redis_new and ends with
 * sl_redis_free. Its handles do not keep the loop alive (its owner does). */
#ifndef SL_REDIS_H
#define SL_REDIS_H
#include "http/http_tls.h"
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_redis sl_redis_t;

/* A command's outcome: reply is hiredis's (borrowed: valid during the call
 * only) and NULL when err says why (connection lost or closed); a reply of
 * type REDIS_REPLY_ERROR is Redis's own refusal, passed on as it is. */
typedef void (*sl_redis_cb)(sl_redis_t *r, redisReply *reply, const char *err, void *arg);

/* The connection came up (why NULL) or went down (why: the reason). Runs on
 * the loop, once per change; the first call is a down ("connecting") or up. */
typedef void (*sl_redis_state_cb)(sl_redis_t *r, int up, const char *why, void *arg);

typedef struct sl_redis_opts {
  const char *url;               /* redis://[[user]:password@]host[:port][/db], or several separated by commas
                                    (credentials and db: the first's); copied */
  const char *sentinel_master;   /* non-empty: url names a Sentinel, asked for this master's address at
                                    each connection (Benthos's kind: failover); copied */
  int cluster;                   /* url names nodes of a Redis Cluster (Benthos's kind: cluster) */
  sl_tls_ctx_t *tls;             /* non-NULL: TLS to every server, Sentinel and node; borrowed until
                                    sl_redis_free */
  const char *log_stream;        /* for log lines; borrowed until sl_redis_free */
  const char *log_component;
  int64_t backoff_min_ms;        /* first wait before reconnecting (0: 100 ms), doubled per failure */
  int64_t backoff_max_ms;        /* at most (0: 5 s) */
  int64_t connect_timeout_ms;    /* connect and handshake at most (0: 5 s) */
  int64_t reply_timeout_ms;      /* commands waiting this long without any reply drop the connection
                                    (0: never); longer than any blocking command's wait */
  sl_redis_state_cb on_state;    /* optional */
  void *state_arg;               /* borrowed until sl_redis_free */
} sl_redis_opts_t;

/* Checks a URL without connecting: 0, or -1 with *err (caller frees). */
int sl_redis_url_check(const char *url, char **err);

/* Splits a comma-separated list of URLs, checking each: their number and
 * *urls (caller frees each and the array), or -1 with *err (caller frees). */
int sl_redis_urls(const char *list, char ***urls, char **err);
/* host and port of a checked URL (caller frees both). */
void sl_redis_url_addr(const char *url, char **host, char **port);

/* Starts connecting. NULL with *err (caller frees) for a bad URL. */
sl_redis_t *sl_redis_new(uv_loop_t *loop, const sl_redis_opts_t *o, char **err);

/* Queues a command (argv[i] is lens[i] bytes, binary-safe; both copied).
 * 0: cb runs exactly once, later, on the loop (never before this returns);
 * -1: not sent, no callback (no connection now: sl_redis_why says why). */
int sl_redis_command(sl_redis_t *r, sl_redis_cb cb, void *arg, int argc, const char **argv, const size_t *lens);

/* Subscriber mode (SUBSCRIBE / PSUBSCRIBE argv): from then on the
 * connection carries only subscriptions, and cb runs with each message's
 * reply (["message", channel, payload] or ["pmessage", pattern, channel,
 * payload]) and with each confirmation. One handler per client (a later
 * call replaces it); subscriptions end with the connection: subscribe
 * again from on_state's next up. 0 or -1 as sl_redis_command. */
int sl_redis_subscribe(sl_redis_t *r, sl_redis_cb cb, void *arg, int argc, const char **argv, const size_t *lens);

int sl_redis_up(const sl_redis_t *r);            /* connected and through the handshake */
const char *sl_redis_why(const sl_redis_t *r);   /* why not up (borrowed), or NULL */
const char *sl_redis_addr(const sl_redis_t *r);  /* host:port, for messages (borrowed) */

/* Closes the connection and frees the client. No callback of this client
 * runs after it returns: commands still waiting are dropped uncalled. */
void sl_redis_free(sl_redis_t *r);

/* The text of a reply of type STRING, STATUS or ERROR (NULL otherwise). */
static inline const char *sl_redis_str(const redisReply *rp) {
  return rp && (rp->type == REDIS_REPLY_STRING || rp->type == REDIS_REPLY_STATUS || rp->type == REDIS_REPLY_ERROR)
           ? rp->str : NULL;
}

#endif
