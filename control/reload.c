/* Swapping streams while the engine runs: a config reload (files, SIGHUP,
 * -w, POST /admin/reload) and the streams API both come down to
 * sl_engine_apply. The new config is read and validated whole first; new
 * stream instances are built next to the running ones with their HTTP routes
 * staged (any error undoes them and changes nothing), then started; once they
 * are connected the routes are handed over in one step and the replaced
 * instances drain. */
#include "engine_int.h"
#include "core/log.h"
#include "core/section.h"
#include "core/xalloc.h"
#include "http/http.h"
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

/* A change between build and handover: its new instances run, unrouted,
 * until they are connected. */
typedef struct sl_swap {
  sl_engine_t *e;
  change_t *plan;
  int np;
  json_t *changes;
  sl_apply_cb cb;
  void *arg;
  uv_timer_t timer;
} swap_t;

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

static int unit_connected(const sl_unit_t *u) {
  return u->state != SL_UNIT_RUNNING || !u->stream || (!u->stream->not_ready && !u->stream->out_not_ready);
}

static void swap_timer_closed(uv_handle_t *h) {
  swap_t *sw = h->data;
  json_decref(sw->changes);
  free(sw->plan);
  free(sw);
}

static void on_file_changed(void *arg);

/* The handover: nothing here fails and nothing yields to the loop, so no
 * request sees a half-swapped route table. */
static void finish(swap_t *sw) {
  sl_engine_t *e = sw->e;
  e->swap = NULL;
  uv_timer_stop(&sw->timer);
  sl_http_route_handover(e->worker);
  for (int i = 0; i < sw->np; i++) {
    change_t *c = &sw->plan[i];
    if (c->fresh && c->fresh->stream) c->fresh->stream->on_connected = NULL;
    int at = c->old ? live_index(e, c->old) : -1;
    if (c->fresh) {
      if (at < 0) {
        e->units = sl_xrealloc(e->units, (size_t)(e->nunits + 1) * sizeof(*e->units));
        at = e->nunits++;
      }
      e->units[at] = c->fresh;
    } else if (at >= 0) {
      memmove(&e->units[at], &e->units[at + 1], (size_t)(e->nunits - at - 1) * sizeof(*e->units));
      e->nunits--;
    }
    if (c->old) sl_engine_retire(e, c->old);
  }
  e->version++;
  e->loaded_at = time(NULL);
  /* A first http_server stream may have arrived. */
  sl_http_listen(e->worker);
  if (sw->cb) sw->cb(sw->arg, sw->changes);
  uv_close((uv_handle_t *)&sw->timer, swap_timer_closed);
  sl_engine_check_finished(e);
  /* A file saved while this change waited was not reloaded then. */
  if (e->opts.watch) on_file_changed(e);
}

static void try_finish(swap_t *sw) {
  for (int i = 0; i < sw->np; i++)
    if (sw->plan[i].fresh && !unit_connected(sw->plan[i].fresh)) return;
  finish(sw);
}

static void on_fresh_connected(sl_stream_t *s, void *arg) {
  (void)s;
  try_finish(arg);
}

static void on_connect_timeout(uv_timer_t *t) {
  swap_t *sw = t->data;
  for (int i = 0; i < sw->np; i++)
    if (sw->plan[i].fresh && !unit_connected(sw->plan[i].fresh))
      sl_logf(SL_LOG_WARN, sw->plan[i].name, NULL, "new instance not connected after %dms (%s): handing over anyway",
              SL_SWAP_CONNECT_MS, sw->plan[i].fresh->stream->not_ready ? sw->plan[i].fresh->stream->not_ready
                                                                         : sw->plan[i].fresh->stream->out_not_ready);
  finish(sw);
}

json_t *sl_engine_applying(const sl_engine_t *e) {
  if (!e->swap) return NULL;
  json_t *a = json_array();
  for (int i = 0; i < e->swap->np; i++) {
    const sl_unit_t *u = e->swap->plan[i].fresh;
    if (!u || unit_connected(u)) continue;
    const char *why = u->stream->not_ready ? u->stream->not_ready : u->stream->out_not_ready;
    json_array_append_new(a, json_pack("{s:s,s:s}", "name", u->name, "not_ready", why));
  }
  return a;
}

void sl_engine_apply_flush(sl_engine_t *e) {
  if (e->swap) finish(e->swap);
}

