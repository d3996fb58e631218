/* TLS to Redis under hiredis 0.14, which has none (no hiredis_ssl in
 * Debian): the tunnel opens the TCP connection and the TLS session itself
 * (OpenSSL on memory BIOs, http_tls.h), then offers a Unix socket in a
 * private 0700 directory for hiredis's redisAsyncConnectUnix and carries
 * bytes both ways. The socket and its directory go as soon as hiredis is
 * accepted (one accept only).
 * Ownership and threads: on the loop that made it; the caller owns the
 * tunnel until sl_rtls_free, and the TLS context until then too. */
#ifndef SL_REDIS_TLS_H
#define SL_REDIS_TLS_H
#include "http/http_tls.h"
#include <uv.h>

typedef struct sl_rtls sl_rtls_t;

/* Runs on the loop: once with path (the socket for hiredis, borrowed for
 * the call) when the handshake is done, and once with why when the
 * connection or TLS fails, before or after that; never after sl_rtls_free.
 * A failure closes hiredis's end too, so hiredis sees the end. */
typedef void (*sl_rtls_cb)(sl_rtls_t *t, const char *path, const char *why, void *arg);

/* Connects to ip:port and shakes hands as a client of host (SNI and the
 * name checked). NULL with *err (caller frees). */
sl_rtls_t *sl_rtls_new(uv_loop_t *loop, sl_tls_ctx_t *ctx, const char *host, const char *ip, int port,
                       sl_rtls_cb cb, void *arg, char **err);
/* Closes both ends; the memory goes once libuv closed the handles. */
void sl_rtls_free(sl_rtls_t *t);

#endif
