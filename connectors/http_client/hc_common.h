/* What the http_client input and output share: the request's fields (url,
 * verb, headers, timeout, TLS, auth, retries), building a request's headers
 * for a message, the retry schedule with Retry-After, and OAuth2
 * client-credentials tokens.
 * Ownership: an sl_hc_t belongs to its component (sl_hc_init / sl_hc_free);
 * header arrays from sl_hc_headers are the caller's (sl_hc_headers_free). */
#ifndef SL_HC_COMMON_H
#define SL_HC_COMMON_H
#include "core/component.h"
#include "http/http_client.h"
#include "lua/lhost.h"

/* Fields both components take, in this order, at the top of their specs. */
#define SL_HC_COMMON_FIELDS                                                                                      \
  {"url", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP, "The URL to request, interpolated per message in the "     \
   "output (`https://hooks.example.com/${! meta.tenant }`).", NULL, NULL},                                       \
  {"headers", SL_F_MAP, NULL, SL_INTERP, "Request headers; values are interpolated per message in the output.", \
   NULL, NULL},                                                                                                  \
  {"timeout", SL_F_DURATION, "5s", 0, "How long one request may take, connection included.", NULL, NULL},       \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS for `https:` URLs (the system's CAs by default).", NULL, sl_hc_tls_fields}, \
  {"basic_auth", SL_F_OBJECT, NULL, 0, "HTTP Basic authentication.", NULL, sl_hc_basic_fields},                 \
  {"bearer_token", SL_F_STRING, "", 0, "Sent as `Authorization: Bearer <token>` (sluice adds this field: "     \
   "Benthos users write the header by hand).", NULL, NULL},                                                      \
  {"oauth2", SL_F_OBJECT, NULL, 0, "OAuth2 client credentials: a token is fetched from `token_url`, kept "       \
   "until it expires and fetched anew when it does or when the server answers 401.", NULL, sl_hc_oauth2_fields}, \
  {"retry_period", SL_F_DURATION, "1s", 0, "Wait before the first retry; it doubles with each further one.",     \
   NULL, NULL},                                                                                                  \
  {"max_retry_backoff", SL_F_DURATION, "300s", 0, "The longest wait between retries, `Retry-After` included.",  \
   NULL, NULL},                                                                                                  \
  {"backoff_on", SL_F_STRLIST, "[429]", 0, "Statuses retried with backoff, besides every 5xx and connection "     \
   "errors.", NULL, NULL},                                                                                       \
  {"drop_on", SL_F_STRLIST, "[]", 0, "Statuses never retried, a 5xx included: the request fails at once.",      \
   NULL, NULL},                                                                                                  \
  {"successful_on", SL_F_STRLIST, "[]", 0, "Statuses that count as success besides 2xx.", NULL, NULL},          \
  {"follow_redirects", SL_F_BOOL, "true", 0, "Follow up to 5 redirects (a loop fails the request); off: a 3xx "  \
   "is the answer.", NULL, NULL}

extern const sl_field_t sl_hc_tls_fields[], sl_hc_basic_fields[], sl_hc_oauth2_fields[];

/* A wait before the next try: the longest of none. */
#define SL_HC_NO_RETRY (-1)

typedef struct sl_hc_token sl_hc_token_t;   /* OAuth2 state */

typedef struct sl_hc {
  sl_interp_t *url;
  char *static_url;          /* when url names nothing per message */
  const char **hnames;       /* header names (the tree's), with an interp each */
  sl_interp_t **hvals;
  unsigned nheaders;
  char *auth;                /* "Authorization: ..." from basic_auth or bearer_token, or NULL */
  sl_hreq_opts_t opts;       /* TLS and redirects; strings are the tree's */
  int64_t timeout_ms, retry_ms, max_backoff_ms;
  int *backoff_on, *drop_on, *ok_on;   /* terminated by 0 */
  sl_hc_token_t *oauth2;     /* NULL without oauth2 */
} sl_hc_t;

/* Reads the fields above from conf; -1 with diags. */
int sl_hc_init(sl_hc_t *hc, sl_build_t *b, const sl_cnode_t *conf);
void sl_hc_free(sl_hc_t *hc);

/* The URL for message m (index i of its batch); NULL and *err on failure. */
char *sl_hc_url(sl_hc_t *hc, sl_msg_t *m, uint32_t i, char **err);
/* Headers for m ("Name: value", NULL-terminated): the configured ones, then
 * extra (may be NULL, copied); m may be NULL (static headers only). Values
 * holding CR or LF are left out (no header injection through metadata). */
char **sl_hc_headers(sl_hc_t *hc, sl_msg_t *m, uint32_t i, const char *const *extra, char **err);
void sl_hc_headers_free(char **h);

/* Is status a success (2xx or successful_on)? */
int sl_hc_ok(const sl_hc_t *hc, int status);
/* After a failed try number `tries` (1 = the first) with status (-1: no
 * answer) and the Retry-After header's value (NULL if none): the wait in
 * ms before the next, or SL_HC_NO_RETRY when the status is not retried. */
int64_t sl_hc_backoff(const sl_hc_t *hc, int status, int tries, const char *retry_after);

/* Is "Name: value" (len bytes) the header name? Then *value is its value. */
int sl_hc_header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen);

/* "Authorization: Basic ..." for user:pass (caller frees). */
char *sl_hc_basic(const char *user, const char *pass);
/* oauth2.c's setup and teardown, for sl_hc_init and sl_hc_free. */
int sl_hc_oauth2_init(sl_hc_t *hc, const sl_cnode_t *o, sl_build_t *b);
void sl_hc_oauth2_free(sl_hc_token_t *t);

/* OAuth2: calls ready(arg, "Authorization: Bearer ...") once a token is at
 * hand (at once when cached), or ready(arg, NULL) with err when fetching
 * failed; the string is valid during the call. sl_hc_token_drop forgets the
 * token (the server answered 401). Without oauth2, ready(arg, NULL) at once
 * with err NULL. */
typedef void (*sl_hc_token_cb)(void *arg, const char *auth, const char *err);
void sl_hc_token_get(sl_hc_t *hc, sl_hclient_t *client, sl_hc_token_cb ready, void *arg);
void sl_hc_token_drop(sl_hc_t *hc);
/* Forgets every waiter of ready with arg (a request being freed). */
void sl_hc_token_cancel(sl_hc_t *hc, void *arg);

#endif
