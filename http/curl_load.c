/* libcurl, loaded when a config first uses it (an HTTP client, the http
 * processor, Lua's http.request or URL codecs, metrics push, trace export)
 * instead of at every start: libcurl brings 24 shared libraries of its own
 * (GnuTLS through librtmp, Kerberos, LDAP, SSH, ...) whose loading and
 * relocation was most of sluice's startup. Each libcurl function sluice
 * calls is defined here with the header's own prototype (the compiler
 * checks it) and forwards to the loaded library; the build still compiles
 * against libcurl's headers but does not link it. */
#define CURL_DISABLE_TYPECHECK   /* the variadic functions are defined here, not wrapped */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define SL_CURL_FUNCS(X)                                                                                          \
  X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_cleanup)            \
  X(curl_easy_escape) X(curl_easy_unescape) X(curl_easy_pause) X(curl_easy_reset) X(curl_easy_strerror)          \
  X(curl_free) X(curl_getdate) X(curl_multi_init) X(curl_multi_add_handle) X(curl_multi_assign)                 \
  X(curl_multi_cleanup) X(curl_multi_info_read) X(curl_multi_remove_handle) X(curl_multi_setopt)               \
  X(curl_multi_socket_action) X(curl_multi_strerror) X(curl_slist_append) X(curl_slist_free_all) X(curl_url)   \
  X(curl_url_cleanup) X(curl_url_get) X(curl_url_set)

#define SL_CURL_PTR(f) __typeof__(f) *f;
typedef struct { SL_CURL_FUNCS(SL_CURL_PTR) } curl_lib_t;
static curl_lib_t lib;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The library sluice was built against (its soname); SLUICE_LIBCURL names
 * another file. A missing library ends the process with what to install:
 * the config needs it and nothing would work without it. */
static void load(void) {
  const char *name = getenv("SLUICE_LIBCURL");
  if (!name || !*name) name = "libcurl.so.4";
  void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "sluice: this config needs libcurl (HTTP client, http processor, Lua http or URL codecs, "
                    "metrics push, trace export), which could not be loaded: %s (Debian package libcurl4)\n",
            dlerror());
    exit(1);
  }
#define SL_CURL_SYM(f)                                                                           \
  if (!(*(void **)&lib.f = dlsym(h, #f))) {                                                      \
    fprintf(stderr, "sluice: %s has no %s: sluice needs libcurl 7.88 or later\n", name, #f);   \
    exit(1);                                                                                     \
  }
  SL_CURL_FUNCS(SL_CURL_SYM)
}

static const curl_lib_t *loaded(void) {
  pthread_once(&once, load);
  return &lib;
}
#define LIB (*loaded())

CURLcode curl_global_init(long flags) { return LIB.curl_global_init(flags); }
CURL *curl_easy_init(void) { return LIB.curl_easy_init(); }
void curl_easy_cleanup(CURL *h) { LIB.curl_easy_cleanup(h); }
char *curl_easy_escape(CURL *h, const char *s, int n) { return LIB.curl_easy_escape(h, s, n); }
char *curl_easy_unescape(CURL *h, const char *s, int n, int *out) { return LIB.curl_easy_unescape(h, s, n, out); }
CURLcode curl_easy_pause(CURL *h, int bits) { return LIB.curl_easy_pause(h, bits); }
void curl_easy_reset(CURL *h) { LIB.curl_easy_reset(h); }
const char *curl_easy_strerror(CURLcode c) { return LIB.curl_easy_strerror(c); }
void curl_free(void *p) { LIB.curl_free(p); }
time_t curl_getdate(const char *p, const time_t *unused) { return LIB.curl_getdate(p, unused); }
CURLM *curl_multi_init(void) { return LIB.curl_multi_init(); }
CURLMcode curl_multi_add_handle(CURLM *m, CURL *h) { return LIB.curl_multi_add_handle(m, h); }
CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p) { return LIB.curl_multi_assign(m, s, p); }
CURLMcode curl_multi_cleanup(CURLM *m) { return LIB.curl_multi_cleanup(m); }
CURLMsg *curl_multi_info_read(CURLM *m, int *left) { return LIB.curl_multi_info_read(m, left); }
CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h) { return LIB.curl_multi_remove_handle(m, h); }
CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev, int *running) {
  return LIB.curl_multi_socket_action(m, s, ev, running);
}
const char *curl_multi_strerror(CURLMcode c) { return LIB.curl_multi_strerror(c); }
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) { return LIB.curl_slist_append(l, s); }
void curl_slist_free_all(struct curl_slist *l) { LIB.curl_slist_free_all(l); }
CURLU *curl_url(void) { return LIB.curl_url(); }
void curl_url_cleanup(CURLU *u) { LIB.curl_url_cleanup(u); }
CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags) {
  return LIB.curl_url_get(u, what, part, flags);
}
CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags) {
  return LIB.curl_url_set(u, what, part, flags);
}

/* An option's one argument, as libcurl reads it: its type is the option's
 * range (CURLOPTTYPE_*, the same for easy and multi options). */
#define SL_CURL_FORWARD(type, call, opt)                                    \
  va_list ap;                                                               \
  va_start(ap, opt);                                                        \
  type rc;                                                                  \
  if ((long)(opt) < CURLOPTTYPE_OBJECTPOINT) rc = call(va_arg(ap, long));   \
  else if ((long)(opt) < CURLOPTTYPE_OFF_T) rc = call(va_arg(ap, void *));  \
  else if ((long)(opt) < CURLOPTTYPE_BLOB) rc = call(va_arg(ap, curl_off_t)); \
  else rc = call(va_arg(ap, void *));                                       \
  va_end(ap);                                                               \
  return rc;

#define EASY(arg) LIB.curl_easy_setopt(h, opt, arg)
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...) { SL_CURL_FORWARD(CURLcode, EASY, opt) }
#define MULTI(arg) LIB.curl_multi_setopt(m, opt, arg)
CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...) { SL_CURL_FORWARD(CURLMcode, MULTI, opt) }

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  CURLcode rc = LIB.curl_easy_getinfo(h, info, va_arg(ap, void *));   /* always a pointer to the answer */
  va_end(ap);
  return rc;
}
