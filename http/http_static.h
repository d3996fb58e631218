/* Static files under a URL prefix of the HTTP server, confined to one
 * directory. Ownership: a mount is owned by the server's route table. */
#ifndef SL_HTTP_STATIC_H
#define SL_HTTP_STATIC_H
#include "http.h"

/* Serves dir (relative to config_file's directory) under prefix ("/ui/").
 * NULL with a diag at `at` when the directory does not exist. */
void *sl_http_static_new(const char *prefix, const char *dir, const char *config_file, sl_diags_t *d,
                         const sl_cnode_t *at);
void sl_http_static_free(void *mount);
/* Route handler (the route's pattern is the mount's prefix, ending in '/'). */
void sl_http_static_serve(sl_http_req_t *r, void *mount);

#endif
