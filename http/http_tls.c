#include "http_tls.h"
#include "core/xalloc.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_tls_ctx { SSL_CTX *ctx; };
struct sl_tls { SSL *ssl; BIO *in, *out; char *why; };

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

/* Libraries that make their sessions from a context of ours (libmosquitto,
 * librabbitmq) send the host they dial as SNI but check no name (or not an
 * address's): the server's certificate must carry the name sent. Our own
 * sessions set the name to check too (sl_tls_client_new), and send no SNI
 * for an address. */
static int check_sni_name(int ok, X509_STORE_CTX *st) {
  if (!ok || X509_STORE_CTX_get_error_depth(st) != 0) return ok;
  SSL *ssl = X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx());
  const char *name = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
  if (!name || !*name) return 1;
  X509 *cert = X509_STORE_CTX_get_current_cert(st);
  int m = X509_check_ip_asc(cert, name, 0), ip = m != -2;   /* -2: not an address */
  if (!ip) m = X509_check_host(cert, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
  if (m == 1) return 1;
  X509_STORE_CTX_set_error(st, ip ? X509_V_ERR_IP_ADDRESS_MISMATCH : X509_V_ERR_HOSTNAME_MISMATCH);
  return 0;
}

sl_tls_ctx_t *sl_tls_client_ctx_new(const char *root_cas_file, const char *root_cas, int skip_verify, char **err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    *err = ssl_error("TLS");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (skip_verify) SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  else SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, check_sni_name);
  int ok = 1;
  if (!(root_cas_file && *root_cas_file) && !(root_cas && *root_cas)) ok = SSL_CTX_set_default_verify_paths(ctx) == 1;
  if (ok && root_cas_file && *root_cas_file) ok = SSL_CTX_load_verify_locations(ctx, root_cas_file, NULL) == 1;
  if (ok && root_cas && *root_cas) {
    BIO *bio = BIO_new_mem_buf(root_cas, -1);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509 *x;
    int n = 0;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
      n += X509_STORE_add_cert(store, x) == 1;
      X509_free(x);
    }
    ERR_clear_error();   /* the end of the PEM text */
    BIO_free(bio);
    if (!n) {
      *err = sl_xstrdup("root_cas: no PEM certificate in it");
      SSL_CTX_free(ctx);
      return NULL;
    }
  }
  if (!ok) {
    *err = ssl_error(root_cas_file && *root_cas_file ? root_cas_file : "CA certificates");
    SSL_CTX_free(ctx);
    return NULL;
  }
  sl_tls_ctx_t *c = sl_xmalloc(sizeof(*c));
  c->ctx = ctx;
  return c;
}

static int pem_password(char *buf, int size, int rwflag, void *u) {
  (void)rwflag;
  const char *pw = u ? u : "";
  int n = (int)strlen(pw);
  if (n > size) n = size;
  memcpy(buf, pw, (size_t)n);
  return n;
}

int sl_tls_ctx_client_cert(sl_tls_ctx_t *c, const char *cert_file, const char *cert_pem, const char *key_file,
                           const char *key_pem, const char *password, char **err) {
  SSL_CTX *ctx = c->ctx;
  SSL_CTX_set_default_passwd_cb(ctx, pem_password);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)password);
  int ok = 1;
  const char *what = "client certificate";
  if (cert_file && *cert_file) {
    what = cert_file;
    ok = SSL_CTX_use_certificate_chain_file(ctx, cert_file) == 1;
  } else {
    BIO *bio = BIO_new_mem_buf(cert_pem ? cert_pem : "", -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
    X509_free(x);
    /* the rest of the chain, if the text holds one: the certificate's own
     * chain, as a chain file gives it */
    while (ok && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) X509_free(x);
    if (ok) ERR_clear_error();   /* the end of the PEM text */
    BIO_free(bio);
  }
  if (ok && key_file && *key_file) {
    what = key_file;
    ok = SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) == 1;
  } else if (ok) {
    what = "client certificate key";
    BIO *bio = BIO_new_mem_buf(key_pem ? key_pem : "", -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, pem_password, (void *)password);
    ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
    EVP_PKEY_free(k);
    BIO_free(bio);
  }
  if (ok) ok = SSL_CTX_check_private_key(ctx) == 1;
  /* the password is the caller's: no callback may read it later */
  SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
  if (!ok) *err = ssl_error(what);
  return ok ? 0 : -1;
}

static char *bio_text(BIO *b) {
  char *p = NULL;
  long n = BIO_get_mem_data(b, &p);
  char *s = sl_xmalloc((size_t)n + 1);
  if (n > 0) memcpy(s, p, (size_t)n);
  s[n > 0 ? n : 0] = 0;
  return s;
}

