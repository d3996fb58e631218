/* `switch` processor: each message goes through the processors of the first
 * case whose check holds (and on through the next cases while they fall
 * through); messages matching no case pass unchanged. */
#include "fwd.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <stdlib.h>

static const sl_field_t case_fields[] = {
  {"check", SL_F_CODE, "", 0,
   "Lua expression (`this.type == \"order\"`, `meta.source == \"a\"`, `errored()`); empty "
   "matches every message.", NULL, NULL},
  {"processors", SL_F_PROCESSORS, NULL, 0, "Run on the messages of this case.", NULL, NULL},
  {"fallthrough", SL_F_BOOL, "false", 0,
   "After this case's processors, run the next case's processors too (without its check).", NULL, NULL},
  {0}};

static const sl_field_t fields[] = {
  {"cases", SL_F_OBJLIST, NULL, SL_REQUIRED, "Tried in order for each message.", NULL, case_fields},
  {0}};

typedef struct scase {
  sl_lcheck_t *check;        /* NULL: always */
  sl_chain_t *chain;
  sl_fwd_t out;
} scase_t;

typedef struct switch_proc {
  sl_processor_t base;
  scase_t *cases;
  unsigned n;
  sl_order_t order;
} switch_t;

static void sw_process(sl_processor_t *p, sl_batch_t *b) {
  switch_t *s = (switch_t *)p;
  sl_batch_t **per = sl_xcalloc(s->n, sizeof(*per));
  sl_ojob_t *j = sl_order_begin(&s->order, b->n);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    unsigned k = 0;
    for (; k < s->n; k++) {
      if (!s->cases[k].check) break;
      char *err = NULL;
      int r = sl_lcheck_eval(s->cases[k].check, m, i, &err);
      if (r < 0) {
        /* A check that cannot be evaluated flags the message, which passes on. */
        sl_msg_set_error(m, err);
        free(err);
        k = s->n;
        break;
      }
      if (r) break;
    }
    if (k == s->n) {
      sl_order_pass(j, i, m);
      continue;
    }
    sl_order_send(j, i, m);
    if (!per[k]) per[k] = sl_batch_new(b->n);
    sl_batch_push(per[k], m);
  }
  sl_batch_free_shell(b);
  for (unsigned k = 0; k < s->n; k++)
    if (per[k]) s->cases[k].chain->sink.push(&s->cases[k].chain->sink, per[k]);
  free(per);
  sl_order_end(j);
}

static void sw_flush(sl_processor_t *p) {
  switch_t *s = (switch_t *)p;
  for (unsigned k = 0; k < s->n; k++) sl_chain_flush(s->cases[k].chain);
}

static void sw_destroy(sl_processor_t *p) {
  switch_t *s = (switch_t *)p;
  sl_order_destroy(&s->order);
  for (unsigned k = 0; k < s->n; k++) {
    sl_lcheck_free(s->cases[k].check);
    sl_chain_free(s->cases[k].chain);
  }
  free(s->cases);
  free(s);
}

static const sl_processor_vt vt = {sw_process, sw_flush, sw_destroy};
static const sl_spec_t spec;

static void *sw_create(sl_build_t *b, const sl_cnode_t *conf) {
  const sl_cnode_t *cases = sl_cnode_get(conf, "cases");
  switch_t *s = sl_xcalloc(1, sizeof(*s));
  sl_component_init_processor(&s->base, &vt, &spec, b);
  s->cases = sl_xcalloc(cases->n ? cases->n : 1, sizeof(*s->cases));
  s->n = cases->n;
  sl_order_init(&s->order, &s->base);
  int bad = 0;
  for (unsigned k = 0; k < s->n; k++) {
    const sl_cnode_t *c = cases->items[k];
    const char *check = sl_conf_str(c, "check", "");
    if (*check && !(s->cases[k].check = sl_lua_check_field(b->worker, c, b->diags, "check"))) bad = 1;
    char *name = sl_xasprintf("switch.cases.%u", k);
    s->cases[k].chain = sl_proc_child_chain(b, c, "processors", name);
    free(name);
    if (!s->cases[k].chain) bad = 1;
  }
  if (bad) {
    sw_destroy(&s->base);
    return NULL;
  }
  for (unsigned k = 0; k < s->n; k++) {
    int through = sl_conf_bool(cases->items[k], "fallthrough", 0) && k + 1 < s->n;
    sl_fwd_init(&s->cases[k].out, &s->base, through ? &s->cases[k + 1].chain->sink : NULL, 0);
    s->cases[k].out.order = &s->order;
    sl_chain_connect(s->cases[k].chain, &s->cases[k].out.sink, NULL);
  }
  return s;
}

static const sl_spec_t spec = {
  .name = "switch",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Routes each message through the processors of the first case that matches.",
  .desc =
    "Each message is tested against the cases' `check` in order; the first that holds runs "
    "its `processors` on it (and, with `fallthrough`, the next case's processors after them). "
    "Messages matching no case pass unchanged. A check that raises a Lua error flags the "
    "message as failed and lets it pass.\n\n"
    "Within a batch, each message keeps its place, whichever case it went through (what a case's "
    "processors split it into takes that place), and batches go on in the order they came.",
  .fields = fields,
  .shorthand = "cases",
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - switch:\n"
    "        - check: 'this.type == \"order\"'\n"
    "          processors:\n"
    "            - lua: 'this.total = this.qty * this.price'\n"
    "        - check: 'this.type == \"ping\"'\n"
    "          processors:\n"
    "            - lua: 'return deleted()'\n",
  .create = sw_create,
};
SL_REGISTER(spec)
