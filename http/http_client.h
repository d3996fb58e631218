/* Outgoing HTTP requests on the worker's loop: libcurl's multi-socket API
 * driven by a uv_poll per socket and one uv_timer (curl's documented libuv
 * pattern), so that nothing blocks the loop; names resolve on libcurl's
 * resolver thread (Debian's libcurl is built with AsynchDNS).
 * Ownership: the owner creates a client and closes it once; the client frees
 * itself after its handles have closed. Each request's cb runs exactly once
 * on the loop: with the HTTP status, or -1 and an error text (also when the
 * client is closed first), unless the request is cancelled first. What cb is
 * passed (body, headers) is only valid during cb.
 * Connections are kept alive and reused per host by the client's multi
 * handle; TLS checks peers against the system's CAs (libcurl's default
 * bundle), and proxies come from http_proxy, https_proxy and no_proxy.
 * sl_hclient_send takes sluice's own HTTP/1.1 client (hclient_lean.h)
 * instead for an http:// URL without user:password@ when no proxy variable
 * is set; libcurl is loaded only for a client's first request through it. */
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

/* ---- Per-request options (connectors' http_client): all optional, a
 * zeroed struct behaves as sl_hclient_request. Strings are copied. ---- */
typedef struct sl_hreq sl_hreq_t;
typedef struct sl_hreq_opts {
  const char *ca_file;       /* PEM bundle to verify the server with, instead of the system's */
  const char *cert_file, *key_file;   /* client certificate and its key (PEM) */
  const char *cert_pem, *key_pem;     /* or as PEM text */
  const char *key_password;  /* of an encrypted key */
  int skip_verify;           /* accept any server certificate and name */
  int max_redirects;         /* redirects followed (0: none, the 3xx is the answer) */
  size_t body_max;           /* response bytes kept for cb (0: 64 KiB); the rest is dropped */
  int64_t connect_timeout_ms;   /* 0: libcurl's */
  int64_t idle_timeout_ms;   /* abort when nothing arrives for this long (whole seconds); 0: never */
  /* Each response header line as it arrives, without CRLF (status lines
   * too, so a caller resets on "HTTP/"). Runs inside libcurl. */
  void (*on_header)(const char *line, size_t len, void *arg);
  /* Streaming: each piece of the body as it arrives, instead of collecting
   * it for cb; return 0 when taken, -1 to abort (cb then gets -1), 1 to
   * pause: the piece was not taken and comes again after sl_hclient_unpause.
   * Runs inside libcurl: it must not start, cancel or close anything of
   * this client. */
  int (*on_data)(const char *data, size_t len, void *arg);
} sl_hreq_opts_t;

/* sl_hclient_request with options; the returned handle is valid until cb
 * runs (cb may run before this returns: then it returns NULL). */
sl_hreq_t *sl_hclient_request_opts(sl_hclient_t *c, const char *method, const char *url, const char *const *headers,
                                   const char *body, size_t len, int64_t timeout_ms, const sl_hreq_opts_t *o,
                                   sl_hclient_cb cb, void *arg);

/* Lets a request paused by its on_data go on (on_data may run at once). */
void sl_hclient_unpause(sl_hclient_t *c, sl_hreq_t *r);

/* A request with its response's headers and a body bound (a longer body
 * fails it), built on sl_hclient_request_opts: for Lua's http.request and the
 * http processor. */
typedef struct sl_hclient_opts {
  const char *method, *url;
  const char *const *headers;  /* "Name: value" strings ending with NULL (may be NULL) */
  const char *body;            /* may be NULL (no body) */
  size_t len;
  int64_t timeout_ms;          /* whole request, connect to last byte */
  size_t max_body;             /* a longer response body fails the request */
  long max_redirects;          /* redirects followed (0: none, the 3xx is the answer) */
  const sl_hreq_opts_t *conn;  /* TLS and connect timeout from it (may be NULL; the rest of it is ignored) */
} sl_hclient_opts_t;

typedef struct sl_hclient_resp {
  int status;                  /* the final response's HTTP status, or -1 with err */
  const char *err;
  const char *body;
  size_t len;
  const char *headers;         /* the final response's header lines ("Name: value\r\n"...) */
  size_t hlen;
} sl_hclient_resp_t;

typedef struct sl_hclient_req sl_hclient_req_t;
typedef void (*sl_hclient_resp_cb)(const sl_hclient_resp_t *r, void *arg);

/* Everything in o is copied. Returns the request, for sl_hclient_cancel, or
 * NULL when cb has already run (the client was closed, or curl refused it). */
sl_hclient_req_t *sl_hclient_send(sl_hclient_t *c, const sl_hclient_opts_t *o, sl_hclient_resp_cb cb, void *arg);

/* Abandons a request in flight: cb will not run. */
void sl_hclient_cancel(sl_hclient_req_t *r);

/* Requests in flight. */
int sl_hclient_pending(const sl_hclient_t *c);

/* Aborts what is in flight (each cb gets -1 "client closed") and frees the
 * client once its handles are closed. */
void sl_hclient_close(sl_hclient_t *c);

#endif
