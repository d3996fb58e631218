/* GET /admin/status: what the process runs (config version and hash, load
 * time, each stream's state) plus members other subsystems register here.
 * Ownership: fn returns a new reference that the reply takes; arg is
 * borrowed and must outlive the server. Register before the server runs;
 * fn runs on the loop, once per request. */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H
#include <jansson.h>

void sl_admin_status_add(const char *key, json_t *(*fn)(void *arg), void *arg);

#endif
