/* The client's side of the WebSocket opening handshake (RFC 6455 §4.1):
 * the URL, the upgrade request and the check of the server's answer. Pure
 * functions, no I/O. Ownership: strings returned, and those in a parsed URL,
 * are malloc'd for the caller (sl_wsh_url_clear frees the URL's). */
#ifndef SL_WS_HANDSHAKE_H
#define SL_WS_HANDSHAKE_H
#include <stddef.h>

typedef struct sl_wsh_url {
  char *host;                /* without brackets for IPv6 */
  char *hostport;            /* host:port, [v6]:port */
  char *target;              /* path and query, at least "/" */
  int port, tls;             /* tls: wss:// */
} sl_wsh_url_t;

/* 0, or -1 with *why (caller frees). */
int sl_wsh_parse_url(const char *url, sl_wsh_url_t *u, char **why);
void sl_wsh_url_clear(sl_wsh_url_t *u);
/* An HTTP proxy's URL, http://[user[:password]@]host[:port]: into u (its
 * hostport), and *auth the Proxy-Authorization value for its user info
 * (NULL without). 0, or -1 with *why. */
int sl_wsh_parse_proxy(const char *url, sl_wsh_url_t *u, char **auth, char **why);
/* The CONNECT request that opens a tunnel to `to` through a proxy. */
char *sl_wsh_connect_request(const sl_wsh_url_t *to, const char *proxy_auth, size_t *len);
/* The proxy's answer up to its blank line: 0 for a 2xx, else -1 with *why. */
int sl_wsh_check_connect(const char *head, char **why);
/* The upgrade request with a fresh key (written to key, 25 bytes with its
 * NUL) and, when auth is not NULL, `Authorization: <auth>`. */
char *sl_wsh_request(const sl_wsh_url_t *u, const char *auth, char key[32], size_t *len);
/* The server's answer up to its blank line (NUL-terminated): 0 for a 101
 * with the Sec-WebSocket-Accept that key asks for, else -1 with *why. */
int sl_wsh_check_response(const char *head, const char *key, char **why);

#endif
