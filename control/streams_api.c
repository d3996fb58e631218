/* Streams mode: the /streams management API (Benthos's shape). Bodies are
 * YAML or JSON (JSON is YAML), checked like a config file; every change goes
 * through sl_engine_apply, so an update swaps without a gap like a reload.
 * With streams_dir, each stream the API holds is kept as {id}.yaml there
 * (written to a temporary file, then renamed) and loaded again at start.
 * Bodies are refused beyond http.streams_api_max_body (413), and parsed and
 * checked in libuv's thread pool: the loop only builds what is valid.
 * With http.auth, every call needs the admin scope: a stream's config runs
 * Lua in the server and holds what ${ENV} gave it. */
#include "engine_int.h"
#include "core/conf_json.h"
#include "core/log.h"
#include "core/section.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "http/http_auth.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char body_file[] = "request body";

static void reply_json(sl_http_req_t *r, int status, json_t *body) {
  char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
  sl_http_respond(r, status, "application/json", text, strlen(text), NULL);
  free(text);
  json_decref(body);
}

static json_t *lint_body(const sl_diags_t *d) {
  return json_pack("{s:o,s:i}", "lint_errors", sl_diags_json(d, 0), "status", 400);
}

static void reply_lint(sl_http_req_t *r, const sl_diags_t *d) { reply_json(r, 400, lint_body(d)); }

static int valid_id(const char *id) {
  if (!*id || strlen(id) > 128) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return 0;
  return 1;
}

/* A body's aliases expand it to about as many nodes as it has bytes, not to
 * the parser's million: 400 bytes made 900k nodes, and 100 MB of them. */
static sl_cnode_t *parse_body(const char *text, size_t len, sl_diags_t *d) {
  return sl_conf_parse_max(text, len, body_file, len < 998976 ? (unsigned)len + 1024 : 1000000, d);
}

/* The stream node in text, validated, or NULL with diags. */
static sl_cnode_t *parse_stream(const char *text, size_t len, const char *path, sl_diags_t *d) {
  uint32_t before = d->n;
  sl_cnode_t *n = parse_body(text, len, d);
  if (n && d->n == before && n->type != SL_CN_MAP)
    sl_diag_add(d, n, path, "expected a stream: a map with input, pipeline and output");
  if (n && d->n == before) sl_spec_validate_fields(sl_config_stream_fields(), n, path, d);
  if (d->n > before) {
    sl_cnode_free(n);
    return NULL;
  }
  return n;
}

/* ---- persistence ---- */

