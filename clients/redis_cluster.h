/* Redis Cluster behind the client's interface (redis.h), for redis.c only:
 * a client made with `cluster` set is a router (redis_cluster.c) over one
 * ordinary client per master node, and redis.c's functions hand such a
 * client's calls to these. Contracts as the sl_redis_* of the same name.
 * Ownership: the router belongs to its client (self), freed with it. */
#ifndef SL_REDIS_CLUSTER_H
#define SL_REDIS_CLUSTER_H
#include "redis.h"

typedef struct sl_rcluster sl_rcluster_t;

/* self: the client handed to callbacks of the router's own (its state, a
 * command given up); borrowed until sl_rcluster_free. NULL with *err. */
sl_rcluster_t *sl_rcluster_new(sl_redis_t *self, uv_loop_t *loop, const sl_redis_opts_t *o, char **err);
int sl_rcluster_command(sl_rcluster_t *cl, sl_redis_cb cb, void *arg, int argc, const char **argv, const size_t *lens);
int sl_rcluster_subscribe(sl_rcluster_t *cl, sl_redis_cb cb, void *arg, int argc, const char **argv,
                          const size_t *lens);
int sl_rcluster_up(const sl_rcluster_t *cl);
const char *sl_rcluster_why(const sl_rcluster_t *cl);
const char *sl_rcluster_addr(const sl_rcluster_t *cl);
void sl_rcluster_free(sl_rcluster_t *cl);

#endif
