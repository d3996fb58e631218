/* The NATS link (nats_link.h): a connection run by cnats's threads and a
 * thread of our own, handing what arrives to the loop through a bounded
 * queue. The queue's bound applies backpressure to the server: a delivery
 * thread waits while it is full, cnats then holds what arrives in the
 * subscription's pending buffer, and past cnats's pending limits core NATS
 * drops (reported as a slow consumer); JetStream stops at max_ack_pending. */
#include "nats_link.h"
#include "nats_loop.h"
#include "core/detached.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/http_tls.h"
#include <errno.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const sl_field_t sl_nats_auth_fields[] = {
  {"user", SL_F_STRING, "", 0, "User name (with `password`).", NULL, NULL},
  {"password", SL_F_STRING, "", 0, "Password of `user`.", NULL, NULL},
  {"token", SL_F_STRING, "", 0, "An authentication token.", NULL, NULL},
  {"user_credentials_file", SL_F_STRING, "", 0,
   "A `.creds` file (user JWT and NKey seed), relative to the config file.", NULL, NULL},
  {"nkey_file", SL_F_STRING, "", 0, "A file holding an NKey seed, relative to the config file (with `nkey`).", NULL,
   NULL},
  {"nkey", SL_F_STRING, "", 0,
   "The public NKey of `nkey_file`'s seed (cnats signs with the seed but needs the public key named; "
   "`nk -inkey FILE -pubout` prints it).", NULL, NULL},
  {0}};

struct sl_nats_conf {
  char *urls, *name;
  char *user, *password, *token, *creds, *nkey, *nkey_file;
  int tls, skip_verify;
  char *ca, *cert, *key;     /* files: cnats reads them (the whole chain) */
  char *cert_pem, *key_pem;  /* or text, the key decrypted (cnats takes no password) */
};

enum { BYTES_MAX = 64 << 20, MAX_SUBS = 4, MAX_PUMPS = 64 };

struct sl_nats {
  uv_mutex_t mu;
  uv_cond_t room, quit;
  uv_async_t async;
  int refs;                  /* the loop, the thread, the connection until it closed, each
                                subscription until its last callback */
  int closing;
  sl_nats_conf_t *conf;
  sl_nats_cbs_t cbs;
  void *arg, *setup_arg;
  void (*ended)(void *who, void *arg);  /* sl_nats_end's done */
  void *ended_who, *ended_arg;
  int end_req, end_done;
  sl_nats_item_t *ring;
  int cap, head, n, qmax;
  size_t bytes;
  int conn_up, setup_ok, dirty;
  char why[512];
  natsStatus error;          /* cnats's last asynchronous error, and how many came since logged */
  int64_t errors;
  natsConnection *nc;
  int nc_ready;              /* nc may be used from the loop */
  natsSubscription *subs[MAX_SUBS];
  int sync[MAX_SUBS];        /* drained on the loop (sl_nats_keep_sync) */
  int nsubs, nsync;
  jsCtx *js;
  sl_nats_io_t *io;          /* the socket on the loop, or NULL: cnats's threads */
  int gone;                  /* cnats closed nc for good (not a refusal): the thread makes another */
  int was_up;                /* nc was connected once (the next retry starts from the shortest wait) */
  struct retired {           /* a connection given up, freed on the loop (loop calls may hold it) */
    natsConnection *nc;
    natsSubscription *subs[MAX_SUBS];
    int nsubs;
    jsCtx *js;
  } retired;
};

static char *path_or_null(sl_build_t *b, const char *p) { return *p ? sl_build_path(b, p) : NULL; }

/* tls.client_certs' first: files cnats reads as they are, or (text, or an
 * encrypted key) PEM text read and decrypted now, so that a wrong password
 * or a certificate that is not the key's is an error at its field. */
static int client_cert(sl_nats_conf_t *c, sl_build_t *b, const sl_cnode_t *tls) {
  sl_hreq_opts_t o = {0};
  if (!tls || sl_hconf_client_cert(tls, &o, b->diags) != 0) return tls ? -1 : 0;
  int rc = 0;
  if (o.cert_file && o.key_file && !*o.key_password) {
    c->cert = sl_xstrdup(o.cert_file);
    c->key = sl_xstrdup(o.key_file);
  } else if (o.cert_file || o.cert_pem) {
    char *err = NULL;
    if (sl_tls_cert_pem(o.cert_file, o.cert_pem, o.key_file, o.key_pem, o.key_password, &c->cert_pem, &c->key_pem,
                        &err) != 0) {
      sl_diag_add(b->diags, sl_cnode_get(tls, "client_certs")->items[0], "tls.client_certs", "%s", err);
      free(err);
      rc = -1;
    }
  }
  sl_hconf_client_cert_free(&o);
  return rc;
}

