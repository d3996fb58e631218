/* `http_client` output ("webhooks out"): each message (or each batch, as a
 * JSON array, NDJSON or multipart) is sent as one request on the worker's
 * libcurl client (the stream's `batching` forms those batches); a message is delivered only once a request carrying it got
 * a 2xx (or a `successful_on` status). Failed requests are retried here with
 * exponential backoff that honours Retry-After, `max_in_flight` requests at
 * once (a request waiting out its backoff keeps its place, so a throttling
 * server slows the output down). A failed batch keeps each message's
 * outcome: its retry by the stream sends only what was not delivered. */
#include "hc_common.h"
#include "cache/ratelimit.h"
#include "core/batching.h"
#include "core/metafilter.h"
#include "core/log.h"
#include "core/kept.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const formats[] = {"individual", "array", "ndjson", "multipart", NULL};
static const char *const verbs[] = {"POST", "PUT", "PATCH", "DELETE", "GET", NULL};

static const sl_field_t metadata_fields[] = {SL_METAFILTER_FIELDS, {0}};

static const sl_field_t signature_fields[] = {
  {"secret", SL_F_STRING, NULL, SL_REQUIRED, "HMAC-SHA256 key (use `${ENV}`).", NULL, NULL},
  {"header", SL_F_STRING, "X-Signature", 0, "Header that carries the signature (GitHub: `X-Hub-Signature-256`).", NULL, NULL},
  {"prefix", SL_F_STRING, "sha256=", 0, "Text before the hex digest in the header.", NULL, NULL},
  {"timestamp_header", SL_F_STRING, "", 0,
   "When set, the Unix time in seconds goes in this header and the signed text is `<timestamp>.<body>` "
   "(as Stripe and Standard Webhooks sign), so a receiver can refuse replays; empty: the body alone is signed "
   "(as GitHub signs).", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  SL_HC_COMMON_FIELDS,
  {"verb", SL_F_ENUM, "POST", 0, "Request method.", verbs, NULL},
  {"retries", SL_F_INT, "3", 0, "Retries of a failed request before its messages fail (to the stream's `retry` "
   "and `fallback`).", SL_BOUNDS("0", "1000"), NULL},
  {"max_in_flight", SL_F_INT, "64", 0, "Requests at once, those waiting to be retried included.",
   SL_BOUNDS("1", "100000"), NULL},
  {"batch_format", SL_F_ENUM, "individual", 0,
   "`individual`: one request per message. `array`: the messages of a batch (from the input or a `batch` "
   "processor) as one JSON array; `ndjson`: one JSON value per line. A message that is not JSON goes in as a "
   "JSON string. sluice adds this field: Benthos sends a batch as multipart or one request per message.", formats, NULL},
  {"batch_as_multipart", SL_F_BOOL, "false", 0, "Benthos's spelling of `batch_format: multipart` "
   "(`multipart/mixed`, one part per message).", NULL, NULL},
  SL_BATCHING_FIELD,
  {"metadata", SL_F_OBJECT, NULL, 0, "Which metadata become request headers (a value with a line break is left "
   "out: no header injection through metadata).", NULL, metadata_fields},
  SL_RATELIMIT_FIELD("each request (retries included)"),
  {"signature", SL_F_OBJECT, NULL, 0, "Sign each body with HMAC-SHA256 (sluice adds this).", NULL, signature_fields},
  {"propagate_response", SL_F_BOOL, "false", SL_MOVED, "not supported: use the `http` processor to keep answers", NULL, NULL},
  {0}};

enum { F_INDIVIDUAL, F_ARRAY, F_NDJSON, F_MULTIPART };
enum { M_OPEN, M_DONE, M_FAILED };

typedef struct hout hout_t;
typedef struct hwrite hwrite_t;

/* A message of a write: message i of w->kw.b. */
typedef struct item {
  hwrite_t *w;
  uint32_t i;
} item_t;

typedef struct hreq {
  hout_t *o;
  item_t *items;             /* its messages; those of one write are next to each other */
  uint32_t n;
  char *url, *body, *boundary;
  size_t len;
  char **headers;            /* configured, metadata and content type */
  int tries, reauthed;
  char *retry_after;         /* the last answer's Retry-After */
  uv_timer_t *timer;         /* waiting out a backoff */
  struct hreq *next;         /* in o->queue */
  struct hreq *anext, **aprev;   /* in o->active */
} hreq_t;

struct hwrite {
  sl_kwrite_t kw;            /* first (kept.h); its states are M_* */
  hout_t *o;
  uint32_t open;             /* its requests not finished (the batch being gathered counts as one) */
};

struct hout {
  sl_output_t base;
  sl_hc_t hc;
  sl_hclient_t *client;
  const char *verb;
  int format;
  int64_t retries, max_in_flight, nactive;
  sl_metafilter_t meta;      /* metadata that become headers */
  sl_ratelimit_t *rate_limit;
  const char *sig_secret, *sig_header, *sig_prefix, *sig_ts;
  hreq_t *queue, **queue_tail;
  item_t *gather;            /* the request being gathered */
  uint32_t ngather, gcap;
  hreq_t *active;
  sl_kept_t *kept;           /* failed writes, until retried or forgotten */
  int pumping, destroying;
  int stopping;              /* the stream is stopping: failures are not retried any more */
  void (*closed)(sl_output_t *o, void *arg);
  void *closed_arg;
};

static const char *sname(hout_t *o) { return o->base.stream ? o->base.stream->name : NULL; }

static void timer_closed(uv_handle_t *h) { free(h); }

static void req_free(hreq_t *r) {
  if (r->timer) {
    uv_timer_stop(r->timer);
    uv_close((uv_handle_t *)r->timer, timer_closed);
  }
  free(r->items);
  free(r->url);
  free(r->body);
  free(r->boundary);
  free(r->retry_after);
  sl_hc_headers_free(r->headers);
  free(r);
}

static void maybe_closed(hout_t *o) {
  if (o->closed && !o->queue && !o->active) {
    void (*done)(sl_output_t *, void *) = o->closed;
    o->closed = NULL;
    done(&o->base, o->closed_arg);
  }
}

/* A failure while the stream stops is final (SL_WRITE_ABANDONED): the
 * stream would otherwise send it again and wait out its timeout anew. */
static void write_finished(hwrite_t *w) {
  hout_t *o = w->o;
  if (!w->kw.err || o->stopping) {
    sl_write_cb cb = w->kw.cb;
    void *arg = w->kw.arg;
    sl_batch_t *b = w->kw.b;
    char *err = w->kw.err;
    w->kw.err = NULL;
    sl_kept_write_free(w);
    cb(&o->base, b, err ? SL_WRITE_ABANDONED : 0, err, arg);
    free(err);
    return;
  }
  sl_kept_write_fail(&o->kept, w, M_DONE, &o->base);
}

static void pump(hout_t *o);

/* One reference of each write in r's messages is gone: a write whose last
 * one it was is finished. */
static void release(hreq_t *r) {
  for (uint32_t k = 0; k < r->n; k++)
    if ((k == 0 || r->items[k].w != r->items[k - 1].w) && --r->items[k].w->open == 0) write_finished(r->items[k].w);
}

static void settle(hreq_t *r, const char *err) {
  for (uint32_t k = 0; k < r->n; k++) {
    hwrite_t *w = r->items[k].w;
    w->kw.state[r->items[k].i] = err ? M_FAILED : M_DONE;
    if (err && !w->kw.err) w->kw.err = sl_xstrdup(err);
  }
}

static int has_failed(const hreq_t *r) {
  for (uint32_t k = 0; k < r->n; k++)
    if (r->items[k].w->kw.err) return 1;
  return 0;
}

/* The request is over: its messages are delivered (err NULL) or failed. */
static void req_done(hreq_t *r, const char *err) {
  hout_t *o = r->o;
  settle(r, err);
  if (r->aprev) {
    *r->aprev = r->anext;
    if (r->anext) r->anext->aprev = r->aprev;
    o->nactive--;
  }
  sl_hconf_token_cancel(&o->hc.conf, r);
  /* Stopping, a failed write is lost anyway: queued requests with its
   * messages are not sent (settled first, released after, as releasing
   * calls back into the stream). */
  hreq_t *dropped = NULL;
  for (int again = err && o->stopping; again;) {
    again = 0;
    for (hreq_t **pp = &o->queue; *pp;) {
      hreq_t *q = *pp;
      if (!has_failed(q)) {
        pp = &q->next;
        continue;
      }
      *pp = q->next;
      settle(q, err);
      q->next = dropped;
      dropped = q;
      again = 1;
    }
  }
  o->queue_tail = &o->queue;
  while (*o->queue_tail) o->queue_tail = &(*o->queue_tail)->next;
  release(r);
  req_free(r);
  while (dropped) {
    hreq_t *q = dropped;
    dropped = q->next;
    release(q);
    req_free(q);
  }
  pump(o);
  maybe_closed(o);
}

/* ---- signing ---- */

static char *sign(hout_t *o, const char *ts, const char *body, size_t len) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned maclen = 0;
  if (ts) {
    size_t tl = strlen(ts);
    char *msg = sl_xmalloc(tl + 1 + len + 1);
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    HMAC(EVP_sha256(), o->sig_secret, (int)strlen(o->sig_secret), (unsigned char *)msg, tl + 1 + len, mac, &maclen);
    free(msg);
  } else {
    HMAC(EVP_sha256(), o->sig_secret, (int)strlen(o->sig_secret), (const unsigned char *)body, len, mac, &maclen);
  }
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < maclen; i++) sprintf(hex + 2 * i, "%02x", mac[i]);
  return sl_xasprintf("%s: %s%s", o->sig_header, o->sig_prefix, hex);
}

