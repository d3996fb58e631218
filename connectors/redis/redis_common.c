/* The redis_* connectors' shared parts (redis_common.h). */
#include "redis_common.h"
#include "clients/redis_slot.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <stdlib.h>
#include <string.h>

int sl_rconn_check(sl_build_t *b, const sl_cnode_t *conf) {
  return sl_redis_conf_check(conf, "redis://localhost:6379", b->diags);
}

static void on_state(sl_redis_t *r, int up, const char *why, void *arg) {
  sl_rconn_t *c = arg;
  c->r = r;   /* the first call comes from sl_redis_new */
  if (c->quiet) {
    if (c->on_state) c->on_state(c, up, c->arg);
    return;
  }
  if (c->m.up) {
    if (up) (*c->m.up)++;
    else if (c->was_up) (*c->m.lost)++;
    else if (strstr(why, "connecting") == NULL) (*c->m.failed)++;
  }
  c->was_up = up;
  if (c->in) sl_input_set_connected(c->in, up, why);
  else sl_output_set_connected(c->out, up, why);
  if (c->on_state) c->on_state(c, up, c->arg);
}

sl_rconn_t *sl_rconn_new(sl_build_t *b, const sl_cnode_t *conf, sl_input_t *in, sl_output_t *out,
                         sl_rconn_state_cb cb, void *arg) {
  if (sl_rconn_check(b, conf)) return NULL;
  sl_rconn_t *c = sl_xcalloc(1, sizeof(*c));
  c->in = in;
  c->out = out;
  c->on_state = cb;
  c->arg = arg;
  c->url = sl_xstrdup(sl_conf_str(conf, "url", "redis://localhost:6379"));
  if (sl_redis_conf_master(conf)) c->master = sl_xstrdup(sl_redis_conf_master(conf));
  c->cluster = sl_redis_conf_cluster(conf);
  sl_redis_conf_tls(conf, &c->tls, b->diags);   /* loaded once already by the check */
  c->backoff = sl_conf_duration_ms(conf, "reconnect_backoff", 100);
  c->max_backoff = sl_conf_duration_ms(conf, "reconnect_max_backoff", 5000);
  c->reply_timeout = sl_conf_duration_ms(conf, "reply_timeout", 10000);
  if (b->worker && !b->lint_only) {
    const char *sn = b->stream_name ? b->stream_name : "";
    c->series_stream = sl_xstrndup(sn, strcspn(sn, "{"));
    c->series_path = sl_metrics_path(sn, b->path);
    c->cfg_path = sl_xstrdup(b->path);
  }
  return c;
}

int sl_rconn_start(sl_rconn_t *c, uv_loop_t *loop) {
  sl_redis_opts_t o = {
    .url = c->url,
    .sentinel_master = c->master,
    .cluster = c->cluster,
    .tls = c->tls,
    .log_stream = sl_rconn_stream(c),
    .log_component = sl_rconn_label(c),
    .backoff_min_ms = c->backoff,
    .backoff_max_ms = c->max_backoff,
    .reply_timeout_ms = c->reply_timeout,
    .on_state = on_state,
    .state_arg = c,
  };
  if (c->series_stream && !c->quiet)   /* once the component has its label */
    sl_connmetrics_init(&c->m, c->in ? SL_CM_INPUT : SL_CM_OUTPUT, o.log_stream ? o.log_stream : "", o.log_component,
                        c->cfg_path);
  char *err = NULL;
  c->r = sl_redis_new(loop, &o, &err);   /* the URL was checked when built */
  if (!c->r) {
    sl_logf(SL_LOG_ERROR, o.log_stream, o.log_component, "%s", err ? err : "cannot connect");
    free(err);
    return -1;
  }
  return 0;
}

void sl_rconn_free(sl_rconn_t *c) {
  if (!c) return;
  sl_redis_free(c->r);
  free(c->url);
  free(c->master);
  sl_tls_ctx_free(c->tls);
  free(c->series_stream);
  free(c->series_path);
  free(c->cfg_path);
  free(c);
}

const char *sl_rconn_stream(const sl_rconn_t *c) {
  const sl_stream_t *s = c->in ? c->in->stream : c->out->stream;
  return s ? s->name : NULL;
}

const char *sl_rconn_label(const sl_rconn_t *c) { return c->in ? c->in->label : c->out->label; }

int sl_rconn_one_slot(sl_build_t *b, const sl_rconn_t *c, const sl_cnode_t *at, const char *field,
                      const char *const *keys, int n) {
  for (int i = 1; c->cluster && i < n; i++) {
    int s0 = sl_redis_key_slot(keys[0], strlen(keys[0])), si = sl_redis_key_slot(keys[i], strlen(keys[i]));
    if (s0 == si) continue;
    sl_diag_add(b->diags, at, field, "kind: cluster: %s (slot %d) and %s (slot %d) are in different hash slots, and "
                "one command uses them together (Redis would answer CROSSSLOT): give them one {hash tag} "
                "({orders}.a, {orders}.b), or use one component for each (a broker input)", keys[0], s0, keys[i], si);
    return -1;
  }
  return 0;
}

/* ---- arguments ---- */

void sl_rargs_add(sl_rargs_t *a, const char *s, size_t len) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    a->v = sl_xrealloc(a->v, (size_t)a->cap * sizeof(*a->v));
    a->len = sl_xrealloc(a->len, (size_t)a->cap * sizeof(*a->len));
  }
  a->v[a->n] = s;
  a->len[a->n++] = len;
}

void sl_rargs_addz(sl_rargs_t *a, const char *s) { sl_rargs_add(a, s, strlen(s)); }

void sl_rargs_own(sl_rargs_t *a, char *s, size_t len) {
  a->owned = sl_xrealloc(a->owned, (size_t)(a->nowned + 1) * sizeof(*a->owned));
  a->owned[a->nowned++] = s;
  sl_rargs_add(a, s, len);
}

void sl_rargs_reset(sl_rargs_t *a) {
  for (int i = 0; i < a->nowned; i++) free(a->owned[i]);
  a->nowned = 0;
  a->n = 0;
}

void sl_rargs_free(sl_rargs_t *a) {
  sl_rargs_reset(a);
  free(a->v);
  free(a->len);
  free(a->owned);
  memset(a, 0, sizeof(*a));
}

int sl_rargs_send(sl_rconn_t *c, sl_rargs_t *a, sl_redis_cb cb, void *arg) {
  return sl_redis_command(c->r, cb, arg, a->n, a->v, a->len);
}

/* ---- templates ---- */

int sl_rtmpl_init(sl_rtmpl_t *t, sl_build_t *b, const sl_cnode_t *conf, const char *key) {
  memset(t, 0, sizeof(*t));
  t->i = sl_lua_interp_field(b->worker, conf, b->diags, key);
  if (!t->i) return -1;
  if (sl_interp_is_static(t->i)) {
    char *err = NULL;
    t->fixed = sl_interp_eval(t->i, NULL, 0, NULL, &err);
    free(err);
  }
  return 0;
}

char *sl_rtmpl_eval(sl_rtmpl_t *t, sl_msg_t *m, uint32_t k, size_t *len, char **err) {
  if (t->fixed) {
    if (len) *len = strlen(t->fixed);
    return sl_xstrdup(t->fixed);
  }
  char *e = NULL;
  char *v = sl_interp_eval(t->i, m, k, len, &e);
  if (!v) *err = sl_xstrdup(e ? e : "evaluation failed");
  free(e);
  return v;
}

void sl_rtmpl_free(sl_rtmpl_t *t) {
  sl_interp_free(t->i);
  free(t->fixed);
}
