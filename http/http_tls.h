/* TLS for the HTTP server, and for clients that drive their own sockets
 * (the websocket connectors): OpenSSL with memory BIOs, so libuv keeps doing
 * the socket I/O. Ownership: the server (client) owns the context, a
 * connection its session; buffers returned are malloc'd for the caller. */
#ifndef SL_HTTP_TLS_H
#define SL_HTTP_TLS_H
#include <stddef.h>

typedef struct sl_tls_ctx sl_tls_ctx_t;
typedef struct sl_tls sl_tls_t;

/* NULL with *err (caller frees) when the certificate or key cannot be used. */
sl_tls_ctx_t *sl_tls_ctx_new(const char *cert_file, const char *key_file, char **err);
void sl_tls_ctx_free(sl_tls_ctx_t *c);

/* A client context verifying servers against the system's CAs, or against
 * root_cas_file and/or root_cas (PEM text) when given (either may be NULL);
 * skip_verify accepts any certificate and name. NULL with *err. */
sl_tls_ctx_t *sl_tls_client_ctx_new(const char *root_cas_file, const char *root_cas, int skip_verify, char **err);
/* Gives a client context the certificate it shows servers that ask for
 * one: from files or PEM text (one of each pair), the key decrypted with
 * password when it is encrypted. 0, or -1 with *err (caller frees). */
int sl_tls_ctx_client_cert(sl_tls_ctx_t *c, const char *cert_file, const char *cert_pem, const char *key_file,
                           const char *key_pem, const char *password, char **err);

/* For a library that makes its sessions from an OpenSSL SSL_CTX we hand it
 * (libmosquitto's MOSQ_OPT_SSL_CTX): c's, borrowed (the library takes a
 * reference of its own or must not outlive c). */
void *sl_tls_ctx_openssl(sl_tls_ctx_t *c);
/* For a library that owns its SSL_CTX (librabbitmq): gives ssl_ctx c's CAs,
 * verification (the server's name checked against the SNI the library
 * sends) and client certificate, shared, not copied. 0, or -1 with *err. */
int sl_tls_ctx_copy(const sl_tls_ctx_t *c, void *ssl_ctx, char **err);

/* OpenSSL's first error on this thread in its words ("tlsv13 alert
 * certificate required"), for libraries that report a failed handshake or
 * read without it (librabbitmq); clears them. 1 with buf filled, or 0. */
int sl_tls_thread_error(char *buf, size_t n);

/* The same certificate as PEM text, for clients that take text with no
 * password (cnats): the certificate then the rest of its chain, and the key
 * unencrypted. 0 with *cert and *key (malloc'd; the caller cleanses the
 * key before freeing it), or -1 with *err (caller frees). */
int sl_tls_cert_pem(const char *cert_file, const char *cert_pem, const char *key_file, const char *key_pem,
                    const char *password, char **cert, char **key, char **err);

sl_tls_t *sl_tls_new(sl_tls_ctx_t *c);
/* A client session to host (the name its certificate must carry, and SNI
 * unless host is an address);
 * sl_tls_recv(t, NULL, 0, ...) begins the handshake. */
sl_tls_t *sl_tls_client_new(sl_tls_ctx_t *c, const char *host);
/* Has the handshake finished? */
int sl_tls_ready(const sl_tls_t *t);
/* Why the peer's certificate did not verify (OpenSSL's words), or NULL. */
const char *sl_tls_verify_error(const sl_tls_t *t);
/* Has the peer closed with close_notify (an end that is not a truncation)? */
int sl_tls_closed(const sl_tls_t *t);
/* Resumption of client sessions: the session t could resume from later
 * (NULL if none; the caller owns it and frees it with sl_tls_session_free),
 * and offering such a session on a new one before its handshake begins. */
void *sl_tls_session(const sl_tls_t *t);
void sl_tls_resume(sl_tls_t *t, void *session);
void sl_tls_session_free(void *session);
/* Queues close_notify (then sl_tls_take_output) when the handshake had
 * finished; 1 if it did. OpenSSL keeps a session resumable only from
 * connections ended so. */
int sl_tls_shutdown(sl_tls_t *t);
/* Why the last sl_tls_recv failed, in words (a certificate that did not
 * verify says why). Caller frees. */
char *sl_tls_why(const sl_tls_t *t);
void sl_tls_free(sl_tls_t *t);
/* Feeds received ciphertext; decrypted bytes are appended to *out (length *out_len,
 * malloc'd). Returns -1 when the peer broke the protocol. */
int sl_tls_recv(sl_tls_t *t, const char *in, size_t n, char **out, size_t *out_len);
/* Encrypts plaintext into the pending output. */
void sl_tls_send(sl_tls_t *t, const void *p, size_t n);
/* What must go on the wire now (handshake or records), or NULL. */
char *sl_tls_take_output(sl_tls_t *t, size_t *len);

#endif
