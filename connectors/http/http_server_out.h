/* What the `http_server` output offers a request-scoped instance (an
 * output built with b->mounted), whose paths the request scopes route
 * (control/scoped.c) instead of the output.
 * Ownership: r is answered by the output as any request it serves; cb runs
 * on the loop until the output is destroyed. */
#ifndef SL_HTTP_SERVER_OUT_H
#define SL_HTTP_SERVER_OUT_H
#include "core/component.h"
#include "http/http.h"

/* Serves r on its path (0), sse_path (1) or ws_path (2), and reports each
 * change of its client count to cb. */
enum { SL_HOUT_PATH, SL_HOUT_SSE, SL_HOUT_WS };
void sl_hout_serve(sl_output_t *o, int which, sl_http_req_t *r);
void sl_hout_watch(sl_output_t *o, void (*cb)(void *arg, int nclients), void *arg);
/* Is this output an http_server one (so sl_hout_* apply)? */
int sl_hout_is(const sl_output_t *o);

#endif
