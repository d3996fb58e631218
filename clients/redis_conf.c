#include "redis_conf.h"
#include "redis.h"
#include <stdlib.h>
#include <string.h>

const char *const sl_redis_kinds[] = {"simple", "cluster", "failover", NULL};

const sl_field_t sl_redis_tls_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Must stay false (no TLS in Debian's hiredis 0.14).", NULL, NULL},
  {"skip_cert_verify", SL_F_BOOL, "false", 0, "Accepted for Benthos configs; unused.", NULL, NULL},
  {"enable_renegotiation", SL_F_BOOL, "false", 0, "Accepted for Benthos configs; unused.", NULL, NULL},
  {"root_cas", SL_F_STRING, "", 0, "Accepted for Benthos configs; unused.", NULL, NULL},
  {"root_cas_file", SL_F_STRING, "", 0, "Accepted for Benthos configs; unused.", NULL, NULL},
  {"client_certs", SL_F_OBJLIST, "[]", 0, "Accepted for Benthos configs; unused.", NULL,
   (const sl_field_t[]){{"cert", SL_F_STRING, "", 0, "PEM certificate.", NULL, NULL},
                        {"key", SL_F_STRING, "", 0, "PEM private key.", NULL, NULL},
                        {"cert_file", SL_F_STRING, "", 0, "PEM certificate file.", NULL, NULL},
                        {"key_file", SL_F_STRING, "", 0, "PEM private key file.", NULL, NULL},
                        {"password", SL_F_STRING, "", 0, "The key's password.", NULL, NULL},
                        {0}}},
  {0}};

int sl_redis_conf_check(const sl_cnode_t *conf, const char *default_url, sl_diags_t *d) {
  char *err = NULL;
  const sl_cnode_t *u = sl_cnode_get(conf, "url"), *tls = sl_cnode_get(conf, "tls");
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
  if (sl_conf_bool(tls, "enabled", 0)) {
    const sl_cnode_t *en = sl_cnode_get(tls, "enabled");
    sl_diag_add(d, en ? en : tls, "tls.enabled", "TLS to Redis is not available: Debian's hiredis (0.14.1 in bookworm) "
                "has no hiredis_ssl; reach a TLS-only Redis through a local TLS tunnel (stunnel)");
    return -1;
  }
  return 0;
}

int sl_redis_conf_cluster(const sl_cnode_t *conf) { return !strcmp(sl_conf_str(conf, "kind", "simple"), "cluster"); }

const char *sl_redis_conf_master(const sl_cnode_t *conf) {
  return strcmp(sl_conf_str(conf, "kind", "simple"), "failover") ? NULL : sl_conf_str(conf, "master", "");
}