sl_nats_conf_t *sl_nats_conf(sl_build_t *b, const sl_cnode_t *conf) {
  sl_nats_conf_t *c = sl_xcalloc(1, sizeof(*c));
  const sl_cnode_t *urls = sl_cnode_get(conf, "urls");
  size_t len = 1;
  for (uint32_t i = 0; urls && i < urls->n; i++) len += strlen(urls->items[i]->str) + 1;
  c->urls = sl_xcalloc(1, len);
  for (uint32_t i = 0; urls && i < urls->n; i++) {
    if (i) strcat(c->urls, ",");
    strcat(c->urls, urls->items[i]->str);
  }
  if (!*c->urls) sl_diag_add(b->diags, conf, "urls", "name at least one server");
  c->name = sl_xasprintf("sluice %s", b->path ? b->path : "");
  const sl_cnode_t *a = sl_cnode_get(conf, "auth");
  c->user = sl_xstrdup(sl_conf_str(a, "user", ""));
  c->password = sl_xstrdup(sl_conf_str(a, "password", ""));
  c->token = sl_xstrdup(sl_conf_str(a, "token", ""));
  c->creds = path_or_null(b, sl_conf_str(a, "user_credentials_file", ""));
  c->nkey = sl_xstrdup(sl_conf_str(a, "nkey", ""));
  c->nkey_file = path_or_null(b, sl_conf_str(a, "nkey_file", ""));
  int ways = (*c->user || *c->password) + !!*c->token + !!c->creds + (c->nkey_file || *c->nkey);
  if (ways > 1) sl_diag_add(b->diags, a, "auth", "give one way to authenticate (user and password, token, creds or nkey)");
  if (!!c->nkey_file != !!*c->nkey) sl_diag_add(b->diags, a, "auth", "`nkey_file` and `nkey` go together");
  const sl_cnode_t *t = sl_cnode_get(conf, "tls");
  c->tls = sl_conf_bool(t, "enabled", 0);
  c->skip_verify = sl_conf_bool(t, "skip_cert_verify", 0);
  c->ca = path_or_null(b, sl_conf_str(t, "root_cas_file", ""));
  int bad_cert = client_cert(c, b, t);
  if (!*c->urls || ways > 1 || !!c->nkey_file != !!*c->nkey || bad_cert) {
    sl_nats_conf_free(c);
    return NULL;
  }
  return c;
}

void sl_nats_conf_free(sl_nats_conf_t *c) {
  if (!c) return;
  char *s[] = {c->urls, c->name, c->user, c->password, c->token, c->creds, c->nkey, c->nkey_file, c->ca, c->cert, c->key,
               c->cert_pem, c->key_pem};
  if (c->key_pem) OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
  for (size_t i = 0; i < sizeof s / sizeof *s; i++) free(s[i]);
  free(c);
}

sl_nats_conf_t *sl_nats_conf_dup(const sl_nats_conf_t *c) {
  sl_nats_conf_t *d = sl_xmalloc(sizeof(*d));
  *d = *c;
  char **s[] = {&d->urls, &d->name, &d->user, &d->password, &d->token, &d->creds, &d->nkey, &d->nkey_file, &d->ca,
                &d->cert, &d->key, &d->cert_pem, &d->key_pem};
  for (size_t i = 0; i < sizeof s / sizeof *s; i++)
    if (*s[i]) *s[i] = sl_xstrdup(*s[i]);
  return d;
}

char *sl_nats_err(natsStatus s) {
  natsStatus ls;
  const char *detail = nats_GetLastError(&ls);
  if (detail && *detail && ls == s) {
    /* cnats opens with its source position, "(pub.c:130): ": not for users */
    const char *p = detail[0] == '(' ? strstr(detail, "): ") : NULL;
    return sl_xstrdup(p ? p + 3 : detail);
  }
  return sl_xstrdup(natsStatus_GetText(s));
}

int sl_nats_subject_ok(const char *s, int wild) {
  if (!s || !*s) return 0;
  const char *tok = s;
  for (const char *p = s;; p++) {
    if (*p == '.' || !*p) {
      size_t n = (size_t)(p - tok);
      if (!n) return 0;
      if (!wild && ((n == 1 && (*tok == '*' || *tok == '>')))) return 0;
      if (wild && n == 1 && *tok == '>' && *p) return 0;   /* `>` only last */
      if (!*p) return 1;
      tok = p + 1;
    } else if ((unsigned char)*p <= ' ' || *p == 0x7f) {
      return 0;
    }
  }
}