/* ---- sending ---- */

static void on_header(const char *line, size_t len, void *arg) {
  hreq_t *r = arg;
  const char *v;
  size_t vl;
  if (len >= 5 && !memcmp(line, "HTTP/", 5)) {   /* a new answer (after a redirect): forget the last */
    free(r->retry_after);
    r->retry_after = NULL;
  } else if (sl_hconf_header_is(line, len, "Retry-After", &v, &vl)) {
    free(r->retry_after);
    r->retry_after = sl_xstrndup(v, vl);
  }
}

static void send_req(hreq_t *r);

static void on_timer(uv_timer_t *t) { send_req(t->data); }

static void wait_then_send(hreq_t *r, int64_t ms) {
  if (!r->timer) {
    r->timer = sl_xmalloc(sizeof(*r->timer));
    uv_timer_init(r->o->base.worker->loop, r->timer);
    r->timer->data = r;
  }
  uv_timer_start(r->timer, on_timer, (uint64_t)ms, 0);
}

static void on_answer(int status, const char *err, const char *body, size_t len, void *arg) {
  hreq_t *r = arg;
  hout_t *o = r->o;
  if (o->destroying) return;   /* hout_destroy frees r */
  if (status > 0) sl_output_set_connected(&o->base, 1, NULL);
  else if (!o->closed || strcmp(err, "client closed")) sl_output_set_connected(&o->base, 0, err);
  if (status > 0 && sl_hconf_ok(&o->hc.conf, status)) {
    req_done(r, NULL);
    return;
  }
  if (status == 401 && o->hc.conf.oauth2 && !r->reauthed) {   /* the token was revoked or expired early */
    r->reauthed = 1;
    sl_hconf_token_drop(&o->hc.conf);
    send_req(r);
    return;
  }
  char *why = status > 0 ? sl_xasprintf("http_client: %s answered %d%s%.*s", r->url, status, len ? ": " : "",
                                        (int)(len > 200 ? 200 : len), body)
                         : sl_xasprintf("http_client: %s: %s", r->url, err);
  int64_t wait = ++r->tries <= o->retries && !o->stopping && (status > 0 || strcmp(err, "client closed"))
                   ? sl_hc_backoff(&o->hc, status, r->tries, r->retry_after) : SL_HC_NO_RETRY;
  if (wait == SL_HC_NO_RETRY) {
    sl_logf(SL_LOG_WARN, sname(o), o->base.label, "%s", why);
    req_done(r, why);
  } else {
    sl_logf(SL_LOG_DEBUG, sname(o), o->base.label, "%s; retry %d in %lld ms", why, r->tries, (long long)wait);
    wait_then_send(r, wait);
  }
  free(why);
}

