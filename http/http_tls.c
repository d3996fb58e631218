#include "http_tls.h"
#include "core/xalloc.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

struct sl_tls_ctx { SSL_CTX *ctx; };
struct sl_tls { SSL *ssl; BIO *in, *out; };

static char *ssl_error(const char *what) {
  char buf[256];
  unsigned long e = ERR_get_error();
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return sl_xasprintf("%s: %s", what, e ? buf : "unknown error");
}

sl_tls_ctx_t *sl_tls_ctx_new(const char *cert_file, const char *key_file, char **err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *err = ssl_error("TLS");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    *err = ssl_error(cert_file);
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    *err = ssl_error(key_file);
    SSL_CTX_free(ctx);
    return NULL;
  }
  sl_tls_ctx_t *c = sl_xmalloc(sizeof(*c));
  c->ctx = ctx;
  return c;
}

void sl_tls_ctx_free(sl_tls_ctx_t *c) {
  if (!c) return;
  SSL_CTX_free(c->ctx);
  free(c);
}

sl_tls_t *sl_tls_new(sl_tls_ctx_t *c) {
  sl_tls_t *t = sl_xcalloc(1, sizeof(*t));
  t->ssl = SSL_new(c->ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  SSL_set_bio(t->ssl, t->in, t->out);   /* the session owns both BIOs now */
  SSL_set_accept_state(t->ssl);
  return t;
}

void sl_tls_free(sl_tls_t *t) {
  if (!t) return;
  SSL_free(t->ssl);
  free(t);
}

int sl_tls_recv(sl_tls_t *t, const char *in, size_t n, char **out, size_t *out_len) {
  if (n && BIO_write(t->in, in, (int)n) != (int)n) return -1;
  char buf[16384];
  for (;;) {
    int got = SSL_read(t->ssl, buf, sizeof buf);
    if (got > 0) {
      *out = sl_xrealloc(*out, *out_len + (size_t)got);
      memcpy(*out + *out_len, buf, (size_t)got);
      *out_len += (size_t)got;
      continue;
    }
    int e = SSL_get_error(t->ssl, got);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
  }
}

void sl_tls_send(sl_tls_t *t, const void *p, size_t n) {
  if (n) SSL_write(t->ssl, p, (int)n);
}

char *sl_tls_take_output(sl_tls_t *t, size_t *len) {
  size_t pending = BIO_ctrl_pending(t->out);
  if (!pending) return NULL;
  char *buf = sl_xmalloc(pending);
  int got = BIO_read(t->out, buf, (int)pending);
  if (got <= 0) {
    free(buf);
    return NULL;
  }
  *len = (size_t)got;
  return buf;
}
