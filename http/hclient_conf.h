/* What every outgoing-HTTP component reads the same way (the http
 * processor, the http_client input and output): TLS, basic/bearer/OAuth2
 * auth, JWT signing, timeout, retry waits and status lists, redirects; Retry-After in
 * both of its forms; OAuth2 client-credentials tokens. Interpolated fields
 * (url, headers) are the components' own: they need lua/.
 * Ownership: an sl_hconf_t belongs to its component (sl_hconf_init /
 * sl_hconf_free) and owns its strings (a component's config tree may be
 * freed once it is built). */
#ifndef SL_HCLIENT_CONF_H
#define SL_HCLIENT_CONF_H
#include "core/conf.h"
#include "core/spec.h"
#include "http_client.h"
#include "http_tls.h"

/* The fields, in this order, in each component's spec. */
#define SL_HCONF_FIELDS                                                                                           \
  {"timeout", SL_F_DURATION, "5s", 0, "How long one request may take, connection included.", NULL, NULL},       \
  {"tls", SL_F_OBJECT, NULL, 0, "TLS for `https:` URLs (the system's CAs by default); `enabled` is accepted "  \
   "for Benthos configs: the URL decides.", NULL, sl_tls_client_fields},                                       \
  {"basic_auth", SL_F_OBJECT, NULL, 0, "HTTP Basic authentication.", NULL, sl_hconf_basic_fields},               \
  {"bearer_token", SL_F_STRING, "", 0, "Sent as `Authorization: Bearer <token>` (sluice adds this field: "      \
   "Benthos users write the header by hand).", NULL, NULL},                                                      \
  {"jwt", SL_F_OBJECT, NULL, 0, "A JSON Web Token signed once with `private_key_file` and sent as "              \
   "`Authorization: Bearer <token>` (Benthos's `jwt`: its claims are fixed, so every request carries the same "  \
   "token).", NULL, sl_hconf_jwt_fields},                                                                        \
  {"oauth2", SL_F_OBJECT, NULL, 0, "OAuth2 client credentials: a token is fetched from `token_url`, kept "       \
   "until it expires and fetched anew when it does or when the server answers 401.", NULL, sl_hconf_oauth2_fields}, \
  {"retry_period", SL_F_DURATION, "1s", 0, "Wait before the first retry; it doubles with each further one "     \
   "after a `backoff_on` status.", NULL, NULL},                                                                  \
  {"max_retry_backoff", SL_F_DURATION, "300s", 0, "The longest wait between retries, `Retry-After` included.",  \
   NULL, NULL},                                                                                                  \
  {"backoff_on", SL_F_STRLIST, "[429]", 0, "Statuses retried with a doubling wait, or the wait the answer's "    \
   "`Retry-After` asks for (seconds or an HTTP date).", NULL, NULL},                                             \
  {"drop_on", SL_F_STRLIST, "[]", 0, "Statuses never retried, a 5xx included: the request fails at once.",      \
   NULL, NULL},                                                                                                  \
  {"successful_on", SL_F_STRLIST, "[]", 0, "Statuses that count as success besides 2xx.", NULL, NULL},          \
  {"follow_redirects", SL_F_BOOL, "true", 0, "Follow up to 5 redirects (a loop fails the request); off: a 3xx "  \
   "is the answer.", NULL, NULL}

/* The client side of TLS for the components whose library loads it (HTTP through libcurl, NATS). */
extern const sl_field_t sl_tls_client_fields[];
extern const sl_field_t sl_hconf_basic_fields[], sl_hconf_oauth2_fields[], sl_hconf_jwt_fields[], sl_hconf_cert_fields[];

/* The `tls` fields of the clients whose context sluice builds
 * (sl_tls_conf_client: AMQP, MQTT, Redis, the websocket client), after
 * their own `enabled`; sl_tls_conf_fields is `enabled` and these. */
#define SL_TLS_CONF_FIELDS                                                                                      \
  {"skip_cert_verify", SL_F_BOOL, "false", 0, "Accept any server certificate and host name (tests only).", NULL, \
   NULL},                                                                                                       \
  {"root_cas", SL_F_STRING, "", 0, "CA certificates (PEM text) to verify the server with; empty: the system's.", \
   NULL, NULL},                                                                                                 \
  {"root_cas_file", SL_F_STRING, "", 0, "CA certificates (a PEM file) to verify the server with.", NULL, NULL},  \
  {"client_certs", SL_F_OBJLIST, "[]", 0, "A client certificate, for servers that ask for one (the first is "   \
   "used): files or PEM text, the key decrypted with `password` when it is encrypted, all read and checked "    \
   "when the config loads.", NULL, sl_hconf_cert_fields}
