#include "engine_int.h"
#include "core/component.h"
#include "core/conf_json.h"
#include "core/health.h"
#include "core/log.h"
#include "core/section.h"
#include "core/watchdog.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "obs/obs.h"
#include "store/store_api.h"
#include <libgen.h>
/* SHA-256 without EVP: EVP's first use loads OpenSSL's providers and the
 * table of every algorithm. The low-level functions are deprecated in
 * OpenSSL 3 but there. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const sl_cnode_t *sl_engine_config(const sl_engine_t *e) { return e->root; }
sl_worker_t *sl_engine_worker(sl_engine_t *e, int i) { return i == 0 ? e->worker : NULL; }

/* Streams of later files join the first file's `streams:`; names must be unique. */
static void merge_streams(sl_cnode_t *into, const sl_cnode_t *from, sl_diags_t *d) {
  sl_cnode_t *dst = sl_cnode_get(into, "streams");
  const sl_cnode_t *src = sl_cnode_get(from, "streams");
  if (!dst || !src || src->type != SL_CN_MAP) return;
  for (uint32_t i = 0; i < src->n; i++) {
    sl_cnode_t *prev = sl_cnode_get(dst, src->keys[i]);
    if (prev) {
      sl_diag_add(d, src->items[i], src->keys[i], "stream \"%s\" is also defined at %s:%d", src->keys[i],
                  prev->file, prev->line);
      continue;
    }
    sl_cnode_map_set(dst, src->keys[i], sl_cnode_dup(src->items[i]));
  }
}

static char *dir_of(const char *file) {
  char *tmp = sl_xstrdup(file ? file : ".");
  char *d = sl_xstrdup(dirname(tmp));
  free(tmp);
  return d;
}

/* `sluice streams a.yaml`: a file holding one stream names it after the file. */
static void name_after_file(sl_cnode_t *root, const char *path) {
  sl_cnode_t *streams = sl_cnode_get(root, "streams");
  if (!streams || streams->n != 1 || strcmp(streams->keys[0], "main")) return;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  sl_cnode_t *body = sl_cnode_take(streams, "main");
  char *name = sl_xstrndup(base, strcspn(base, "."));
  sl_cnode_map_set(streams, name, body);
  free(name);
}

/* The config files' bytes, one after the other (malloc'd). */
static char *config_bytes(const sl_engine_opts_t *o, size_t *len) {
  size_t n = 0, cap = 8192;
  char *b = sl_xmalloc(cap);
  for (int i = 0; i < o->nfiles; i++) {
    FILE *f = fopen(o->files[i], "rb");
    size_t got = 1;
    while (f && got > 0) {
      if (cap - n < 8192) b = sl_xrealloc(b, cap = cap * 2 + 8192);
      n += got = fread(b + n, 1, cap - n, f);
    }
    if (f) fclose(f);
  }
  *len = n;
  return b;
}

