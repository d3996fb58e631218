/* The Redis client (clients/redis.h) against Debian's redis-server, started
 * here on its own port and directory: pipelined commands answer in order,
 * values are binary-safe, nothing is called back after sl_redis_free, and
 * a server that is not there is reported down with the reason. */
#include "clients/redis.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static int port;
static char dir[] = "/tmp/sl_redis_unit_XXXXXX";
static uv_loop_t *loop;
static uv_timer_t guard;     /* keeps the loop running until a case is done or 10 s passed */

static void on_guard(uv_timer_t *t) { uv_stop(t->loop); }
static void done(void) { uv_stop(loop); }

static void run_until_done(void) {
  uv_timer_start(&guard, on_guard, 10000, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_timer_stop(&guard);
}

/* Lets closes and frees finish. */
static void settle(void) {
  uv_timer_start(&guard, on_guard, 50, 0);
  uv_run(loop, UV_RUN_DEFAULT);
}

static int up_seen, down_seen;
static char why[256];

static void on_state(sl_redis_t *r, int up, const char *w, void *arg) {
  (void)r;
  (void)arg;
  if (up) {
    up_seen++;
    done();
  } else {
    down_seen++;
    snprintf(why, sizeof why, "%s", w);
    if (!strstr(w, "connecting")) done();
  }
}

static sl_redis_t *client(int p) {
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", p);
  sl_redis_opts_t o = {.url = url, .on_state = on_state, .backoff_min_ms = 50, .backoff_max_ms = 100};
  char *err = NULL;
  sl_redis_t *r = sl_redis_new(loop, &o, &err);
  CHECK(r != NULL, "sl_redis_new: %s", err ? err : "");
  free(err);
  return r;
}

enum { N = 1000 };
static int replies, in_order = 1, last_ok;
static char value[] = "bin\0ary\xff\xfe value";

static void on_set(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  int i = (int)(intptr_t)arg;
  if (i != replies) in_order = 0;
  replies++;
  CHECK(rp && rp->type == REDIS_REPLY_STATUS, "SET %d: %s", i, err ? err : rp ? rp->str : "?");
}

static void on_get(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  (void)arg;
  (void)err;
  last_ok = rp && rp->type == REDIS_REPLY_STRING && rp->len == sizeof value - 1 && !memcmp(rp->str, value, rp->len);
  done();
}

static void pipelined_in_order_binary(void) {
  up_seen = 0;
  sl_redis_t *r = client(port);
  run_until_done();
  CHECK(up_seen == 1 && sl_redis_up(r), "not up: %s", why);
  char key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "k%d", i);
    const char *argv[] = {"SET", key, value};
    size_t lens[] = {3, strlen(key), sizeof value - 1};
    CHECK(sl_redis_command(r, on_set, (void *)(intptr_t)i, 3, argv, lens) == 0, "SET %d not queued", i);
  }
  const char *argv[] = {"GET", "k999"};
  CHECK(sl_redis_command(r, on_get, NULL, 2, argv, NULL) == 0, "GET not queued");
  CHECK(replies == 0, "a callback ran before the loop did");
  run_until_done();
  CHECK(replies == N && in_order, "%d replies, in order %d", replies, in_order);
  CHECK(last_ok, "GET did not return the binary value");
  sl_redis_free(r);
  settle();
}

static int late;
static void on_late(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r;
  (void)rp;
  (void)err;
  (void)arg;
  late++;
}

static void no_callback_after_free(void) {
  sl_redis_t *r = client(port);
  run_until_done();
  const char *argv[] = {"PING"};
  for (int i = 0; i < 100; i++) sl_redis_command(r, on_late, NULL, 1, argv, NULL);
  sl_redis_free(r);
  settle();
  CHECK(late == 0, "%d callbacks after sl_redis_free", late);
}

static void down_with_reason(void) {
  down_seen = 0;
  sl_redis_t *r = client(port + 1);   /* nothing listens there */
  run_until_done();
  CHECK(!sl_redis_up(r) && down_seen >= 2, "not reported down");
  CHECK(strstr(why, "refused") != NULL, "reason: %s", why);
  const char *argv[] = {"PING"};
  CHECK(sl_redis_command(r, on_late, NULL, 1, argv, NULL) == -1, "a command was queued with no connection");
  sl_redis_free(r);
  settle();
}

static void bad_urls(void) {
  char *err = NULL;
  CHECK(sl_redis_url_check("rediss://h:1", &err) == -1 && strstr(err, "tls: {enabled: true}"), "rediss: %s", err);
  free(err);
  err = NULL;
  CHECK(sl_redis_url_check("redis://h:1/x", &err) == -1 && strstr(err, "database"), "db: %s", err);
  free(err);
  err = NULL;
  CHECK(sl_redis_url_check("redis://:p%40ss@h:1/2", &err) == 0, "good url: %s", err ? err : "");
  free(err);
  err = NULL;
}

/* Benthos's comma-separated list: each URL checked, blanks around commas ignored. */
static void url_lists(void) {
  char **urls = NULL, *err = NULL, *host = NULL, *p = NULL;
  int n = sl_redis_urls("redis://a:1, redis://[::1]:2 ,redis://c", &urls, &err);
  CHECK(n == 3 && !strcmp(urls[1], "redis://[::1]:2") && !strcmp(urls[2], "redis://c"), "list: %d", n);
  sl_redis_url_addr(urls[1], &host, &p);
  CHECK(!strcmp(host, "::1") && !strcmp(p, "2"), "addr %s %s", host, p);
  free(host);
  free(p);
  sl_redis_url_addr(urls[2], &host, &p);
  CHECK(!strcmp(host, "c") && !strcmp(p, "6379"), "default port %s %s", host, p);
  free(host);
  free(p);
  for (int i = 0; i < n; i++) free(urls[i]);
  free(urls);
  CHECK(sl_redis_urls("redis://a:1,http://b", &urls, &err) == -1 && strstr(err, "http://b") && !urls, "bad item: %s",
        err ? err : "");
  free(err);
  err = NULL;
  CHECK(sl_redis_urls("redis://a:1,", &urls, &err) == -1, "an empty item is refused");
  free(err);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  port = 20000 + (int)(getpid() % 6000) * 2;   /* below the ephemeral range; port + 1 stays free */
  if (!mkdtemp(dir)) return 1;
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "redis-server --port %d --bind 127.0.0.1 --dir %s --save '' --appendonly no --daemonize yes "
           "--pidfile %s/pid --logfile %s/log",
           port, dir, dir, dir);
  if (system(cmd) != 0) {
    fprintf(stderr, "redis-server did not start (scripts/deps.sh test installs it)\n");
    return 1;
  }
  char ping[128];
  snprintf(ping, sizeof ping, "redis-cli -p %d ping >/dev/null 2>&1", port);
  for (int i = 0; i < 100 && system(ping) != 0; i++) usleep(50000);
  loop = uv_default_loop();
  uv_timer_init(loop, &guard);
  RUN(bad_urls);
  RUN(url_lists);
  RUN(pipelined_in_order_binary);
  RUN(no_callback_after_free);
  RUN(down_with_reason);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  snprintf(cmd, sizeof cmd, "redis-cli -p %d shutdown nosave >/dev/null 2>&1; rm -rf %s", port, dir);
  if (system(cmd)) {
  }
  return check_report("test_redis_client");
}
