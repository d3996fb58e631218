/* Problems that keep the process from being ready besides its streams'
 * connections: data a subsystem found unusable (a damaged partition, an
 * unreadable stream.json or offsets.json). Subsystems register a check;
 * /ready and /admin/status ask every check on each request, so a layer
 * never calls up into the ones that serve those paths.
 * Ownership: arg is borrowed until sl_health_check_remove; fn runs on the
 * loop and adds entries (section name → object of name → reason) to the
 * object it is given. */
#ifndef SL_HEALTH_H
#define SL_HEALTH_H
#include <jansson.h>

typedef void (*sl_health_fn)(void *arg, json_t *problems);
void sl_health_check_add(sl_health_fn fn, void *arg);
void sl_health_check_remove(sl_health_fn fn, void *arg);
/* Every problem now, e.g. {"store": {"jobs": "partition 0: ..."}}, or NULL
 * when there is none (new reference). */
json_t *sl_health_problems(void);

#endif