static void with_token(void *arg, const char *auth, const char *err) {
  hreq_t *r = arg;
  hout_t *o = r->o;
  if (err) {
    on_answer(-1, err, "", 0, r);
    return;
  }
  const char *extra[4];
  int n = 0;
  char *sig = NULL, *tsh = NULL;
  if (auth) extra[n++] = auth;
  if (o->sig_secret) {
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    sig = sign(o, *o->sig_ts ? ts : NULL, r->body, r->len);
    extra[n++] = sig;
    if (*o->sig_ts) extra[n++] = tsh = sl_xasprintf("%s: %s", o->sig_ts, ts);
  }
  extra[n] = NULL;
  /* The request's own headers, then these: copied into one list for curl. */
  size_t nh = 0;
  while (r->headers[nh]) nh++;
  const char **all = sl_xcalloc(nh + (size_t)n + 1, sizeof(char *));
  memcpy(all, r->headers, nh * sizeof(char *));
  memcpy(all + nh, extra, (size_t)n * sizeof(char *));
  sl_hreq_opts_t opts = o->hc.conf.opts;
  opts.on_header = on_header;
  sl_hclient_request_opts(o->client, o->verb, r->url, all, r->body, r->len, o->hc.conf.timeout_ms, &opts, on_answer, r);
  free(all);
  free(sig);
  free(tsh);
}

