/* sluice's own HTTP/1.1 client for http:// and https:// (what OpenResty's
 * cosockets do): connections on the loop kept alive per scheme, host and
 * port (https: a TLS session on each, checked against the system's CAs,
 * OpenSSL's default verify paths, with SNI and the host's name; a session
 * resumed from the host's last one), the
 * request written in one buffer, the response parsed by llhttp. libcurl's
 * per-request formatting, parsing and multi bookkeeping were most of an
 * enrichment call's CPU. http_client.c decides which requests come here
 * (sl_hlean_target) and shapes what they answer as it does libcurl's.
 * Ownership: http_client.c creates one per sl_hclient and closes it once;
 * the client frees itself when its connections have closed. Each request's
 * done runs exactly once on the loop (also when the client is closed first:
 * -1 "client closed"), unless cancelled first; never before
 * sl_hlean_request returns. on_headers and on_data run inside a read callback
 * and must not start, cancel or close anything of this client.
 * Single-threaded, as the loop. */
#ifndef SL_HCLIENT_LEAN_H
#define SL_HCLIENT_LEAN_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Response header bytes a request takes (both clients): more fails it. */
#define SL_HCLIENT_HEADERS_MAX 65536

typedef struct sl_hlean sl_hlean_t;
typedef struct sl_hlean_req sl_hlean_req_t;

/* Where an http:// or https:// URL goes: spans into the URL it was parsed from. */
typedef struct sl_hlean_target {
  const char *host;          /* name or IP literal (without [] for IPv6) */
  size_t hlen;
  const char *authority;     /* host[:port] as written: the Host header */
  size_t alen;
  const char *path;          /* "/..." up to a '#' (NULL: "/") */
  size_t plen;
  int port;
  int tls;                   /* https:// */
} sl_hlean_target_t;

/* 1 when url is http[s]://host[:port][/path][?query] with nothing this client
 * leaves to libcurl (user:password@, bytes outside printable ASCII, a host
 * that is not a plain name or IP literal), t then filled; else 0. */
int sl_hlean_target(const char *url, sl_hlean_target_t *t);

sl_hlean_t *sl_hlean_new(uv_loop_t *loop);

typedef struct sl_hlean_cbs {
  /* A response's header lines ("Name: value\r\n"...) at once, when its
   * headers are complete; a 1xx's too (the last call is the answer's). */
  void (*on_headers)(const char *lines, size_t len, void *arg);
  /* Each piece of the body; -1 aborts the request (done gets -1). */
  int (*on_data)(const char *data, size_t len, void *arg);
  void (*done)(int status, const char *err, void *arg);
  void *arg;
} sl_hlean_cbs_t;

/* headers: "Name: value" strings ending with NULL (may be NULL); body may
 * be NULL (no body). Everything is copied. connect_ms: 0 is timeout_ms. */
sl_hlean_req_t *sl_hlean_request(sl_hlean_t *c, const char *method, const sl_hlean_target_t *t,
                                 const char *const *headers, const char *body, size_t len, int64_t timeout_ms,
                                 int64_t connect_ms, const sl_hlean_cbs_t *cbs);

/* Abandons a request in flight: done does not run; its connection closes. */
void sl_hlean_cancel(sl_hlean_req_t *r);

/* Fails what is in flight (-1 "client closed"), closes the connections. */
void sl_hlean_close(sl_hlean_t *c);

#endif
