/* The browser console (`http.console`, docs/console.md): its page, built
 * into the binary from console/ (cmake/embed.cmake), at /console/, the Lua
 * API for its completion, and the playground's runs.
 * The page is code, the same for everyone, and public like static files;
 * what it shows or changes goes through /admin/status, /streams, /stream/ and
 * /console/run, which need the admin scope when http.auth is set.
 * A run is `sluice lua` in a child process (this very binary): a VM of its
 * own that cannot reach the pipelines' state, under the config's `lua:`
 * limits, while the loop goes on serving. */
#include "engine_int.h"
#include "core/embedded.h"
#include "core/log.h"
#include "core/uv_alloc.h"
#include "core/xalloc.h"
#include "http/http.h"
#include "http/http_auth.h"
#include "lua/api.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

extern const sl_embedded_t sl_embedded_console[];

#define MAX_RUNS 4                 /* runs at once; more get 503 */
#define MAX_CODE (96 << 10)        /* a script travels in argv (MAX_ARG_STRLEN is 128 KiB) */
#define MAX_CTX (32 << 10)
#define MAX_OUTPUT (4 << 20)       /* what a run may print; beyond it, it is killed */
#define RUN_DEADLINE_MS 30000      /* lua.max_time bounds scripts; this bounds the process */

static const struct { const char *file, *name, *type; } assets[] = {
  {"", "console.index", "text/html; charset=utf-8"},
  {"index.html", "console.index", "text/html; charset=utf-8"},
  {"app.js", "console.app", "text/javascript; charset=utf-8"},
  {"style.css", "console.style", "text/css; charset=utf-8"},
  {"cm.js", "console.cm", "text/javascript; charset=utf-8"},            /* Debian's CodeMirror 5 */
  {"cm.css", "console.cm-style", "text/css; charset=utf-8"},
};

static void asset(sl_http_req_t *r, void *arg) {
  (void)arg;
  const char *file = r->path + strlen("/console/");
  for (size_t i = 0; i < sizeof assets / sizeof *assets; i++) {
    if (strcmp(file, assets[i].file) != 0) continue;
    for (const sl_embedded_t *e = sl_embedded_console; e->name; e++) {
      if (strcmp(e->name, assets[i].name) != 0) continue;
      sl_kvlist_t h = {0};
      sl_kv_add(&h, "Cache-Control", "no-cache", 8);
      static const char csp[] = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:";
      sl_kv_add(&h, "Content-Security-Policy", csp, sizeof csp - 1);
      sl_http_respond(r, 200, assets[i].type, e->src, e->len, &h);
      sl_kv_clear(&h);
      return;
    }
  }
  sl_http_error(r, 404, "no such file in the console");
}

/* The bare /console: where relative asset URLs resolve. */
static void to_slash(sl_http_req_t *r, void *arg) {
  (void)arg;
  sl_kvlist_t h = {0};
  sl_kv_add(&h, "Location", "console/", 8);
  sl_http_respond(r, 308, "text/plain", "", 0, &h);
  sl_kv_clear(&h);
}

static void lua_api(sl_http_req_t *r, void *arg) {
  (void)arg;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  int rc = f ? sl_lua_api_doc(f, "json") : -2;
  if (f) fclose(f);
  if (rc == 0) sl_http_respond(r, 200, "application/json", text, len, NULL);
  else sl_http_error(r, 500, "the Lua API cannot be described");
  free(text);
}

/* ---------- runs ---------- */

typedef struct buf { char *p; size_t n; } buf_t;

typedef struct run {
  uv_process_t proc;
  uv_pipe_t in, out, err;
  uv_timer_t timer;
  uv_write_t wr;
  sl_http_req_t *r;
  char *input;
  buf_t o, e;
  int open;                  /* handles not closed yet */
  int ended;                 /* 1 exited, 2 stdout at EOF, 4 stderr at EOF: 7 is done */
  int64_t exit_status;
  int killed;                /* why: "output", "deadline", or 0 */
  const char *why;
  uint64_t started;
} run_t;

static int running;

static void kill_run(run_t *x, const char *why) {
  if (x->killed) return;
  x->killed = 1;
  x->why = why;
  uv_process_kill(&x->proc, SIGKILL);
}

/* {"messages": [...], "time_ms", "error", "line", "exit"}: the lines the
 * child printed (sluice lua -v --time) and what it said on stderr. */
