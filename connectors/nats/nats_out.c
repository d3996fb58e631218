/* `nats` output: publishes to core NATS; a batch counts as written once
 * cnats took it into its buffer (at most once). */
#include "nats_output.h"
#include "core/xalloc.h"
#include <stdlib.h>

static const sl_field_t fields[] = {
  SL_NATS_OUT_FIELDS,
  {0}};

static void wake(void *arg) { (void)arg; }

static int nout_start(sl_output_t *base) { return sl_nats_out_start((sl_nats_out_t *)base, wake, 0); }

static void nout_write(sl_output_t *base, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sl_nats_out_t *o = (sl_nats_out_t *)base;
  natsConnection *nc = o->link ? sl_nats_conn(o->link) : NULL;
  if (!nc) {
    cb(base, b, -1, "nats: not connected yet", arg);
    return;
  }
  char *err = NULL;
  for (uint32_t i = 0; i < b->n; i++) {
    char *e = NULL;
    natsMsg *nm = sl_nats_out_msg(o, b->msgs[i], i, &e);
    natsStatus s = nm ? natsConnection_PublishMsg(nc, nm) : NATS_OK;
    if (nm && s != NATS_OK) {
      char *t = sl_nats_err(s);
      e = sl_xasprintf("nats: publish: %s", t);
      free(t);
    }
    natsMsg_Destroy(nm);
    if (e && !err) err = e;
    else free(e);
  }
  cb(base, b, err ? -1 : 0, err, arg);
  free(err);
}

/* What cnats buffered goes to the server before the stream ends. */
static void nout_close(sl_output_t *base, void (*done)(sl_output_t *, void *), void *arg) {
  sl_nats_out_end((sl_nats_out_t *)base, done, arg);
}

static void nout_destroy(sl_output_t *base) { sl_nats_out_free((sl_nats_out_t *)base); }

static const sl_output_vt vt = {nout_start, nout_write, nout_close, nout_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *nout_create(sl_build_t *b, const sl_cnode_t *conf) {
  sl_nats_out_t *o = sl_xcalloc(1, sizeof(*o));
  sl_component_init_output(&o->base, &vt, &spec, b);
  if (sl_nats_out_init(o, b, conf)) {
    nout_destroy(&o->base);
    return NULL;
  }
  return o;
}

static const sl_spec_t spec = {
  .name = "nats",
  .kind = SL_KIND_OUTPUT,
  .summary = "Publishes to core NATS subjects: at most once.",
  .desc =
    "Each message is published with its content as the payload to `subject`, evaluated per "
    "message, with `headers` and the metadata `metadata.include_prefixes` selects as headers. "
    "Core NATS has no acknowledgement: a batch counts as written once cnats took it into its "
    "buffer, which is flushed to the server as it goes and when the stream stops. While the "
    "connection is down cnats keeps up to 8 MiB of publishes for the reconnect; past that, writes "
    "fail and the stream's `retry` takes over. A message larger than the server's `max_payload`, "
    "or whose subject is not one to publish to, fails with the reason. For publishes the server "
    "acknowledges, use `nats_jetstream`.",
  .fields = fields,
  .example =
    "output:\n"
    "  nats:\n"
    "    urls: [nats://127.0.0.1:4222]\n"
    "    subject: 'results.${! meta.user }'\n",
  .create = nout_create,
};
SL_REGISTER(spec)