static void persist(sl_engine_t *e, const char *id, const sl_cnode_t *node) {
  if (!e->streams_dir) return;
  char *path = sl_xasprintf("%s/%s.yaml", e->streams_dir, id);
  if (!node) {
    if (unlink(path) != 0 && errno != ENOENT) sl_error("streams_dir: cannot remove %s: %s", path, strerror(errno));
    free(path);
    return;
  }
  char *tmp = sl_xasprintf("%s/.%s.yaml.tmp", e->streams_dir, id);
  json_t *j = sl_cnode_to_json(node);
  /* Resolved configs hold what ${ENV} gave, secrets included: owner only. */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int rc = fd < 0 ? -1 : json_dumpfd(j, fd, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (fd >= 0 && rc == 0 && fsync(fd) != 0) rc = -1;   /* the rename must not outrun the data */
  if (fd >= 0 && close(fd) != 0) rc = -1;
  json_decref(j);
  if (rc != 0 || rename(tmp, path) != 0) {
    sl_error("streams_dir: cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  free(tmp);
  free(path);
}

int sl_streams_api_load_dir(sl_engine_t *e, sl_diags_t *d) {
  if (mkdir(e->streams_dir, 0755) != 0 && errno != EEXIST) {
    sl_diag_add(d, NULL, "streams_dir", "cannot create %s: %s", e->streams_dir, strerror(errno));
    return -1;
  }
  DIR *dir = opendir(e->streams_dir);
  if (!dir) {
    sl_diag_add(d, NULL, "streams_dir", "cannot read %s: %s", e->streams_dir, strerror(errno));
    return -1;
  }
  uint32_t before = d->n;
  struct dirent *de;
  while ((de = readdir(dir))) {
    size_t l = strlen(de->d_name);
    if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0) continue;
    char *id = sl_xstrndup(de->d_name, l - 5);
    char *path = sl_xasprintf("%s/%s", e->streams_dir, de->d_name);
    sl_cnode_t *root = sl_conf_load(path, d);
    if (root && d->n == before && valid_id(id) && !sl_engine_unit(e, id)) {
      sl_spec_validate_fields(sl_config_stream_fields(), root, id, d);
      sl_unit_t *u = d->n == before ? sl_unit_build(e, root, id, 0, d) : NULL;
      if (u) {
        u->api = 1;
        e->units = sl_xrealloc(e->units, (size_t)(e->nunits + 1) * sizeof(*e->units));
        e->units[e->nunits++] = u;
      }
    }
    sl_cnode_free(root);
    free(path);
    free(id);
  }
  closedir(dir);
  return d->n > before ? -1 : 0;
}

/* ---- handlers ---- */

static json_t *summary(const sl_unit_t *u) {
  double up = (double)(uv_now(u->e->worker->loop) - u->started_ms) / 1000.0;
  char s[64];
  snprintf(s, sizeof s, "%.9gs", up);
  return json_pack("{s:b,s:f,s:s}", "active", u->state == SL_UNIT_RUNNING, "uptime", up, "uptime_str", s);
}

/* A change on its way: the request waits for the handover. */
typedef struct pending { sl_engine_t *e; sl_http_req_t *r; } pending_t;

/* Keeps streams_dir in step with the API's streams. */
static void persist_changes(sl_engine_t *e, json_t *changes) {
  const char *kinds[] = {"added", "changed", "removed"};
  for (int k = 0; k < 3; k++) {
    json_t *a = json_object_get(changes, kinds[k]);
    for (size_t i = 0; i < json_array_size(a); i++) {
      const char *id = json_string_value(json_array_get(a, i));
      sl_unit_t *u = sl_engine_unit(e, id);
      persist(e, id, u ? u->node : NULL);
    }
  }
}

static void applied(void *arg, json_t *changes) {
  pending_t *p = arg;
  persist_changes(p->e, changes);
  reply_json(p->r, 200, json_incref(changes));
  free(p);
}

/* Applies streams (mode SL_APPLY_*) and answers r now (errors) or once applied. */
static void apply(sl_engine_t *e, sl_http_req_t *r, const sl_cnode_t *streams, int mode, sl_diags_t *d) {
  pending_t *p = sl_xcalloc(1, sizeof(*p));
  p->e = e;
  p->r = r;
  int rc = sl_engine_apply(e, streams, mode, d, applied, p);
  if (rc == 0) return;
  free(p);
  if (rc == SL_APPLY_BUSY) sl_http_error(r, 503, "an earlier change is still being applied; try again");
  else reply_lint(r, d);
}

/* One change: {id: node}, node NULL to delete. */
static void change(sl_engine_t *e, sl_http_req_t *r, const char *id, sl_cnode_t *node) {
  sl_cnode_t *map = sl_cnode_new(SL_CN_MAP, node);
  sl_cnode_map_set(map, id, node ? node : sl_cnode_new(SL_CN_NULL, NULL));
  sl_diags_t d = {0};
  apply(e, r, map, SL_APPLY_SOME, &d);
  sl_diags_free(&d);
  sl_cnode_free(map);
}

/* Later values win; maps merge key by key. Takes patch. */
static void merge(sl_cnode_t *into, sl_cnode_t *patch) {
  for (uint32_t i = 0; i < patch->n; i++) {
    sl_cnode_t *cur = sl_cnode_get(into, patch->keys[i]);
    if (cur && cur->type == SL_CN_MAP && patch->items[i]->type == SL_CN_MAP) {
      merge(cur, patch->items[i]);
      continue;
    }
    sl_cnode_free(sl_cnode_take(into, patch->keys[i]));
    sl_cnode_map_set(into, patch->keys[i], sl_cnode_dup(patch->items[i]));
  }
}

/* ---- bodies, parsed off the loop ---- */

/* Answers a POST, PUT or PATCH of stream u (NULL: none) that cannot be
 * done; checked again once the body is parsed, as the streams may have
 * changed meanwhile. */
static int conflicts(sl_http_req_t *r, const sl_unit_t *u) {
  if (!u && !strcmp(r->method, "PATCH")) sl_http_error(r, 404, "stream not found");
  else if (u && !strcmp(r->method, "POST")) sl_http_error(r, 409, "stream already exists (PUT replaces it)");
  else return 0;
  return 1;
}

/* A body on its way through the thread pool. Everything the pool thread
 * touches is its own: the request's body (which stays until the request is
 * answered, even if the client leaves), a copy of the stream's current
 * config for PATCH, and the diagnostics. */
typedef struct job {
  uv_work_t w;
  sl_engine_t *e;
  sl_http_req_t *r;
  char *id;                  /* NULL: POST /streams, the whole set */
  sl_cnode_t *base;          /* PATCH: the current config, copied */
  sl_cnode_t *node;          /* the stream (or map of streams) to apply */
  sl_diags_t d;
  char *refusal;             /* else the 400 answer's text */
  int dry_run;               /* ?dry_run=true: checked, answered, not applied (the console's lint) */
} job_t;

/* PATCH: base with the body's keys merged in, checked as a whole. */
static sl_cnode_t *parse_patch(sl_cnode_t *base, const sl_bytes_t *body, sl_diags_t *d) {
  sl_cnode_t *patch = parse_body(body->data, body->len, d);
  sl_cnode_t *node = NULL;
  if (patch && !d->n && patch->type == SL_CN_MAP) {
    merge(base, patch);
    json_t *j = sl_cnode_to_json(base);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    /* Positions of the merged text are not the body's: errors name keys. */
    node = parse_stream(text, strlen(text), "", d);
    free(text);
  } else if (patch && !d->n) {
    sl_diag_add(d, patch, NULL, "expected a map of the fields to change");
  }
  sl_cnode_free(patch);
  return node;
}

/* POST /streams: the body maps every id to its config. */
static sl_cnode_t *parse_all(const sl_bytes_t *body, sl_diags_t *d) {
  sl_cnode_t *map = parse_body(body->data, body->len, d);
  if (map && !d->n && map->type == SL_CN_NULL) map->type = SL_CN_MAP;
  if (map && !d->n && map->type != SL_CN_MAP) sl_diag_add(d, map, NULL, "expected a map of stream id to config");
  for (uint32_t i = 0; map && !d->n && i < map->n; i++) {
    if (!valid_id(map->keys[i])) {
      sl_cnode_t pos = sl_cnode_key_pos(map, i);
      sl_diag_add(d, &pos, map->keys[i], "stream ids are letters, digits, '_' and '-'");
    }
  }
  for (uint32_t i = 0; map && !d->n && i < map->n; i++)
    sl_spec_validate_fields(sl_config_stream_fields(), map->items[i], map->keys[i], d);
  if (d->n || !map) {
    sl_cnode_free(map);
    return NULL;
  }
  return map;
}

static void job_run(uv_work_t *w) {
  job_t *j = w->data;
  const sl_bytes_t *body = j->r->body;
  if (!j->id) j->node = parse_all(body, &j->d);
  else if (j->base) j->node = parse_patch(j->base, body, &j->d);
  else j->node = parse_stream(body->data, body->len, "", &j->d);
  if (j->node) return;
  json_t *o = lint_body(&j->d);
  j->refusal = json_dumps(o, JSON_COMPACT);
  json_decref(o);
}

static void job_done(uv_work_t *w, int status) {
  (void)status;
  job_t *j = w->data;
  if (j->id && conflicts(j->r, sl_engine_unit(j->e, j->id))) sl_cnode_free(j->node);
  else if (j->dry_run) {
    /* The check ran: 200 either way, with what it found. */
    if (j->node && j->id) sl_unit_lint(j->node, j->id, &j->d);
    reply_json(j->r, 200, json_pack("{s:b,s:o}", "valid", j->d.n == 0, "lint_errors", sl_diags_json(&j->d, 0)));
    sl_cnode_free(j->node);
    j->node = NULL;
  } else if (j->refusal) sl_http_respond(j->r, 400, "application/json", j->refusal, strlen(j->refusal), NULL);
  else if (j->id) change(j->e, j->r, j->id, j->node);
  else apply(j->e, j->r, j->node, SL_APPLY_ALL, &j->d);
  if (!j->id) sl_cnode_free(j->node);
  sl_cnode_free(j->base);
  sl_diags_free(&j->d);
  free(j->refusal);
  free(j->id);
  free(j);
}

/* http.streams_api_max_body, or its default when the file has no http: section. */
static int64_t max_body(const sl_engine_t *e) {
  const sl_cnode_t *http = sl_cnode_get(e->root, "http");
  int64_t v = -1;
  if (http) return sl_conf_size(http, "streams_api_max_body", v);
  for (const sl_field_t *f = sl_section_find("http")->fields; f->name; f++)
    if (!strcmp(f->name, "streams_api_max_body")) sl_parse_size(f->def, &v);
  return v;
}

/* Parses r's body off the loop (id NULL: the whole set; base: PATCH onto it),
 * then applies it or answers 400; bodies over the limit get 413 at once. */
static void queue_parse(sl_engine_t *e, sl_http_req_t *r, const char *id, const sl_cnode_t *base) {
  int64_t max = max_body(e);
  if ((int64_t)r->body->len > max) {
    char *msg = sl_xasprintf("a stream config is limited to %lld bytes (http.streams_api_max_body)", (long long)max);
    sl_http_error(r, 413, msg);
    free(msg);
    return;
  }
  job_t *j = sl_xcalloc(1, sizeof(*j));
  j->e = e;
  j->r = r;
  j->id = id ? sl_xstrdup(id) : NULL;
  j->base = base ? sl_cnode_dup(base) : NULL;
  char *dry = sl_http_query(r, "dry_run");
  j->dry_run = dry && !strcmp(dry, "true");
  free(dry);
  j->w.data = j;
  uv_queue_work(e->worker->loop, &j->w, job_run, job_done);
}

static const char admin_what[] = "use the streams API (/streams)";

static void one(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, admin_what) != 0) return;
  const char *id = sl_kv_get(&r->params, "id");
  sl_unit_t *u = sl_engine_unit(e, id);
  if (!valid_id(id)) {
    sl_http_error(r, 400, "stream ids are letters, digits, '_' and '-'");
    return;
  }
  if (!strcmp(r->method, "GET")) {
    if (!u) {
      sl_http_error(r, 404, "stream not found");
      return;
    }
    json_t *o = summary(u);
    json_object_set_new(o, "config", sl_cnode_to_json(u->node));
    reply_json(r, 200, o);
    return;
  }
  if (!strcmp(r->method, "DELETE")) {
    if (!u) sl_http_error(r, 404, "stream not found");
    else change(e, r, id, NULL);
    return;
  }
  if (!conflicts(r, u)) queue_parse(e, r, id, !strcmp(r->method, "PATCH") ? u->node : NULL);
}