/* A try: after the rate limit's access, with the OAuth2 token if any. */
static void send_req(hreq_t *r) {
  hout_t *o = r->o;
  if (o->rate_limit) {
    int64_t wait = sl_ratelimit_access(o->rate_limit, uv_now(o->base.worker->loop));
    if (wait > 0) {
      wait_then_send(r, wait);
      return;
    }
  }
  sl_hconf_token_get(&o->hc.conf, o->client, with_token, r);
}

static void pump(hout_t *o) {
  if (o->pumping || !o->client) return;
  o->pumping = 1;
  while (o->queue && o->nactive < o->max_in_flight) {
    hreq_t *r = o->queue;
    if (!(o->queue = r->next)) o->queue_tail = &o->queue;
    r->next = NULL;
    if ((r->anext = o->active)) r->anext->aprev = &r->anext;
    o->active = r;
    r->aprev = &o->active;
    o->nactive++;
    send_req(r);
  }
  o->pumping = 0;
}

/* ---- building requests ---- */

/* A message as one JSON value on one line: itself when it is JSON on one
 * line already, compacted when it spans lines, else a JSON string. */
static char *as_json(const sl_msg_t *m, size_t *len, char **err) {
  const char *d = m->content->data;
  size_t n = m->content->len;
  json_t *j = json_loadb(d, n, JSON_DECODE_ANY, NULL);
  char *out;
  if (j && !memchr(d, '\n', n) && !memchr(d, '\r', n)) {
    out = sl_xstrndup(d, n);
  } else {
    if (!j) j = json_stringn(d, n);
    if (!j) {
      *err = sl_xstrdup("http_client: a message of the batch is neither JSON nor UTF-8 text");
      return NULL;
    }
    out = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  }
  json_decref(j);
  *len = strlen(out);
  return out;
}

static sl_msg_t *msg_of(const item_t *it) { return it->w->kw.b->msgs[it->i]; }

