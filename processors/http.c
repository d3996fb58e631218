/* `http` processor (Benthos's): each message is the body of a request to an
 * interpolated URL, and the response replaces it. Requests run on the loop
 * (http/http_client.h); batches leave in the order they came. */
#include "core/component.h"
#include "core/xalloc.h"
#include "cache/ratelimit.h"
#include "core/metafilter.h"
#include "http/hclient_conf.h"
#include "http/http_client.h"
#include "lua/lhost.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const sl_field_t extract_fields[] = {SL_METAFILTER_FIELDS, {0}};

static const sl_field_t fields[] = {
  {"url", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP, "The URL, interpolated per message (`${! this.id }`).", NULL,
   NULL},
  {"verb", SL_F_STRING, "POST", SL_INTERP, "The HTTP method, interpolated per message (`${! meta.method }`).", NULL,
   NULL},
  {"headers", SL_F_MAP, "{}", SL_INTERP, "Request headers, name to interpolated value; a value that holds a line "
   "break is left out (no header injection through metadata).", NULL, NULL},
  SL_HCONF_FIELDS,
  SL_RATELIMIT_FIELD("each request (retries included)"),
  {"extract_headers", SL_F_OBJECT, NULL, 0, "Which response headers become metadata (by lower-case name). Without "
   "this field every one does (sluice's default before this field existed; Benthos copies none).", NULL,
   extract_fields},
  {"parallel", SL_F_BOOL, "false", 0,
   "Send a batch's messages at once rather than one after the other (their order is kept either way).", NULL, NULL},
  {"retries", SL_F_INT, "3", 0, "Attempts after the first for a failed request (no answer, or a status "
   "that is neither successful nor in `drop_on`).", SL_BOUNDS("0", "100"), NULL},
  {"max_response_size", SL_F_SIZE, "10MiB", 0,
   "A longer response body fails the request (sluice adds this bound: Benthos reads any size).", NULL, NULL},
  {0}};

typedef struct http_proc http_proc_t;

/* One batch in flight: its messages are sent (all, or one after the other)
 * and it leaves once it and every batch before it are through. */
typedef struct hbatch {
  http_proc_t *hp;
  sl_batch_t *b;
  uint32_t next, left;       /* next message to send; messages not through */
  struct hbatch *after;      /* the next batch in arrival order */
} hbatch_t;

typedef struct attempt {
  hbatch_t *hb;
  uint32_t i;
  int tries;
  int reauthed;              /* a 401 dropped the OAuth2 token once already */
  int64_t backoff_ms;
  sl_hclient_req_t *req;
  uv_timer_t *timer;         /* while waiting to retry, or for the rate limit */
  struct attempt *next, **prev;
} attempt_t;

struct http_proc {
  sl_processor_t base;
  sl_hclient_t *client;      /* NULL when linting */
  uv_loop_t *loop;
  sl_interp_t *url, *verb;
  sl_interp_map_t headers;
  sl_hconf_t conf;
  sl_ratelimit_t *rate_limit;
  sl_metafilter_t extract;
  int64_t max_size;
  int parallel, retries;
  hbatch_t *head, **tail;
  attempt_t *attempts;       /* in flight or waiting */
};

static void send_one(http_proc_t *hp, attempt_t *a);

static void emit_ready(http_proc_t *hp) {
  while (hp->head && hp->head->left == 0) {
    hbatch_t *hb = hp->head;
    hp->head = hb->after;
    if (!hp->head) hp->tail = &hp->head;
    sl_processor_emit(&hp->base, hb->b);
    free(hb);
  }
}

static void attempt_free(attempt_t *a) {
  *a->prev = a->next;
  if (a->next) a->next->prev = a->prev;
  if (a->timer) uv_close((uv_handle_t *)a->timer, (uv_close_cb)free);
  sl_hconf_token_cancel(&a->hb->hp->conf, a);
  free(a);
}

static void start_next(hbatch_t *hb);

/* The message is through: the batch goes on with its next one. */
static void finish(attempt_t *a) {
  hbatch_t *hb = a->hb;
  http_proc_t *hp = hb->hp;
  attempt_free(a);
  hb->left--;
  if (!hp->parallel) start_next(hb);
  emit_ready(hp);
}

