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

int main(void) {
  RUN(test_urls);
  RUN(test_request);
  RUN(test_response);
  return check_report("ws_handshake");
}