static int build_body(hout_t *o, hreq_t *r, char **err) {
  if (o->format == F_INDIVIDUAL) {
    sl_msg_t *m = msg_of(&r->items[0]);
    r->len = m->content->len;
    r->body = sl_xmalloc(r->len + 1);
    memcpy(r->body, m->content->data, r->len);
    return 0;
  }
  if (o->format == F_MULTIPART) {
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof rnd);
    r->boundary = sl_xmalloc(33);
    for (int i = 0; i < 16; i++) sprintf(r->boundary + 2 * i, "%02x", rnd[i]);
  }
  size_t cap = 64, len = 0;
  for (uint32_t k = 0; k < r->n; k++) cap += msg_of(&r->items[k])->content->len + 128;
  char *out = sl_xmalloc(cap);
  if (o->format == F_ARRAY) out[len++] = '[';
  for (uint32_t k = 0; k < r->n; k++) {
    sl_msg_t *m = msg_of(&r->items[k]);
    if (o->format == F_MULTIPART) {
      len += (size_t)sprintf(out + len, "--%s\r\nContent-Type: application/octet-stream\r\n\r\n", r->boundary);
      memcpy(out + len, m->content->data, m->content->len);
      len += m->content->len;
      memcpy(out + len, "\r\n", 2);
      len += 2;
      continue;
    }
    size_t jl;
    char *j = as_json(m, &jl, err);
    if (!j) {
      free(out);
      return -1;
    }
    if (len + jl + 4 > cap) out = sl_xrealloc(out, cap = len + jl + cap);
    if (o->format == F_ARRAY && k) out[len++] = ',';
    memcpy(out + len, j, jl);
    len += jl;
    if (o->format == F_NDJSON) out[len++] = '\n';
    free(j);
  }
  if (o->format == F_ARRAY) out[len++] = ']';
  if (o->format == F_MULTIPART) len += (size_t)sprintf(out + len, "--%s--\r\n", r->boundary);
  r->body = out;
  r->len = len;
  return 0;
}

static int has_content_type(char **h) {
  for (; *h; h++)
    if (!strncasecmp(*h, "Content-Type:", 13)) return 1;
  return 0;
}

/* url, headers and body from the request's first message (the batch's, for
 * a batch): 0, or -1 with err. */
static int build(hout_t *o, hreq_t *r, char **err) {
  sl_msg_t *m = msg_of(&r->items[0]);
  if (!(r->url = sl_hc_url(&o->hc, m, r->items[0].i, err))) return -1;
  if (build_body(o, r, err) != 0) return -1;
  const char **extra = NULL;
  char *ct = NULL;
  unsigned n = 0;
  if (sl_metafilter_any(&o->meta)) {
    sl_kv_load(&m->meta);
    extra = sl_xcalloc(m->meta.n + 2, sizeof(char *));
    for (uint32_t k = 0; k < m->meta.n; k++)
      if (sl_metafilter_match(&o->meta, m->meta.v[k].key, strlen(m->meta.v[k].key)) &&
          !strpbrk(m->meta.v[k].key, ": \r\n"))
        extra[n++] = sl_xasprintf("%s: %.*s", m->meta.v[k].key, (int)m->meta.v[k].vlen, m->meta.v[k].val);
  }
  char **h = sl_hc_headers(&o->hc, m, r->items[0].i, extra, err);
  for (unsigned k = 0; k < n; k++) free((char *)extra[k]);
  free(extra);
  if (!h) return -1;
  if (!has_content_type(h)) {
    size_t nh = 0;
    while (h[nh]) nh++;
    h = sl_xrealloc(h, (nh + 2) * sizeof(char *));
    ct = o->format == F_ARRAY     ? sl_xstrdup("Content-Type: application/json")
         : o->format == F_NDJSON  ? sl_xstrdup("Content-Type: application/x-ndjson")
         : o->format == F_MULTIPART ? sl_xasprintf("Content-Type: multipart/mixed; boundary=%s", r->boundary)
                                    : sl_xstrdup("Content-Type: application/octet-stream");
    h[nh] = ct;
    h[nh + 1] = NULL;
  }
  r->headers = h;
  return 0;
}