static void fail(attempt_t *a, const char *err) {
  sl_msg_set_error(a->hb->b->msgs[a->i], err);
  finish(a);
}

static void on_wait(uv_timer_t *t) {
  attempt_t *a = t->data;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  a->timer = NULL;
  send_one(a->hb->hp, a);
}

static void wait_then_send(attempt_t *a, int64_t ms) {
  a->timer = sl_xmalloc(sizeof(*a->timer));
  uv_timer_init(a->hb->hp->loop, a->timer);
  a->timer->data = a;
  uv_timer_start(a->timer, on_wait, (uint64_t)ms, 0);
}

/* Retry-After's value, or -1. */
static int64_t retry_after(const sl_hclient_resp_t *r) {
  const char *p = r->headers, *end = r->headers + r->hlen;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *v;
    size_t vl;
    if (sl_hconf_header_is(p, (size_t)(eol - p), "Retry-After", &v, &vl) && vl < 64) {
      char buf[64];
      memcpy(buf, v, vl);
      buf[vl] = 0;
      return sl_hconf_retry_after_ms(buf);
    }
    p = eol + 1;
  }
  return -1;
}

/* Response headers as metadata (lower-case names, those extract_headers
 * includes when it is set), with the status. */
static void set_meta(http_proc_t *hp, sl_msg_t *m, const sl_hclient_resp_t *r) {
  char st[16];
  int n = snprintf(st, sizeof st, "%d", r->status);
  sl_kv_set(&m->meta, "http_status_code", st, (size_t)n);
  int all = !sl_metafilter_any(&hp->extract);
  const char *p = r->headers, *end = r->headers + r->hlen;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p && colon - p < 256) {
      char key[256];
      size_t kl = (size_t)(colon - p);
      for (size_t k = 0; k < kl; k++) key[k] = (char)((p[k] >= 'A' && p[k] <= 'Z') ? p[k] + 32 : p[k]);
      key[kl] = 0;
      const char *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      if (all || sl_metafilter_match(&hp->extract, key, kl)) sl_kv_set(&m->meta, key, v, (size_t)(ve - v));
    }
    p = eol + 1;
  }
}

static void on_resp(const sl_hclient_resp_t *r, void *arg) {
  attempt_t *a = arg;
  a->req = NULL;
  http_proc_t *hp = a->hb->hp;
  sl_msg_t *m = a->hb->b->msgs[a->i];
  if (r->status > 0 && sl_hconf_ok(&hp->conf, r->status)) {
    sl_msg_set_content(m, r->body, r->len);
    set_meta(hp, m, r);
    finish(a);
    return;
  }
  if (r->status == 401 && hp->conf.oauth2 && !a->reauthed) {   /* the token was revoked or expired early */
    a->reauthed = 1;
    sl_hconf_token_drop(&hp->conf);
    send_one(hp, a);
    return;
  }
  int drop = r->status > 0 && sl_hconf_listed(hp->conf.drop_on, r->status);
  if (!drop && a->tries++ < hp->retries) {
    int64_t wait = hp->conf.retry_ms;
    if (r->status > 0 && sl_hconf_listed(hp->conf.backoff_on, r->status)) {
      int64_t after = retry_after(r);
      a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : hp->conf.retry_ms;
      if (a->backoff_ms > hp->conf.max_backoff_ms) a->backoff_ms = hp->conf.max_backoff_ms;
      wait = after >= 0 ? after : a->backoff_ms;
      if (wait > hp->conf.max_backoff_ms) wait = hp->conf.max_backoff_ms;
    }
    wait_then_send(a, wait);
    return;
  }
  char err[512];
  if (r->status < 0) snprintf(err, sizeof err, "http: request failed: %s", r->err ? r->err : "no answer");
  else snprintf(err, sizeof err, "http: request failed with status %d", r->status);
  if (r->status > 0) set_meta(hp, m, r);
  fail(a, err);
}

/* The verb of m, upper-cased; NULL with *err when it is no HTTP method. */
static char *verb_of(http_proc_t *hp, sl_msg_t *m, uint32_t i, char **err) {
  char *v = sl_interp_eval(hp->verb, m, i, NULL, err);
  if (!v) return NULL;
  for (char *c = v; *c; c++)
    if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
  size_t n = strlen(v);
  if (!n || n > 32 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != n) {
    free(v);
    *err = sl_xstrdup("http: verb is not an HTTP method");
    return NULL;
  }
  return v;
}

