/* What every Redis component's config says about the server besides its
 * `url` (whose default differs between them): Benthos's `kind`, `master`
 * and `tls`, and the check of all four.
 * Ownership: the tables are static; the check reads the tree only; the
 * TLS context is the caller's (sl_tls_ctx_free). */
#ifndef SL_REDIS_CONF_H
#define SL_REDIS_CONF_H
#include "core/conf.h"
#include "core/spec.h"
#include "http/http_tls.h"

extern const sl_field_t sl_redis_tls_fields[];
extern const char *const sl_redis_kinds[];

#define SL_REDIS_SERVER_FIELDS                                                                                   \
  {"kind", SL_F_ENUM, "simple", 0, "`simple`: `url` is the server. `failover`: `url` names Sentinels "          \
   "(several separated by commas, tried in turn), asked for the address of `master` at each connection; a "     \
   "lost connection, or a READONLY answer after a failover, asks again. `cluster`: `url` names nodes of a "      \
   "Redis Cluster (several separated by commas); each command goes to the master owning its key's slot, "       \
   "following MOVED and ASK (docs/redis.md).", sl_redis_kinds, NULL},                                           \
  {"master", SL_F_STRING, "", 0, "The name the Sentinels know the master by (`kind: failover` only).", NULL,     \
   NULL},                                                                                                        \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS to the servers (Benthos's fields). Debian's hiredis (0.14) has none: "    \
   "sluice opens the TLS connection and hands hiredis a private Unix socket (docs/redis.md).", NULL,           \
   sl_redis_tls_fields}

/* url (default_url when absent; NULL: an absent url is not checked), kind, master and tls of conf: 0, or -1
 * with a diagnostic at the first bad field. */
int sl_redis_conf_check(const sl_cnode_t *conf, const char *default_url, sl_diags_t *d);
/* The client context conf's tls asks for: 0 with *ctx (NULL: no TLS), or -1
 * with a diagnostic (a CA or certificate file that does not load). */
int sl_redis_conf_tls(const sl_cnode_t *conf, sl_tls_ctx_t **ctx, sl_diags_t *d);
/* Whether a checked conf is kind: cluster. */
int sl_redis_conf_cluster(const sl_cnode_t *conf);
/* The Sentinel master name of a checked conf (kind: failover), else NULL;
 * the tree's string. */
const char *sl_redis_conf_master(const sl_cnode_t *conf);

#endif