/* The gathered messages become a request, queued (or failed at once when
 * its url, headers or body cannot be made). */
static void flush(hout_t *o) {
  if (!o->ngather) return;
  hreq_t *r = sl_xcalloc(1, sizeof(*r));
  r->o = o;
  r->items = o->gather;
  r->n = o->ngather;
  o->gather = NULL;
  o->ngather = o->gcap = 0;
  char *err = NULL;
  if (build(o, r, &err) != 0) {
    sl_logf(SL_LOG_WARN, sname(o), o->base.label, "http_client: %s", err);
    req_done(r, err);
    free(err);
    return;
  }
  *o->queue_tail = r;
  o->queue_tail = &r->next;
}

/* Message i of w joins the request being gathered. */
static void gather(hout_t *o, hwrite_t *w, uint32_t i) {
  if (!o->ngather || o->gather[o->ngather - 1].w != w) w->open++;   /* the gathered request refers to w */
  if (o->ngather == o->gcap) o->gather = sl_xrealloc(o->gather, (o->gcap = o->gcap ? o->gcap * 2 : 8) * sizeof(item_t));
  o->gather[o->ngather++] = (item_t){w, i};
  if (o->format == F_INDIVIDUAL) flush(o);
}

static void hout_write(sl_output_t *out, sl_batch_t *b, sl_write_cb cb, void *arg) {
  hout_t *o = (hout_t *)out;
  hwrite_t *w = sl_kept_write(&o->kept, b, sizeof(*w), M_OPEN, M_DONE, cb, arg);
  w->o = o;
  w->open = 1;   /* held while its requests are made */
  for (uint32_t i = 0; i < b->n; i++)
    if (w->kw.state[i] != M_DONE) gather(o, w, i);
  flush(o);
  if (--w->open == 0) write_finished(w);
  pump(o);
}

static void hout_forget(sl_output_t *out, sl_batch_t *b) {
  hwrite_t *w = sl_kept_take(&((hout_t *)out)->kept, b);
  if (w) sl_kept_write_free(w);
}

static int hout_start(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  o->client = sl_hclient_new(out->worker->loop);
  return 0;
}

/* Requests waiting out a backoff give up, and those in flight are not
 * retried once answered: a stopping stream does not wait minutes for a
 * server that throttles it (the source sends them again after a restart). */
static void hout_stopping(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  o->stopping = 1;
  pump(o);
  for (hreq_t *r = o->active, *next; r; r = next) {
    next = r->anext;
    if (r->timer && uv_is_active((uv_handle_t *)r->timer)) req_done(r, "http_client: stopping while waiting to retry");
  }
}

static void hout_close(sl_output_t *out, void (*done)(sl_output_t *, void *), void *arg) {
  hout_t *o = (hout_t *)out;
  o->closed = done;
  o->closed_arg = arg;
  hout_stopping(out);
  maybe_closed(o);
}

static void hout_destroy(sl_output_t *out) {
  hout_t *o = (hout_t *)out;
  o->destroying = 1;   /* answers the client's close brings are dropped */
  if (o->client) sl_hclient_close(o->client);
  while (o->queue) {
    hreq_t *r = o->queue;
    o->queue = r->next;
    req_free(r);
  }
  while (o->active) {   /* the stream is gone: nobody waits for these */
    hreq_t *r = o->active;
    o->active = r->anext;
    req_free(r);
  }
  for (hwrite_t *w; (w = sl_kept_pop(&o->kept));) sl_kept_write_free(w);
  sl_hc_free(&o->hc);
  sl_metafilter_free(&o->meta);
  free(o);
}

static const sl_output_vt vt = {hout_start, hout_write, hout_close, hout_destroy, hout_stopping, hout_forget};
static const sl_spec_t spec;