static void with_token(void *arg, const char *auth, const char *terr) {
  attempt_t *a = arg;
  http_proc_t *hp = a->hb->hp;
  if (terr) {
    fail(a, terr);
    return;
  }
  sl_msg_t *m = a->hb->b->msgs[a->i];
  char *err = NULL, *url = sl_interp_eval(hp->url, m, a->i, NULL, &err);
  char *verb = url ? verb_of(hp, m, a->i, &err) : NULL;
  unsigned nh = hp->headers.n, n = 0;
  char **hv = sl_xcalloc(nh + 1, sizeof(*hv));
  const char **lines = sl_xcalloc(nh + 3, sizeof(*lines));
  for (unsigned k = 0; verb && k < nh; k++) {
    char *v = sl_interp_eval(hp->headers.values[k], m, a->i, NULL, &err);
    if (!v) break;
    if (!strpbrk(v, "\r\n")) lines[n++] = hv[k] = sl_xasprintf("%s: %s", hp->headers.names[k], v);
    free(v);
  }
  if (auth) lines[n++] = auth;
  else if (hp->conf.auth) lines[n++] = hp->conf.auth;
  if (err) {
    fail(a, err);
    free(err);
  } else {
    const sl_bytes_t *body = m->content;
    sl_hclient_opts_t o = {.method = verb, .url = url, .headers = lines, .body = (const char *)body->data,
                           .len = body->len, .timeout_ms = hp->conf.timeout_ms, .max_body = (size_t)hp->max_size,
                           .max_redirects = hp->conf.opts.max_redirects, .conn = &hp->conf.opts};
    a->req = sl_hclient_send(hp->client, &o, on_resp, a);
  }
  for (unsigned k = 0; k < nh; k++) free(hv[k]);
  free(hv);
  free(lines);
  free(url);
  free(verb);
}

/* A try: after the rate limit's access, with the OAuth2 token if any. */
static void send_one(http_proc_t *hp, attempt_t *a) {
  if (hp->rate_limit) {
    int64_t wait = sl_ratelimit_access(hp->rate_limit, uv_now(hp->loop));
    if (wait > 0) {
      wait_then_send(a, wait);
      return;
    }
  }
  sl_hconf_token_get(&hp->conf, hp->client, with_token, a);
}

static void start_one(hbatch_t *hb, uint32_t i) {
  http_proc_t *hp = hb->hp;
  attempt_t *a = sl_xcalloc(1, sizeof(*a));
  a->hb = hb;
  a->i = i;
  if ((a->next = hp->attempts)) a->next->prev = &a->next;
  hp->attempts = a;
  a->prev = &hp->attempts;
  send_one(hp, a);
}

static void start_next(hbatch_t *hb) {
  if (hb->next < hb->b->n) start_one(hb, hb->next++);
}

static void hp_process(sl_processor_t *p, sl_batch_t *b) {
  http_proc_t *hp = (http_proc_t *)p;
  if (!b->n || !hp->client) {
    sl_processor_emit(p, b);
    return;
  }
  hbatch_t *hb = sl_xcalloc(1, sizeof(*hb));
  hb->hp = hp;
  hb->b = b;
  hb->left = b->n;
  *hp->tail = hb;
  hp->tail = &hb->after;
  if (hp->parallel) {
    while (hb->next < b->n) start_next(hb);
  } else {
    start_next(hb);
  }
}

static void hp_destroy(sl_processor_t *p) {
  http_proc_t *hp = (http_proc_t *)p;
  while (hp->attempts) {
    attempt_t *a = hp->attempts;
    if (a->req) sl_hclient_cancel(a->req);
    attempt_free(a);
  }
  while (hp->head) {
    hbatch_t *hb = hp->head;
    hp->head = hb->after;
    sl_batch_free(hb->b);
    free(hb);
  }
  if (hp->client) sl_hclient_close(hp->client);
  sl_interp_free(hp->url);
  sl_interp_free(hp->verb);
  sl_interp_map_free(&hp->headers);
  sl_hconf_free(&hp->conf);
  sl_metafilter_free(&hp->extract);
  free(hp);
}