static void stats(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, admin_what) != 0) return;
  const sl_unit_t *u = sl_engine_unit(e, sl_kv_get(&r->params, "id"));
  if (!u) {
    sl_http_error(r, 404, "stream not found");
    return;
  }
  json_t *o = summary(u);
  const sl_stream_t *s = u->stream;
  json_object_set_new(o, "input_received", json_integer(s ? *s->m_in.received : 0));
  json_object_set_new(o, "output_sent", json_integer(s ? *s->m_out.sent : 0));
  json_object_set_new(o, "output_error", json_integer(s ? *s->m_out.error : 0));
  json_object_set_new(o, "in_flight", json_integer(s ? s->in_flight : 0));
  if (u->scoped) json_object_set_new(o, "instances", json_integer(sl_scoped_instances(u->scoped)));
  reply_json(r, 200, o);
}

static void all(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, admin_what) != 0) return;
  if (!strcmp(r->method, "GET")) {
    json_t *o = json_object();
    for (int i = 0; i < e->nunits; i++) json_object_set_new(o, e->units[i]->name, summary(e->units[i]));
    reply_json(r, 200, o);
    return;
  }
  /* POST: the body maps every id to its config; the rest go. */
  queue_parse(e, r, NULL, NULL);
}

int sl_streams_api_route(sl_engine_t *e, sl_diags_t *d) {
  const sl_cnode_t *http = sl_cnode_get(e->root, "http"), *auth = sl_cnode_get(http, "auth");
  if (!e->opts.streams_mode && !sl_conf_bool(http, "streams_api", 0) && !sl_conf_bool(http, "console", 0)) return 0;
  const sl_cnode_t *admins = sl_cnode_get(auth, "admin");
  if (auth && !(admins && admins->n) && !*sl_conf_str(auth, "scope_claim", ""))
    sl_warn("streams API: http.auth names no admin (http.auth.admin, or a token's http.auth.scope_claim holding "
            "`admin`), so every call to /streams will be refused with 403");
  /* /streams takes the first two. */
  static const char *const m_one[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  sl_cnode_t ms[5], *items[5];
  for (int i = 0; i < 5; i++) {
    ms[i] = (sl_cnode_t){.type = SL_CN_SCALAR, .str = (char *)m_one[i], .len = strlen(m_one[i])};
    items[i] = &ms[i];
  }
  sl_cnode_t one_m = {.type = SL_CN_SEQ, .items = items, .n = 5};
  sl_cnode_t all_m = {.type = SL_CN_SEQ, .items = items, .n = 2};
  int rc = sl_http_route(e->worker, "/streams", &all_m, all, e, "streams API", d, NULL);
  rc |= sl_http_route(e->worker, "/streams/{id}", &one_m, one, e, "streams API", d, NULL);
  rc |= sl_http_route_get(e->worker, "/streams/{id}/stats", stats, e, "streams API", d, NULL);
  return rc ? -1 : 0;
}
