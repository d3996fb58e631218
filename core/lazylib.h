/* Libraries that only some configs use (libcurl, librdkafka, OpenSSL, ...)
 * are not linked: the build generates, from core/lazylibs.txt and each
 * library's headers (cmake/lazylib.sh), a
 * definition of every function sluice calls that forwards to the library,
 * loaded on the first call. A start then maps none of them (nor the dozens
 * of libraries they bring); a config that uses one loads it then. */
#ifndef SL_CORE_LAZYLIB_H
#define SL_CORE_LAZYLIB_H

typedef struct {
  const char *name;      /* "libcurl" */
  const char *soname;    /* "libcurl.so.4": the library the build linked against */
  const char *env;       /* "SLUICE_LIBCURL": names another file to load instead */
  const char *package;   /* "libcurl4": the Debian package to install */
  const char *needs;     /* what in a config uses it */
} sl_lazylib_t;

/* Opens the library; one that cannot be loaded ends the process (exit 1)
 * saying what needs it and which package to install: the config cannot
 * run without it. The handle stays open for the process's life. */
void *sl_lazylib_open(const sl_lazylib_t *l);
/* The function named fn of an opened library; ends the process (exit 1) if
 * the library has none (older than the one sluice was built against). */
void *sl_lazylib_sym(const sl_lazylib_t *l, void *handle, const char *fn);

#endif