static void digest(const char *b, size_t n, char *hash) {
  SHA256_CTX md;
  SHA256_Init(&md);
  SHA256_Update(&md, b, n);
  unsigned char dig[SHA256_DIGEST_LENGTH];
  SHA256_Final(dig, &md);
  for (unsigned i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(hash + 2 * i, 3, "%02x", dig[i]);
}

void sl_config_hash(const sl_engine_opts_t *o, char *hash) {
  size_t n;
  char *b = config_bytes(o, &n);
  digest(b, n, hash);
  free(b);
}

const char *sl_engine_hash(sl_engine_t *e) {
  if (!e->hash[0] && e->loaded) {
    digest(e->loaded, e->loaded_len, e->hash);
    free(e->loaded);
    e->loaded = NULL;
  }
  return e->hash;
}

sl_cnode_t *sl_engine_read_config(const sl_engine_opts_t *o, sl_cnode_t ***files_out, int *nfiles_out, char *hash,
                                  sl_diags_t *diags) {
  sl_cnode_t **files = sl_xcalloc(o->nfiles ? (size_t)o->nfiles : 1, sizeof(*files));
  int nfiles = 0;
  uint32_t before = diags->n;
  if (hash) sl_config_hash(o, hash);
  for (int i = 0; i < o->nfiles; i++) {
    uint32_t at_load = diags->n;
    sl_cnode_t *root = sl_conf_load(o->files[i], diags);
    if (root && diags->n > at_load) {
      /* A tree cut short by a syntax error would only add noise. */
      sl_cnode_free(root);
      root = NULL;
    }
    if (!root) continue;
    if (i == 0)
      for (int s = 0; s < o->nsets; s++) sl_cnode_set_path(root, o->sets[s], diags);
    int single = sl_cnode_get(root, "streams") == NULL && sl_cnode_get(root, "input");
    /* In streams mode a file may hold only sections: its streams come later. */
    if (o->streams_mode && root->type == SL_CN_MAP && !single && !sl_cnode_get(root, "streams"))
      sl_cnode_map_set(root, "streams", sl_cnode_new(SL_CN_MAP, root));
    sl_config_validate(root, diags);
    if (o->streams_mode && single) name_after_file(root, o->files[i]);
    files[nfiles++] = root;
  }
  if (diags->n == before && nfiles == 0) {
    /* Streams mode may start empty: its streams come over the API. */
    sl_cnode_t *root = sl_cnode_new(SL_CN_MAP, NULL);
    sl_cnode_map_set(root, "streams", sl_cnode_new(SL_CN_MAP, NULL));
    files[nfiles++] = root;
  }
  for (int i = 1; i < nfiles; i++) merge_streams(files[0], files[i], diags);
  if (diags->n > before) {
    for (int i = 0; i < nfiles; i++) sl_cnode_free(files[i]);
    free(files);
    return NULL;
  }
  *files_out = files;
  *nfiles_out = nfiles;
  return files[0];
}

char *sl_unit_canon(const sl_cnode_t *node) {
  char *dir = dir_of(node->file);
  json_t *j = sl_cnode_to_json(node);
  char *body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  /* Relative paths inside resolve against the file's directory. */
  char *canon = sl_xasprintf("%s\n%s", dir, body ? body : "");
  free(body);
  json_decref(j);
  free(dir);
  return canon;
}

sl_unit_t *sl_unit_build(sl_engine_t *e, const sl_cnode_t *node, const char *name, int staging, sl_diags_t *d) {
  sl_unit_t *u = sl_xcalloc(1, sizeof(*u));
  u->e = e;
  u->id = ++e->next_unit;
  u->name = sl_xstrdup(name);
  u->node = sl_cnode_dup(node);
  u->canon = sl_unit_canon(node);
  char *dir = dir_of(node->file);
  sl_build_t b = {.worker = e->worker, .diags = d, .config_dir = dir, .lint_only = e->opts.lint_only};
  uint32_t before = d->n;
  if (e->worker) sl_http_route_unit(e->worker, u->id, staging);
  if (sl_scoped_is_template(u->node)) u->scoped = sl_scoped_build(&b, u->node, name);
  else u->stream = sl_stream_build(&b, u->node, name);
  if (e->worker) {
    sl_http_route_unit(e->worker, 0, 0);
    sl_http_lint_reset();
  }
  free(dir);
  if (!u->scoped && !u->stream && d->n == before)
    sl_diag_add(d, node, name, "the stream could not be built (a component refused its config without saying why)");
  if ((!u->scoped && !u->stream) || d->n > before) {
    sl_unit_free(u);
    return NULL;
  }
  return u;
}

int sl_unit_lint(const sl_cnode_t *node, const char *name, sl_diags_t *d) {
  char *dir = dir_of(node->file);
  sl_build_t b = {.diags = d, .config_dir = dir, .lint_only = 1};
  uint32_t before = d->n;
  if (sl_scoped_is_template(node)) sl_scoped_free(sl_scoped_build(&b, node, name));
  else sl_stream_free(sl_stream_build(&b, node, name));
  sl_http_lint_reset();
  free(dir);
  return d->n > before ? -1 : 0;
}

sl_unit_t *sl_engine_unit(const sl_engine_t *e, const char *name) {
  for (int i = 0; i < e->nunits; i++)
    if (!strcmp(e->units[i]->name, name)) return e->units[i];
  return NULL;
}

void sl_unit_free(sl_unit_t *u) {
  if (!u) return;
  sl_worker_t *w = u->e->worker;
  if (w) sl_http_route_unit(w, u->id, 0);
  sl_stream_free(u->stream);
  sl_scoped_free(u->scoped);
  if (w) sl_http_route_unit(w, 0, 0);
  sl_cnode_free(u->node);
  free(u->canon);
  free(u->name);
  free(u);
}

/* What /ready says of the streams (sl_health_set_streams). */
static char *not_ready_json(void *arg) {
  const sl_engine_t *e = arg;
  char *out = NULL;
  size_t len = 0;
  FILE *f = NULL;
  for (int i = 0; e && i < e->nunits; i++) {
    const sl_stream_t *s = e->units[i]->stream;
    if (!s) continue;
    const char *why = s->not_ready ? s->not_ready : s->out_not_ready;
    if (!why && !s->stopping) continue;
    if (!f) {
      f = open_memstream(&out, &len);
      fputc('{', f);
    } else {
      fputc(',', f);
    }
    fprintf(f, "\"%s\":\"", s->name);
    for (const char *p = why ? why : "stopping"; *p; p++) {
      if (*p == '"' || *p == '\\') fputc('\\', f);
      if ((unsigned char)*p >= 0x20) fputc(*p, f);
    }
    fputc('"', f);
  }
  if (f) {
    fputc('}', f);
    fclose(f);
  }
  return out;
}

sl_engine_t *sl_engine_load(const sl_engine_opts_t *o, sl_diags_t *diags) {
  sl_engine_t *e = sl_xcalloc(1, sizeof(*e));
  e->opts = *o;
  uint32_t before = diags->n;
  e->loaded = config_bytes(o, &e->loaded_len);
  e->root = sl_engine_read_config(o, &e->files, &e->nfiles, NULL, diags);
  if (!e->root) {
    sl_engine_free(e);
    return NULL;
  }
  e->shutdown_ms = sl_conf_duration_ms(e->root, "shutdown_timeout", 20000);

  if (!o->lint_only) {
    e->worker = sl_worker_new(0);
    sl_health_set_streams(not_ready_json, e);
    sl_sections_apply(e->worker, e->root, diags);
  }
  const sl_cnode_t *streams = sl_cnode_get(e->root, "streams");
  uint32_t n = streams && streams->type == SL_CN_MAP ? streams->n : 0;
  e->units = sl_xcalloc(n ? n : 1, sizeof(*e->units));
  for (uint32_t i = 0; i < n; i++) {
    sl_unit_t *u = sl_unit_build(e, streams->items[i], streams->keys[i], 0, diags);
    if (u) e->units[e->nunits++] = u;
  }
  const char *dir = o->streams_dir ? o->streams_dir : sl_conf_str(sl_cnode_get(e->root, "http"), "streams_dir", NULL);
  if (dir && *dir) e->streams_dir = sl_xstrdup(dir);
  if (e->worker && e->streams_dir && diags->n == before) sl_streams_api_load_dir(e, diags);
  if (diags->n > before) {
    sl_engine_free(e);
    return NULL;
  }
  e->version = 1;
  e->loaded_at = time(NULL);
  return e;
}

static void close_handles(sl_engine_t *e) {
  if (!e->handles_init) return;
  sl_obs_shutdown();
  sl_http_close(e->worker);
  sl_reload_close(e);
  if (!uv_is_closing((uv_handle_t *)&e->sigint)) uv_close((uv_handle_t *)&e->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&e->sigterm)) uv_close((uv_handle_t *)&e->sigterm, NULL);
  if (!uv_is_closing((uv_handle_t *)&e->shutdown_timer)) uv_close((uv_handle_t *)&e->shutdown_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&e->reaper)) uv_close((uv_handle_t *)&e->reaper, NULL);
  /* Closing the watchers restores the default action: the run is over, and
   * a signal arriving during teardown must not turn exit 0 into a kill. */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
}

