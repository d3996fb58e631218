/* `http_client` input: polls a URL on an interval (each answer one
 * message), or in stream mode keeps one request open and turns its body
 * into messages as it arrives: Server-Sent Events (resumed with
 * Last-Event-ID, honouring `retry:`) or lines (NDJSON, chunked text).
 * Streams reconnect with backoff. Reading pauses while the stream is at
 * max_in_flight: libcurl holds the data (TCP pushes back on the server). */
#include "hc_common.h"
#include "sse.h"
#include "cache/ratelimit.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const codecs[] = {"auto", "lines", "sse", NULL};
static const char *const verbs[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static const sl_field_t stream_fields[] = {
  {"enabled", SL_F_BOOL, "false", 0, "Keep one request open and read its body as it comes, instead of polling.", NULL, NULL},
  {"reconnect", SL_F_BOOL, "true", 0, "Reconnect (with backoff) when the stream ends or fails; off: the input ends with it.", NULL, NULL},
  {"codec", SL_F_ENUM, "auto", 0,
   "`sse`: Server-Sent Events, one message per event; `lines`: one message per non-empty line (NDJSON); "
   "`auto`: `sse` when the answer is `text/event-stream`, else `lines`.", codecs, NULL},
  {"idle_timeout", SL_F_DURATION, "120s", 0,
   "A stream that sends nothing for this long (no data, no heartbeat comment), or a server that never "
   "answers, is dropped and reconnected (whole seconds; 0: wait forever). sluice's own SSE sends "
   "heartbeats well within it.", SL_BOUNDS("0", ""), NULL},
  {"max_buffer", SL_F_SIZE, "1MiB", 0,
   "The longest line or event: a longer one drops the connection (logged) and the stream reconnects.",
   SL_BOUNDS("1KiB", "1GiB"), NULL},
  {0}};

static const sl_field_t fields[] = {
  SL_HC_COMMON_FIELDS,
  {"verb", SL_F_ENUM, "GET", 0, "Request method.", verbs, NULL},
  {"payload", SL_F_STRING, "", 0, "Request body (polling and streams).", NULL, NULL},
  {"interval", SL_F_DURATION, "5s", 0, "Polling: time between requests; with a `rate_limit` and no `interval`, "
   "polls follow each other as fast as the rate limit allows (Benthos's way: sluice adds this field).",
   SL_BOUNDS("1ms", ""), NULL},
  SL_RATELIMIT_FIELD("each poll (and each connection of a stream)"),
  {"max_body", SL_F_SIZE, "16MiB", 0, "Polling: the largest answer; a larger one is not emitted (logged).",
   SL_BOUNDS("1KiB", "1GiB"), NULL},
  {"stream", SL_F_OBJECT, NULL, 0, "Streaming reads.", NULL, stream_fields},
  SL_BATCHING_FIELD,
  {0}};

enum { C_AUTO, C_LINES, C_SSE };

typedef struct hin {
  sl_input_t base;
  sl_hc_t hc;
  sl_hclient_t *client;
  const char *verb, *payload;
  int streaming, reconnect, codec, mode;   /* mode: C_LINES or C_SSE for this connection */
  int64_t interval_ms, idle_ms;
  size_t max_body;
  sl_lines_t lines;
  sl_sse_t sse;
  sl_hreq_t *h;              /* the request in flight */
  uv_timer_t timer;          /* next poll or reconnect */
  uv_timer_t flush;          /* hands pending over outside libcurl's callbacks */
  int handles, stopped, destroyed;
  int authing;               /* waiting for an OAuth2 token */
  int roomwait;              /* a poll waits for the stream's resume */
  sl_ratelimit_t *rate_limit;
  int ended;                 /* the stream ended for good: eof once pending is out */
  int status, ok;            /* of the answer being read */
  sl_kvlist_t hdrs;          /* its headers, names in lower case */
  char *ctype;
  sl_batch_t *pending;       /* messages read, not emitted yet */
  int paused;
  int tries;                 /* failures in a row */
  int got;                   /* this connection delivered something */
  char *why;                 /* why the connection was dropped by us */
  char *body;                /* polling */
  size_t blen;
} hin_t;

static const char *sname(hin_t *h) { return h->base.stream ? h->base.stream->name : NULL; }

static void connect_now(hin_t *h);

static void on_timer(uv_timer_t *t) { connect_now(t->data); }

static void schedule(hin_t *h, int64_t ms) {
  if (!h->stopped) uv_timer_start(&h->timer, on_timer, (uint64_t)(ms < 0 ? 0 : ms), 0);
}

static sl_msg_t *new_msg(hin_t *h, const char *data, size_t len) {
  sl_msg_t *m = sl_msg_new(data, len);
  char st[16];
  snprintf(st, sizeof st, "%d", h->status);
  sl_kv_copy(&m->meta, &h->hdrs);
  sl_kv_set(&m->meta, "http_status_code", st, strlen(st));
  if (!h->pending) h->pending = sl_batch_new(16);
  sl_batch_push(h->pending, m);
  h->got = 1;
  return m;
}

static void on_line(void *arg, const char *line, size_t len) {
  if (len) new_msg(arg, line, len);
}

static void on_event(void *arg, const char *event, const char *id, const char *data, size_t len) {
  hin_t *h = arg;
  sl_msg_t *m = new_msg(h, data, len);
  sl_kv_set(&m->meta, "sse_event", event, strlen(event));
  if (*id) sl_kv_set(&m->meta, "sse_id", id, strlen(id));
}

/* Emits what was read, if the stream takes it; lets libcurl go on. */
static void flush_pending(hin_t *h) {
  if (h->pending && !h->stopped) {
    if (!sl_input_ready(&h->base)) return;   /* resume comes back here */
    sl_batch_t *b = h->pending;
    h->pending = NULL;
    sl_input_emit(&h->base, b, NULL, NULL);
  }
  if (h->paused && h->h && !h->stopped) {
    h->paused = 0;
    sl_hclient_unpause(h->client, h->h);
  }
  if (h->ended && !h->pending && !h->stopped) {
    h->stopped = 1;
    sl_input_eof(&h->base);
  }
}

static void on_flush(uv_timer_t *t) { flush_pending(t->data); }

static void on_header(const char *line, size_t len, void *arg) {
  hin_t *h = arg;
  if (len >= 5 && !memcmp(line, "HTTP/", 5)) {   /* a new answer (a redirect's or 100's first) */
    sl_kv_clear(&h->hdrs);
    const char *sp = memchr(line, ' ', len);
    h->status = sp ? atoi(sp + 1) : 0;
    h->ok = sl_hconf_ok(&h->hc.conf, h->status);
    free(h->ctype);
    h->ctype = NULL;
    return;
  }
  const char *colon = memchr(line, ':', len);
  if (!colon || colon == line) return;
  const char *v;
  size_t vl, nl = (size_t)(colon - line);
  if (nl > 128) return;
  char name[129];
  for (size_t i = 0; i < nl; i++) name[i] = (char)tolower((unsigned char)line[i]);
  name[nl] = 0;
  if (!sl_hconf_header_is(line, len, name, &v, &vl)) return;
  sl_kv_add(&h->hdrs, name, v, vl);
  if (!strcmp(name, "content-type")) {
    free(h->ctype);
    h->ctype = sl_xstrndup(v, vl);
  }
}

static int drop(hin_t *h, const char *why) {
  free(h->why);
  h->why = sl_xstrdup(why);
  return -1;
}

static int on_data(const char *data, size_t len, void *arg) {
  hin_t *h = arg;
  if (!h->ok || h->stopped) return 0;   /* an error page: read and dropped, the status says it */
  if (!h->streaming) {
    if (h->blen + len > h->max_body) return drop(h, "answer larger than max_body");
    h->body = sl_xrealloc(h->body, h->blen + len + 1);
    memcpy(h->body + h->blen, data, len);
    h->blen += len;
    return 0;
  }
  if (h->pending) {   /* the stream has not taken what came before */
    h->paused = 1;
    return 1;
  }
  if (h->mode == C_AUTO)
    h->mode = h->codec != C_AUTO ? h->codec
              : h->ctype && !strncasecmp(h->ctype, "text/event-stream", 17) ? C_SSE : C_LINES;
  int rc = h->mode == C_SSE ? sl_sse_feed(&h->sse, data, len, on_event, h) : sl_lines_feed(&h->lines, data, len, on_line, h);
  if (h->pending) uv_timer_start(&h->flush, on_flush, 0, 0);
  return rc == 0 ? 0 : drop(h, "a line or event longer than stream.max_buffer");
}

static void on_done(int status, const char *err, const char *body, size_t len, void *arg) {
  (void)body;
  (void)len;
  hin_t *h = arg;
  h->h = NULL;
  if (h->stopped) return;
  int failed = status < 0 || !sl_hconf_ok(&h->hc.conf, status);
  if (status == 401) sl_hconf_token_drop(&h->hc.conf);   /* revoked or expired early: the next try fetches one */
  if (!h->streaming && !failed) {
    h->status = status;
    new_msg(h, h->body ? h->body : "", h->blen);
  }
  if (h->streaming && h->mode == C_LINES && !failed) sl_lines_finish(&h->lines, on_line, h);
  free(h->body);
  h->body = NULL;
  h->blen = 0;
  if (h->why || failed) {
    const char *what = h->why ? h->why : status < 0 ? err : NULL;
    if (what) sl_logf(SL_LOG_WARN, sname(h), h->base.label, "http_client: %s", what);
    else sl_logf(SL_LOG_WARN, sname(h), h->base.label, "http_client: answered %d", status);
    char st[32];
    snprintf(st, sizeof st, "answered %d", status);
    sl_input_set_connected(&h->base, 0, what ? what : st);
  }
  free(h->why);
  h->why = NULL;
  if (h->got) h->tries = 0;
  if (failed || h->streaming) h->tries++;
  if (h->pending) uv_timer_start(&h->flush, on_flush, 0, 0);
  if (!h->streaming) {
    int64_t wait = failed ? sl_hc_backoff(&h->hc, status, h->tries, NULL) : SL_HC_NO_RETRY;
    schedule(h, wait > h->interval_ms ? wait : h->interval_ms);
    if (!failed) h->tries = 0;
    return;
  }
  if (!h->reconnect) {
    h->ended = 1;
    flush_pending(h);
    return;
  }
  /* The server's retry: wins after an orderly end; failures back off. */
  int64_t wait = sl_hc_backoff(&h->hc, -1, h->tries, NULL);
  if (!failed && h->mode == C_SSE && h->sse.retry_ms >= 0 && h->tries <= 1) wait = h->sse.retry_ms;
  schedule(h, wait);
}

static void with_token(void *arg, const char *auth, const char *terr);

static void connect_now(hin_t *h) {
  if (h->stopped || h->h || h->authing) return;
  if (!h->streaming && !sl_input_ready(&h->base)) {   /* a poll waits for room */
    h->roomwait = 1;
    return;
  }
  if (h->rate_limit) {
    int64_t wait = sl_ratelimit_access(h->rate_limit, uv_now(h->base.worker->loop));
    if (wait > 0) {
      schedule(h, wait);
      return;
    }
  }
  h->authing = 1;
  sl_hconf_token_get(&h->hc.conf, h->client, with_token, h);
}

/* The request, once an OAuth2 token is at hand (auth NULL without oauth2). */
static void with_token(void *arg, const char *auth, const char *terr) {
  hin_t *h = arg;
  h->authing = 0;
  if (h->stopped) return;
  if (terr) {
    sl_logf(SL_LOG_WARN, sname(h), h->base.label, "http_client: %s", terr);
    sl_input_set_connected(&h->base, 0, terr);
    schedule(h, sl_hc_backoff(&h->hc, -1, ++h->tries, NULL));
    return;
  }
  char *err = NULL;
  char *url = sl_hc_url(&h->hc, NULL, 0, &err);
  const char *extra[3] = {NULL, NULL, NULL};
  char *lei = NULL;
  int n = 0;
  if (h->streaming && *h->sse.last_id) extra[n++] = lei = sl_xasprintf("Last-Event-ID: %s", h->sse.last_id);
  if (auth) extra[n++] = auth;
  char **hdrs = url ? sl_hc_headers(&h->hc, NULL, 0, extra, &err) : NULL;
  free(lei);
  if (!hdrs) {
    sl_logf(SL_LOG_ERROR, sname(h), h->base.label, "http_client: %s", err);
    free(err);
    free(url);
    schedule(h, h->interval_ms);
    return;
  }
  h->status = 0;
  h->ok = 0;
  h->got = 0;
  h->mode = C_AUTO;
  sl_kv_clear(&h->hdrs);
  sl_lines_reset(&h->lines);
  sl_sse_reset(&h->sse);
  sl_hreq_opts_t o = h->hc.conf.opts;
  o.on_header = on_header;
  o.on_data = on_data;
  if (h->streaming) o.idle_timeout_ms = h->idle_ms;
  size_t pl = strlen(h->payload);
  h->h = sl_hclient_request_opts(h->client, h->verb, url, (const char *const *)hdrs, pl ? h->payload : NULL, pl,
                                 h->streaming ? 0 : h->hc.conf.timeout_ms, &o, on_done, h);
  free(url);
  sl_hc_headers_free(hdrs);
}

static int hin_start(sl_input_t *in) {
  hin_t *h = (hin_t *)in;
  uv_loop_t *loop = in->worker->loop;
  h->client = sl_hclient_new(loop);
  uv_timer_init(loop, &h->timer);
  uv_timer_init(loop, &h->flush);
  h->timer.data = h->flush.data = h;
  h->handles = 2;
  schedule(h, 0);
  return 0;
}

static void hin_resume(sl_input_t *in) {
  hin_t *h = (hin_t *)in;
  flush_pending(h);
  if (h->roomwait && !h->stopped && sl_input_ready(in)) {
    h->roomwait = 0;
    connect_now(h);
  }
}

static void hin_free(hin_t *h) {
  sl_hc_free(&h->hc);
  sl_lines_free(&h->lines);
  sl_sse_free(&h->sse);
  sl_kv_clear(&h->hdrs);
  free(h->ctype);
  free(h->why);
  free(h->body);
  if (h->pending) sl_batch_free(h->pending);
  free(h);
}

static void on_closed(uv_handle_t *hd) {
  hin_t *h = hd->data;
  if (--h->handles == 0 && h->destroyed) hin_free(h);
}

static void hin_stop(sl_input_t *in) {
  hin_t *h = (hin_t *)in;
  if (h->stopped && !h->client) return;
  h->stopped = 1;
  if (h->client) {
    sl_hclient_close(h->client);   /* the request in flight ends: on_done sees stopped */
    h->client = NULL;
    uv_close((uv_handle_t *)&h->timer, on_closed);
    uv_close((uv_handle_t *)&h->flush, on_closed);
  }
  if (h->pending) {   /* read, never emitted: the source sends them again (Last-Event-ID) */
    sl_batch_free(h->pending);
    h->pending = NULL;
  }
}

static void hin_destroy(sl_input_t *in) {
  hin_t *h = (hin_t *)in;
  hin_stop(in);
  if (h->handles) h->destroyed = 1;
  else hin_free(h);
}

static const sl_input_vt vt = {hin_start, hin_resume, hin_stop, hin_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *hin_create(sl_build_t *b, const sl_cnode_t *conf) {
  hin_t *h = sl_xcalloc(1, sizeof(*h));
  sl_component_init_input(&h->base, &vt, &spec, b);
  if (sl_hc_init(&h->hc, b, conf) != 0) {
    sl_hc_free(&h->hc);
    free(h);
    return NULL;
  }
  int per_msg = !h->hc.static_url;
  for (unsigned i = 0; i < h->hc.nheaders; i++) per_msg |= !sl_interp_is_static(h->hc.hvals[i]);
  if (per_msg) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "url"), "url", "an input's url and headers cannot name a message (no ${! } here)");
    sl_hc_free(&h->hc);
    free(h);
    return NULL;
  }
  h->verb = sl_conf_str(conf, "verb", "GET");
  h->payload = sl_conf_str(conf, "payload", "");
  if (sl_ratelimit_bind(conf, b, &h->rate_limit) != 0) {
    sl_hc_free(&h->hc);
    free(h);
    return NULL;
  }
  const sl_cnode_t *iv = sl_cnode_get(conf, "interval");
  h->interval_ms = h->rate_limit && (!iv || iv->synthetic) ? 0 : sl_conf_duration_ms(conf, "interval", 5000);
  h->max_body = (size_t)sl_conf_size(conf, "max_body", 16 << 20);
  const sl_cnode_t *s = sl_cnode_get(conf, "stream");
  h->streaming = sl_conf_bool(s, "enabled", 0);
  h->reconnect = sl_conf_bool(s, "reconnect", 1);
  h->idle_ms = sl_conf_duration_ms(s, "idle_timeout", 120000);
  const char *c = sl_conf_str(s, "codec", "auto");
  h->codec = !strcmp(c, "sse") ? C_SSE : !strcmp(c, "lines") ? C_LINES : C_AUTO;
  size_t max = (size_t)sl_conf_size(s, "max_buffer", 1 << 20);
  sl_lines_init(&h->lines, max);
  sl_sse_init(&h->sse, max);
  return h;
}

