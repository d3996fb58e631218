/* What the redis_* connectors share: the connection fields (`url`, the
 * reconnect backoff), a client whose state drives the component's
 * readiness and Benthos' connection series (`<kind>_connection_up`,
 * `_lost`, `_failed`), and argument lists for commands.
 * Ownership: a conn is the component's (sl_rconn_free); args own the copies
 * they make until sl_rargs_free. Callbacks run on the worker's loop. */
#ifndef SL_REDIS_COMMON_H
#define SL_REDIS_COMMON_H
#include "clients/redis.h"
#include "clients/redis_conf.h"
#include "core/component.h"
#include "core/metrics.h"
#include "lua/lhost.h"

#define SL_REDIS_URL_FIELD \
  {"url", SL_F_STRING, "redis://localhost:6379", 0, \
   "Redis server: `redis://[[user]:password@]host[:port][/db]` (AUTH with the password, and the user " \
   "for an ACL user; SELECT of the database). `rediss://` is refused: Debian's hiredis has no TLS. Several, " \
   "separated by commas: the nodes of `kind: cluster` or the Sentinels of `kind: failover`.", NULL, NULL}

#define SL_REDIS_FIELDS \
  SL_REDIS_URL_FIELD, \
  SL_REDIS_SERVER_FIELDS, \
  {"reconnect_backoff", SL_F_DURATION, "100ms", SL_ADVANCED, \
   "First wait before reconnecting after Redis went away; doubled per failed attempt up to `reconnect_max_backoff` " \
   "(sluice adds it: Benthos' Redis client retries on its own schedule).", NULL, NULL}, \
  {"reconnect_max_backoff", SL_F_DURATION, "5s", SL_ADVANCED, "Longest wait between reconnects.", NULL, NULL}, \
  {"reply_timeout", SL_F_DURATION, "10s", SL_ADVANCED, \
   "Commands waiting this long without any reply (beyond a blocking read's own wait) drop the connection, " \
   "which fails them and reconnects: a Redis that stopped answering does not hold the stream for ever " \
   "(sluice adds it). 0: never.", NULL, NULL}

typedef struct sl_rconn sl_rconn_t;
/* The connection came up or went down (after readiness was updated). */
typedef void (*sl_rconn_state_cb)(sl_rconn_t *c, int up, void *arg);

struct sl_rconn {
  sl_redis_t *r;
  sl_input_t *in;            /* one of in, out: whose readiness it drives */
  sl_output_t *out;
  sl_connmetrics_t m;        /* Benthos' connection series; NULLs when linting */
  char *url;
  char *master;              /* kind: failover's Sentinel master name, or NULL */
  int cluster;               /* kind: cluster */
  sl_tls_ctx_t *tls;         /* tls.enabled: the client context, or NULL */
  char *series_stream, *series_path, *cfg_path;   /* for the series; NULL when linting */
  int64_t backoff, max_backoff;
  int64_t reply_timeout;     /* ms; an input adds its blocking reads' wait before starting */
  int was_up;
  int quiet;                 /* a second connection of the component: leaves readiness and series to the first */
  sl_rconn_state_cb on_state;
  void *arg;
};

/* Checks `url`, `kind`, `master` and `tls` (lint and build). 0 or -1 with a diagnostic at the field. */
int sl_rconn_check(sl_build_t *b, const sl_cnode_t *conf);
/* A connection for an input (out NULL) or an output (in NULL), from the
 * fields; NULL with a diagnostic for a bad URL. on_state may be NULL. */
sl_rconn_t *sl_rconn_new(sl_build_t *b, const sl_cnode_t *conf, sl_input_t *in, sl_output_t *out,
                         sl_rconn_state_cb on_state, void *arg);
/* Starts connecting (the component's start); c->r is the client from then on. 0 or -1 (logged). */
int sl_rconn_start(sl_rconn_t *c, uv_loop_t *loop);
void sl_rconn_free(sl_rconn_t *c);

/* With kind: cluster, keys that one command uses together (n of them) must
 * share a hash slot: 0, or -1 with a diagnostic at `at` (field) saying how. */
int sl_rconn_one_slot(sl_build_t *b, const sl_rconn_t *c, const sl_cnode_t *at, const char *field,
                      const char *const *keys, int n);

/* A command's arguments, binary-safe. */
typedef struct sl_rargs {
  const char **v;
  size_t *len;
  char **owned;
  int n, cap, nowned;
} sl_rargs_t;
void sl_rargs_add(sl_rargs_t *a, const char *s, size_t len);   /* borrowed until the command is sent */
void sl_rargs_addz(sl_rargs_t *a, const char *s);
void sl_rargs_own(sl_rargs_t *a, char *s, size_t len);         /* takes s (freed by sl_rargs_reset) */
void sl_rargs_reset(sl_rargs_t *a);                             /* empties it, freeing what it owns */
void sl_rargs_free(sl_rargs_t *a);
int sl_rargs_send(sl_rconn_t *c, sl_rargs_t *a, sl_redis_cb cb, void *arg);   /* sl_redis_command */

/* An interpolated field evaluated per message: fixed when it names nothing
 * per message. */
typedef struct sl_rtmpl { sl_interp_t *i; char *fixed; } sl_rtmpl_t;
int sl_rtmpl_init(sl_rtmpl_t *t, sl_build_t *b, const sl_cnode_t *conf, const char *key);   /* 0 or -1 (diags) */
/* The value for message m (index k of its batch): a string the caller frees,
 * or NULL with *err (caller frees). */
char *sl_rtmpl_eval(sl_rtmpl_t *t, sl_msg_t *m, uint32_t k, size_t *len, char **err);
void sl_rtmpl_free(sl_rtmpl_t *t);

/* The stream's name for log lines. */
const char *sl_rconn_stream(const sl_rconn_t *c);
const char *sl_rconn_label(const sl_rconn_t *c);

#endif
