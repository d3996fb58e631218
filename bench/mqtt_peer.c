/* The peer of bench/mqtt.sh: libmosquitto used directly, as fast as it goes
 * (its own loop, no thread), at the QoS and window sluice gets.
 *   mqtt_peer pub PORT TOPIC N SIZE QOS INFLIGHT   publish N messages, exit once all are acknowledged
 *   mqtt_peer sub PORT TOPIC N QOS CLIENT_ID       drain N messages of a persistent session
 * (mosquitto_pub -l is no peer: at the end of its input it disconnects with
 * QoS 1 messages still queued, which are lost.) */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long n, sent, acked, got;
static int qos, inflight;
static const char *topic;
static char *payload;
static int size;

static void publish_more(struct mosquitto *m) {
  while (sent < n && sent - acked < inflight) {
    if (mosquitto_publish(m, NULL, topic, size, payload, qos, false) != MOSQ_ERR_SUCCESS) exit(2);
    sent++;
  }
}

static void on_connect_pub(struct mosquitto *m, void *arg, int rc) {
  (void)arg;
  if (rc) exit(3);
  publish_more(m);
}

static void on_publish(struct mosquitto *m, void *arg, int mid) {
  (void)arg;
  (void)mid;
  if (++acked == n) mosquitto_disconnect(m);
  else publish_more(m);
}

static void on_connect_sub(struct mosquitto *m, void *arg, int rc) {
  (void)arg;
  if (rc) exit(3);
  mosquitto_subscribe(m, NULL, topic, qos);
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg) {
  (void)arg;
  (void)msg;
  if (++got == n) mosquitto_disconnect(m);
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 7) {
    fprintf(stderr, "usage: mqtt_peer pub PORT TOPIC N SIZE QOS INFLIGHT | sub PORT TOPIC N QOS CLIENT_ID\n");
    return 1;
  }
  int pub = !strcmp(argv[1], "pub");
  int port = atoi(argv[2]);
  topic = argv[3];
  n = atol(argv[4]);
  mosquitto_lib_init();
  struct mosquitto *m;
  if (pub) {
    size = atoi(argv[5]);
    qos = atoi(argv[6]);
    inflight = atoi(argv[7]);
    payload = malloc((size_t)size);
    memset(payload, 'x', (size_t)size);
    m = mosquitto_new(NULL, true, NULL);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, inflight);
    mosquitto_connect_callback_set(m, on_connect_pub);
    mosquitto_publish_callback_set(m, on_publish);
  } else {
    qos = atoi(argv[5]);
    m = mosquitto_new(argv[6], false, NULL);
    mosquitto_connect_callback_set(m, on_connect_sub);
    mosquitto_message_callback_set(m, on_message);
  }
  if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) return 4;
  mosquitto_loop_forever(m, -1, 1);
  mosquitto_destroy(m);
  mosquitto_lib_cleanup();
  return (pub ? acked : got) == n ? 0 : 5;
}
