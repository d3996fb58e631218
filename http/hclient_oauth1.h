/* OAuth 1.0a signing of outgoing requests (Benthos's `oauth` block:
 * consumer key and secret, access token and secret; HMAC-SHA1), for the
 * components that send HTTP requests of their own (the websocket client's
 * upgrade). Ownership: sl_oauth1_new's result belongs to its component
 * (sl_oauth1_free); headers returned are malloc'd for the caller. */
#ifndef SL_HCLIENT_OAUTH1_H
#define SL_HCLIENT_OAUTH1_H
#include "core/conf.h"
#include "core/spec.h"

extern const sl_field_t sl_hconf_oauth_fields[];

typedef struct sl_oauth1 sl_oauth1_t;

/* The signer of a validated `oauth` block, or NULL when it is not enabled. */
sl_oauth1_t *sl_oauth1_new(const sl_cnode_t *oauth);
void sl_oauth1_free(sl_oauth1_t *a);
/* The value of `Authorization` for a request of method to url (its query's
 * parameters are signed too), with a fresh nonce and timestamp. */
char *sl_oauth1_header(const sl_oauth1_t *a, const char *method, const char *url);

#endif
