/* Request-scoped streams. A stream whose input or output (not its
 * processors) refers to the request context (`${ctx.query.user}`,
 * `$tyk_context.request_data_user`) is a template: the paths of its
 * `http_server` output are routed here, each client's request resolves the
 * references, and each distinct resolution is one running instance, shared
 * by the clients that resolve the same way and stopped
 * `request_scope.idle_timeout` after its last client left.
 * Ownership: the engine builds, starts, stops and frees a template; the
 * template owns its instances. Everything runs on the worker's loop. */
#ifndef SL_SCOPED_H
#define SL_SCOPED_H
#include "core/component.h"
#include "http/http.h"

typedef struct sl_scoped sl_scoped_t;

/* Does this stream node use the request context outside its processors? */
int sl_scoped_is_template(const sl_cnode_t *stream);
/* Checks the template (resolved with defaults or placeholders) and, when
 * b->worker is set, routes its paths. NULL with diags on error. */
sl_scoped_t *sl_scoped_build(sl_build_t *b, const sl_cnode_t *node, const char *name);
/* on_done runs once sl_scoped_stop has stopped every instance. */
void sl_scoped_start(sl_scoped_t *t, void (*on_done)(void *arg), void *arg);
void sl_scoped_stop(sl_scoped_t *t);
void sl_scoped_free(sl_scoped_t *t);
const char *sl_scoped_name(const sl_scoped_t *t);
/* Logs what each instance still waits for (shutdown_timeout). */
void sl_scoped_log_pending(const sl_scoped_t *t);
int sl_scoped_instances(const sl_scoped_t *t);

#endif
