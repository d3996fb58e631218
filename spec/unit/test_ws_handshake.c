/* Units of the websocket client's opening handshake
 * (connectors/websocket/ws_handshake.c): URLs it takes and refuses, the
 * request's Host, and the check of the server's answer (RFC 6455's sample
 * key and accept value). */
#include "connectors/websocket/ws_handshake.h"
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void url_ok(const char *url, const char *host, int port, int tls, const char *target, const char *hostport) {
  sl_wsh_url_t u;
  char *why = NULL;
  CHECK(sl_wsh_parse_url(url, &u, &why) == 0, "%s: %s", url, why ? why : "");
  if (!why) {
    CHECK(!strcmp(u.host, host) && u.port == port && u.tls == tls && !strcmp(u.target, target) &&
              !strcmp(u.hostport, hostport),
          "%s: %s %d %d %s %s", url, u.host, u.port, u.tls, u.target, u.hostport);
  }
  free(why);
  sl_wsh_url_clear(&u);
}

static void url_bad(const char *url, const char *want) {
  sl_wsh_url_t u;
  char *why = NULL;
  CHECK(sl_wsh_parse_url(url, &u, &why) == -1 && why && strstr(why, want), "%s: %s", url, why ? why : "accepted");
  free(why);
  sl_wsh_url_clear(&u);
}

static void test_urls(void) {
  url_ok("ws://example.com", "example.com", 80, 0, "/", "example.com:80");
  url_ok("WSS://example.com/a/b?x=1#frag", "example.com", 443, 1, "/a/b?x=1", "example.com:443");
  url_ok("ws://127.0.0.1:8080?room=1", "127.0.0.1", 8080, 0, "/?room=1", "127.0.0.1:8080");
  url_ok("ws://[::1]:9000/feed", "::1", 9000, 0, "/feed", "[::1]:9000");
  url_bad("http://example.com/", "scheme");
  url_bad("ws:///path", "no host");
  url_bad("ws://h:0/", "port");
  url_bad("ws://h:70000/", "port");
  url_bad("ws://[::1/", "]");
  url_bad("ws://h/a b", "%-encoded");
  url_bad("ws://user:pw@x/", "basic_auth");
}

static void test_request(void) {
  sl_wsh_url_t u;
  char *why = NULL, key[32];
  size_t len;
  sl_wsh_parse_url("wss://example.com/feed", &u, &why);
  char *req = sl_wsh_request(&u, "Basic YTpi", key, &len);
  CHECK(strlen(key) == 24, "key %s", key);
  CHECK(len == strlen(req) && !strncmp(req, "GET /feed HTTP/1.1\r\nHost: example.com\r\n", 39), "%s", req);
  CHECK(strstr(req, "\r\nAuthorization: Basic YTpi\r\n") && strstr(req, key) && !strcmp(req + len - 4, "\r\n\r\n"), "%s", req);
  free(req);
  sl_wsh_url_clear(&u);
  sl_wsh_parse_url("ws://[::1]/", &u, &why);
  req = sl_wsh_request(&u, NULL, key, &len);
  CHECK(strstr(req, "\r\nHost: [::1]:80\r\n") && !strstr(req, "Authorization"), "%s", req);
  free(req);
  sl_wsh_url_clear(&u);
}

static void test_response(void) {
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";   /* RFC 6455 section 1.3 */
  char *why = NULL;
  CHECK(sl_wsh_check_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n", key, &why) == 0,
        "%s", why ? why : "");
  free(why);
  why = NULL;
  CHECK(sl_wsh_check_response("HTTP/1.1 404 Not Found\r\n\r\n", key, &why) == -1 && strstr(why, "HTTP 404"), "404");
  free(why);
  why = NULL;
  CHECK(sl_wsh_check_response("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: wrong=\r\n\r\n", key, &why) == -1 &&
            strstr(why, "Sec-WebSocket-Accept"), "wrong accept");
  free(why);
  why = NULL;
  CHECK(sl_wsh_check_response("SSH-2.0-OpenSSH\r\n\r\n", key, &why) == -1 && strstr(why, "HTTP"), "not HTTP");
  free(why);
}

static void test_proxy(void) {
  sl_wsh_url_t u, to;
  char *auth = NULL, *why = NULL;
  CHECK(sl_wsh_parse_proxy("http://ann:s%40cret@127.0.0.1:3128/", &u, &auth, &why) == 0, "%s", why ? why : "");
  CHECK(!strcmp(u.hostport, "127.0.0.1:3128") && auth && !strcmp(auth, "Basic YW5uOnNAY3JldA=="), "%s %s", u.hostport,
        auth ? auth : "no auth");   /* ann:s@cret */
  sl_wsh_parse_url("wss://example.com/feed?x=1", &to, &why);
  size_t len;
  char *req = sl_wsh_connect_request(&to, auth, &len);
  CHECK(!strcmp(req, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
                     "Proxy-Authorization: Basic YW5uOnNAY3JldA==\r\n\r\n") && len == strlen(req), "%s", req);
  free(req);
  free(auth);
  sl_wsh_url_clear(&u);
  sl_wsh_url_clear(&to);
  CHECK(sl_wsh_parse_proxy("http://proxy", &u, &auth, &why) == 0 && u.port == 80 && !auth, "default port");
  sl_wsh_url_clear(&u);
  const char *bad[][2] = {{"https://p:3128", "https:// proxy"}, {"socks5://p:1080", "http://"},
                          {"http://p:3128/x", "no path"}, {"http://:3128", "no host"}, {"http://p:0", "port"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why = NULL;
    CHECK(sl_wsh_parse_proxy(bad[i][0], &u, &auth, &why) == -1 && why && strstr(why, bad[i][1]) && !auth, "%s: %s",
          bad[i][0], why ? why : "accepted");
    free(why);
    sl_wsh_url_clear(&u);
  }
  why = NULL;
  CHECK(sl_wsh_check_connect("HTTP/1.0 200 Connection established\r\n\r\n", &why) == 0, "200");
  CHECK(sl_wsh_check_connect("HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n", &why) == -1 && why &&
            !strcmp(why, "the proxy refused the tunnel: HTTP/1.1 407 Proxy Authentication Required"), "%s", why);
  free(why);
}

int main(void) {
  RUN(test_urls);
  RUN(test_request);
  RUN(test_response);
  RUN(test_proxy);
  return check_report("ws_handshake");
}
