#include "redis_conf.h"
#include "redis.h"
#include "core/xalloc.h"
#include "http/hclient_conf.h"
#include <stdlib.h>
#include <string.h>

const char *const sl_redis_kinds[] = {"simple", "cluster", "failover", NULL};

const sl_field_t sl_redis_tls_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Talk to every server (Sentinels and cluster nodes too) over TLS, through a "
   "tunnel of sluice's (docs/redis.md).", NULL, NULL},
  {"enable_renegotiation", SL_F_BOOL, "false", 0, "Accepted for Benthos configs; unused (TLS 1.2+ only).", NULL,
   NULL},
  SL_TLS_CONF_FIELDS,
  {0}};

int sl_redis_conf_tls(const sl_cnode_t *conf, sl_tls_ctx_t **ctx, sl_diags_t *d) {
  const sl_cnode_t *tls = sl_cnode_get(conf, "tls");
  *ctx = NULL;
  if (!sl_conf_bool(tls, "enabled", 0)) return 0;
  *ctx = sl_tls_conf_client(tls, d);
  return *ctx ? 0 : -1;
}

int sl_redis_conf_check(const sl_cnode_t *conf, const char *default_url, sl_diags_t *d) {
  char *err = NULL;
  const sl_cnode_t *u = sl_cnode_get(conf, "url");
  const sl_cnode_t *kind = sl_cnode_get(conf, "kind"), *master = sl_cnode_get(conf, "master");
  const char *k = sl_conf_str(conf, "kind", "simple");
  const char *url = u && u->str ? u->str : default_url;
  char **urls = NULL;
  int n = url ? sl_redis_urls(url, &urls, &err) : 0;
  if (n < 0) {
    sl_diag_add(d, u ? u : conf, "url", "%s", err);
    free(err);
    return -1;
  }
  int bad_db = 0;
  for (int i = 0; i < n; i++) {
    char *db = strrchr(urls[i], '/');
    bad_db |= db && db > urls[i] && db[-1] != '/' && strspn(db + 1, "0") != strlen(db + 1);
    free(urls[i]);
  }
  free(urls);
  int failover = !strcmp(k, "failover"), named = master && master->str && *master->str;
  if (n > 1 && !strcmp(k, "simple")) {
    sl_diag_add(d, u, "url", "several URLs name the nodes of kind: cluster or the Sentinels of kind: failover; "
                "kind: simple takes one server");
    return -1;
  }
  if (!strcmp(k, "cluster") && bad_db) {
    sl_diag_add(d, u, "url", "a Redis Cluster has only database 0 (SELECT is refused)");
    return -1;
  }
  if (failover != named) {
    sl_diag_add(d, named ? master : kind ? kind : conf, named ? "master" : "kind",
                named ? "master names a Sentinel master: only with kind: failover"
                      : "kind: failover needs `master`, the name the Sentinels know the master by");
    return -1;
  }
  sl_tls_ctx_t *ctx;
  int rc = sl_redis_conf_tls(conf, &ctx, d);   /* certificates and CAs load at lint */
  sl_tls_ctx_free(ctx);
  return rc;
}

int sl_redis_conf_cluster(const sl_cnode_t *conf) { return !strcmp(sl_conf_str(conf, "kind", "simple"), "cluster"); }

const char *sl_redis_conf_master(const sl_cnode_t *conf) {
  return strcmp(sl_conf_str(conf, "kind", "simple"), "failover") ? NULL : sl_conf_str(conf, "master", "");
}