/* Streams mode and -w keep running with every stream finished: more may
 * come. So does a config without streams that serves the streams API. */
static int keeps_running(const sl_engine_t *e) {
  const sl_cnode_t *streams = sl_cnode_get(e->root, "streams");
  return e->opts.watch || e->opts.streams_mode || sl_conf_bool(sl_cnode_get(e->root, "http"), "streams_api", 0) ||
         ((!streams || streams->n == 0) && sl_config_serves_api(e->root));
}

void sl_engine_check_finished(sl_engine_t *e) {
  for (int i = 0; i < e->nunits; i++)
    if (e->units[i]->state != SL_UNIT_STOPPED) return;
  for (int i = 0; i < e->nretired; i++)
    if (e->retired[i]->state != SL_UNIT_STOPPED) return;
  if (!e->stopping && keeps_running(e)) return;
  sl_info("all streams finished");
  close_handles(e);
}

static void on_reap(uv_idle_t *h) {
  sl_engine_t *e = h->data;
  uv_idle_stop(h);
  int kept = 0;
  for (int i = 0; i < e->nretired; i++) {
    if (e->retired[i]->state == SL_UNIT_STOPPED) sl_unit_free(e->retired[i]);
    else e->retired[kept++] = e->retired[i];
  }
  e->nretired = kept;
}

