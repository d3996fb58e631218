/* `switch` output: routes each message to the output of the first case whose
 * Lua check holds (or of every matching case while `continue` is set). */
#include "children.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <stdlib.h>

static const sl_field_t case_fields[] = {
  {"check", SL_F_CODE, "", 0,
   "Lua boolean expression evaluated per message (`this`, `meta`, `ctx` in scope), e.g. "
   "`this.type == \"order\"`. Empty matches every message. A check that raises an error "
   "is logged and counts as not matching.", NULL, NULL},
  {"output", SL_F_OUTPUT, NULL, SL_REQUIRED, "Where matching messages go.", NULL, NULL},
  {"continue", SL_F_BOOL, "false", 0,
   "Also test the following cases after this one matched, so that a message can go to "
   "several outputs.", NULL, NULL},
  {0},
};

static const sl_field_t fields[] = {
  {"cases", SL_F_OBJLIST, NULL, SL_REQUIRED,
   "Cases tested in order for each message. A message that matches no case is dropped "
   "and acknowledged (as in Benthos); end with a case without `check` to catch the rest.",
   NULL, case_fields},
  {0},
};

typedef struct kase {
  sl_lcheck_t *check;        /* NULL: always matches */
  int cont;
} kase_t;

typedef struct sw {
  sl_output_t base;          /* base and kids first: an sl_wrapper_t */
  sl_children_t kids;
  kase_t *cases;             /* cases[i] writes to kids.v[i] */
  unsigned ncases;
} sw_t;

typedef struct route {
  sw_t *sw;
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
  unsigned pending;
  char *err;
} route_t;

static void route_finish(route_t *r) {
  if (--r->pending) return;
  r->cb(&r->sw->base, r->b, r->err ? -1 : 0, r->err, r->arg);
  free(r->err);
  free(r);
}

static void case_done(sl_output_t *child, sl_batch_t *sub, int status, const char *err, void *arg) {
  route_t *r = arg;
  if (status != 0 && !r->err) r->err = sl_xasprintf("%s: %s", child->label, err ? err : "delivery failed");
  /* Copies only: the caller's batch still holds every transaction reference. */
  sl_batch_free(sub);
  route_finish(r);
}

static int matches(sw_t *sw, unsigned k, sl_msg_t *m, uint32_t i) {
  if (!sw->cases[k].check) return 1;
  char *err = NULL;
  int rc = sl_lcheck_eval(sw->cases[k].check, m, i, &err);
  if (rc < 0) {
    sl_logf(SL_LOG_ERROR, sw->base.stream ? sw->base.stream->name : NULL, sw->base.label,
            "case %u check failed: %s", k, err ? err : "error");
    free(err);
    return 0;
  }
  return rc;
}

static void sw_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  sw_t *sw = (sw_t *)o;
  sl_batch_t **subs = sl_xcalloc(sw->ncases, sizeof(*subs));
  for (uint32_t i = 0; i < b->n; i++) {
    for (unsigned k = 0; k < sw->ncases; k++) {
      if (!matches(sw, k, b->msgs[i], i)) continue;
      if (!subs[k]) subs[k] = sl_batch_new(b->n);
      sl_batch_push(subs[k], sl_msg_clone(b->msgs[i]));
      if (!sw->cases[k].cont) break;
    }
  }
  route_t *r = sl_xcalloc(1, sizeof(*r));
  *r = (route_t){sw, b, cb, arg, 1, NULL};
  for (unsigned k = 0; k < sw->ncases; k++) {
    if (!subs[k]) continue;
    r->pending++;
    sl_children_write(&sw->kids, k, subs[k], case_done, r);
  }
  free(subs);
  route_finish(r);
}

static void sw_destroy(sl_output_t *o) {
  sw_t *sw = (sw_t *)o;
  sl_children_destroy(&sw->kids);
  for (unsigned k = 0; k < sw->ncases; k++) sl_lcheck_free(sw->cases[k].check);
  free(sw->cases);
  free(sw);
}

static const sl_output_vt vt = {sl_wrapper_start, sw_write, sl_wrapper_close, sw_destroy, sl_wrapper_stopping, NULL};
static const sl_spec_t spec;

static void *sw_create(sl_build_t *b, const sl_cnode_t *conf) {
  sw_t *sw = sl_xcalloc(1, sizeof(*sw));
  sl_component_init_output(&sw->base, &vt, &spec, b);
  const sl_cnode_t *cases = sl_cnode_get(conf, "cases");
  unsigned n = cases && cases->type == SL_CN_SEQ ? cases->n : 0;
  sw->cases = sl_xcalloc(n ? n : 1, sizeof(*sw->cases));
  int bad = 0;
  if (n == 0) {
    sl_diag_add(b->diags, cases ? cases : conf, "cases", "at least one case is required");
    bad = 1;
  }
  for (unsigned k = 0; k < n; k++) {
    const sl_cnode_t *c = cases->items[k];
    kase_t *kc = &sw->cases[sw->ncases++];
    const char *check = sl_conf_str(c, "check", "");
    if (*check) {
      kc->check = sl_lua_check_field(b->worker, c, b->diags, "check");
      if (!kc->check) bad = 1;
    }
    kc->cont = sl_conf_bool(c, "continue", 0);
    char *p = sl_xasprintf("%s.switch.cases.%u.output", b->path, k);
    if (sl_children_add(&sw->kids, b, sl_cnode_get(c, "output"), c, p) != 0) bad = 1;
    free(p);
  }
  if (bad) {
    sw_destroy(&sw->base);
    return NULL;
  }
  return sw;
}

static const sl_spec_t spec = {
  .name = "switch",
  .kind = SL_KIND_OUTPUT,
  .summary = "Routes each message to an output chosen by Lua checks.",
  .desc =
    "Each message is tested against the cases in order and goes to the output of the first "
    "case whose `check` is true; with `continue: true` on a case the following cases are "
    "tested too. Messages that match no case are dropped and acknowledged.\n\n"
    "The messages of a batch that go to the same case are written to its output as one "
    "batch. The batch is acknowledged when every case output delivered its part; each case "
    "output is retried on its own with the stream's `retry` policy.\n\n"
    "The list of cases can be given directly: `switch: [ {check: ..., output: ...} ]`.",
  .fields = fields,
  .shorthand = "cases",
  .example =
    "output:\n"
    "  switch:\n"
    "    cases:\n"
    "      - check: this.level == \"error\"\n"
    "        output:\n"
    "          file: { path: ./errors.ndjson }\n"
    "      - output:\n"
    "          stdout: {}\n",
  .create = sw_create,
};
SL_REGISTER(spec)
