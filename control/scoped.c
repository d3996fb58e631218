#include "scoped.h"
#include "engine.h"
#include "connectors/http/http_server_out.h"
#include "core/ctxref.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "http/http_auth.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NBUCKETS = 1024 };

typedef struct inst {
  struct inst *next;         /* hash chain, while it takes clients */
  struct inst *all_next, **all_prev;   /* every instance not yet freed */
  sl_scoped_t *t;
  char *key;                 /* the resolved values, '\x1f'-separated */
  sl_cnode_t *node;          /* its resolved config (components may point into it) */
  sl_stream_t *s;
  int clients, stopping;
  uv_timer_t timer;          /* idle timeout, then the deferred free */
} inst_t;

typedef struct route_arg { sl_scoped_t *t; int which; } route_arg_t;

struct sl_scoped {
  char *name;
  sl_cnode_t *node;          /* the template */
  char *config_dir;
  sl_worker_t *worker;
  sl_ctxref_t *refs;         /* every reference, in walk order */
  int nrefs;
  int64_t idle_ms, max_instances;
  inst_t *buckets[NBUCKETS];
  inst_t *all;
  int64_t live;              /* instances taking clients */
  int64_t alive;             /* instances not yet freed */
  int stopping;
  void (*on_done)(void *arg);
  void *done_arg;
  route_arg_t route[3];
  char *paths[3];
  sl_http_auth_t *auth;
};

/* ---------- the template's scalars ---------- */

/* Calls fn on every scalar of the stream's input and output, except those of
 * processors (which read `ctx` themselves). */
static void walk(sl_cnode_t *n, void (*fn)(sl_cnode_t *scalar, void *arg), void *arg) {
  if (!n) return;
  if (n->type == SL_CN_SCALAR) fn(n, arg);
  for (uint32_t i = 0; i < n->n && n->type != SL_CN_SCALAR; i++)
    if (n->type != SL_CN_MAP || strcmp(n->keys[i], "processors") != 0) walk(n->items[i], fn, arg);
}

static void walk_stream(const sl_cnode_t *stream, void (*fn)(sl_cnode_t *, void *), void *arg) {
  walk(sl_cnode_get(stream, "input"), fn, arg);
  walk(sl_cnode_get(stream, "output"), fn, arg);
}

static void note_ref(sl_cnode_t *n, void *arg) {
  if (sl_ctxref_has(n->str)) *(const sl_cnode_t **)arg = n;
}

int sl_scoped_is_template(const sl_cnode_t *stream) {
  const sl_cnode_t *first = NULL;
  walk_stream(stream, note_ref, &first);
  return first != NULL;
}

static void collect_refs(sl_cnode_t *n, void *arg) {
  sl_scoped_t *t = arg;
  sl_ctxref_t ref;
  for (size_t at = 0; sl_ctxref_next(n->str, at, &ref) == 1; at = ref.end) {
    t->refs = sl_xrealloc(t->refs, (size_t)(t->nrefs + 1) * sizeof(*t->refs));
    t->refs[t->nrefs++] = ref;
  }
}

typedef struct resolve { const sl_ctx_t *ctx; } resolve_t;

static void resolve_scalar(sl_cnode_t *n, void *arg) {
  resolve_t *r = arg;
  if (!sl_ctxref_has(n->str)) return;
  char *why = NULL;
  char *v = sl_ctxref_subst(n->str, r->ctx, &why);
  free(why);   /* the key was computed first: every value is there */
  if (!v) return;
  free(n->str);
  n->str = v;
  n->len = strlen(v);
  n->quoted = 1;
}

/* A copy of the template with every reference resolved from ctx (NULL ctx:
 * defaults or placeholders). */
static sl_cnode_t *resolved(const sl_scoped_t *t, const sl_ctx_t *ctx) {
  sl_cnode_t *n = sl_cnode_dup(t->node);
  resolve_t r = {ctx};
  walk_stream(n, resolve_scalar, &r);
  return n;
}

