/* libFuzzer target: arbitrary bytes from a real TCP client into the HTTP
 * server (request parser, limits, pipelining) and, when the first byte is
 * odd, as WebSocket frames after a valid upgrade. The server must answer or
 * close; never crash, leak or misbehave under ASan/UBSan. */
#include "core/section.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "http/http_ws.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static sl_worker_t *w;
static int port;

static void echo(sl_http_req_t *r, void *arg) {
  (void)arg;
  sl_http_respond(r, 200, "application/octet-stream", r->body->data, r->body->len, NULL);
}

static void ws_echo_msg(sl_ws_t *ws, int text, const char *p, size_t n, void *arg) {
  (void)arg;
  sl_ws_send(ws, text, p, n, SL_HTTP_MAX_BUFFER);
}

static void ws_gone(sl_ws_t *ws, void *arg) {
  (void)ws;
  (void)arg;
}

static void ws_accept(sl_http_req_t *r, void *arg) {
  (void)arg;
  static const sl_ws_handlers_t h = {ws_echo_msg, ws_gone};
  sl_ws_accept(r, &h, NULL, 4096, 0, w);
}

static void setup(void) {
  /* As sluice itself (control/engine.c): a write to a peer that closed
   * (the server's 50 ms timeouts, or this client after them) must fail with
   * EPIPE, not end the fuzzer silently with SIGPIPE, which libFuzzer does
   * not report (a loaded make test run lost fuzz_http that way). */
  signal(SIGPIPE, SIG_IGN);
  w = sl_worker_new(0);
  sl_diags_t d = {0};
  static const char conf[] =
    "address: 127.0.0.1:0\nmax_header_bytes: 2KiB\nmax_body_bytes: 4KiB\nread_timeout: 50ms\nidle_timeout: 50ms\n";
  sl_cnode_t *node = sl_conf_parse(conf, sizeof conf - 1, "fuzz", &d);
  const sl_section_t *http = sl_section_find("http");
  sl_spec_validate_fields(http->fields, node, "http", &d);
  http->apply(w, node, &d);
  sl_http_route(w, "/echo", NULL, echo, NULL, "fuzz", &d, node);
  sl_http_route(w, "/ws", NULL, ws_accept, NULL, "fuzz", &d, node);
  sl_http_listen(w);
  port = sl_http_port(w);
  sl_cnode_free(node);
  sl_diags_free(&d);
}

/* Sends data, then reads until the server closes or goes quiet. */
static void exchange(const uint8_t *data, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t off = 0;
  int quiet = 0;
  char buf[65536];
  for (int turn = 0; turn < 400 && quiet < 40; turn++) {
    if (off < size) {
      ssize_t n = write(fd, data + off, size - off);
      if (n > 0) off += (size_t)n;
      if (off == size) shutdown(fd, SHUT_WR);
    }
    uv_run(w->loop, UV_RUN_NOWAIT);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN) break;
    if (n < 0) {
      quiet++;
      usleep(500);
    } else {
      quiet = 0;
    }
  }
  close(fd);
  for (int i = 0; i < 20; i++) uv_run(w->loop, UV_RUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!w) setup();
  if (port <= 0 || size == 0) return 0;
  if (data[0] & 1) {
    static const char up[] =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    uint8_t *all = sl_xmalloc(sizeof up - 1 + size - 1);
    memcpy(all, up, sizeof up - 1);
    memcpy(all + sizeof up - 1, data + 1, size - 1);
    exchange(all, sizeof up - 1 + size - 1);
    free(all);
  } else {
    exchange(data + 1, size - 1);
  }
  return 0;
}
