/* Named rate limits (`rate_limit_resources:`, Benthos's shape), shared by
 * every component of the process that names one (`rate_limit:` of the http
 * processor and the http_client input and output). `local`: at most `count` accesses
 * per `interval`, counted in fixed windows as Benthos's local rate limit does.
 * Threads: every access comes from the one worker loop today; nothing locks.
 * Ownership: resources belong to the registry and live until the process
 * exits (a reload updates and adds, never removes: a pointer from
 * sl_ratelimit_find stays valid). */
#ifndef SL_RATELIMIT_H
#define SL_RATELIMIT_H
#include "core/component.h"
#include "core/conf.h"
#include <stddef.h>
#include <stdint.h>

typedef struct sl_ratelimit sl_ratelimit_t;

/* A component's `rate_limit:` field; what waits for an access is `what`. */
#define SL_RATELIMIT_FIELD(what)                                                                               \
  {"rate_limit", SL_F_STRING, "", 0, "The `label` of a resource of `rate_limit_resources:`: " what                \
   " waits for an access first.", NULL, NULL}

/* The running resource of that label, or NULL. */
sl_ratelimit_t *sl_ratelimit_find(const char *label);
/* Takes one access at now_ms (a monotonic clock): 0 when it may go now,
 * else how many ms to wait before asking again (nothing was taken). */
int64_t sl_ratelimit_access(sl_ratelimit_t *r, uint64_t now_ms);

/* For a component's `rate_limit:` field: 0 when empty or naming a resource
 * that runs (or, lint_only, that the config declares), else -1 with a
 * diagnostic at the field. */
int sl_ratelimit_check_ref(const sl_cnode_t *body, const char *field, int lint_only, sl_diags_t *d);
/* A component's SL_RATELIMIT_FIELD at build: checked as above; *r is the
 * running resource, NULL when the field is empty or the build only lints. */
int sl_ratelimit_bind(const sl_cnode_t *body, const sl_build_t *b, sl_ratelimit_t **r);

#endif
