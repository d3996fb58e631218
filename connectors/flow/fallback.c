/* `fallback` output: tries its outputs in order; a batch that the first one
 * fails goes to the second, and so on (the dead-letter pattern). */
#include "children.h"
#include "core/kept.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t fields[] = {
  {"outputs", SL_F_OUTPUTS, NULL, SL_REQUIRED,
   "Outputs in order of preference (at least one). Every output but the last is tried "
   "once per batch, without retries; the last one is retried with the stream's `retry` "
   "policy.", NULL, NULL},
  {0},
};

typedef struct fb {
  sl_output_t base;
  sl_children_t kids;
} fb_t;

/* A batch written to the fallback; done when all its parts found a home or
 * failed on the last output. */
typedef struct req {
  fb_t *fb;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  unsigned pending;
  char *err;
} req_t;

/* One part of it on its way to output `stage`. */
typedef struct part {
  req_t *req;
  unsigned stage;
  int owned;                 /* batch is our copy (not the caller's) */
} part_t;

static void send_part(req_t *r, sl_batch_t *b, unsigned stage, int owned);

static void req_release(req_t *r) {
  if (--r->pending) return;
  r->cb(&r->fb->base, r->b, r->err ? -1 : 0, r->err, r->arg);
  free(r->err);
  free(r);
}

/* Copies of the messages whose failure flag is `errored` (-1: all of them)
 * and, given `failed`, that the output did not deliver, tagged with
 * fallback_error when it is given. */
static sl_batch_t *copy_where(const sl_batch_t *b, int errored, const uint8_t *failed, const char *fallback_error) {
  sl_batch_t *c = sl_batch_new(b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    if (errored >= 0 && (b->msgs[i]->error != NULL) != errored) continue;
    if (failed && !failed[i]) continue;
    sl_msg_t *m = sl_msg_clone(b->msgs[i]);
    if (fallback_error) sl_kv_set(&m->meta, "fallback_error", fallback_error, strlen(fallback_error));
    sl_batch_push(c, m);
  }
  return c;
}

static int any_errored(const sl_batch_t *b) {
  for (uint32_t i = 0; i < b->n; i++)
    if (b->msgs[i]->error) return 1;
  return 0;
}

static void part_done(sl_output_t *child, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)child;
  part_t p = *(part_t *)arg;
  free(arg);
  req_t *r = p.req;
  if (status != 0) {
    const char *e = err ? err : "delivery failed";
    /* An output that delivered some of the batch said which (kept.h). */
    const uint8_t *failed = sl_kept_failed(b);
    if (p.stage + 1 == r->fb->kids.n) {
      if (!r->err) r->err = sl_xstrdup(e);
    } else if (failed) {
      send_part(r, copy_where(b, -1, failed, e), p.stage + 1, 1);
    } else if (b->n > 1 && any_errored(b)) {
      /* An output that takes only some messages (reject_errored) refuses the
       * whole batch: retry the clean messages together and each failed one
       * alone, so that each moves on with its own error. */
      sl_batch_t *clean = copy_where(b, 0, NULL, NULL);
      if (clean->n) send_part(r, clean, p.stage, 1);
      else sl_batch_free_shell(clean);
      for (uint32_t i = 0; i < b->n; i++) {
        if (!b->msgs[i]->error) continue;
        sl_batch_t *one = sl_batch_new(1);
        sl_batch_push(one, sl_msg_clone(b->msgs[i]));
        send_part(r, one, p.stage, 1);
      }
    } else {
      send_part(r, copy_where(b, -1, NULL, e), p.stage + 1, 1);
    }
  }
  /* Copies only: the caller's batch still holds every transaction reference. */
  if (p.owned) sl_batch_free(b);
  req_release(r);
}

static void send_part(req_t *r, sl_batch_t *b, unsigned stage, int owned) {
  part_t *p = sl_xmalloc(sizeof(*p));
  *p = (part_t){r, stage, owned};
  r->pending++;
  sl_children_write(&r->fb->kids, stage, b, part_done, p);
}

static void fb_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  fb_t *fb = (fb_t *)o;
  req_t *r = sl_xcalloc(1, sizeof(*r));
  *r = (req_t){fb, b, cb, arg, 1, NULL};
  send_part(r, b, 0, 0);
  req_release(r);
}

static const sl_output_vt vt = {sl_wrapper_start, fb_write, sl_wrapper_close, sl_wrapper_destroy, sl_wrapper_stopping, NULL};
static const sl_spec_t spec;

static void *fb_create(sl_build_t *b, const sl_cnode_t *conf) {
  fb_t *fb = sl_xcalloc(1, sizeof(*fb));
  sl_component_init_output(&fb->base, &vt, &spec, b);
  const sl_cnode_t *outs = sl_cnode_get(conf, "outputs");
  char *prefix = sl_xasprintf("%s.fallback.outputs", b->path);
  int rc = sl_children_add_list(&fb->kids, b, outs, prefix);
  free(prefix);
  if (rc == 0 && fb->kids.n == 0) {
    sl_diag_add(b->diags, outs ? outs : conf, "outputs", "at least one output is required");
    rc = -1;
  }
  if (rc) {
    sl_wrapper_destroy(&fb->base);
    return NULL;
  }
  /* Only the last output is retried: a failure elsewhere means "try the next". */
  for (unsigned i = 0; i + 1 < fb->kids.n; i++) fb->kids.v[i]->no_retry = 1;
  return fb;
}

static const sl_spec_t spec = {
  .name = "fallback",
  .kind = SL_KIND_OUTPUT,
  .summary = "Tries outputs in order until one delivers: the dead-letter pattern.",
  .desc =
    "Each batch is written to the first output. If that fails, the batch goes to the second "
    "output, and so on; only the last output is retried (with the stream's `retry` "
    "policy), the others are tried once. The batch is acknowledged when an output "
    "delivered it; if the last one fails too, it fails.\n\n"
    "Messages handed to a later output carry the metadata `fallback_error`: why the previous "
    "output refused them. When an output refuses a batch holding messages flagged as "
    "failed (as `reject_errored` does), the clean messages are tried again together and "
    "each failed one alone, so that clean messages stay on the first output and only the "
    "failed ones move on, each with its own error. An output that delivered part of a batch and says "
    "which (`mqtt`) hands on only the messages it did not deliver.\n\n"
    "The list of outputs can be given directly: `fallback: [ ... ]`.",
  .fields = fields,
  .shorthand = "outputs",
  .example =
    "output:\n"
    "  fallback:\n"
    "    - reject_errored:\n"
    "        file: { path: ./good.ndjson }\n"
    "    - file: { path: ./dead-letter.ndjson }\n",
  .create = fb_create,
};
SL_REGISTER(spec)
