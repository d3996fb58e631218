#include "cache_run.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

typedef struct slot { struct run *r; uint32_t i; } slot_t;

typedef struct run {
  sl_processor_t *p;
  const sl_cache_run_vt *vt;
  sl_batch_t *b;
  uint32_t pending;           /* answers to come, plus one while starting */
  int64_t flagged;            /* messages the run failed, for the chain's error count */
  uint8_t *drop;
  slot_t slots[];
} run_t;

/* late: after sl_cache_run returned, so the chain learns of the messages
 * failed here through late_errors. */
static void finish(run_t *r, int late) {
  sl_batch_t *b = r->b;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    if (r->drop[i]) sl_msg_free(b->msgs[i]);
    else b->msgs[kept++] = b->msgs[i];
  }
  b->n = kept;
  if (late) r->p->late_errors = r->flagged;
  r->vt->done(r->p, b);
  if (late) r->p->late_errors = 0;
  free(r->drop);
  free(r);
}

static void answered(void *arg, const sl_cache_res_t *res) {
  slot_t *s = arg;
  run_t *r = s->r;
  sl_msg_t *m = r->b->msgs[s->i];
  int had = m->error != NULL;
  r->drop[s->i] = (uint8_t)r->vt->result(r->p, m, res);
  if (!had && m->error && !r->drop[s->i]) r->flagged++;
  if (--r->pending == 0) finish(r, 1);
}

void sl_cache_run(sl_processor_t *p, sl_cache_t *c, const sl_cache_run_vt *vt, sl_batch_t *b) {
  run_t *r = sl_xmalloc(sizeof(*r) + (size_t)b->n * sizeof(slot_t));
  *r = (run_t){.p = p, .vt = vt, .b = b, .pending = 1};
  r->drop = sl_xcalloc(b->n ? b->n : 1, 1);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    sl_cache_req_t rq = {.ttl_ms = SL_CACHE_TTL_DEFAULT};
    char *keep[2] = {NULL, NULL};
    int had = m->error != NULL;
    int rc = vt->prep(p, m, i, &rq, keep);
    if (rc < 0 && !had) r->flagged++;
    if (rc == 0) {
      r->slots[i] = (slot_t){r, i};
      r->pending++;
      sl_cache_exec(c, &rq, answered, &r->slots[i]);
    }
    free(keep[0]);
    free(keep[1]);
  }
  if (--r->pending == 0) finish(r, 0);
}

char *sl_cache_run_eval(sl_interp_t *ip, sl_msg_t *m, uint32_t i, size_t *len, const char *what) {
  char *err = NULL;
  char *s = sl_interp_eval(ip, m, i, len, &err);
  if (s) return s;
  char *text = sl_xasprintf("%s: %s", what, err ? err : "error");
  sl_msg_set_error(m, text);
  free(text);
  free(err);
  return NULL;
}

int sl_cache_run_ttl(sl_interp_t *ip, sl_msg_t *m, uint32_t i, const char *what, int64_t *ttl_ms) {
  char *t = sl_cache_run_eval(ip, m, i, NULL, what);
  if (!t) return -1;
  int rc = 0;
  if (!*t) {
    *ttl_ms = SL_CACHE_TTL_DEFAULT;
  } else if (sl_parse_duration_ms(t, ttl_ms) != 0) {
    char *e = sl_xasprintf("%s: \"%.64s\" is not a duration", what, t);
    sl_msg_set_error(m, e);
    free(e);
    rc = -1;
  }
  free(t);
  return rc;
}

int sl_cache_run_resource(sl_build_t *b, const sl_cnode_t *conf, const char *field, sl_cache_t **out) {
  int lint = b->lint_only || !b->worker;
  if (sl_cache_check_ref(conf, field, lint, b->diags) != 0) return -1;
  const char *name = sl_conf_str(conf, field, "");
  *out = lint ? NULL : sl_cache_find(name, strlen(name));
  return 0;
}
