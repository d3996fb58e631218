/* Swapping streams while the engine runs: a config reload (files, SIGHUP,
 * -w, POST /admin/reload) and the streams API both come down to
 * sl_engine_apply. The new config is read and validated whole first, new
 * stream instances are built next to the running ones (their HTTP routes
 * staged), and only when everything built are the routes handed over, the new
 * instances started and the replaced ones drained. */
#include "engine_int.h"
#include "http.h"
#include "log.h"
#include "xalloc.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

json_t *sl_diags_json(const sl_diags_t *d, uint32_t from) {
  json_t *a = json_array();
  for (uint32_t i = from; i < d->n; i++) {
    const sl_diag_t *g = &d->v[i];
    json_array_append_new(a, json_pack("{s:s?,s:i,s:i,s:s?,s:s}", "file", g->file, "line", g->line, "col", g->col,
                                       "key", g->key, "message", g->msg ? g->msg : ""));
  }
  return a;
}

/* One planned change: old (may be NULL) becomes fresh (may be NULL). */
typedef struct change { sl_unit_t *old, *fresh; const char *name; const sl_cnode_t *node; } change_t;

static void note(json_t *changes, const char *kind, const char *name) {
  json_t *a = json_object_get(changes, kind);
  if (!a) json_object_set_new(changes, kind, a = json_array());
  json_array_append_new(a, json_string(name));
}

static int live_index(const sl_engine_t *e, const sl_unit_t *u) {
  for (int i = 0; i < e->nunits; i++)
    if (e->units[i] == u) return i;
  return -1;
}

int sl_engine_apply(sl_engine_t *e, const sl_cnode_t *streams, int mode, sl_diags_t *d, json_t *changes) {
  if (e->stopping) {
    sl_diag_add(d, NULL, NULL, "shutting down: no changes are taken");
    return -1;
  }
  uint32_t n = streams && streams->type == SL_CN_MAP ? streams->n : 0;
  change_t *plan = sl_xcalloc((size_t)(n + (uint32_t)e->nunits) + 1, sizeof(*plan));
  int np = 0;
  for (uint32_t i = 0; i < n; i++) {
    sl_unit_t *old = sl_engine_unit(e, streams->keys[i]);
    const sl_cnode_t *node = streams->items[i];
    if (node->type == SL_CN_NULL) {
      if (old) plan[np++] = (change_t){old, NULL, old->name, NULL};
      continue;
    }
    char *canon = sl_unit_canon(node);
    int same = old && !strcmp(canon, old->canon);
    free(canon);
    if (same) note(changes, "unchanged", old->name);
    else plan[np++] = (change_t){old, NULL, streams->keys[i], node};
  }
  for (int i = 0; mode != SL_APPLY_SOME && i < e->nunits; i++)
    if (!sl_cnode_get(streams, e->units[i]->name) && (mode == SL_APPLY_ALL || !e->units[i]->api))
      plan[np++] = (change_t){e->units[i], NULL, e->units[i]->name, NULL};

  for (int i = 0; i < np; i++)
    if (plan[i].old) sl_http_route_outgoing(e->worker, plan[i].old->id, 1);
  uint32_t before = d->n;
  for (int i = 0; i < np; i++)
    if (plan[i].node && (plan[i].fresh = sl_unit_build(e, plan[i].node, plan[i].name, 1, d)))
      plan[i].fresh->api = mode != SL_APPLY_FILES;
  if (d->n > before) {
    for (int i = 0; i < np; i++) {
      sl_unit_free(plan[i].fresh);
      if (plan[i].old) sl_http_route_outgoing(e->worker, plan[i].old->id, 0);
    }
    free(plan);
    return -1;
  }

  /* The commit: nothing below can fail the reload, and nothing yields to the
   * loop, so no request sees a half-swapped route table. */
  sl_http_route_handover(e->worker);
  for (int i = 0; i < np; i++) {
    change_t *c = &plan[i];
    note(changes, !c->old ? "added" : c->fresh ? "changed" : "removed", c->name);
    int at = c->old ? live_index(e, c->old) : -1;
    if (c->fresh) {
      if (at < 0) {
        e->units = sl_xrealloc(e->units, (size_t)(e->nunits + 1) * sizeof(*e->units));
        at = e->nunits++;
      }
      e->units[at] = c->fresh;
      if (sl_unit_start(c->fresh) != 0) sl_logf(SL_LOG_ERROR, c->name, NULL, "stream failed to start after reload");
    } else if (at >= 0) {
      memmove(&e->units[at], &e->units[at + 1], (size_t)(e->nunits - at - 1) * sizeof(*e->units));
      e->nunits--;
    }
    if (c->old) sl_engine_retire(e, c->old);
  }
  if (np) {
    e->version++;
    e->loaded_at = time(NULL);
  }
  free(plan);
  /* A first http_server stream may have arrived. */
  sl_http_listen(e->worker);
  return 0;
}