void sl_engine_retire(sl_engine_t *e, sl_unit_t *u) {
  e->retired = sl_xrealloc(e->retired, (size_t)(e->nretired + 1) * sizeof(*e->retired));
  e->retired[e->nretired++] = u;
  if (u->state == SL_UNIT_STOPPED) uv_idle_start(&e->reaper, on_reap);
  else sl_unit_stop(u);
}

static void on_unit_done(void *arg) {
  sl_unit_t *u = arg;
  sl_engine_t *e = u->e;
  u->state = SL_UNIT_STOPPED;
  for (int i = 0; i < e->nretired; i++)
    if (e->retired[i] == u && !e->stopping) uv_idle_start(&e->reaper, on_reap);
  sl_engine_check_finished(e);
}

static void on_stream_done(sl_stream_t *s, void *arg) {
  (void)s;
  on_unit_done(arg);
}

int sl_unit_start(sl_unit_t *u) {
  u->state = SL_UNIT_RUNNING;
  u->started_ms = uv_now(u->e->worker->loop);
  if (u->scoped) {
    sl_scoped_start(u->scoped, on_unit_done, u);
    return 0;
  }
  return sl_stream_start(u->stream, on_stream_done, u);
}

void sl_unit_stop(sl_unit_t *u) {
  if (u->state != SL_UNIT_RUNNING) return;
  u->state = SL_UNIT_DRAINING;
  if (u->scoped) sl_scoped_stop(u->scoped);
  else sl_stream_stop(u->stream);
}

/* Abandoning in-flight work is the point here: nothing is torn down (what is
 * unacknowledged will be redelivered by its source). */
static void force_exit(void) {
  fflush(NULL);
  _exit(1);
}

/* How much later than shutdown_timeout the watchdog thread ends a process
 * whose loop thread is stuck (the loop's own timer says more when it can). */
enum { WATCHDOG_GRACE_MS = 1000 };

static void log_pending_unit(const sl_unit_t *u) {
  if (u->state == SL_UNIT_STOPPED) return;
  char what[160];
  if (u->stream) {
    sl_stream_describe(u->stream, what, sizeof what);
    sl_logf(SL_LOG_ERROR, u->name, NULL, "shutdown_timeout: still %s", what);
  } else {
    sl_scoped_log_pending(u->scoped);
  }
}

