#include "engine.h"
#include "http.h"
#include "component.h"
#include "log.h"
#include "obs.h"
#include "scoped.h"
#include "section.h"
#include "stream.h"
#include "xalloc.h"
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sl_engine {
  sl_cnode_t *root;                 /* merged config */
  sl_cnode_t **files; int nfiles;   /* parsed files (streams are moved into root) */
  sl_worker_t *worker;
  sl_stream_t **streams; int nstreams;
  sl_scoped_t **scoped; int nscoped;     /* request-scoped stream templates */
  int ndone;
  int stopping;
  uint64_t stop_at;                 /* loop time of the first shutdown signal */
  int exit_code;
  int64_t shutdown_ms;
  int handles_init;
  uv_signal_t sigint, sigterm;
  uv_timer_t shutdown_timer;
};

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

sl_engine_t *sl_engine_load(const sl_engine_opts_t *o, sl_diags_t *diags) {
  sl_engine_t *e = sl_xcalloc(1, sizeof(*e));
  e->files = sl_xcalloc(o->nfiles ? o->nfiles : 1, sizeof(*e->files));
  uint32_t before = diags->n;
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
    sl_config_validate(root, diags);
    e->files[e->nfiles++] = root;
  }
  if (diags->n > before || e->nfiles == 0) {
    sl_engine_free(e);
    return NULL;
  }
  e->root = e->files[0];
  for (int i = 1; i < e->nfiles; i++) merge_streams(e->root, e->files[i], diags);
  if (diags->n > before) {
    sl_engine_free(e);
    return NULL;
  }
  e->shutdown_ms = sl_conf_duration_ms(e->root, "shutdown_timeout", 20000);

  if (!o->lint_only) {
    e->worker = sl_worker_new(0, e);
    sl_sections_apply(e->worker, e->root, diags);
  }
  const sl_cnode_t *streams = sl_cnode_get(e->root, "streams");
  uint32_t n = streams && streams->type == SL_CN_MAP ? streams->n : 0;
  e->streams = sl_xcalloc(n ? n : 1, sizeof(*e->streams));
  e->scoped = sl_xcalloc(n ? n : 1, sizeof(*e->scoped));
  for (uint32_t i = 0; i < n; i++) {
    char *dir = dir_of(streams->items[i]->file);
    sl_build_t b = {.worker = e->worker, .diags = diags, .config_dir = dir, .lint_only = o->lint_only};
    if (sl_scoped_is_template(streams->items[i])) {
      sl_scoped_t *t = sl_scoped_build(&b, streams->items[i], streams->keys[i]);
      if (t) e->scoped[e->nscoped++] = t;
    } else {
      sl_stream_t *s = sl_stream_build(&b, streams->items[i], streams->keys[i]);
      if (s) e->streams[e->nstreams++] = s;
    }
    free(dir);
  }
  if (diags->n > before) {
    sl_engine_free(e);
    return NULL;
  }
  return e;
}

char *sl_engine_not_ready_json(const sl_engine_t *e) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = NULL;
  for (int i = 0; e && i < e->nstreams; i++) {
    const sl_stream_t *s = e->streams[i];
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

static void close_handles(sl_engine_t *e) {
  if (!e->handles_init) return;
  sl_obs_shutdown();
  sl_http_close(e->worker);
  if (!uv_is_closing((uv_handle_t *)&e->sigint)) uv_close((uv_handle_t *)&e->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&e->sigterm)) uv_close((uv_handle_t *)&e->sigterm, NULL);
  if (!uv_is_closing((uv_handle_t *)&e->shutdown_timer)) uv_close((uv_handle_t *)&e->shutdown_timer, NULL);
  /* Closing the watchers restores the default action: the run is over, and
   * a signal arriving during teardown must not turn exit 0 into a kill. */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
}

static void on_unit_done(void *arg) {
  sl_engine_t *e = arg;
  if (++e->ndone == e->nstreams + e->nscoped) {
    sl_info("all streams finished");
    close_handles(e);
  }
}

static void on_stream_done(sl_stream_t *s, void *arg) {
  (void)s;
  on_unit_done(arg);
}

/* Abandoning in-flight work is the point here: nothing is torn down (what is
 * unacknowledged will be redelivered by its source). */
static void force_exit(void) {
  fflush(NULL);
  _exit(1);
}

static void on_shutdown_timeout(uv_timer_t *t) {
  sl_engine_t *e = t->data;
  (void)e;
  sl_error("shutdown_timeout reached with messages still in flight; exiting");
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
  sl_http_stop(e->worker);
  for (int i = 0; i < e->nstreams; i++) sl_stream_stop(e->streams[i]);
  for (int i = 0; i < e->nscoped; i++) sl_scoped_stop(e->scoped[i]);
}

static void on_signal(uv_signal_t *h, int signum) {
  begin_shutdown(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

int sl_engine_run(sl_engine_t *e) {
  uv_loop_t *loop = e->worker->loop;
  uv_signal_init(loop, &e->sigint);
  uv_signal_init(loop, &e->sigterm);
  uv_timer_init(loop, &e->shutdown_timer);
  e->handles_init = 1;
  e->sigint.data = e->sigterm.data = e->shutdown_timer.data = e;
  uv_signal_start(&e->sigint, on_signal, SIGINT);
  uv_signal_start(&e->sigterm, on_signal, SIGTERM);
  /* A SIGPIPE would kill us mid-drain; write errors are handled per output. */
  signal(SIGPIPE, SIG_IGN);
  if (e->nstreams + e->nscoped == 0) {
    sl_error("no streams configured");
    close_handles(e);
    return 1;
  }
  if (sl_http_listen(e->worker) != 0) {
    close_handles(e);
    return 1;
  }
  for (int i = 0; i < e->nscoped; i++) sl_scoped_start(e->scoped[i], on_unit_done, e);
  for (int i = 0; i < e->nstreams; i++) {
    if (sl_stream_start(e->streams[i], on_stream_done, e) != 0) {
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
  for (int i = 0; i < e->nstreams; i++) sl_stream_free(e->streams[i]);
  free(e->streams);
  for (int i = 0; i < e->nscoped; i++) sl_scoped_free(e->scoped[i]);
  free(e->scoped);
  for (int i = 0; i < e->nfiles; i++) sl_cnode_free(e->files[i]);
  free(e->files);
  if (e->worker) {
    close_handles(e);
    uv_run(e->worker->loop, UV_RUN_NOWAIT);
    sl_worker_free(e->worker);
  }
  free(e);
}