/* Sections outside `streams:` are applied once; a change needs a restart,
 * except the logger and shutdown_timeout which take effect at once. */
static void compare_sections(sl_engine_t *e, const sl_cnode_t *fresh, json_t *reply) {
  json_t *restart = json_array();
  const sl_cnode_t *roots[2] = {e->root, fresh};
  for (int r = 0; r < 2; r++) {
    for (uint32_t i = 0; i < roots[r]->n; i++) {
      const char *k = roots[r]->keys[i];
      if (!strcmp(k, "streams") || !strcmp(k, "logger") || !strcmp(k, "shutdown_timeout")) continue;
      if (r == 1 && sl_cnode_get(e->root, k)) continue;   /* compared in the first pass */
      const sl_cnode_t *a = sl_cnode_get(e->root, k), *b = sl_cnode_get(fresh, k);
      char *ca = a ? sl_unit_canon(a) : NULL, *cb = b ? sl_unit_canon(b) : NULL;
      if (!ca || !cb || strcmp(ca, cb)) json_array_append_new(restart, json_string(k));
      free(ca);
      free(cb);
    }
  }
  if (json_array_size(restart)) {
    char *list = json_dumps(restart, JSON_COMPACT);
    sl_warn("reload: restart required for changed section(s) %s: left as they were", list);
    free(list);
  }
  json_object_set_new(reply, "restart_required", restart);
  const sl_cnode_t *lg = sl_cnode_get(fresh, "logger");
  sl_log_level_t lvl;
  if (lg && sl_log_parse_level(sl_conf_str(lg, "level", "info"), &lvl) == 0) sl_log_set_level(lvl);
  e->shutdown_ms = sl_conf_duration_ms(fresh, "shutdown_timeout", 20000);
}

int sl_engine_reload(sl_engine_t *e, sl_diags_t *d, json_t *reply) {
  sl_cnode_t **files = NULL;
  int nfiles = 0;
  char hash[65];
  uint32_t before = d->n;
  sl_cnode_t *root = sl_engine_read_config(&e->opts, &files, &nfiles, hash, d);
  json_t *changes = json_object();
  int rc = root ? sl_engine_apply(e, sl_cnode_get(root, "streams"), SL_APPLY_FILES, d, changes) : -1;
  if (rc == 0) {
    memcpy(e->hash, hash, sizeof hash);
    compare_sections(e, root, reply);
    json_object_update(reply, changes);
    free(e->last_error);
    e->last_error = NULL;
    char *what = json_dumps(changes, JSON_COMPACT);
    sl_info("config reloaded (version %llu): %s", (unsigned long long)e->version, what);
    free(what);
  } else {
    /* Every error is logged, and kept for /admin/status. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sl_diags_t mine = {.v = d->v + before, .n = d->n - before};
    sl_diag_print(&mine, f);
    fclose(f);
    sl_error("config reload failed, nothing changed; %u error(s):", d->n - before);
    char *lines = sl_xstrdup(text), *save = NULL;
    for (char *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) sl_error("  %s", l);
    free(lines);
    free(e->last_error);
    e->last_error = text;
  }
  json_decref(changes);
  for (int i = 0; i < nfiles; i++) sl_cnode_free(files[i]);
  free(files);
  return rc;
}

static void reload_now(sl_engine_t *e, const char *why) {
  if (e->stopping) return;
  sl_info("%s: reloading the config", why);
  sl_diags_t d = {0};
  json_t *reply = json_object();
  sl_engine_reload(e, &d, reply);
  json_decref(reply);
  sl_diags_free(&d);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  reload_now(h->data, "SIGHUP");
}

static void on_file_changed(void *arg) {
  sl_engine_t *e = arg;
  char hash[65];
  /* Editors touch files without changing them: only new bytes reload. */
  sl_config_hash(&e->opts, hash);
  if (strcmp(hash, e->hash) != 0) reload_now(e, "config file changed");
}

void sl_reload_start(sl_engine_t *e) {
  uv_signal_init(e->worker->loop, &e->sighup);
  e->sighup.data = e;
  uv_signal_start(&e->sighup, on_sighup, SIGHUP);
  if (!e->opts.watch) return;
  e->watches = sl_xcalloc((size_t)e->opts.nfiles + 1, sizeof(*e->watches));
  for (int i = 0; i < e->opts.nfiles; i++) {
    sl_fswatch_t *w = sl_fswatch_new(e->worker->loop, e->opts.files[i], 100, on_file_changed, e);
    if (w) e->watches[e->nwatches++] = w;
  }
}

void sl_reload_close(sl_engine_t *e) {
  if (e->sighup.data && !uv_is_closing((uv_handle_t *)&e->sighup)) {
    uv_close((uv_handle_t *)&e->sighup, NULL);
    signal(SIGHUP, SIG_IGN);
  }
  for (int i = 0; i < e->nwatches; i++) sl_fswatch_free(e->watches[i]);
  free(e->watches);
  e->watches = NULL;
  e->nwatches = 0;
}