/* ---- the loop side ---- */

static void unref(sl_nats_t *l) {
  uv_mutex_lock(&l->mu);
  int left = --l->refs;
  uv_mutex_unlock(&l->mu);
  if (left) return;
  for (int i = 0; i < l->n; i++) {
    sl_nats_item_t *it = &l->ring[(l->head + i) % l->cap];
    natsMsg_Destroy(it->m);
  }
  free(l->ring);
  if (l->cbs.setup_free) l->cbs.setup_free(l->setup_arg);
  sl_nats_conf_free(l->conf);
  uv_cond_destroy(&l->room);
  uv_cond_destroy(&l->quit);
  uv_mutex_destroy(&l->mu);
  free(l);
}

static void free_retired(struct retired *r) {
  for (int i = 0; i < r->nsubs; i++) natsSubscription_Destroy(r->subs[i]);
  if (r->js) jsCtx_Destroy(r->js);
  natsConnection_Destroy(r->nc);
}

/* Takes the retired connection, if any, to free it. */
static int take_retired(sl_nats_t *l, struct retired *out) {
  uv_mutex_lock(&l->mu);
  *out = l->retired;
  l->retired.nc = NULL;
  if (out->nc) uv_cond_broadcast(&l->quit);   /* the thread may wait to retire the next */
  uv_mutex_unlock(&l->mu);
  return out->nc != NULL;
}

static void on_async(uv_async_t *h) {
  sl_nats_t *l = h->data;
  char why[sizeof l->why];
  uv_mutex_lock(&l->mu);
  /* Once ending, the connection's close is no news for readiness. */
  /* a link drained on the loop is woken for what its subscriptions hold too */
  int dirty = l->dirty && !l->end_req, up = l->conn_up && l->setup_ok, n = l->n || l->nsync, closing = l->closing;
  natsStatus error = l->error;
  void (*ended)(void *, void *) = l->end_done ? l->ended : NULL;
  if (ended) l->ended = NULL;
  int64_t errors = l->errors;
  l->dirty = 0;
  l->errors = 0;
  memcpy(why, l->why, sizeof why);
  uv_mutex_unlock(&l->mu);
  if (closing) return;
  struct retired r;
  if (take_retired(l, &r)) {
    sl_nats_io_settle(l->io);   /* no poll left on its socket */
    free_retired(&r);
  }
  if (errors)
    sl_logf(SL_LOG_WARN, l->cbs.stream, l->cbs.label, "nats: %s (%lld time(s))%s", natsStatus_GetText(error),
            (long long)errors,
            error == NATS_SLOW_CONSUMER ? ": messages dropped, the pipeline did not keep up (core NATS is at most once)" : "");
  if (dirty) l->cbs.state(l->arg, up, why);
  if (n) l->cbs.wake(l->arg);
  if (ended) {
    uv_unref((uv_handle_t *)&l->async);
    ended(l->ended_who, l->ended_arg);
  }
}

void sl_nats_end(sl_nats_t *l, void (*done)(void *who, void *arg), void *who, void *arg) {
  uv_mutex_lock(&l->mu);
  l->ended = done;
  l->ended_who = who;
  l->ended_arg = arg;
  l->end_req = 1;
  uv_cond_broadcast(&l->quit);
  uv_cond_broadcast(&l->room);
  uv_mutex_unlock(&l->mu);
  /* done must come even when nothing else keeps the loop running (a
   * worker's end turning it with UV_RUN_NOWAIT runs nothing then) */
  uv_ref((uv_handle_t *)&l->async);
}

natsConnection *sl_nats_conn(sl_nats_t *l) {
  uv_mutex_lock(&l->mu);
  natsConnection *nc = l->nc_ready && !l->end_req ? l->nc : NULL;
  uv_mutex_unlock(&l->mu);
  return nc;
}

natsConnection *sl_nats_conn_set_up(sl_nats_t *l) {
  uv_mutex_lock(&l->mu);
  natsConnection *nc = l->nc_ready && l->setup_ok && !l->end_req ? l->nc : NULL;
  uv_mutex_unlock(&l->mu);
  return nc;
}