/* The instance key of a request: its value of every reference. */
static char *key_of(const sl_scoped_t *t, const sl_ctx_t *ctx, char **why) {
  char *key = sl_xstrdup("");
  for (int i = 0; i < t->nrefs; i++) {
    char *v = sl_ctxref_value(&t->refs[i], ctx, why);
    if (!v) {
      free(key);
      return NULL;
    }
    char *k = sl_xasprintf("%s%s%s", key, i ? "\x1f" : "", v);
    free(key);
    free(v);
    key = k;
  }
  return key;
}

/* ---------- instances ---------- */

static unsigned bucket(const char *key) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 16777619u;
  return h % NBUCKETS;
}

static inst_t *find(sl_scoped_t *t, const char *key) {
  for (inst_t *i = t->buckets[bucket(key)]; i; i = i->next)
    if (strcmp(i->key, key) == 0) return i;
  return NULL;
}

static void unlink_inst(sl_scoped_t *t, inst_t *i) {
  inst_t **pp = &t->buckets[bucket(i->key)];
  while (*pp && *pp != i) pp = &(*pp)->next;
  if (*pp) {
    *pp = i->next;
    t->live--;
  }
}

static void finish_if_drained(sl_scoped_t *t) {
  if (t->stopping && t->alive == 0 && t->on_done) {
    void (*cb)(void *) = t->on_done;
    t->on_done = NULL;
    cb(t->done_arg);
  }
}

static void inst_closed(uv_handle_t *h) {
  inst_t *i = h->data;
  sl_scoped_t *t = i->t;
  *i->all_prev = i->all_next;
  if (i->all_next) i->all_next->all_prev = i->all_prev;
  sl_stream_free(i->s);
  sl_cnode_free(i->node);
  free(i->key);
  free(i);
  t->alive--;
  finish_if_drained(t);
}

static void inst_free_later(uv_timer_t *h) { uv_close((uv_handle_t *)h, inst_closed); }

/* The stream drained: freed from the loop, not from inside its own callback. */
static void inst_done(sl_stream_t *s, void *arg) {
  (void)s;
  inst_t *i = arg;
  uv_timer_start(&i->timer, inst_free_later, 0, 0);
}

static void display_key(const char *key, char *out, size_t cap) {
  snprintf(out, cap, "%s", key);
  for (char *c = out; *c; c++)
    if (*c == '\x1f') *c = ',';
}

static void inst_stop(inst_t *i, const char *why) {
  if (i->stopping) return;
  i->stopping = 1;
  unlink_inst(i->t, i);
  uv_timer_stop(&i->timer);
  sl_logf(SL_LOG_INFO, i->s->name, NULL, "request-scoped instance stopping (%s)", why);
  sl_stream_stop(i->s);
}

static void on_idle(uv_timer_t *h) { inst_stop(h->data, "idle"); }

static void on_clients(void *arg, int n) {
  inst_t *i = arg;
  i->clients = n;
  if (i->stopping) return;
  if (n == 0) uv_timer_start(&i->timer, on_idle, (uint64_t)i->t->idle_ms, 0);
  else uv_timer_stop(&i->timer);
}

/* Builds and starts the instance for key; answers r and returns NULL when
 * that fails. */
