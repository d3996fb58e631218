/* Loading a library on first use (core/lazylib.h); the forwarders that call
 * these are generated (cmake/lazylib.sh). */
#include "lazylib.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static const char *file_of(const sl_lazylib_t *l) {
  const char *f = getenv(l->env);
  return f && *f ? f : l->soname;
}

void *sl_lazylib_open(const sl_lazylib_t *l) {
  void *h = dlopen(file_of(l), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "sluice: this config needs %s (%s), which could not be loaded: %s (Debian package %s)\n", l->name,
            l->needs, dlerror(), l->package);
    exit(1);
  }
  return h;
}

void *sl_lazylib_sym(const sl_lazylib_t *l, void *handle, const char *fn) {
  void *p = dlsym(handle, fn);
  if (!p) {
    fprintf(stderr, "sluice: %s has no %s: it is older than the %s sluice was built against (Debian package %s)\n",
            file_of(l), fn, l->soname, l->package);
    exit(1);
  }
  return p;
}