jsCtx *sl_nats_js(sl_nats_t *l) {
  uv_mutex_lock(&l->mu);
  jsCtx *js = l->end_req ? NULL : l->js;
  uv_mutex_unlock(&l->mu);
  return js;
}

/* What the loop parsed into the synchronous subscriptions: taken without
 * waiting (cnats's pending limits bound what waits there). */
static int take_sync(sl_nats_t *l, natsSubscription **subs, int nsubs, sl_nats_item_t *out, int max) {
  int k = 0;
  if (!sl_nats_io_enter(l->io)) return 0;
  for (int i = 0; i < nsubs && k < max; i++) {
    natsMsg *m = NULL;
    for (natsStatus s = NATS_OK; k < max && s != NATS_TIMEOUT;) {
      /* NATS_SLOW_CONSUMER comes once, after cnats dropped some (the error
       * handler logs it); anything else: the subscription is closed */
      s = natsSubscription_NextMsg(&m, subs[i], 0);
      if (s == NATS_OK) out[k++] = (sl_nats_item_t){m, 0};
      else if (s != NATS_SLOW_CONSUMER) break;
    }
  }
  sl_nats_io_leave(l->io);
  return k;
}

int sl_nats_take(sl_nats_t *l, sl_nats_item_t *out, int max) {
  natsSubscription *subs[MAX_SUBS];
  int nsubs = 0;
  uv_mutex_lock(&l->mu);
  int k = 0;
  for (; k < max && l->n; k++) {
    out[k] = l->ring[l->head];
    l->head = (l->head + 1) % l->cap;
    l->n--;
    if (!out[k].ack) l->bytes -= (size_t)natsMsg_GetDataLength(out[k].m);
  }
  if (k) uv_cond_broadcast(&l->room);
  for (int i = 0; l->nsync && !l->end_req && !l->closing && i < l->nsubs; i++)
    if (l->sync[i]) subs[nsubs++] = l->subs[i];
  uv_mutex_unlock(&l->mu);
  return nsubs && k < max ? k + take_sync(l, subs, nsubs, out + k, max - k) : k;
}

void sl_nats_rewake(sl_nats_t *l) { uv_async_send(&l->async); }

int sl_nats_on_loop(sl_nats_t *l) { return l->io != NULL; }

/* Loop: the connection read something; what its synchronous subscriptions
 * hold goes to the component (which takes it while it has room). */
static void after_read(void *arg) {
  sl_nats_t *l = arg;
  uv_mutex_lock(&l->mu);
  int go = l->nsync && !l->end_req && !l->closing;
  uv_mutex_unlock(&l->mu);
  if (go) l->cbs.wake(l->arg);
}

static void async_closed(uv_handle_t *h) { unref(h->data); }

void sl_nats_close(sl_nats_t *l) {
  if (!l) return;
  uv_mutex_lock(&l->mu);
  l->closing = 1;
  uv_cond_broadcast(&l->room);
  uv_cond_broadcast(&l->quit);
  uv_mutex_unlock(&l->mu);
  sl_nats_io_close(l->io);
  uv_close((uv_handle_t *)&l->async, async_closed);
}

/* ---- any thread ---- */

/* With l->mu held. */
static void push_locked(sl_nats_t *l, natsMsg *m, int ack) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 64;
    sl_nats_item_t *r = sl_xmalloc((size_t)cap * sizeof(*r));
    for (int i = 0; i < l->n; i++) r[i] = l->ring[(l->head + i) % l->cap];
    free(l->ring);
    l->ring = r;
    l->cap = cap;
    l->head = 0;
  }
  l->ring[(l->head + l->n++) % l->cap] = (sl_nats_item_t){m, ack};
  if (!ack) l->bytes += (size_t)natsMsg_GetDataLength(m);
  uv_async_send(&l->async);
}

void sl_nats_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *link) {
  (void)nc;
  (void)sub;
  sl_nats_t *l = link;
  uv_mutex_lock(&l->mu);
  /* Once ending, nothing is taken any more: a wait would never end. */
  while (!l->closing && !l->end_req && l->n && (l->n >= l->qmax || l->bytes >= BYTES_MAX))
    uv_cond_wait(&l->room, &l->mu);
  if (l->closing || l->end_req) {
    uv_mutex_unlock(&l->mu);
    natsMsg_Destroy(m);   /* not acknowledged: JetStream sends it again */
    return;
  }
  push_locked(l, m, 0);
  uv_mutex_unlock(&l->mu);
}

