/* The raw librabbitmq clients bench/amqp.sh sets beside sluice, at the same
 * delivery guarantee (librabbitmq's own amqp_producer and amqp_consumer
 * examples publish without confirms and consume without acks):
 *   amqp_raw produce HOST PORT QUEUE N SIZE WINDOW
 *     N messages of SIZE bytes to the default exchange with publisher
 *     confirms, at most WINDOW unconfirmed; exits once all are confirmed.
 *   amqp_raw consume HOST PORT QUEUE N PREFETCH
 *     N messages with acks (a multiple ack every PREFETCH/2), prefetch
 *     PREFETCH; exits once N are acked. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what) {
  fprintf(stderr, "amqp_raw: %s\n", what);
  exit(1);
}

static void check(amqp_connection_state_t c, const char *what) {
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) die(what);
}

static amqp_connection_state_t open_conn(const char *host, int port) {
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  if (!s || amqp_socket_open(s, host, port)) die("connect");
  if (amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type != AMQP_RESPONSE_NORMAL)
    die("login");
  amqp_channel_open(c, 1);
  check(c, "channel");
  return c;
}

/* Reads confirms until at most `left` remain unconfirmed. */
static void confirms(amqp_connection_state_t c, uint64_t sent, uint64_t *acked, uint64_t left) {
  while (sent - *acked > left) {
    amqp_frame_t f;
    if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) die("wait");
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      *acked = a->multiple ? a->delivery_tag : *acked + 1;
    } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      die("nacked");
    }
    amqp_maybe_release_buffers(c);
  }
}

int main(int argc, char **argv) {
  if (argc < 7) die("usage: produce HOST PORT QUEUE N SIZE WINDOW | consume HOST PORT QUEUE N PREFETCH");
  amqp_connection_state_t c = open_conn(argv[2], atoi(argv[3]));
  amqp_bytes_t q = amqp_cstring_bytes(argv[4]);
  uint64_t n = strtoull(argv[5], NULL, 10);
  if (!strcmp(argv[1], "produce")) {
    if (argc < 8) die("produce needs WINDOW");
    size_t size = strtoul(argv[6], NULL, 10);
    uint64_t window = strtoull(argv[7], NULL, 10), acked = 0;
    char *body = malloc(size + 1);
    memset(body, 'x', size);
    amqp_confirm_select(c, 1);
    check(c, "confirm.select");
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 1};
    for (uint64_t i = 0; i < n; i++) {
      if (amqp_basic_publish(c, 1, amqp_empty_bytes, q, 0, 0, &props, (amqp_bytes_t){size, body})) die("publish");
      confirms(c, i + 1, &acked, window);
    }
    confirms(c, n, &acked, 0);
    free(body);
  } else {
    uint16_t prefetch = (uint16_t)atoi(argv[6]);
    uint64_t every = prefetch > 1 ? prefetch / 2 : 1;
    amqp_basic_qos(c, 1, 0, prefetch, 0);
    check(c, "qos");
    amqp_basic_consume(c, 1, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    check(c, "consume");
    for (uint64_t i = 1; i <= n; i++) {
      amqp_envelope_t e;
      amqp_maybe_release_buffers(c);
      if (amqp_consume_message(c, &e, NULL, 0).reply_type != AMQP_RESPONSE_NORMAL) die("consume");
      if (i % every == 0 || i == n) amqp_basic_ack(c, 1, e.delivery_tag, 1);
      amqp_destroy_envelope(&e);
    }
  }
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
  return 0;
}
