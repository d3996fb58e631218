/* Hot-reloaded Lua modules through their C API: the status accessor reports
 * versions, reloads and the last error; a failing version leaves the running
 * script in place; the debounced watcher sees in-place writes and renames,
 * coalesces bursts and watches whole directories when asked. */
#include "core/fswatch.h"
#include "core/worker.h"
#include "lua/module.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[64], path[96];

static void write_file(const char *p, const char *src) {
  FILE *f = fopen(p, "w");
  fputs(src, f);
  fclose(f);
}

/* The status object of path, or NULL. */
static json_t *status_of(json_t *all) {
  size_t i;
  json_t *v;
  json_array_foreach(all, i, v)
    if (strcmp(json_string_value(json_object_get(v, "file")), path) == 0) return v;
  return NULL;
}

static json_int_t field(const char *key) {
  json_t *all = sl_lua_modules_status();
  json_t *s = status_of(all);
  json_int_t n = s ? json_integer_value(json_object_get(s, key)) : -1;
  json_decref(all);
  return n;
}

/* Runs the loop until status[key] == want (or 5 s). The watcher's handles do
 * not keep a loop alive, so a referenced timer polls. */
typedef struct wait { uv_timer_t t; const char *key; json_int_t want; int ticks; } wait_t;

static void on_poll(uv_timer_t *t) {
  wait_t *w = (wait_t *)t;
  if (field(w->key) == w->want || ++w->ticks > 500) uv_timer_stop(t);
}

static void wait_status(sl_worker_t *wk, const char *key, json_int_t want) {
  wait_t w = {.key = key, .want = want};
  uv_timer_init(wk->loop, &w.t);
  uv_timer_start(&w.t, on_poll, 10, 10);
  uv_run(wk->loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&w.t, NULL);
  uv_run(wk->loop, UV_RUN_NOWAIT);
  CHECK(field(key) == want, "%s: %lld, want %lld", key, (long long)field(key), (long long)want);
}

static const char *GOOD = "local M = {}\nfunction M.process(m) return m end\nreturn M\n";

static void test_reload(void) {
  sl_worker_t *wk = sl_worker_new(0);
  write_file(path, GOOD);
  char *err = NULL;
  sl_lmodule_t *m = sl_lmodule_open(wk, path, &err);
  CHECK(m && !err, "open: %s", err ? err : "?");
  if (!m) return;
  sl_lmodule_t *again = sl_lmodule_open(wk, path, &err);
  CHECK(again == m, "a second processor shares the worker's instance");
  sl_lmodule_close(again);

  json_t *all = sl_lua_modules_status();
  json_t *s = status_of(all);
  CHECK(s && json_integer_value(json_object_get(s, "version")) == 1 &&
          json_is_null(json_object_get(s, "last_error")) && json_integer_value(json_object_get(s, "reloads")) == 0 &&
          json_string_length(json_object_get(s, "loaded_at")) == 24,
        "initial status");
  json_decref(all);

  sl_lscript_t *v1 = sl_lmodule_script(m, NULL);
  write_file(path, "local M = {}\nlocal x = = 1\nreturn M\n");
  wait_status(wk, "errors", 1);
  CHECK(sl_lmodule_script(m, NULL) == v1, "a failed load keeps the running version");
  all = sl_lua_modules_status();
  s = status_of(all);
  const char *le = s ? json_string_value(json_object_get(s, "last_error")) : NULL;
  CHECK(le && strstr(le, "mod.lua:2:"), "last_error names file:line: %s", le ? le : "null");
  CHECK(s && json_integer_value(json_object_get(s, "version")) == 1, "still version 1");
  json_decref(all);

  /* written beside and renamed over, as editors do */
  char tmp[128];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  write_file(tmp, "return {process = function(m) return m end}\n");
  CHECK(rename(tmp, path) == 0, "rename");
  wait_status(wk, "version", 2);
  CHECK(field("reloads") == 1 && field("errors") == 1, "counts");
  all = sl_lua_modules_status();
  CHECK(json_is_null(json_object_get(status_of(all), "last_error")), "a good version clears last_error");
  json_decref(all);
  CHECK(sl_lmodule_script(m, NULL) != v1, "the new version runs");

  sl_lmodule_close(m);
  CHECK(field("version") == -1, "a module no processor uses leaves the status");
  sl_worker_free(wk);
}

/* ---- the watcher: a directory reports any file; a burst gives one callback ---- */

typedef struct fires { int n; } fires_t;

static void on_fire(void *arg) { ((fires_t *)arg)->n++; }

/* Runs the loop for ms (the watch's handles do not keep it alive). */
static void on_stop(uv_timer_t *t) { uv_stop(t->loop); }
static void run_for(uv_loop_t *loop, uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, on_stop, ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs the loop until f has n callbacks (10 s at most: a loaded machine
 * delays the watch's events), then for ms more, in which no other may come. */
typedef struct until { uv_timer_t t; const fires_t *f; int n; int ticks; } until_t;
static void on_tick(uv_timer_t *t) {
  until_t *u = (until_t *)t;
  if (u->f->n >= u->n || ++u->ticks > 1000) uv_stop(t->loop);
}
static void run_until(uv_loop_t *loop, const fires_t *f, int n, uint64_t ms) {
  until_t u = {.f = f, .n = n};
  uv_timer_init(loop, &u.t);
  uv_timer_start(&u.t, on_tick, 10, 10);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&u.t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  run_for(loop, ms);
}

static void test_fswatch(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  fires_t f = {0};
  char other[128], sub[128];
  snprintf(other, sizeof(other), "%s/other.txt", dir);
  snprintf(sub, sizeof(sub), "%s/sub", dir);
  mkdir(sub, 0755);
  sl_fswatch_t *w = sl_fswatch_new(&loop, path, 30, on_fire, &f);
  CHECK(w != NULL, "watch");
  for (int i = 0; i < 5; i++) write_file(path, GOOD);
  write_file(other, "x");
  run_until(&loop, &f, 1, 100);
  CHECK(f.n == 1, "five writes of the file give one callback, other files none: %d", f.n);
  write_file(other, "y");
  run_for(&loop, 100);
  CHECK(f.n == 1, "another file in the directory is ignored: %d", f.n);
  CHECK(sl_fswatch_add(w, sub) == 0, "add a directory");
  char inside[160];
  snprintf(inside, sizeof(inside), "%s/any.lua", sub);
  write_file(inside, "x");
  run_until(&loop, &f, 2, 100);
  CHECK(f.n == 2, "any file in a watched directory: %d", f.n);
  sl_fswatch_free(w);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(uv_loop_close(&loop) == 0, "every handle closed");
  unlink(inside);
  unlink(other);
  rmdir(sub);
}

int main(void) {
  snprintf(dir, sizeof(dir), "/tmp/sl_lmod_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof(path), "%s/mod.lua", dir);
  RUN(test_reload);
  RUN(test_fswatch);
  unlink(path);
  rmdir(dir);
  return check_report("test_lua_module");
}