void sl_nats_push_ack(sl_nats_t *l, natsMsg *m) {
  uv_mutex_lock(&l->mu);
  if (l->closing) {
    uv_mutex_unlock(&l->mu);
    natsMsg_Destroy(m);
    return;
  }
  push_locked(l, m, 1);
  uv_mutex_unlock(&l->mu);
}

static void set_state(sl_nats_t *l, int conn_up, int setup_ok, const char *why) {
  uv_mutex_lock(&l->mu);
  if (conn_up >= 0) l->conn_up = conn_up;
  if (conn_up > 0) l->was_up = 1;
  if (setup_ok >= 0) l->setup_ok = setup_ok;
  if (why) snprintf(l->why, sizeof l->why, "nats: %s", why);
  l->dirty = 1;
  if (!l->closing) uv_async_send(&l->async);
  uv_mutex_unlock(&l->mu);
}

static void on_connected(natsConnection *nc, void *link) {
  (void)nc;
  set_state(link, 1, -1, NULL);
}

static void on_disconnected(natsConnection *nc, void *link) {
  sl_nats_t *l = link;
  const char *last = NULL;
  natsConnection_GetLastError(nc, &last);
  char why[400];
  snprintf(why, sizeof why, "disconnected from %s%s%s, reconnecting", l->conf->urls, last && *last ? ": " : "",
           last && *last ? last : "");
  set_state(l, 0, -1, why);
}

/* A server that refuses the client's certificate closes the connection
 * after the handshake, which cnats reports as no server at all, or as no
 * answer to its CONNECT (the server's log says why). */
static const char *cert_hint(sl_nats_t *l, natsStatus s) {
  return (s == NATS_NO_SERVER || s == NATS_PROTOCOL_ERROR) && (l->conf->cert || l->conf->cert_pem)
             ? " (the server closed it after the TLS handshake: does it accept the client certificate?)"
             : "";
}

/* cnats's last callback of a connection (its callbacks run on a thread of
 * their own, after natsConnection_Destroy may have returned): the
 * connection's ref goes with it. */
static void on_closed(natsConnection *nc, void *link) {
  sl_nats_t *l = link;
  const char *last = NULL;
  natsStatus st = natsConnection_GetLastError(nc, &last);
  char why[480];
  /* A refusal (authorization) stays closed, said on /ready. Anything else
   * gets a new connection: cnats also gives up for good when its first
   * connect reached the server but the handshake failed (a TLS handshake
   * that timed out on a loaded server), reported as no server at all. */
  int again = st != NATS_CONNECTION_AUTH_FAILED;
  snprintf(why, sizeof why, "connection closed%s%.300s%s%s", last && *last ? ": " : "", last && *last ? last : "",
           cert_hint(l, st), again ? ", retrying" : "");
  uv_mutex_lock(&l->mu);
  if (again && !l->closing && !l->end_req) {
    l->gone = 1;
    uv_cond_broadcast(&l->quit);
  }
  uv_mutex_unlock(&l->mu);
  set_state(l, 0, -1, why);
  unref(l);
}

/* Logged on the loop (on_async), once per wake however many came. */
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *link) {
  (void)nc;
  (void)sub;
  sl_nats_t *l = link;
  uv_mutex_lock(&l->mu);
  l->error = err;
  l->errors++;
  if (!l->closing) uv_async_send(&l->async);
  uv_mutex_unlock(&l->mu);
}

static void on_sub_complete(void *link) { unref(link); }

static void keep(sl_nats_t *l, natsSubscription *sub, jsCtx *js, int sync) {
  uv_mutex_lock(&l->mu);
  if (js) l->js = js;
  if (!sub || l->nsubs == MAX_SUBS) {
    uv_mutex_unlock(&l->mu);
    return;
  }
  l->sync[l->nsubs] = sync;
  l->subs[l->nsubs++] = sub;
  l->nsync += sync;
  l->refs++;
  uv_mutex_unlock(&l->mu);
  if (natsSubscription_SetOnCompleteCB(sub, on_sub_complete, l) != NATS_OK) unref(l);
}

void sl_nats_keep(sl_nats_t *l, natsSubscription *sub, jsCtx *js) { keep(l, sub, js, 0); }

void sl_nats_keep_sync(sl_nats_t *l, natsSubscription *sub) {
  keep(l, sub, NULL, 1);
  /* what arrived before it was kept waits for the next read otherwise */
  uv_async_send(&l->async);
}

/* ---- the link's thread ---- */

/* Waits ms (0: only looks), or until the link closes, a flush (the end) is
 * asked for or the connection is gone: then returns 1 and what the thread
 * was retrying is given up. */
