/* Named rate limits (`rate_limit_resources:`, Benthos's shape), shared by
 * every component of the process that names one (`rate_limit:` of the http
 * processor and the http_client output). `local`: at most `count` accesses
 * per `interval`, counted in fixed windows as Benthos's local rate limit does.
 * Threads: every access comes from the one worker loop today; nothing locks.
 * Ownership: resources belong to the registry and live until the process
 * exits (a reload updates and adds, never removes: a pointer from
 * sl_ratelimit_find stays valid). */
#ifndef SL_RATELIMIT_H
#define SL_RATELIMIT_H
#include "core/conf.h"
#include <stddef.h>
#include <stdint.h>

typedef struct sl_ratelimit sl_ratelimit_t;

/* The running resource of that label, or NULL. */
sl_ratelimit_t *sl_ratelimit_find(const char *label);
/* Takes one access at now_ms (a monotonic clock): 0 when it may go now,
 * else how many ms to wait before asking again (nothing was taken). */
int64_t sl_ratelimit_access(sl_ratelimit_t *r, uint64_t now_ms);

/* For a component's `rate_limit:` field: 0 when empty or naming a resource
 * that runs (or, lint_only, that the config declares), else -1 with a
 * diagnostic at the field. */
int sl_ratelimit_check_ref(const sl_cnode_t *body, const char *field, int lint_only, sl_diags_t *d);

#endif