static json_t *result(run_t *x) {
  json_t *msgs = json_array(), *res = json_object();
  double time_ms = -1;
  char *save = NULL;
  for (char *line = x->o.p ? strtok_r(x->o.p, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
    json_t *j = json_loads(line, 0, NULL);
    if (json_is_object(j) && json_object_get(j, "time_ms")) time_ms = json_real_value(json_object_get(j, "time_ms"));
    else if (json_is_object(j)) json_array_append(msgs, j);
    json_decref(j);
  }
  json_object_set_new(res, "messages", msgs);
  if (time_ms >= 0) json_object_set_new(res, "time_ms", json_real(time_ms));
  json_object_set_new(res, "wall_ms", json_real((double)(uv_hrtime() - x->started) / 1e6));
  json_object_set_new(res, "exit", json_integer(x->exit_status));
  const char *err = NULL;
  for (size_t i = 0; i < json_array_size(msgs) && !err; i++)
    err = json_string_value(json_object_get(json_array_get(msgs, i), "error"));
  /* A script that cannot run says so as file:line:col diagnostics. */
  if (!err && x->e.p && x->e.n) err = x->e.p;
  if (x->killed) {
    char *why = sl_xasprintf("the run was stopped: %s", !strcmp(x->why, "output") ? "it printed more than 4 MiB"
                                                                                    : "it took longer than 30 s");
    json_object_set_new(res, "error", json_string(why));
    free(why);
  } else if (err) {
    json_object_set_new(res, "error", json_string(err));
    /* "-e:LINE:" is the script's own position (sluice lua names the chunk -e) */
    const char *at = strstr(err, "-e:");
    if (at) json_object_set_new(res, "line", json_integer(atoi(at + 3)));
  }
  return res;
}

static void ended(run_t *x, int what);

static void closed(uv_handle_t *h) {
  run_t *x = h->data;
  if (--x->open) return;
  json_t *res = result(x);
  char *text = json_dumps(res, JSON_COMPACT);
  json_decref(res);
  sl_http_respond(x->r, 200, "application/json", text, strlen(text), NULL);
  free(text);
  free(x->o.p);
  free(x->e.p);
  free(x->input);
  free(x);
  running--;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  run_t *x = s->data;
  buf_t *to = s == (uv_stream_t *)&x->out ? &x->o : &x->e;
  if (n > 0 && to->n + (size_t)n > MAX_OUTPUT) kill_run(x, "output");
  else if (n > 0) {
    to->p = sl_xrealloc(to->p, to->n + (size_t)n + 1);
    memcpy(to->p + to->n, b->base, (size_t)n);
    to->n += (size_t)n;
    to->p[to->n] = 0;
  }
  free(b->base);
  if (n < 0) {
    uv_read_stop(s);
    ended(x, to == &x->o ? 2 : 4);
  }
}

/* Once the child has exited and both its outputs are read to the end. */
static void ended(run_t *x, int what) {
  x->ended |= what;
  if (x->ended != 7) return;
  uv_close((uv_handle_t *)&x->proc, closed);
  uv_close((uv_handle_t *)&x->in, closed);
  uv_close((uv_handle_t *)&x->out, closed);
  uv_close((uv_handle_t *)&x->err, closed);
  uv_close((uv_handle_t *)&x->timer, closed);
}

static void exited(uv_process_t *p, int64_t status, int sig) {
  run_t *x = p->data;
  x->exit_status = sig ? -sig : status;
  ended(x, 1);
}

static void deadline(uv_timer_t *t) { kill_run(t->data, "deadline"); }

static void shut(uv_shutdown_t *sd, int status) {
  (void)status;
  free(sd);
}

/* The input is all written: the child reads to its end. */
static void written(uv_write_t *w, int status) {
  run_t *x = w->data;
  uv_shutdown_t *sd = sl_xmalloc(sizeof(*sd));
  if (status != 0 || uv_shutdown(sd, (uv_stream_t *)&x->in, shut) != 0) free(sd);
}

/* The client left: the child has nothing to answer to. */
static void gone(sl_http_req_t *r, void *arg) {
  (void)r;
  kill_run(arg, "client");
}

static const char *str_member(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* POST /console/run {code, input, metadata: {k: v}, ctx: {...}, bloblang} */
static void run(sl_http_req_t *r, void *arg) {
  sl_engine_t *e = arg;
  if (sl_http_require_admin(r, "run scripts in the console (/console/run)") != 0) return;
  json_error_t je;
  json_t *b = json_loadb(r->body->data, r->body->len, 0, &je);
  const char *code = str_member(b, "code"), *input = str_member(b, "input");
  json_t *meta = json_object_get(b, "metadata"), *ctx = json_object_get(b, "ctx");
  char *why = NULL;
  if (!json_is_object(b)) why = sl_xasprintf("the body is not a JSON object: %s", je.text);
  else if (!code) why = sl_xstrdup("`code` (a string) is required");
  else if (strlen(code) > MAX_CODE) why = sl_xasprintf("a script is limited to %d KiB here", MAX_CODE >> 10);
  else if (meta && !json_is_object(meta)) why = sl_xstrdup("`metadata` must be an object of strings");
  else if (ctx && !json_is_object(ctx) && !json_is_null(ctx)) why = sl_xstrdup("`ctx` must be an object");
  if (why) {
    sl_http_error(r, strstr(why, "limited") ? 413 : 400, why);
    free(why);
    json_decref(b);
    return;
  }
  if (running >= MAX_RUNS) {
    sl_http_error(r, 503, "the console already runs 4 scripts; try again");
    json_decref(b);
    return;
  }
  char *ctx_text = ctx && json_object_size(ctx) ? json_dumps(ctx, JSON_COMPACT) : NULL;
  if (ctx_text && strlen(ctx_text) > MAX_CTX) {
    sl_http_error(r, 413, "a ctx is limited to 32 KiB here");
    free(ctx_text);
    json_decref(b);
    return;
  }
  /* argv: sluice lua -v --time --input-file - [--config F] [--bloblang] [--ctx J] [--meta k=v]... -e CODE */
  size_t nmeta = meta ? json_object_size(meta) : 0, n = 0;
  char **argv = sl_xcalloc(16 + 2 * nmeta, sizeof(*argv));
  char **owned = sl_xcalloc(nmeta + 1, sizeof(*owned));
  argv[n++] = "/proc/self/exe";
  argv[n++] = "lua";
  argv[n++] = "-v";
  argv[n++] = "--time";
  argv[n++] = "--input-file";
  argv[n++] = "-";
  if (e->opts.nfiles) argv[n++] = "--config", argv[n++] = (char *)e->opts.files[0];
  if (json_is_true(json_object_get(b, "bloblang"))) argv[n++] = "--bloblang";
  if (ctx_text) argv[n++] = "--ctx", argv[n++] = ctx_text;
  const char *k;
  json_t *v;
  size_t m = 0;
  json_object_foreach(meta, k, v) {
    if (!json_is_string(v) || strchr(k, '=')) continue;
    owned[m++] = sl_xasprintf("%s=%s", k, json_string_value(v));
    argv[n++] = "--meta", argv[n++] = owned[m - 1];
  }
  argv[n++] = "-e";
  argv[n++] = (char *)code;
  run_t *x = sl_xcalloc(1, sizeof(*x));
  x->r = r;
  x->input = sl_xstrdup(input ? input : "");
  x->started = uv_hrtime();
  uv_loop_t *loop = e->worker->loop;
  uv_pipe_init(loop, &x->in, 0);
  uv_pipe_init(loop, &x->out, 0);
  uv_pipe_init(loop, &x->err, 0);
  uv_timer_init(loop, &x->timer);
  x->in.data = x->out.data = x->err.data = x->timer.data = x->proc.data = x->wr.data = x;
  uv_stdio_container_t stdio[3] = {
    {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&x->in},
    {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->out},
    {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->err}};
  uv_process_options_t o = {.exit_cb = exited, .file = argv[0], .args = argv, .stdio_count = 3, .stdio = stdio};
  int rc = uv_spawn(loop, &x->proc, &o);
  for (size_t i = 0; i < m; i++) free(owned[i]);
  free(owned);
  free(argv);
  free(ctx_text);
  json_decref(b);
  running++;
  if (rc != 0) {
    /* As if it had exited: the same path closes and answers. */
    x->open = 4;
    x->e.p = sl_xasprintf("cannot start a run: %s", uv_strerror(rc));
    x->e.n = strlen(x->e.p);
    x->exit_status = -1;
    uv_close((uv_handle_t *)&x->in, closed);
    uv_close((uv_handle_t *)&x->out, closed);
    uv_close((uv_handle_t *)&x->err, closed);
    uv_close((uv_handle_t *)&x->timer, closed);
    return;
  }
  x->open = 5;
  r->on_gone = gone;
  r->gone_arg = x;
  uv_read_start((uv_stream_t *)&x->out, sl_uv_alloc, read_cb);
  uv_read_start((uv_stream_t *)&x->err, sl_uv_alloc, read_cb);
  uv_timer_start(&x->timer, deadline, RUN_DEADLINE_MS, 0);
  uv_buf_t ib = uv_buf_init(x->input, (unsigned)strlen(x->input));
  if (uv_write(&x->wr, (uv_stream_t *)&x->in, &ib, 1, written) != 0) kill_run(x, "client");
}

void sl_console_route(sl_engine_t *e) {
  if (!sl_conf_bool(sl_cnode_get(e->root, "http"), "console", 0)) return;
  sl_diags_t d = {0};
  /* The page and the API's description are code: public, as static files are. */
  sl_http_route_get(e->worker, "/console", to_slash, e, "http.static", &d, NULL);
  sl_http_route_get(e->worker, "/console/", asset, e, "http.static", &d, NULL);
  sl_http_route_get(e->worker, "/console/lua-api.json", lua_api, e, "http.static", &d, NULL);
  sl_http_route_post(e->worker, "/console/run", run, e, "console", &d, NULL);
  if (d.n) sl_diag_print(&d, stderr);
  sl_diags_free(&d);
  sl_info("console at /console/");
}
