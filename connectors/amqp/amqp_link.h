/* A connection to an AMQP 0.9.1 broker (librabbitmq) owned by a thread of
 * its own, shared by the amqp_0_9 input and output. The thread connects
 * (trying `urls` in turn, with backoff), runs the component's setup on
 * channel 1, then waits on the socket and on a wake-up pipe; the component
 * exchanges work with it through queues under sl_amqp_link_lock.
 * Ownership: the component creates the link and ends it with
 * sl_amqp_link_close. Hooks marked (thread) run on the link's thread with
 * `shared`, the part of the component the thread reads; wake runs on the
 * loop with `loop_arg`, never after sl_amqp_link_close returned. The link
 * frees itself and calls release(shared) once both the thread and the
 * loop's handle are gone, on whichever thread is last: release may only
 * free what the thread read. */
#ifndef SL_AMQP_LINK_H
#define SL_AMQP_LINK_H
#include "core/spec.h"
#include "http/hclient_conf.h"
#include <amqp.h>
#include <uv.h>

/* The fields both components take. */
#define SL_AMQP_COMMON_FIELDS                                                                                   \
  {"urls", SL_F_STRLIST, NULL, SL_REQUIRED,                                                                     \
   "Broker URLs (`amqp://user:pass@host:5672/vhost`, `amqps://` for TLS), tried in turn on each (re)connect.", \
   NULL, NULL},                                                                                                 \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS towards the broker (librabbitmq's OpenSSL context given the settings "  \
   "of sluice's); `amqps://` URLs always use it.", NULL, sl_tls_conf_fields}

/* librabbitmq's amqp_empty_table and amqp_empty_bytes are data, which a
 * library loaded on first use cannot lend (core/lazylib.h): the same values. */
#define SL_AMQP_NO_TABLE ((amqp_table_t){0, NULL})
#define SL_AMQP_NO_BYTES ((amqp_bytes_t){0, NULL})

typedef struct sl_amqp_link sl_amqp_link_t;

typedef struct sl_amqp_hooks {
  /* (thread) Channel 1 is open: declare, set qos, consume or select
   * confirms. 0, or -1 after sl_amqp_link_fail. */
  int (*setup)(sl_amqp_link_t *l, amqp_connection_state_t c, void *arg);
  /* (thread) A frame that is not a close (those end the connection). */
  int (*frame)(sl_amqp_link_t *l, amqp_connection_state_t c, amqp_frame_t *f, void *arg);
  /* (thread, optional) Whether frames may be read now: 0 leaves them in
   * the socket (the broker then waits) until the component kicks. */
  int (*room)(void *arg);
  /* (thread) Woken by sl_amqp_link_kick; c is NULL while not connected. */
  int (*work)(sl_amqp_link_t *l, amqp_connection_state_t c, void *arg);
  /* (thread) The connection is gone: what waited for it will not come. */
  void (*lost)(sl_amqp_link_t *l, void *arg);
  /* (loop) Woken by sl_amqp_link_wake or a change of status. */
  void (*wake)(void *arg);
  void (*release)(void *arg);
} sl_amqp_hooks_t;

/* Diags on a bad url (the link is made anyway: close it). */
typedef struct sl_build sl_build_t;
sl_amqp_link_t *sl_amqp_link_new(sl_build_t *b, const sl_cnode_t *conf, const sl_amqp_hooks_t *h, void *shared,
                                  void *loop_arg);
/* Starts the thread; 0 or -1. */
int sl_amqp_link_start(sl_amqp_link_t *l, uv_loop_t *loop);
/* Stops the thread (it ends once what it does now returns) and releases. */
void sl_amqp_link_close(sl_amqp_link_t *l);
/* At the process's end, on its main thread, once every link is closed:
 * waits (sl_detached_wait: at most until the exit deadline) for the links'
 * threads, which free their connections' TLS objects, to end. */
void sl_amqp_link_exit(void);

void sl_amqp_link_lock(sl_amqp_link_t *l);
void sl_amqp_link_unlock(sl_amqp_link_t *l);
void sl_amqp_link_kick(sl_amqp_link_t *l);    /* any thread: run work on the link's thread */
void sl_amqp_link_wake(sl_amqp_link_t *l);    /* the link's thread: run wake on the loop */
/* (thread) Records why the connection fails; returns -1. */
int sl_amqp_link_fail(sl_amqp_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* (thread) An RPC's reply: 0, or -1 with what went wrong in `what`. */
int sl_amqp_link_rpc(sl_amqp_link_t *l, amqp_connection_state_t c, const char *what);
/* (thread) Whether the link is to stop. */
int sl_amqp_link_quitting(sl_amqp_link_t *l);
/* (loop) Whether the connection came up or went down (or failed for
 * another reason) since the last call: 1 with *up and, when down, the
 * reason as /ready shows it ("amqp: ..."), else 0. */
int sl_amqp_link_changed(sl_amqp_link_t *l, int *up, char *why, size_t n);
/* (thread) The current connection's number. */
uint64_t sl_amqp_link_gen(sl_amqp_link_t *l);

/* amqp_bytes of a C string or of a buffer, without copying. */
static inline amqp_bytes_t sl_amqp_bytes(const void *p, size_t n) { return (amqp_bytes_t){n, (void *)p}; }

#endif
