/* What the NATS inputs and outputs share: their connection fields (`urls`,
 * `auth`, `tls`), and a link: one NATS connection (the cnats client) with
 * a thread of its own that connects, subscribes and tears down, and a
 * bounded queue that hands messages and publish acknowledgements from
 * cnats's threads to the worker's loop through a uv_async.
 *
 * Nothing that can wait runs on the loop (natsConnection_Connect's blocking
 * connect and handshake, JetStream's request/reply setup calls): the link's
 * thread makes them. A link asked to (cbs.on_loop, without TLS) has its
 * socket read and written on the loop (nats_loop.h): its subscriptions are
 * then synchronous (sl_nats_keep_sync) and drained on the loop right after
 * each read, with no thread hand-over per message; otherwise cnats's reader,
 * flusher and delivery threads run it and messages come through the queue.
 * Acks, naks and publishes are made on the loop: they append to cnats's
 * write buffer.
 *
 * Ownership: the component creates the link (sl_nats_new) when it starts
 * and gives it up with sl_nats_close; the link frees itself once its thread
 * has closed the connection and the loop has closed its handle. Callbacks
 * in sl_nats_cbs run on the loop, never after sl_nats_close. */
#ifndef SL_NATS_LINK_H
#define SL_NATS_LINK_H
#include "core/component.h"
#include "http/hclient_conf.h"
#include <nats/nats.h>

extern const sl_field_t sl_nats_auth_fields[];

#define SL_NATS_COMMON_FIELDS                                                                               \
  {"urls", SL_F_STRLIST, NULL, SL_REQUIRED,                                                                  \
   "Servers (`nats://host:4222`, `tls://...`; `nats://user:password@host` works too). The client "          \
   "reconnects to any of them for as long as the stream runs.", NULL, NULL},                                 \
  {"auth", SL_F_OBJECT, NULL, 0, "Credentials (one way at most).", NULL, sl_nats_auth_fields},             \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS to the servers (a `tls://` URL turns it on too).", NULL,               \
   sl_tls_client_fields}

typedef struct sl_nats sl_nats_t;

/* What the loop takes out of the queue: a received message (ack 0), or
 * what sl_nats_push_ack queued (ack 1). */
typedef struct sl_nats_item {
  natsMsg *m;
  int ack;
} sl_nats_item_t;

typedef struct sl_nats_cbs {
  /* On the link's thread, after connecting (perhaps not yet connected:
   * the client keeps trying): subscribe, make a JetStream context.
   * 0, or -1 with *err (malloc'd): tried again a second later. */
  int (*setup)(sl_nats_t *l, natsConnection *nc, void *setup_arg, char **err);
  void (*setup_free)(void *setup_arg);                /* when the link ends (any thread) */
  /* Optional, on the link's thread once setup succeeded: called again and
   * again until the link ends (a pull consumer's fetch), each call back
   * within about a second; returns how many ms to wait before the next. */
  int (*pump)(sl_nats_t *l, void *setup_arg);
  int pumps;                 /* threads calling pump side by side (0 or 1: the link's own only) */
  int on_loop;               /* the socket on the loop (ignored with TLS): see sl_nats_on_loop */
  void (*wake)(void *arg);                            /* loop: the queue has items */
  void (*state)(void *arg, int up, const char *why);  /* loop: connected and set up, or why not */
  const char *stream, *label;                         /* for the link's log lines (borrowed) */
} sl_nats_cbs_t;

/* Reads the connection fields of a validated conf (nothing is opened).
 * NULL with diags when they are inconsistent. */
typedef struct sl_nats_conf sl_nats_conf_t;
sl_nats_conf_t *sl_nats_conf(sl_build_t *b, const sl_cnode_t *conf);
void sl_nats_conf_free(sl_nats_conf_t *c);
/* A copy of c, for another link (a cache's per worker loop). */
sl_nats_conf_t *sl_nats_conf_dup(const sl_nats_conf_t *c);

/* Starts connecting (takes c and setup_arg, which the link's thread reads:
 * it may outlive the component). queue_max: received messages held at most
 * before cnats's delivery thread waits (0: items are never waited for). */
sl_nats_t *sl_nats_new(uv_loop_t *loop, sl_nats_conf_t *c, const sl_nats_cbs_t *cbs, void *arg, void *setup_arg,
                       int queue_max);
void sl_nats_close(sl_nats_t *l);
/* Ends the connection on the link's thread: flushes what was published
 * (acks included), closes it and frees cnats's side, then calls done(arg)
 * on the loop (unless closed meanwhile). Streams end after it, so the
 * process never exits under cnats's feet. Nothing is taken or published
 * after it is called. */
void sl_nats_end(sl_nats_t *l, void (*done)(void *who, void *arg), void *who, void *arg);
/* The connection and JetStream context, once the link's thread made them
 * (NULL before). Publishing on them from the loop only appends to cnats's
 * buffer. */
natsConnection *sl_nats_conn(sl_nats_t *l);
jsCtx *sl_nats_js(sl_nats_t *l);
/* The connection once setup succeeded on it (its subscriptions are made),
 * else NULL. */
natsConnection *sl_nats_conn_set_up(sl_nats_t *l);

/* Up to max items, in order. Returns how many. */
int sl_nats_take(sl_nats_t *l, sl_nats_item_t *out, int max);
/* Asks for another wake (more items than one turn took). */
void sl_nats_rewake(sl_nats_t *l);

/* For setup (link thread): a subscription whose messages go to the queue;
 * the link keeps it and destroys it at the end. sl_nats_on_msg also takes
 * what a pump fetched (nc and sub unused); it waits while the queue is full,
 * and drops m unacknowledged once the link ends. */
void sl_nats_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *link);
void sl_nats_keep(sl_nats_t *l, natsSubscription *sub, jsCtx *js);
/* For setup, when sl_nats_on_loop: a synchronous subscription the loop
 * drains into sl_nats_take (after each read, and when woken). */
void sl_nats_keep_sync(sl_nats_t *l, natsSubscription *sub);
/* The link reads on the loop (its setup subscribes synchronously). */
int sl_nats_on_loop(sl_nats_t *l);
/* Any thread: a publish's acknowledgement (takes m); m NULL: only a wake,
 * for work of the link's thread that is no message. */
void sl_nats_push_ack(sl_nats_t *l, natsMsg *m);

/* At the process's end, on its main thread, once every link is closed:
 * waits (at most 5 s) for the links' threads and then for cnats's own, so
 * that none is still freeing a connection (OpenSSL's state) while the
 * process exits. Does nothing if no link was made. */
void sl_nats_exit(void);

/* A subject to publish to or subscribe to (wild: `*` and `>` tokens
 * allowed): non-empty, no empty token, no whitespace or control byte. */
int sl_nats_subject_ok(const char *s, int wild);

/* cnats's error text for s, with its last error's detail when it has one. */
char *sl_nats_err(natsStatus s);

#endif