static void *hout_create(sl_build_t *b, const sl_cnode_t *conf) {
  hout_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  o->queue_tail = &o->queue;
  if (sl_hc_init(&o->hc, b, conf) != 0) {
    sl_hc_free(&o->hc);
    free(o);
    return NULL;
  }
  o->verb = sl_conf_str(conf, "verb", "POST");
  o->retries = sl_conf_int(conf, "retries", 3);
  o->max_in_flight = sl_conf_int(conf, "max_in_flight", 64);
  const char *f = sl_conf_str(conf, "batch_format", "individual");
  for (int i = 0; formats[i]; i++)
    if (!strcmp(f, formats[i])) o->format = i;
  if (sl_conf_bool(conf, "batch_as_multipart", 0)) o->format = F_MULTIPART;
  if (sl_metafilter_init(&o->meta, sl_cnode_get(conf, "metadata"), "metadata", b->diags) != 0 ||
      sl_ratelimit_bind(conf, b, &o->rate_limit) != 0) {
    hout_destroy(&o->base);
    return NULL;
  }
  const sl_cnode_t *s = sl_cnode_get(conf, "signature");
  if (s) {
    o->sig_secret = sl_conf_str(s, "secret", "");
    o->sig_header = sl_conf_str(s, "header", "X-Signature");
    o->sig_prefix = sl_conf_str(s, "prefix", "sha256=");
    o->sig_ts = sl_conf_str(s, "timestamp_header", "");
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "http_client",
  .kind = SL_KIND_OUTPUT,
  .summary = "Sends messages to an HTTP server (webhooks out), acknowledged only after a 2xx.",
  .desc =
    "Each message is the body of a request (`verb`, default POST) to `url`, which is interpolated per "
    "message; with `batch_format` a batch that reaches the output goes as one request (a JSON array, NDJSON "
    "or multipart), and `batching` gathers messages of many transactions into such batches. A message counts as delivered only once its request got a 2xx or a `successful_on` "
    "status; until then its transaction stays open.\n\n"
    "A request that got no answer (connection refused or reset, timeout), a 5xx or a `backoff_on` status "
    "(429 by default) is sent again after `retry_period`, doubling with each retry up to "
    "`max_retry_backoff`; a `Retry-After` header in seconds or as an HTTP date replaces that wait "
    "(bounded by `max_retry_backoff` too). Other statuses (a 400, say) and `drop_on` ones are not retried. "
    "After `retries` the messages fail: the stream's `retry` policy or a `fallback` output takes over, and "
    "a retry of the batch sends only its messages that were not delivered. Benthos retries every non-2xx; "
    "a 4xx that will never succeed is not retried here.\n\n"
    "`max_in_flight` requests are open at once, keep-alive connections are reused (libcurl's pool, on the "
    "worker's loop: nothing blocks). A request that is waiting to be retried keeps its place, so a server "
    "that throttles slows the stream down instead of being flooded; when the stream stops, such waits end "
    "at once and their messages are left for the next run.\n\n"
    "**Webhooks.** `signature` signs each body with HMAC-SHA256 and sends the hex digest as "
    "`<header>: <prefix><hex>`; GitHub's scheme is `header: X-Hub-Signature-256, prefix: sha256=`. With "
    "`timestamp_header`, the signed text is `<unix seconds>.<body>` and the time goes in that header, so "
    "that the receiver can check freshness (recompute the HMAC over `timestamp + \".\" + body` and compare "
    "in constant time, e.g. Python's `hmac.compare_digest`). `metadata.include_prefixes` and `include_patterns` send metadata as "
    "headers; header values with line breaks are never sent. Auth: `basic_auth`, `bearer_token` or "
    "`oauth2` (client credentials: the token is fetched once, kept until shortly before it expires, and "
    "fetched again when the server answers 401). Redirects are followed (at most 5, http and https only).",
  .fields = fields,
  .example =
    "output:\n"
    "  http_client:\n"
    "    url: 'https://hooks.example.com/${! meta.tenant }'\n"
    "    headers: {Content-Type: application/json}\n"
    "    signature: {secret: '${WEBHOOK_SECRET:change-me}', header: X-Hub-Signature-256}\n"
    "    retries: 5\n",
  .create = hout_create,
};
SL_REGISTER(spec)
