/* `sync_response` output: makes the message the answer to the HTTP request
 * it came from. The answer is sent by the http_server input when the whole
 * transaction completes, so inside a `broker` fan_out it waits for every
 * other output too. */
#include "core/component.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  {"status", SL_F_INT, "200", 0, "Status of the answer when the message has no `http_status` metadata.", NULL, NULL},
  {"metadata_headers", SL_F_STRLIST, "[]", 0,
   "Metadata keys sent as response headers (under the same name) when the message has them.", NULL, NULL},
  {"content_type", SL_F_STRING, "application/json", 0, "`Content-Type` of the answer.", NULL, NULL},
  {0}};

typedef struct sync_out {
  sl_output_t base;
  int64_t status;
  char **headers;
  unsigned nheaders;
  char *content_type;
} sync_t;

/* Messages of one batch answering the same request are joined by newlines. */
static void fill(sync_t *so, sl_reply_t *r, sl_msg_t *m) {
  if (!r->set) {
    r->set = 1;
    const char *st = sl_kv_get(&m->meta, "http_status");
    long v = st ? strtol(st, NULL, 10) : 0;
    r->status = v >= 100 && v <= 599 ? (int)v : (int)so->status;
    sl_kv_set(&r->headers, "Content-Type", so->content_type, strlen(so->content_type));
    for (unsigned i = 0; i < so->nheaders; i++) {
      const sl_kv_t *kv = sl_kv_find(&m->meta, so->headers[i]);
      if (kv) sl_kv_set(&r->headers, kv->key, kv->val, kv->vlen);
    }
    r->body = sl_bytes_ref(m->content);
    if (r->keep_msg) {
      r->msg = sl_msg_clone(m);
      sl_msg_set_txn(r->msg, NULL);   /* it would hold the transaction the answer waits for */
      sl_msg_set_ctx(r->msg, NULL);   /* the context holds the reply */
    }
    return;
  }
  size_t a = r->body->len, b = m->content->len;
  char *joined = sl_xmalloc(a + 1 + b);
  memcpy(joined, r->body->data, a);
  joined[a] = '\n';
  memcpy(joined + a + 1, m->content->data, b);
  sl_bytes_unref(r->body);
  r->body = sl_bytes_new(joined, a + 1 + b);
  free(joined);
}

static void sync_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sync_t *so = (sync_t *)o;
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    if (m->ctx && m->ctx->reply) fill(so, m->ctx->reply, m);
  }
  cb(o, b, 0, NULL, arg);
}

static void sync_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) { done(o, arg); }

static void sync_destroy(sl_output_t *o) {
  sync_t *so = (sync_t *)o;
  for (unsigned i = 0; i < so->nheaders; i++) free(so->headers[i]);
  free(so->headers);
  free(so->content_type);
  free(so);
}

static const sl_output_vt vt = {NULL, sync_write, sync_close, sync_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *sync_create(sl_build_t *b, const sl_cnode_t *conf) {
  sync_t *so = sl_xcalloc(1, sizeof(*so));
  sl_component_init_output(&so->base, &vt, &spec, b);
  so->status = sl_conf_int(conf, "status", 200);
  so->content_type = sl_xstrdup(sl_conf_str(conf, "content_type", "application/json"));
  const sl_cnode_t *h = sl_cnode_get(conf, "metadata_headers");
  so->headers = sl_xcalloc(h && h->n ? h->n : 1, sizeof(char *));
  for (uint32_t i = 0; h && i < h->n; i++) so->headers[so->nheaders++] = sl_xstrdup(h->items[i]->str);
  if (so->status < 100 || so->status > 599) {
    sl_diag_add(b->diags, sl_cnode_get(conf, "status"), "status", "must be an HTTP status (100-599)");
    sync_destroy(&so->base);
    return NULL;
  }
  return so;
}

static const sl_spec_t spec = {
  .name = "sync_response",
  .kind = SL_KIND_OUTPUT,
  .summary = "Answers the HTTP request a message came from with the message itself.",
  .desc =
    "The message's content becomes the body of the answer to its `http_server` request, with the "
    "status from the `http_status` metadata (else `status`) and the listed metadata as headers. "
    "The answer is sent only once the request's whole transaction completed: inside a `broker` "
    "`fan_out` every other output must have acknowledged too; if one fails the client gets 502 "
    "instead. Messages that did not come from an HTTP request are acknowledged and ignored.",
  .fields = fields,
  .example =
    "input:\n"
    "  http_server: {path: /enrich}\n"
    "pipeline:\n"
    "  processors:\n"
    "    - lua: 'this.id = uuid_v4(); meta.http_status = \"201\"'\n"
    "output:\n"
    "  broker:\n"
    "    pattern: fan_out\n"
    "    outputs:\n"
    "      - file: {path: ./events.ndjson}\n"
    "      - sync_response: {}\n",
  .create = sync_create,
  /* it fills the reply of each message's own request, which the input reads
   * only once the transaction completed */
  .writes_anywhere = 1,
};
SL_REGISTER(spec)