int sl_tls_cert_pem(const char *cert_file, const char *cert_pem, const char *key_file, const char *key_pem,
                    const char *password, char **cert, char **key, char **err) {
  *cert = *key = NULL;
  /* loaded (and checked to match) the way a context of ours would be */
  sl_tls_ctx_t c = {SSL_CTX_new(TLS_client_method())};
  if (!c.ctx) {
    *err = ssl_error("TLS");
    return -1;
  }
  int rc = sl_tls_ctx_client_cert(&c, cert_file, cert_pem, key_file, key_pem, password, err);
  if (rc == 0) {
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(c.ctx, &chain);
    int ok = PEM_write_bio_X509(cb, SSL_CTX_get0_certificate(c.ctx)) == 1;
    for (int i = 0; ok && i < sk_X509_num(chain); i++) ok = PEM_write_bio_X509(cb, sk_X509_value(chain, i)) == 1;
    ok = ok && PEM_write_bio_PrivateKey(kb, SSL_CTX_get0_privatekey(c.ctx), NULL, NULL, 0, NULL, NULL) == 1;
    if (ok) {
      *cert = bio_text(cb);
      *key = bio_text(kb);
    } else {
      *err = ssl_error("client certificate");
      rc = -1;
    }
    BIO_free(cb);
    BIO_free(kb);   /* a memory BIO cleanses what it frees */
  }
  SSL_CTX_free(c.ctx);
  return rc;
}

void *sl_tls_ctx_openssl(sl_tls_ctx_t *c) { return c->ctx; }

int sl_tls_ctx_copy(const sl_tls_ctx_t *c, void *ssl_ctx, char **err) {
  SSL_CTX *to = ssl_ctx, *from = c->ctx;
  SSL_CTX_set_min_proto_version(to, TLS1_2_VERSION);
  SSL_CTX_set1_cert_store(to, SSL_CTX_get_cert_store(from));
  SSL_CTX_set_verify(to, SSL_CTX_get_verify_mode(from), SSL_CTX_get_verify_callback(from));
  X509 *cert = SSL_CTX_get0_certificate(from);
  if (!cert) return 0;
  STACK_OF(X509) *chain = NULL;
  SSL_CTX_get0_chain_certs(from, &chain);
  if (SSL_CTX_use_certificate(to, cert) == 1 && SSL_CTX_use_PrivateKey(to, SSL_CTX_get0_privatekey(from)) == 1 &&
      SSL_CTX_set1_chain(to, chain) == 1)
    return 0;
  *err = ssl_error("client certificate");
  return -1;
}

int sl_tls_thread_error(char *buf, size_t n) {
  unsigned long e = ERR_get_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  if (r) snprintf(buf, n, "%s", r);
  return r != NULL;
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

sl_tls_t *sl_tls_client_new(sl_tls_ctx_t *c, const char *host) {
  sl_tls_t *t = sl_tls_new(c);
  SSL_set_connect_state(t->ssl);
  X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
  /* An address is checked against the certificate's IP names, and is no
   * server name (RFC 6066 allows none in SNI; libcurl sends none). */
  int ip = X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1;
  if (!ip) SSL_set_tlsext_host_name(t->ssl, host);
  if (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (!ip) X509_VERIFY_PARAM_set1_host(vp, host, 0);
  } else if (ip) {
    X509_VERIFY_PARAM_set1_ip(vp, NULL, 0);   /* nothing is checked */
  }
  return t;
}

int sl_tls_ready(const sl_tls_t *t) { return SSL_is_init_finished(t->ssl); }

const char *sl_tls_verify_error(const sl_tls_t *t) {
  long v = SSL_get_verify_result(t->ssl);
  return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

int sl_tls_closed(const sl_tls_t *t) { return (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN) != 0; }

void *sl_tls_session(const sl_tls_t *t) {
  SSL_SESSION *s = SSL_get1_session(t->ssl);
  if (s && !SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    return NULL;
  }
  return s;
}

void sl_tls_resume(sl_tls_t *t, void *session) { SSL_set_session(t->ssl, session); }

void sl_tls_session_free(void *session) { SSL_SESSION_free(session); }

int sl_tls_shutdown(sl_tls_t *t) {
  if (!SSL_is_init_finished(t->ssl)) return 0;
  SSL_shutdown(t->ssl);
  ERR_clear_error();
  return 1;
}

char *sl_tls_why(const sl_tls_t *t) {
  long v = SSL_get_verify_result(t->ssl);
  if (v != X509_V_OK) return sl_xasprintf("certificate verify failed: %s", X509_verify_cert_error_string(v));
  return sl_xstrdup(t->why ? t->why : "TLS protocol error");
}

void sl_tls_free(sl_tls_t *t) {
  if (!t) return;
  free(t->why);
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
    if (e != SSL_ERROR_ZERO_RETURN && !t->why) {
      char *why = ssl_error("TLS");
      t->why = why;
    }
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