int sl_engine_apply(sl_engine_t *e, const sl_cnode_t *streams, int mode, sl_diags_t *d, sl_apply_cb cb, void *arg) {
  if (e->swap) return SL_APPLY_BUSY;
  if (e->stopping) {
    sl_diag_add(d, NULL, NULL, "shutting down: no changes are taken");
    return -1;
  }
  uint32_t n = streams && streams->type == SL_CN_MAP ? streams->n : 0;
  swap_t *sw = sl_xcalloc(1, sizeof(*sw));
  sw->e = e;
  sw->cb = cb;
  sw->arg = arg;
  sw->changes = json_object();
  sw->plan = sl_xcalloc((size_t)(n + (uint32_t)e->nunits) + 1, sizeof(*sw->plan));
  change_t *plan = sw->plan;
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
    if (same) note(sw->changes, "unchanged", old->name);
    else plan[np++] = (change_t){old, NULL, streams->keys[i], node};
  }
  for (int i = 0; mode != SL_APPLY_SOME && i < e->nunits; i++)
    if (!sl_cnode_get(streams, e->units[i]->name) && (mode == SL_APPLY_ALL || !e->units[i]->api))
      plan[np++] = (change_t){e->units[i], NULL, e->units[i]->name, NULL};
  sw->np = np;

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
    json_decref(sw->changes);
    free(sw->plan);
    free(sw);
    return -1;
  }
  for (int i = 0; i < np; i++) {
    change_t *c = &plan[i];
    c->name = c->fresh ? c->fresh->name : c->old->name;   /* plan outlives the caller's tree */
    note(sw->changes, !c->old ? "added" : c->fresh ? "changed" : "removed", c->name);
  }
  uv_timer_init(e->worker->loop, &sw->timer);
  sw->timer.data = sw;
  if (!np) {
    /* Nothing to swap: answer without bumping the version. */
    if (cb) cb(arg, sw->changes);
    uv_close((uv_handle_t *)&sw->timer, swap_timer_closed);
    return 0;
  }
  e->swap = sw;
  for (int i = 0; i < np; i++) {
    sl_unit_t *u = plan[i].fresh;
    if (!u) continue;
    if (sl_unit_start(u) != 0) sl_logf(SL_LOG_ERROR, u->name, NULL, "stream failed to start after reload");
    if (u->stream) {
      u->stream->on_connected = on_fresh_connected;
      u->stream->on_connected_arg = sw;
    }
  }
  uv_timer_start(&sw->timer, on_connect_timeout, SL_SWAP_CONNECT_MS, 0);
  try_finish(sw);
  return 0;
}

/* Sections outside `streams:` are applied once; a change needs a restart,
 * except the logger and shutdown_timeout which take effect with the reload,
 * and sections that a reload applies again (sl_section_t.reload). */
static json_t *compare_sections(sl_engine_t *e, const sl_cnode_t *fresh) {
  json_t *restart = json_array();
  const sl_cnode_t *roots[2] = {e->root, fresh};
  for (int r = 0; r < 2; r++) {
    for (uint32_t i = 0; i < roots[r]->n; i++) {
      const char *k = roots[r]->keys[i];
      if (!strcmp(k, "streams") || !strcmp(k, "logger") || !strcmp(k, "shutdown_timeout")) continue;
      const sl_section_t *sec = sl_section_find(k);
      if (sec && sec->reload) continue;
      if (r == 1 && sl_cnode_get(e->root, k)) continue;   /* compared in the first pass */
      const sl_cnode_t *a = sl_cnode_get(e->root, k), *b = sl_cnode_get(fresh, k);
      char *ca = a ? sl_unit_canon(a) : NULL, *cb = b ? sl_unit_canon(b) : NULL;
      if (!ca || !cb || strcmp(ca, cb)) json_array_append_new(restart, json_string(k));
      free(ca);
      free(cb);
    }
  }
  return restart;
}

/* What a file reload carries from its start to its end. */
typedef struct reload_req {
  sl_engine_t *e;
  char hash[65];
  json_t *restart;
  int log_level;             /* sl_log_level_t, or -1: unchanged */
  int64_t shutdown_ms;
  sl_apply_cb cb;
  void *arg;
} reload_req_t;