static const sl_processor_vt vt = {hp_process, NULL, hp_destroy};
static const sl_spec_t spec;

/* Header names that would break the request line (the values are checked
 * per message). */
static int header_names(const sl_cnode_t *conf, sl_diags_t *d) {
  const sl_cnode_t *h = sl_cnode_get(conf, "headers");
  for (uint32_t i = 0; h && h->type == SL_CN_MAP && i < h->n; i++)
    if (!*h->keys[i] || strpbrk(h->keys[i], ": \t\r\n")) {
      sl_diag_add(d, h->items[i], "headers", "\"%s\" is not a header name (it holds no ':', space or line break)",
                  h->keys[i]);
      return -1;
    }
  return 0;
}

static void *hp_create(sl_build_t *b, const sl_cnode_t *conf) {
  http_proc_t *hp = sl_xcalloc(1, sizeof(*hp));
  sl_component_init_processor(&hp->base, &vt, &spec, b);
  hp->tail = &hp->head;
  hp->max_size = sl_conf_size(conf, "max_response_size", 10 << 20);
  hp->parallel = sl_conf_bool(conf, "parallel", 0);
  hp->retries = (int)sl_conf_int(conf, "retries", 3);
  int bad = sl_hconf_init(&hp->conf, conf, b->diags) != 0;
  bad |= sl_metafilter_init(&hp->extract, sl_cnode_get(conf, "extract_headers"), "extract_headers", b->diags) != 0;
  bad |= !(hp->url = sl_lua_interp_field(b->worker, conf, b->diags, "url"));
  if (sl_cnode_get(conf, "verb")) bad |= !(hp->verb = sl_lua_interp_field(b->worker, conf, b->diags, "verb"));
  else if (!bad) {
    char *err = NULL;
    hp->verb = sl_interp_compile(sl_lua_get(b->worker), "POST", "verb", 0, &err);
    free(err);
  }
  bad |= header_names(conf, b->diags) != 0;
  bad |= sl_lua_interp_map_field(b->worker, conf, b->diags, "headers", &hp->headers) != 0;
  bad |= sl_ratelimit_bind(conf, b, &hp->rate_limit) != 0;
  if (bad) {
    hp_destroy(&hp->base);
    return NULL;
  }
  if (b->worker && !b->lint_only) {
    hp->loop = b->worker->loop;
    hp->client = sl_hclient_new(hp->loop);
  }
  return hp;
}

static const sl_spec_t spec = {
  .name = "http",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Sends each message as the body of an HTTP request; the response replaces it.",
  .desc =
    "Benthos's `http` processor: the message's content is the request body, sent with `verb` to `url` "
    "(interpolated per message) and `headers`; a 2xx answer (or a status in `successful_on`) replaces the "
    "content with the response body and adds metadata: `http_status_code` and each response header that "
    "`extract_headers` includes (all without it) "
    "(lower-case name). A failed request (no answer, or another status) is retried `retries` times, "
    "`retry_period` apart, or with a doubling wait up to `max_retry_backoff` for `backoff_on` statuses "
    "(429 by default, honouring `Retry-After` in seconds or as an HTTP date); a status in `drop_on` fails at "
    "once. Auth (`basic_auth`, `bearer_token`, `jwt`, `oauth2`), TLS and redirects are read as the "
    "`http_client` connectors read them; `rate_limit` names a resource of `rate_limit_resources:` that each "
    "request, retries included, waits for. When "
    "every attempt failed, the message keeps its content and is flagged as failed (`catch` and "
    "`fallback` see it) with the status in `http_status_code`. Requests run on the event loop, keep "
    "their connections alive, use the system's CAs for TLS and the environment's `http_proxy` / "
    "`https_proxy` / `no_proxy`. Batches leave in the order they came, even when a later one is "
    "answered first. To keep the original message and merge the answer in, wrap it in a `branch`, or "
    "call `http.request` from a `lua` processor.",
  .fields = fields,
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - http:\n"
    "        url: 'http://enricher:8080/users/${! this.user_id }'\n"
    "        verb: GET\n"
    "        headers:\n"
    "          Authorization: 'Bearer ${! env(\"TOKEN\") }'\n",
  .create = hp_create,
};
SL_REGISTER(spec)
