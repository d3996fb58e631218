/* The floor of bench/nats_floor.sh: cnats (the library sluice's `nats`
 * output publishes with) used directly, as fast as it goes, with sluice's
 * connection settings (1 MiB buffer), one natsConnection_Publish per message
 * and a flush at the end: what any program publishing through cnats pays.
 *   nats_pub URL SUBJECT N SIZE */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: nats_pub URL SUBJECT N SIZE\n");
    return 2;
  }
  long n = atol(argv[3]);
  int size = atoi(argv[4]);
  char *payload = malloc((size_t)size + 1);
  memset(payload, 'x', (size_t)size);
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetURL(o, argv[1]);
  if (s == NATS_OK) s = natsOptions_SetIOBufSize(o, 1 << 20);
  if (s == NATS_OK) s = natsConnection_Connect(&nc, o);
  for (long i = 0; s == NATS_OK && i < n; i++) s = natsConnection_Publish(nc, argv[2], payload, size);
  if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, 60000);
  if (s != NATS_OK) fprintf(stderr, "nats_pub: %s\n", natsStatus_GetText(s));
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
  free(payload);
  return s == NATS_OK ? 0 : 1;
}