static inst_t *spawn(sl_scoped_t *t, const char *key, sl_ctx_t *ctx, sl_http_req_t *r) {
  sl_cnode_t *node = resolved(t, ctx);
  sl_diags_t d = {0};
  char *path = sl_xasprintf("streams.%s", t->name);
  sl_spec_validate_fields(sl_config_stream_fields(), node, path, &d);
  free(path);
  char shown[300];
  display_key(key, shown, sizeof shown);
  char *name = sl_xasprintf("%s{%s}", t->name, shown);
  sl_build_t b = {.worker = t->worker, .diags = &d, .config_dir = t->config_dir, .mounted = 1};
  sl_stream_t *s = d.n ? NULL : sl_stream_build(&b, node, name);
  free(name);
  if (!s) {
    char *msg = d.n ? sl_xasprintf("stream `%s`: the request's values make an invalid config: %s: %s", t->name,
                                   d.v[0].key ? d.v[0].key : "", d.v[0].msg)
                    : sl_xasprintf("stream `%s` could not be built", t->name);
    sl_http_error(r, 400, msg);
    free(msg);
    sl_diags_free(&d);
    sl_cnode_free(node);
    return NULL;
  }
  sl_diags_free(&d);
  inst_t *i = sl_xcalloc(1, sizeof(*i));
  i->t = t;
  i->key = sl_xstrdup(key);
  i->node = node;
  i->s = s;
  s->ctx = sl_ctx_ref(ctx);
  uv_timer_init(t->worker->loop, &i->timer);
  i->timer.data = i;
  t->alive++;
  i->all_next = t->all;
  if (t->all) t->all->all_prev = &i->all_next;
  i->all_prev = &t->all;
  t->all = i;
  sl_hout_watch(s->output, on_clients, i);
  if (sl_stream_start(s, inst_done, i) != 0) {
    i->stopping = 1;
    sl_stream_stop(s);
    sl_http_error(r, 502, "the request-scoped stream could not start (see the log)");
    return NULL;
  }
  unsigned h = bucket(key);
  i->next = t->buckets[h];
  t->buckets[h] = i;
  t->live++;
  /* Until a client is counted (the first one may yet be refused). */
  uv_timer_start(&i->timer, on_idle, (uint64_t)t->idle_ms, 0);
  sl_logf(SL_LOG_INFO, s->name, NULL, "request-scoped instance started");
  return i;
}

static void on_request(sl_http_req_t *r, void *arg) {
  route_arg_t *ra = arg;
  sl_scoped_t *t = ra->t;
  if (t->stopping) {
    sl_http_error(r, 503, "shutting down");
    return;
  }
  sl_ctx_t *ctx = sl_http_ctx_new(r);
  char *why = NULL;
  char *key = key_of(t, ctx, &why);
  if (!key) {
    char *msg = sl_xasprintf("%s (stream `%s` is request-scoped)", why, t->name);
    sl_http_error(r, 400, msg);
    free(msg);
    free(why);
    sl_ctx_unref(ctx);
    return;
  }
  inst_t *i = find(t, key);
  if (!i && t->live >= t->max_instances) {
    sl_http_error(r, 503, "too many request-scoped instances (request_scope.max_instances)");
  } else {
    if (!i) i = spawn(t, key, ctx, r);
    if (i) sl_hout_serve(i->s->output, ra->which, r);
  }
  free(key);
  sl_ctx_unref(ctx);
}

/* ---------- the template ---------- */

static const char *const path_keys[3] = {"path", "sse_path", "ws_path"};

/* The template's own checks; 0 or -1 with a diag. */
static int check_shape(sl_build_t *b, const sl_cnode_t *node, const char *name) {
  const sl_cnode_t *out = sl_cnode_get(node, "output");
  const sl_cnode_t *hs = sl_cnode_get(out, "http_server");
  if (!hs) {
    const sl_cnode_t *at = NULL;
    walk_stream(node, note_ref, &at);
    sl_diag_add(b->diags, at ? at : node, name,
                "this reference to the request context makes stream `%s` request-scoped, and a request-scoped "
                "stream's output must be `http_server` (the clients it serves); for a per-message value write "
                "${! ctx.… } instead", name);
    return -1;
  }
  for (int k = 0; k < 3; k++) {
    const sl_cnode_t *p = sl_cnode_get(hs, path_keys[k]);
    if (p && p->type == SL_CN_SCALAR && sl_ctxref_has(p->str)) {
      sl_diag_add(b->diags, p, path_keys[k],
                  "the paths of a request-scoped stream are its routes and cannot depend on the request: "
                  "use a {name} segment and ${ctx.params.name}");
      return -1;
    }
  }
  return 0;
}

