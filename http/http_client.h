/* Outgoing HTTP requests on the worker's loop: libcurl's multi-socket API
 * driven by a uv_poll per socket and one uv_timer (curl's documented libuv
 * pattern), so that nothing blocks the loop; names resolve on libcurl's
 * resolver thread (Debian's libcurl is built with AsynchDNS).
 * Ownership: the owner creates a client and closes it once; the client frees
 * itself after its handles have closed. Each request's cb runs exactly once
 * on the loop: with the HTTP status, or -1 and an error text (also when the
 * client is closed first). The body passed to cb is only valid during cb. */
#ifndef SL_HTTP_CLIENT_H
#define SL_HTTP_CLIENT_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_hclient sl_hclient_t;
typedef void (*sl_hclient_cb)(int status, const char *err, const char *body, size_t len, void *arg);

sl_hclient_t *sl_hclient_new(uv_loop_t *loop);

/* method "GET", "POST", "PUT"...; headers: "Name: value" strings ending with
 * NULL (may be NULL). url, headers and body are copied. */
void sl_hclient_request(sl_hclient_t *c, const char *method, const char *url, const char *const *headers,
                        const char *body, size_t len, int64_t timeout_ms, sl_hclient_cb cb, void *arg);

/* Requests in flight. */
int sl_hclient_pending(const sl_hclient_t *c);

/* Aborts what is in flight (each cb gets -1 "client closed") and frees the
 * client once its handles are closed. */
void sl_hclient_close(sl_hclient_t *c);

#endif
