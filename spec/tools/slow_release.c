/* LD_PRELOAD shim for the specs of the process's end (issue 16): makes a
 * library's release of a connection slow, as a loaded machine does, to
 * show that the process waits for it before it exits. SLOW_FN (compiled
 * in: a function of SLOW_LIB taking and returning at most one integer or
 * pointer) is delayed by SLOW_RELEASE_MS, only where called from the code
 * of an object whose name holds SLOW_CALLER if that is set; the file
 * SLOW_RELEASE_LOG gets a line "begun" as each call starts and "released"
 * once it is done: a process that exits without waiting leaves fewer of
 * the second.
 *   cnats: SLOW_FN=natsAsyncCb_Destroy SLOW_LIB=/libnats.so (on its
 *     callback thread, the last reference to a connection and its TLS).
 *   librabbitmq: SLOW_FN=close SLOW_LIB=/libc.so SLOW_CALLER=/librabbitmq
 *     (amqp_destroy_connection closes the socket between SSL_free and
 *     SSL_CTX_free). Not those two, nor amqp_destroy_connection: sluice's
 *     own forwarders of them (core/lazylib.h) come before any preload.
 * Build: cc -shared -fPIC -DSLOW_FN=... -DSLOW_LIB='"..."' -o slow.so slow_release.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* sluice loads its libraries with RTLD_LOCAL, out of RTLD_NEXT's sight:
 * the loaded object is found by name. */
static int find_lib(struct dl_phdr_info *i, size_t size, void *out) {
  (void)size;
  if (!strstr(i->dlpi_name, SLOW_LIB)) return 0;
  *(void **)out = dlopen(i->dlpi_name, RTLD_NOW | RTLD_NOLOAD);
  return 1;
}

static void note(const char *line) {
  const char *log = getenv("SLOW_RELEASE_LOG");
  FILE *f = log ? fopen(log, "a") : NULL;
  if (!f) return;
  fputs(line, f);
  fclose(f);
}

intptr_t SLOW_FN(intptr_t p);

intptr_t SLOW_FN(intptr_t p) {
  static intptr_t (*real)(intptr_t);
  if (!real) {
    void *h = NULL;
    dl_iterate_phdr(find_lib, &h);
    real = h ? (intptr_t(*)(intptr_t))dlsym(h, STR(SLOW_FN)) : NULL;
    if (!real) abort();
  }
#ifdef SLOW_CALLER
  Dl_info who;
  if (!dladdr(__builtin_return_address(0), &who) || !who.dli_fname || !strstr(who.dli_fname, SLOW_CALLER))
    return real(p);
#endif
  note("begun\n");
  const char *ms = getenv("SLOW_RELEASE_MS");
  struct timespec d = {0, (ms ? atol(ms) : 300) * 1000000L};
  while (d.tv_nsec >= 1000000000L) {
    d.tv_sec++;
    d.tv_nsec -= 1000000000L;
  }
  nanosleep(&d, NULL);
  intptr_t r = real(p);
  note("released\n");
  return r;
}