static void reloaded(void *arg, json_t *changes) {
  reload_req_t *rq = arg;
  sl_engine_t *e = rq->e;
  memcpy(e->hash, rq->hash, sizeof rq->hash);
  free(e->loaded);
  e->loaded = NULL;
  if (rq->log_level >= 0) sl_log_set_level((sl_log_level_t)rq->log_level);
  e->shutdown_ms = rq->shutdown_ms;
  if (json_array_size(rq->restart)) {
    char *list = json_dumps(rq->restart, JSON_COMPACT);
    sl_warn("reload: restart required for changed section(s) %s: left as they were", list);
    free(list);
  }
  free(e->last_error);
  e->last_error = NULL;
  json_t *reply = json_deep_copy(changes);
  json_object_set_new(reply, "restart_required", rq->restart);
  json_object_set_new(reply, "version", json_integer((json_int_t)e->version));
  json_object_set_new(reply, "hash", json_string(sl_engine_hash(e)));
  char *what = json_dumps(changes, JSON_COMPACT);
  sl_info("config reloaded (version %llu): %s", (unsigned long long)e->version, what);
  free(what);
  if (rq->cb) rq->cb(rq->arg, reply);
  json_decref(reply);
  free(rq);
}

/* Every error is logged, and kept for /admin/status. */
static void report_failure(sl_engine_t *e, sl_diags_t *d, uint32_t before) {
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

int sl_engine_reload(sl_engine_t *e, sl_diags_t *d, sl_apply_cb cb, void *arg) {
  if (e->swap) return SL_APPLY_BUSY;
  sl_cnode_t **files = NULL;
  int nfiles = 0;
  reload_req_t *rq = sl_xcalloc(1, sizeof(*rq));
  rq->e = e;
  rq->cb = cb;
  rq->arg = arg;
  uint32_t before = d->n;
  sl_cnode_t *root = sl_engine_read_config(&e->opts, &files, &nfiles, rq->hash, d);
  int rc = -1;
  if (root) {
    rq->restart = compare_sections(e, root);
    const sl_cnode_t *lg = sl_cnode_get(root, "logger");
    sl_log_level_t lvl;
    rq->log_level = lg && !e->opts.log_level_fixed && sl_log_parse_level(sl_conf_str(lg, "level", "info"), &lvl) == 0 ? (int)lvl : -1;
    rq->shutdown_ms = sl_conf_duration_ms(root, "shutdown_timeout", 20000);
    const sl_section_t *sec;
    for (unsigned k = 0; (sec = sl_section_at(k)); k++)
      if (sec->reload) sec->apply(e->worker, sl_cnode_get(root, sec->name), d);
    rc = sl_engine_apply(e, sl_cnode_get(root, "streams"), SL_APPLY_FILES, d, reloaded, rq);
  }
  if (rc != 0) {
    if (rc == -1) {
      report_failure(e, d, before);
      memcpy(e->bad_hash, rq->hash, sizeof rq->hash);
    }
    json_decref(rq->restart);
    free(rq);
  }
  for (int i = 0; i < nfiles; i++) sl_cnode_free(files[i]);
  free(files);
  return rc;
}

static void reload_now(sl_engine_t *e, const char *why) {
  if (e->stopping) return;
  sl_info("%s: reloading the config", why);
  sl_diags_t d = {0};
  if (sl_engine_reload(e, &d, NULL, NULL) == SL_APPLY_BUSY)
    sl_warn("%s: an earlier change is still being applied; %s", why,
            e->opts.watch ? "the files are read again once it is done" : "send SIGHUP again once it is done");
  sl_diags_free(&d);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  reload_now(h->data, "SIGHUP");
}

static void on_file_changed(void *arg) {
  sl_engine_t *e = arg;
  char hash[65];
  /* Editors touch files without changing them: only new bytes reload, and
   * a broken save is reported once, not again on every later event. */
  sl_config_hash(&e->opts, hash);
  if (strcmp(hash, sl_engine_hash(e)) != 0 && strcmp(hash, e->bad_hash) != 0) reload_now(e, "config file changed");
}

void sl_reload_start(sl_engine_t *e) {
  uv_signal_init(e->worker->loop, &e->sighup);
  e->sighup.data = e;
  uv_signal_start(&e->sighup, on_sighup, SIGHUP);
  if (!e->opts.watch || !e->opts.nfiles) return;
  e->watch = sl_fswatch_new(e->worker->loop, e->opts.files[0], 100, on_file_changed, e);
  for (int i = 1; e->watch && i < e->opts.nfiles; i++) sl_fswatch_add(e->watch, e->opts.files[i]);
}

void sl_reload_close(sl_engine_t *e) {
  if (e->sighup.data && !uv_is_closing((uv_handle_t *)&e->sighup)) {
    uv_close((uv_handle_t *)&e->sighup, NULL);
    signal(SIGHUP, SIG_IGN);
  }
  sl_fswatch_free(e->watch);
  e->watch = NULL;
}