static const sl_spec_t spec = {
  .name = "http_client",
  .kind = SL_KIND_INPUT,
  .summary = "Polls a URL, or reads a stream of Server-Sent Events or lines from it.",
  .desc =
    "Polling (the default): a request every `interval`; each 2xx answer is one message, with "
    "`http_status_code` and the answer's headers (names in lower case) as metadata. A failed poll is "
    "logged and tried again with backoff (`retry_period` doubling up to `max_retry_backoff`). A poll waits "
    "while the stream is at `max_in_flight`, and for its `rate_limit` if one is named.\n\n"
    "Streaming (`stream.enabled`): one request stays open and its body becomes messages as it arrives. "
    "Server-Sent Events (`text/event-stream`) give one message per event (its `data` lines joined by "
    "newlines), with `sse_event` and `sse_id` metadata; comments (heartbeats) are skipped; after a drop "
    "the input reconnects with `Last-Event-ID` set to the last id seen, after the server's `retry:` "
    "(or with backoff when connecting fails). Any other answer is read as lines (NDJSON, chunked text): "
    "one message per non-empty line. A line or event longer than `stream.max_buffer` drops the "
    "connection instead of growing a buffer. While the stream is at `max_in_flight`, reading pauses "
    "(libcurl stops reading the socket, so the server is pushed back) and resumes as messages are "
    "delivered.\n\n"
    "Pointed at another sluice's `http_server` output `sse_path` (or its streams API's SSE), this "
    "mediates SSE into any output; a resumed connection loses nothing that server still holds.",
  .fields = fields,
  .example =
    "input:\n"
    "  http_client:\n"
    "    url: http://localhost:4195/events\n"
    "    stream: {enabled: true}\n",
  .create = hin_create,
};
SL_REGISTER(spec)