static int wait_quit(sl_nats_t *l, uint64_t ms) {
  uv_mutex_lock(&l->mu);
  if (ms && !l->closing && !l->end_req && !l->gone) uv_cond_timedwait(&l->quit, &l->mu, ms * 1000000);
  int c = l->closing || l->end_req || l->gone;
  uv_mutex_unlock(&l->mu);
  return c;
}

static natsStatus options(sl_nats_t *l, natsOptions **out) {
  sl_nats_conf_t *c = l->conf;
  natsOptions *o = NULL;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK) s = natsOptions_SetURL(o, c->urls);
  if (s == NATS_OK) s = natsOptions_SetName(o, c->name);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 500);
  /* cnats's 32 KiB buffer made its flusher thread and the loop take turns
   * at the connection's lock every few messages */
  if (s == NATS_OK) s = natsOptions_SetIOBufSize(o, 1 << 20);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, l);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, on_disconnected, l);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_connected, l);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(o, on_closed, l);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(o, on_error, l);
  if (s == NATS_OK && (*c->user || *c->password)) s = natsOptions_SetUserInfo(o, c->user, c->password);
  if (s == NATS_OK && *c->token) s = natsOptions_SetToken(o, c->token);
  if (s == NATS_OK && c->creds) s = natsOptions_SetUserCredentialsFromFiles(o, c->creds, NULL);
  if (s == NATS_OK && c->nkey_file) s = natsOptions_SetNKeyFromSeed(o, c->nkey, c->nkey_file);
  if (s == NATS_OK && (c->tls || c->ca || c->cert || c->cert_pem)) s = natsOptions_SetSecure(o, true);
  if (s == NATS_OK && c->ca) s = natsOptions_LoadCATrustedCertificates(o, c->ca);
  if (s == NATS_OK && c->cert) s = natsOptions_LoadCertificatesChain(o, c->cert, c->key);
  if (s == NATS_OK && c->cert_pem) s = natsOptions_SetCertificatesChain(o, c->cert_pem, c->key_pem);
  if (s == NATS_OK && c->skip_verify) s = natsOptions_SkipServerVerification(o, true);
  if (s == NATS_OK && l->io) s = sl_nats_io_options(l->io, o);
  if (s != NATS_OK) {
    natsOptions_Destroy(o);
    o = NULL;
  }
  *out = o;
  return s;
}

/* What a pump thread runs until the link ends. */
static void *pump_loop(void *arg) {
  sl_nats_t *l = arg;
  while (!wait_quit(l, 0)) {
    int ms = l->cbs.pump(l, l->setup_arg);
    if (ms && wait_quit(l, (uint64_t)ms)) break;
  }
  return NULL;
}

/* The pumps besides the link's own thread; they are joined before the
 * connection closes, so that none is in a call on it. */
