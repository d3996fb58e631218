/* LD_PRELOAD shim for specs of what a server acknowledges before its
 * socket took the bytes (issue 16): while the file HOLD_FILE exists, a
 * write or writev to a TCP socket whose local port is HOLD_PORT waits (as
 * a thread the machine does not schedule), and the file HOLD_LOG gets a
 * line "held" each time one starts waiting. Every other write goes on.
 * Under a sanitizer build the shim must come before the sanitizer's
 * runtime (which intercepts write too): ASAN_OPTIONS=verify_asan_link_order=0.
 * Build: cc -shared -fPIC -o hold_write.so hold_write.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int ours(int fd) {
  const char *port = getenv("HOLD_PORT");
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (!port || getsockname(fd, (struct sockaddr *)&a, &len) != 0) return 0;
  int p = a.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&a)->sin_port)
          : a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                    : -1;
  return p == atoi(port);
}

static void hold(int fd) {
  const char *file = getenv("HOLD_FILE");
  if (!file || access(file, F_OK) != 0 || !ours(fd)) return;
  const char *log = getenv("HOLD_LOG");
  FILE *f = log ? fopen(log, "a") : NULL;
  if (f) {
    fputs("held\n", f);
    fclose(f);
  }
  struct timespec d = {0, 10 * 1000000L};
  while (access(file, F_OK) == 0) nanosleep(&d, NULL);
}

ssize_t write(int fd, const void *p, size_t n) {
  static ssize_t (*real)(int, const void *, size_t);
  if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
  hold(fd);
  return real(fd, p, n);
}

ssize_t writev(int fd, const struct iovec *v, int n) {
  static ssize_t (*real)(int, const struct iovec *, int);
  if (!real) real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
  hold(fd);
  return real(fd, v, n);
}
