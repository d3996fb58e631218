/* What /ready and /admin/status report besides what the engine runs, each
 * subsystem registering its part here so that no layer calls up into the
 * ones that serve those paths:
 * - checks: data a subsystem found unusable (a damaged partition, an
 *   unreadable stream.json or offsets.json), which keep the process from
 *   being ready;
 * - the streams' readiness, from whoever runs the streams (the engine);
 * - status members: extra keys of /admin/status (lua_modules, ...).
 * Ownership: arg is borrowed until the matching remove (or, for members
 * and the streams function, until the process ends or it is set again);
 * every fn runs on the loop, once per request. A check adds entries
 * (section name → object of name → reason) to the object it is given; a
 * member returns a new reference that the reply takes. */
#ifndef SL_HEALTH_H
#define SL_HEALTH_H
#include <jansson.h>

typedef void (*sl_health_fn)(void *arg, json_t *problems);
void sl_health_check_add(sl_health_fn fn, void *arg);
void sl_health_check_remove(sl_health_fn fn, void *arg);
/* Every problem now, e.g. {"store": {"jobs": "partition 0: ..."}}, or NULL
 * when there is none (new reference). */
json_t *sl_health_problems(void);

/* fn returns NULL when every stream is connected, else a JSON object of
 * stream name to reason (caller frees); NULL fn: no streams to ask. */
void sl_health_set_streams(char *(*fn)(void *arg), void *arg);
char *sl_health_streams_not_ready(void);

/* Register before the server runs. */
void sl_status_member_add(const char *key, json_t *(*fn)(void *arg), void *arg);
/* Sets every member's key in body. */
void sl_status_members(json_t *body);

#endif