static void run_pumps(sl_nats_t *l) {
  pthread_t t[MAX_PUMPS];
  int n = 0;
  for (int i = 1; i < l->cbs.pumps && i < MAX_PUMPS; i++)
    if (pthread_create(&t[n], NULL, pump_loop, l) == 0) n++;
  pump_loop(l);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

/* The links' threads (libnats is loaded, and its threads run, only once
 * one was made). */
static sl_detached_t g_live = SL_DETACHED_INIT("nats");

/* With l->mu held: the connection cnats gave up goes to the loop to free,
 * and the link starts over. Returns whether it had been connected. */
static int retire_locked(sl_nats_t *l) {
  int was_up = l->was_up;
  l->retired = (struct retired){l->nc, {0}, l->nsubs, l->js};
  memcpy(l->retired.subs, l->subs, sizeof l->subs);
  l->nc = NULL;
  l->nc_ready = 0;
  l->nsubs = l->nsync = 0;
  l->js = NULL;
  l->gone = l->was_up = 0;
  l->setup_ok = 0;
  return was_up;
}

/* Connects, sets up and runs the pumps until the link ends or cnats gives
 * the connection up. retry_ms: 0 for the first connection; on a later one
 * /ready keeps saying why the last was closed until this one is up. */
static void connect_and_serve(sl_nats_t *l, natsOptions *o, int retry_ms) {
  natsStatus s = NATS_OK;
  /* With retries on a failed connect, a server that is not there yet
   * gives NATS_NOT_YET_CONNECTED and cnats keeps trying; anything else
   * (a bad URL, TLS files) is tried again here. A connection made again
   * connects without them: cnats's retries report a refused login as no
   * server at all, a connect that returns says which it was. */
  if (retry_ms) natsOptions_SetRetryOnFailedConnect(o, false, NULL, NULL);
  while (!l->nc) {
    uv_mutex_lock(&l->mu);
    l->refs++;   /* for on_closed */
    uv_mutex_unlock(&l->mu);
    natsConnection *nc = NULL;
    s = natsConnection_Connect(&nc, o);
    if (s == NATS_OK || s == NATS_NOT_YET_CONNECTED) {
      uv_mutex_lock(&l->mu);
      l->nc = nc;
      l->nc_ready = 1;
      uv_mutex_unlock(&l->mu);
      break;
    }
    unref(l);
    char *e = sl_nats_err(s), *why = sl_xasprintf("%s%s", e, cert_hint(l, s));
    set_state(l, 0, -1, why);
    free(e);
    free(why);
    if (s == NATS_CONNECTION_AUTH_FAILED || wait_quit(l, 1000)) return;   /* a refusal stays */
  }
  if (s == NATS_NOT_YET_CONNECTED) {
    char why[400];
    snprintf(why, sizeof why, "connecting to %s", l->conf->urls);
    set_state(l, 0, -1, retry_ms ? NULL : why);
  } else {
    set_state(l, 1, -1, NULL);
  }
  for (;;) {
    char *err = NULL;
    if (!l->cbs.setup || l->cbs.setup(l, l->nc, l->setup_arg, &err) == 0) {
      set_state(l, -1, 1, NULL);
      if (l->cbs.pump) run_pumps(l);
      return;
    }
    /* A connection closed meanwhile (a server refusing the client's
     * certificate closes it after the handshake) fails the setup too:
     * /ready keeps on_closed's reason, not the setup's "Connection Closed". */
    int closed = natsConnection_Status(l->nc) == NATS_CONN_STATUS_CLOSED;
    set_state(l, -1, 0, closed ? NULL : err ? err : "setting up");
    free(err);
    if (wait_quit(l, 1000)) return;
  }
}

/* cnats starts its library's threads (timers, connection callbacks, and the
 * collector that frees every message it delivered) at its first call. Made
 * at the loops' priority, the collector, woken for the messages a loop let
 * go, took the CPU from that loop every ten messages or so, and a JetStream
 * consumer on one core spent 40% of its CPU in those switches
 * (bench/RESULTS.md, session 10). They are made from a thread that lowered
 * its own priority, which threads inherit on Linux: they run whenever the
 * loops wait, and in their share while the loops are busy. */
enum { LIB_NICE = 10 };

static void *open_lib(void *arg) {
  (void)arg;
  errno = 0;
  if (nice(LIB_NICE) == -1 && errno)
    sl_logf(SL_LOG_DEBUG, NULL, NULL, "nats: cnats's threads stay at the loops' priority: %s", strerror(errno));
  nats_Open(-1);
  return NULL;
}

static void open_lib_once(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, open_lib, NULL) == 0) pthread_join(t, NULL);
}

static void thread_main(void *arg) {
  sl_nats_t *l = arg;
  static pthread_once_t lib = PTHREAD_ONCE_INIT;
  pthread_once(&lib, open_lib_once);
  natsOptions *o = NULL;
  natsStatus s = options(l, &o);
  if (s != NATS_OK) {
    char *e = sl_nats_err(s);
    char *why = sl_xasprintf("options: %s", e);
    set_state(l, 0, 0, why);
    sl_logf(SL_LOG_ERROR, NULL, NULL, "nats: %s", why);
    free(e);
    free(why);
  }
  for (int retry_ms = 0; o;) {
    connect_and_serve(l, o, retry_ms);
    uv_mutex_lock(&l->mu);
    while (!l->closing && !l->end_req && (!l->gone || l->retired.nc)) uv_cond_wait(&l->quit, &l->mu);
    int again = l->gone && !l->closing && !l->end_req;
    /* backoff: from 1 s, doubling to 30 s while connections close unconnected */
    if (again) retry_ms = retire_locked(l) || !retry_ms ? 1000 : retry_ms < 15000 ? retry_ms * 2 : 30000;
    uv_mutex_unlock(&l->mu);
    if (!again) break;
    uv_async_send(&l->async);   /* the loop frees the retired connection */
    if (wait_quit(l, (uint64_t)retry_ms)) break;
  }
  if (l->nc) natsConnection_FlushTimeout(l->nc, 2000);   /* its PONG may be read on the loop */
  /* The loop out of the connection before it closes: cnats reads the
   * socket outside its lock (natsConnection_ProcessReadEvent), and its
   * close would free the descriptor under that read (a number the process
   * may reuse meanwhile). */
  sl_nats_io_dead(l->io);
  /* Close before destroying: destroying a subscription on an open
   * connection would unsubscribe, which deletes a JetStream consumer cnats
   * made. */
  if (l->nc) natsConnection_Close(l->nc);
  for (int i = 0; i < l->nsubs; i++) natsSubscription_Destroy(l->subs[i]);
  if (l->js) jsCtx_Destroy(l->js);
  if (l->nc) natsConnection_Destroy(l->nc);
  /* OpenSSL's error state of this thread (a refused TLS handshake left
   * some) goes now: the process may exit before the thread has. */
  natsOptions_Destroy(o);
  struct retired r;
  if (take_retired(l, &r)) free_retired(&r);   /* the loop may have stopped */
  sl_nats_io_release(l->io);
  OPENSSL_thread_stop();
  uv_mutex_lock(&l->mu);
  l->nc = NULL;
  l->js = NULL;
  l->end_done = 1;
  if (!l->closing) uv_async_send(&l->async);
  uv_mutex_unlock(&l->mu);
  unref(l);
}