static void on_shutdown_timeout(uv_timer_t *t) {
  sl_engine_t *e = t->data;
  for (int i = 0; i < e->nunits; i++) log_pending_unit(e->units[i]);
  for (int i = 0; i < e->nretired; i++) log_pending_unit(e->retired[i]);
  sl_error("shutdown_timeout reached with messages still in flight; exiting 1 (what was not acknowledged is "
           "sent again by its source)");
  force_exit();
}

static void begin_shutdown(sl_engine_t *e, const char *why) {
  if (e->stopping) {
    /* One kill of the process group plus one of the pid (timeout(1), shells)
     * arrive together: only a signal sent later forces the exit. */
    uv_update_time(e->worker->loop);
    if (uv_now(e->worker->loop) - e->stop_at < 200) return;
    sl_error("second %s: exiting without draining", why);
    force_exit();
  }
  e->stopping = 1;
  uv_update_time(e->worker->loop);
  e->stop_at = uv_now(e->worker->loop);
  sl_info("%s received: draining (shutdown_timeout %lldms)", why, (long long)e->shutdown_ms);
  uv_timer_start(&e->shutdown_timer, on_shutdown_timeout, (uint64_t)e->shutdown_ms, 0);
  e->watchdog = sl_watchdog_start(e->shutdown_ms + WATCHDOG_GRACE_MS,
                                  "shutdown_timeout reached while the event loop was blocked; exiting 1");
  sl_http_stop(e->worker);
  sl_live_stop_all(1001, "going away");   /* streams API readers: their connections are left to them */
  sl_admin_live_stop();
  sl_engine_apply_flush(e);
  for (int i = 0; i < e->nunits; i++) sl_unit_stop(e->units[i]);
  sl_engine_check_finished(e);
}

static void on_signal(uv_signal_t *h, int signum) {
  begin_shutdown(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

int sl_engine_run(sl_engine_t *e) {
  uv_loop_t *loop = e->worker->loop;
  uv_signal_init(loop, &e->sigint);
  uv_signal_init(loop, &e->sigterm);
  uv_timer_init(loop, &e->shutdown_timer);
  uv_idle_init(loop, &e->reaper);
  e->handles_init = 1;
  e->sigint.data = e->sigterm.data = e->shutdown_timer.data = e->reaper.data = e;
  uv_signal_start(&e->sigint, on_signal, SIGINT);
  uv_signal_start(&e->sigterm, on_signal, SIGTERM);
  /* A SIGPIPE would kill us mid-drain; write errors are handled per output. */
  signal(SIGPIPE, SIG_IGN);
  if (e->nunits == 0 && !keeps_running(e)) {
    sl_error("no streams configured");
    close_handles(e);
    return 1;
  }
  sl_diags_t d = {0};
  int rc = sl_streams_api_route(e, &d);
  sl_diag_print(&d, stderr);
  sl_diags_free(&d);
  /* Before listening, so the start-up warning of open APIs counts them. */
  sl_admin_route(e);
  sl_console_route(e);
  if (rc != 0 || sl_http_listen(e->worker) != 0) {
    close_handles(e);
    return 1;
  }
  sl_reload_start(e);
  for (int i = 0; i < e->nunits; i++) {
    if (sl_unit_start(e->units[i]) != 0) {
      e->exit_code = 1;
      begin_shutdown(e, "start failure");
      break;
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);
  return e->exit_code;
}

void sl_engine_free(sl_engine_t *e) {
  if (!e) return;
  for (int i = 0; i < e->nunits; i++) sl_unit_free(e->units[i]);
  free(e->units);
  for (int i = 0; i < e->nretired; i++) sl_unit_free(e->retired[i]);
  free(e->retired);
  for (int i = 0; i < e->nfiles; i++) sl_cnode_free(e->files[i]);
  free(e->files);
  free(e->last_error);
  free(e->loaded);
  free(e->streams_dir);
  if (e->worker) {
    close_handles(e);
    uv_run(e->worker->loop, UV_RUN_NOWAIT);
    sl_worker_free(e->worker);
    sl_health_set_streams(NULL, NULL);
  }
  /* Until here: subsystems let go of their clients above, and may block. */
  sl_watchdog_stop(e->watchdog);
  free(e);
}
