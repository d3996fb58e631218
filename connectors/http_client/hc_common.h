/* What the http_client input and output share: the request's fields (url,
 * headers, and those of http/hclient_conf.h), building a request's headers
 * for a message, and the retry schedule.
 * Ownership: an sl_hc_t belongs to its component (sl_hc_init / sl_hc_free);
 * header arrays from sl_hc_headers are the caller's (sl_hc_headers_free). */
#ifndef SL_HC_COMMON_H
#define SL_HC_COMMON_H
#include "core/component.h"
#include "http/http_client.h"
#include "http/hclient_conf.h"
#include "lua/lhost.h"

/* Fields both components take, in this order, at the top of their specs. */
#define SL_HC_COMMON_FIELDS                                                                                      \
  {"url", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP, "The URL to request, interpolated per message in the "     \
   "output (`https://hooks.example.com/${! meta.tenant }`).", NULL, NULL},                                       \
  {"headers", SL_F_MAP, NULL, SL_INTERP, "Request headers; values are interpolated per message in the output.", \
   NULL, NULL},                                                                                                  \
  SL_HCONF_FIELDS

/* A wait before the next try: the longest of none. */
#define SL_HC_NO_RETRY (-1)

typedef struct sl_hc {
  sl_interp_t *url;
  char *static_url;          /* when url names nothing per message */
  const char **hnames;       /* header names (the tree's), with an interp each */
  sl_interp_t **hvals;
  unsigned nheaders;
  sl_hconf_t conf;           /* TLS, auth, timeout, retries, statuses */
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

/* After a failed try number `tries` (1 = the first) with status (-1: no
 * answer) and the Retry-After header's value (NULL if none): the wait in
 * ms before the next, or SL_HC_NO_RETRY when the status is not retried. */
int64_t sl_hc_backoff(const sl_hc_t *hc, int status, int tries, const char *retry_after);

#endif