/* cnats allocates each received message on its reader thread and frees it
 * on its garbage collector's thread: under glibc's default trim threshold
 * (128 KiB) every round of frees gave the reader's arena back to the kernel
 * and the next messages faulted it in again, a third of a consumer's CPU
 * (perf, bench/RESULTS.md). 32 MiB is within what glibc's own dynamic
 * threshold reaches (64 MiB) once large blocks are freed. */
static void keep_arenas(void) { mallopt(M_TRIM_THRESHOLD, 32 << 20); }

sl_nats_t *sl_nats_new(uv_loop_t *loop, sl_nats_conf_t *c, const sl_nats_cbs_t *cbs, void *arg, void *setup_arg,
                       int queue_max) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, keep_arenas);
  sl_nats_t *l = sl_xcalloc(1, sizeof(*l));
  l->setup_arg = setup_arg;
  l->conf = c;
  l->cbs = *cbs;
  l->arg = arg;
  l->qmax = queue_max;
  l->refs = 2;
  /* TLS stays on cnats's threads: what OpenSSL read ahead and has not
   * handed out yet would wake no poll */
  if (cbs->on_loop && !c->tls && !c->ca && !c->cert && !c->cert_pem) l->io = sl_nats_io_new(loop, after_read, l);
  snprintf(l->why, sizeof l->why, "nats: connecting to %s", c->urls);
  uv_mutex_init(&l->mu);
  uv_cond_init(&l->room);
  uv_cond_init(&l->quit);
  uv_async_init(loop, &l->async, on_async);
  uv_unref((uv_handle_t *)&l->async);   /* the stream keeps the loop running, not the link */
  l->async.data = l;
  /* Detached: nothing waits for it but the process's end (sl_nats_exit);
   * it ends after closing the connection, which may take cnats's timeouts
   * with the servers gone. */
  if (sl_detached_spawn(&g_live, thread_main, l) != 0) {
    l->refs = 1;
    sl_nats_io_release(l->io);
    sl_nats_close(l);
    return NULL;
  }
  return l;
}

/* cnats drops a connection's last reference on whichever of its threads
 * lets go last: most often its callback thread, right after the closed
 * callback, which frees the connection's TLS session and context there.
 * Nothing ordered that before the process's exit, so OpenSSL's exit
 * cleanup ran under it (a SEGV at exit under ASan, issue 16). So the links'
 * threads are waited for, then cnats's own: nats_CloseAndWait joins them
 * once every connection and subscription is freed. */
void sl_nats_exit(void) {
  int left = sl_detached_wait(&g_live);
  if (left < 0) return;
  natsStatus s = left ? NATS_TIMEOUT : nats_CloseAndWait(sl_detached_ms_left());
  if (s == NATS_TIMEOUT) {
    if (!left) sl_logf(SL_LOG_WARN, NULL, NULL, "nats: connections still closing at exit");
    return;
  }
  /* libnats before 3.11, once closed, frees OpenSSL's compression methods
   * from its exit handler without telling OpenSSL, whose own exit cleanup
   * frees them again (nats.c issue 904). Opened again, it leaves OpenSSL's
   * state to OpenSSL, as it did before: its threads wait idle. */
  if (s == NATS_OK && nats_GetVersionNumber() < 0x030B00) nats_Open(-1);
}
