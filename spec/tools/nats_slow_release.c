/* LD_PRELOAD shim for spec/nats_exit_spec.lua: makes cnats's callback
 * thread slow, as a loaded machine does. cnats runs a connection's
 * disconnected and closed callbacks on that thread, and then drops the
 * reference each held (natsAsyncCb_Destroy): the last one frees the
 * connection and its TLS context. Each drop is delayed by
 * NATS_SLOW_RELEASE_MS; the file NATS_SLOW_RELEASE_LOG gets a line "begun"
 * as each starts and "released" once it is done: a process that exits
 * without waiting for cnats leaves fewer of the second.
 * Build: cc -shared -fPIC -o slow.so nats_slow_release.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* sluice loads libnats with RTLD_LOCAL, out of RTLD_NEXT's sight: the
 * loaded object is found by name. */
static int find_nats(struct dl_phdr_info *i, size_t size, void *out) {
  (void)size;
  if (!strstr(i->dlpi_name, "/libnats.so")) return 0;
  *(void **)out = dlopen(i->dlpi_name, RTLD_NOW | RTLD_NOLOAD);
  return 1;
}

static void note(const char *line) {
  const char *log = getenv("NATS_SLOW_RELEASE_LOG");
  int fd = log ? open(log, O_WRONLY | O_APPEND | O_CREAT, 0600) : -1;
  if (fd < 0) return;
  if (write(fd, line, strlen(line)) < 0) abort();
  close(fd);
}

void natsAsyncCb_Destroy(void *info);

void natsAsyncCb_Destroy(void *info) {
  static void (*real)(void *);
  if (!real) {
    void *h = NULL;
    dl_iterate_phdr(find_nats, &h);
    real = h ? (void (*)(void *))dlsym(h, "natsAsyncCb_Destroy") : NULL;
    if (!real) abort();
  }
  note("begun\n");
  const char *ms = getenv("NATS_SLOW_RELEASE_MS");
  struct timespec d = {0, (ms ? atol(ms) : 300) * 1000000L};
  while (d.tv_nsec >= 1000000000L) {
    d.tv_sec++;
    d.tv_nsec -= 1000000000L;
  }
  nanosleep(&d, NULL);
  real(info);
  note("released\n");
}