static void scoped_free_parts(sl_scoped_t *t) {
  for (int k = 0; k < t->nrefs; k++) sl_ctxref_clear(&t->refs[k]);
  free(t->refs);
  for (int k = 0; k < 3; k++) free(t->paths[k]);
  sl_http_auth_free(t->auth);
  sl_cnode_free(t->node);
  free(t->config_dir);
  free(t->name);
  free(t);
}

sl_scoped_t *sl_scoped_build(sl_build_t *b, const sl_cnode_t *node, const char *name) {
  if (check_shape(b, node, name) != 0) return NULL;
  sl_scoped_t *t = sl_xcalloc(1, sizeof(*t));
  t->name = sl_xstrdup(name);
  t->node = sl_cnode_dup(node);
  t->config_dir = sl_xstrdup(b->config_dir ? b->config_dir : ".");
  t->worker = b->worker;
  const sl_cnode_t *scope = sl_cnode_get(node, "request_scope");
  t->idle_ms = sl_conf_duration_ms(scope, "idle_timeout", 60000);
  t->max_instances = sl_conf_int(scope, "max_instances", 10000);
  walk_stream(t->node, collect_refs, t);

  /* The whole stream is checked now, with defaults or placeholders for the
   * request's values, so that config errors surface at load. */
  uint32_t before = b->diags->n;
  sl_cnode_t *probe = resolved(t, NULL);
  sl_build_t lint = *b;
  lint.worker = NULL;
  lint.lint_only = 1;
  sl_stream_t *s = sl_stream_build(&lint, probe, name);
  sl_stream_free(s);
  sl_cnode_free(probe);
  if (b->diags->n > before) {
    scoped_free_parts(t);
    return NULL;
  }
  if (!b->worker) return t;

  const sl_cnode_t *hs = sl_cnode_get(sl_cnode_get(node, "output"), "http_server");
  const sl_cnode_t *auth = sl_cnode_get(hs, "auth");
  if (auth) t->auth = sl_http_auth_new(auth, hs->file, b->diags);
  for (int k = 0; k < 3 && b->diags->n == before; k++) {
    const char *p = sl_conf_str(hs, path_keys[k], k == 0 ? "/get" : "");
    if (!p[0]) continue;
    t->paths[k] = p[0] == '/' ? sl_xstrdup(p) : sl_xasprintf("/%s", p);
    t->route[k] = (route_arg_t){t, k};
    const sl_cnode_t *at = sl_cnode_get(hs, path_keys[k]);
    if (sl_http_route_get(b->worker, t->paths[k], on_request, &t->route[k], name, b->diags, at ? at : hs) != 0) {
      free(t->paths[k]);
      t->paths[k] = NULL;
      break;
    }
    if (t->auth) sl_http_route_auth(b->worker, t->paths[k], t->auth);
  }
  if (b->diags->n > before) {
    sl_scoped_free(t);
    return NULL;
  }
  return t;
}

void sl_scoped_start(sl_scoped_t *t, void (*on_done)(void *arg), void *arg) {
  t->on_done = on_done;
  t->done_arg = arg;
}

void sl_scoped_stop(sl_scoped_t *t) {
  if (t->stopping) return;
  t->stopping = 1;
  for (int h = 0; h < NBUCKETS; h++)
    while (t->buckets[h]) inst_stop(t->buckets[h], "shutdown");
  finish_if_drained(t);
}

void sl_scoped_log_pending(const sl_scoped_t *t) {
  for (const inst_t *i = t->all; i; i = i->all_next) {
    if (i->s->stopped) continue;
    char what[160];
    sl_stream_describe(i->s, what, sizeof what);
    sl_logf(SL_LOG_ERROR, i->s->name, NULL, "shutdown_timeout: still %s", what);
  }
}

const char *sl_scoped_name(const sl_scoped_t *t) { return t->name; }
int sl_scoped_instances(const sl_scoped_t *t) { return (int)t->live; }

void sl_scoped_free(sl_scoped_t *t) {
  if (!t) return;
  for (int k = 0; k < 3; k++)
    if (t->paths[k]) sl_http_unroute(t->worker, t->paths[k]);
  scoped_free_parts(t);
}
