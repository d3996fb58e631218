/* Parsed URLs for an HTTP client (CURLOPT_CURLU): given a CURLOPT_URL
 * string, libcurl parses it and formats it anew on every request (a tenth
 * of a small request's instructions); a script calling the same few URLs
 * gets each parsed once.
 * Ownership: the cache belongs to its client (sl_hurls_free when it
 * closes). An entry taken stays until released, even when evicted from its
 * slot: libcurl reads it again when it retries a request on a new
 * connection. Single-threaded, as the client. */
#ifndef SL_HCLIENT_URL_H
#define SL_HCLIENT_URL_H
#include <curl/curl.h>

#define SL_HURL_SLOTS 16

typedef struct sl_hurl {
  char *url;
  CURLU *u;
  int refs;
} sl_hurl_t;

typedef struct sl_hurls {
  sl_hurl_t slot[SL_HURL_SLOTS];
  unsigned next;             /* the slot a new URL may take */
} sl_hurls_t;

/* The parsed url, taken (sl_hurl_release); NULL when it is not cached (all
 * slots busy, or libcurl's parser refuses it here): set CURLOPT_URL, and
 * libcurl reports the error in its own words. */
sl_hurl_t *sl_hurl_take(sl_hurls_t *c, const char *url);
void sl_hurl_release(sl_hurl_t *e);
/* Frees every entry; none may be taken. */
void sl_hurls_free(sl_hurls_t *c);

#endif
