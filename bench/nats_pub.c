/* The floor of bench/nats_floor.sh: cnats (the library sluice's `nats` and
 * `nats_jetstream` outputs publish with) used directly, as fast as it goes,
 * with sluice's connection settings (1 MiB buffer):
 *   core: one natsConnection_Publish per message and a flush at the end;
 *   js:   one js_PublishAsync per message with up to WINDOW waiting for
 *         their PubAck (sluice's max_in_flight; MaxPending = WINDOW, so a
 *         publish waits for room as sluice's output does), then
 *         js_PublishAsyncComplete; a stream must capture SUBJECT.
 * What any program publishing through cnats pays.
 *   nats_pub URL SUBJECT N SIZE [js WINDOW] */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long failed;

static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *arg) {
  (void)js, (void)pae, (void)arg;
  if (!pa) failed++;
  natsMsg_Destroy(m);
}

int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 7 && !strcmp(argv[5], "js"))) {
    fprintf(stderr, "usage: nats_pub URL SUBJECT N SIZE [js WINDOW]\n");
    return 2;
  }
  long n = atol(argv[3]);
  int size = atoi(argv[4]);
  char *payload = malloc((size_t)size + 1);
  memset(payload, 'x', (size_t)size);
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetURL(o, argv[1]);
  if (s == NATS_OK) s = natsOptions_SetIOBufSize(o, 1 << 20);
  if (s == NATS_OK) s = natsConnection_Connect(&nc, o);
  if (argc == 7) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.MaxPending = atol(argv[6]);
    jo.PublishAsync.StallWait = 60000;   /* the window is full: wait for room, as sluice does */
    if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, &jo);
    for (long i = 0; s == NATS_OK && i < n; i++) s = js_PublishAsync(js, argv[2], payload, size, NULL);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (s == NATS_OK) s = js_PublishAsyncComplete(js, &po);
    if (s == NATS_OK && failed) s = NATS_ERR;
  } else {
    for (long i = 0; s == NATS_OK && i < n; i++) s = natsConnection_Publish(nc, argv[2], payload, size);
    if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, 60000);
  }
  if (s != NATS_OK) fprintf(stderr, "nats_pub: %s (%ld PubAcks failed)\n", natsStatus_GetText(s), failed);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
  free(payload);
  return s == NATS_OK ? 0 : 1;
}
