/* /admin/status and /admin/reload (and /admin/live, admin_live.c): with the `http:` section's auth, for
 * admins only (they show and change what the server runs). */
#include "engine_int.h"
#include "core/health.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "http/http_auth.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void reply_json(sl_http_req_t *r, int status, json_t *body) {
  char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
  sl_http_respond(r, status, "application/json", text, strlen(text), NULL);
  free(text);
}

static const char *const state_names[] = {"running", "draining", "stopped"};

json_t *sl_admin_unit_json(const sl_unit_t *u, uint64_t now) {
  json_t *o = json_pack("{s:s,s:s,s:I}", "state", state_names[u->state], "kind", u->scoped ? "request_scoped" : "stream",
                        "id", (json_int_t)u->id);
  const sl_stream_t *s = u->stream;
  const char *why = s ? (s->not_ready ? s->not_ready : s->out_not_ready) : NULL;
  json_object_set_new(o, "connected", json_boolean(u->state == SL_UNIT_RUNNING && !why));
  if (why) json_object_set_new(o, "not_ready", json_string(why));
  if (u->scoped) json_object_set_new(o, "instances", json_integer(sl_scoped_instances(u->scoped)));
  json_object_set_new(o, "uptime", json_real((double)(now - u->started_ms) / 1000.0));
  json_object_set_new(o, "source", json_string(u->api ? "api" : "file"));
  return o;
}

static void status(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, "read the server's status (/admin/status)") != 0) return;
  uint64_t now = uv_now(e->worker->loop);
  char when[32];
  time_t t = (time_t)e->loaded_at;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
  json_t *streams = json_object();
  for (int i = 0; i < e->nunits; i++) json_object_set_new(streams, e->units[i]->name, sl_admin_unit_json(e->units[i], now));
  json_t *draining = json_array();
  for (int i = 0; i < e->nretired; i++) {
    json_t *o = sl_admin_unit_json(e->retired[i], now);
    json_object_set_new(o, "name", json_string(e->retired[i]->name));
    json_array_append_new(draining, o);
  }
  json_t *files = json_array();
  for (int i = 0; i < e->opts.nfiles; i++) json_array_append_new(files, json_string(e->opts.files[i]));
  json_t *body = json_pack("{s:{s:I,s:s,s:s,s:o,s:s?},s:o,s:o}", "config", "version", (json_int_t)e->version, "hash",
                           sl_engine_hash(e), "loaded_at", when, "files", files, "last_error", e->last_error, "streams", streams,
                           "retired", draining);
  json_t *applying = sl_engine_applying(e);
  if (applying) json_object_set_new(body, "applying", applying);
  sl_status_members(body);
  json_t *problems = sl_health_problems();   /* what also makes /ready false */
  json_object_set_new(body, "problems", problems ? problems : json_object());
  reply_json(r, 200, body);
  json_decref(body);
}

static void reloaded(void *arg, json_t *reply) { reply_json(arg, 200, reply); }

/* 200 with what changed once traffic moved, 400 with every error, or 503
 * while an earlier change still waits for its new streams to connect. */
static void reload(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, "reload the config (/admin/reload)") != 0) return;
  sl_info("POST /admin/reload: reloading the config");
  sl_diags_t d = {0};
  int rc = sl_engine_reload(e, &d, reloaded, r);
  if (rc == SL_APPLY_BUSY) {
    sl_http_error(r, 503, "an earlier change is still being applied; try again");
  } else if (rc != 0) {
    json_t *body = json_pack("{s:o,s:i}", "lint_errors", sl_diags_json(&d, 0), "status", 400);
    reply_json(r, 400, body);
    json_decref(body);
  }
  sl_diags_free(&d);
}

void sl_admin_route(sl_engine_t *e) {
  if (!sl_http_wanted(e->worker)) return;   /* no server: nothing to ask */
  sl_diags_t d = {0};
  static const char *const post[] = {"POST"};
  sl_cnode_t m = {.type = SL_CN_SCALAR, .str = (char *)post[0], .len = 4};
  sl_cnode_t *items[] = {&m};
  sl_cnode_t methods = {.type = SL_CN_SEQ, .items = items, .n = 1};
  sl_http_route_get(e->worker, "/admin/status", status, e, "admin", &d, NULL);
  sl_http_route(e->worker, "/admin/reload", &methods, reload, e, "admin", &d, NULL);
  sl_admin_live_route(e, &d);
  /* A stream already serving these paths keeps them. */
  if (d.n) sl_diag_print(&d, stderr);
  sl_diags_free(&d);
}