extern const sl_field_t sl_tls_conf_fields[];

/* The client context a `tls` block (SL_TLS_CONF_FIELDS; NULL: the
 * defaults) describes: CAs from root_cas_file (relative to the config
 * file) and root_cas, or the system's; skip_cert_verify; the first of
 * client_certs. NULL with a diagnostic at the bad field. The caller owns
 * the context (sl_tls_ctx_free); one context serves every connection. */
sl_tls_ctx_t *sl_tls_conf_client(const sl_cnode_t *tls, sl_diags_t *d);

typedef struct sl_hconf_token sl_hconf_token_t;   /* OAuth2 state */

typedef struct sl_hconf {
  char *auth;                /* "Authorization: ..." from basic_auth, bearer_token or jwt, or NULL */
  sl_hreq_opts_t opts;       /* TLS, redirects, connect timeout; its strings are ours */
  int64_t timeout_ms, retry_ms, max_backoff_ms;
  int *backoff_on, *drop_on, *ok_on;   /* terminated by 0 */
  sl_hconf_token_t *oauth2;  /* NULL without oauth2 */
} sl_hconf_t;

/* Reads the fields above from conf; -1 with a diagnostic at the bad value. */
int sl_hconf_init(sl_hconf_t *hc, const sl_cnode_t *conf, sl_diags_t *d);
void sl_hconf_free(sl_hconf_t *hc);

/* The first of tls.client_certs (sl_hconf_cert_fields) into o's cert_file,
 * key_file, cert_pem, key_pem and key_password (malloc'd; relative files
 * from the config file's directory): 0, or -1 with a diagnostic. The
 * websocket connectors share it. sl_hconf_client_cert_free frees them. */
int sl_hconf_client_cert(const sl_cnode_t *tls, sl_hreq_opts_t *o, sl_diags_t *d);
void sl_hconf_client_cert_free(sl_hreq_opts_t *o);
/* "Authorization: Bearer <jwt>" signed once from a `jwt` block
 * (sl_hconf_jwt_fields), or NULL with a diagnostic. Caller frees. */
char *sl_hconf_jwt(const sl_cnode_t *jwt, sl_diags_t *d);

/* Is status in the 0-terminated list v? */
int sl_hconf_listed(const int *v, int status);
/* Is status a success (2xx or successful_on)? */
int sl_hconf_ok(const sl_hconf_t *hc, int status);
/* A Retry-After value (delay-seconds or an HTTP date) in ms from now, or -1. */
int64_t sl_hconf_retry_after_ms(const char *v);

/* Is "Name: value" (len bytes) the header name? Then *value is its value. */
int sl_hconf_header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen);

/* "Authorization: Basic ..." for user:pass (caller frees). */
char *sl_hconf_basic(const char *user, const char *pass);

/* OAuth2: calls ready(arg, "Authorization: Bearer ...") once a token is at
 * hand (at once when cached), or ready(arg, NULL) with err when fetching
 * failed; the string is valid during the call. sl_hconf_token_drop forgets
 * the token (the server answered 401). Without oauth2, ready(arg, NULL) at
 * once with err NULL. */
typedef void (*sl_hconf_token_cb)(void *arg, const char *auth, const char *err);
void sl_hconf_token_get(sl_hconf_t *hc, sl_hclient_t *client, sl_hconf_token_cb ready, void *arg);
void sl_hconf_token_drop(sl_hconf_t *hc);
/* Forgets every waiter with arg (a request being freed). */
void sl_hconf_token_cancel(sl_hconf_t *hc, void *arg);
/* hclient_oauth2.c's setup and teardown, for sl_hconf_init and sl_hconf_free. */
int sl_hconf_oauth2_init(sl_hconf_t *hc, const sl_cnode_t *o, sl_diags_t *d);
void sl_hconf_oauth2_free(sl_hconf_token_t *t);

#endif
