/* libcurl is loaded when a config first uses it (an HTTP client, the http
 * processor, Lua's http.request or URL codecs, metrics push, trace export)
 * instead of at every start (core/lazylib.h): it brings 24 shared libraries
 * of its own (GnuTLS through librtmp, Kerberos, LDAP, SSH, ...). Its
 * functions' forwarders are generated from the header (core/lazylibs.txt),
 * except the variadic ones, whose argument C cannot pass on: here. */
#define CURL_DISABLE_TYPECHECK   /* the variadic functions are defined here, not wrapped */
#include "core/lazy_curl.h"
#include <stdarg.h>

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

#define EASY(arg) sl_lib_curl()->curl_easy_setopt(h, opt, arg)
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...) { SL_CURL_FORWARD(CURLcode, EASY, opt) }
#define MULTI(arg) sl_lib_curl()->curl_multi_setopt(m, opt, arg)
CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...) { SL_CURL_FORWARD(CURLMcode, MULTI, opt) }

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  CURLcode rc = sl_lib_curl()->curl_easy_getinfo(h, info, va_arg(ap, void *));   /* always a pointer to the answer */
  va_end(ap);
  return rc;
}
