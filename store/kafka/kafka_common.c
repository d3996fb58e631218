#include "kafka_common.h"
#include "core/detached.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int set(rd_kafka_conf_t *c, sl_build_t *b, const sl_cnode_t *at, const char *k, const char *v) {
  char err[512];
  if (rd_kafka_conf_set(c, k, v, err, sizeof err) == RD_KAFKA_CONF_OK) return 0;
  sl_diag_add(b->diags, at, k, "librdkafka: %s", err);
  return -1;
}

rd_kafka_conf_t *sl_kafka_conf(sl_build_t *b, const sl_cnode_t *conf, const char *const *defaults) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  int bad = 0;
  const sl_cnode_t *addrs = sl_cnode_get(conf, "addresses");
  char *list = sl_xstrdup("");
  for (uint32_t i = 0; addrs && addrs->type == SL_CN_SEQ && i < addrs->n; i++) {
    char *next = sl_xasprintf("%s%s%s", list, *list ? "," : "", addrs->items[i]->str);
    free(list);
    list = next;
  }
  bad |= set(c, b, addrs ? addrs : conf, "bootstrap.servers", list);
  free(list);
  /* librdkafka logs from its own threads unless logs go through a queue:
   * then they come out of rd_kafka_poll, on the loop (see sl_kafka_log). */
  bad |= set(c, b, conf, "log.queue", "true");
  rd_kafka_conf_set_log_cb(c, sl_kafka_log);
  for (const char *const *d = defaults; d && *d; d += 2) bad |= set(c, b, conf, d[0], d[1]);
  const sl_cnode_t *extra = sl_cnode_get(conf, "librdkafka");
  for (uint32_t i = 0; extra && extra->type == SL_CN_MAP && i < extra->n; i++)
    bad |= set(c, b, extra->items[i], extra->keys[i], extra->items[i]->str ? extra->items[i]->str : "");
  if (bad) {
    rd_kafka_conf_destroy(c);
    return NULL;
  }
  return c;
}

void sl_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *msg) {
  (void)rk;
  /* syslog levels: errors and warnings also reach the error callbacks,
   * which say what they mean for the stream; the rest is for debugging. */
  sl_logf(level <= 4 ? SL_LOG_DEBUG : SL_LOG_TRACE, NULL, "librdkafka", "%s: %s", fac, msg);
}

struct sl_kafka_wake {
  uv_poll_t poll;
  int fds[2];
  void (*cb)(void *arg);
  void *arg;
};

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  sl_kafka_wake_t *w = h->data;
  char buf[64];
  while (read(w->fds[0], buf, sizeof buf) > 0) {
  }
  w->cb(w->arg);
}

sl_kafka_wake_t *sl_kafka_wake_new(uv_loop_t *loop, rd_kafka_queue_t *q, void (*cb)(void *arg), void *arg) {
  sl_kafka_wake_t *w = sl_xcalloc(1, sizeof(*w));
  if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    free(w);
    return NULL;
  }
  w->cb = cb;
  w->arg = arg;
  uv_poll_init(loop, &w->poll, w->fds[0]);
  w->poll.data = w;
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  /* The streams decide when the loop ends; a quiet queue must not keep it. */
  uv_unref((uv_handle_t *)&w->poll);
  /* librdkafka writes this byte whenever the queue turns non-empty. */
  rd_kafka_queue_io_event_enable(q, w->fds[1], "1", 1);
  return w;
}

static void wake_closed(uv_handle_t *h) {
  sl_kafka_wake_t *w = h->data;
  close(w->fds[0]);
  close(w->fds[1]);
  free(w);
}

void sl_kafka_wake_close(sl_kafka_wake_t *w, rd_kafka_queue_t *q) {
  if (!w) return;
  /* librdkafka must stop writing to the pipe before its fds can be reused. */
  rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, wake_closed);
}

rd_kafka_resp_err_t sl_kafka_produce(rd_kafka_t *rk, const rd_kafka_vu_t *vus, size_t n) {
  rd_kafka_error_t *err = rd_kafka_produceva(rk, vus, n);
  if (!err) return RD_KAFKA_RESP_ERR_NO_ERROR;
  rd_kafka_resp_err_t e = rd_kafka_error_code(err);
  rd_kafka_error_destroy(err);
  return e;
}

static sl_detached_t g_live = SL_DETACHED_INIT("kafka");

typedef struct doomed {
  rd_kafka_t *rk;
  void (*done)(void *arg);
  void *arg;
} doomed_t;

static void destroy_run(void *arg) {
  doomed_t *d = arg;
  rd_kafka_destroy_flags(d->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  if (d->done) d->done(d->arg);
  free(d);
}

void sl_kafka_destroy_later(rd_kafka_t *rk, void (*done)(void *arg), void *arg) {
  doomed_t *d = sl_xmalloc(sizeof *d);
  *d = (doomed_t){rk, done, arg};
  if (sl_detached_spawn(&g_live, destroy_run, d) != 0) destroy_run(d);
}

void sl_kafka_exit(void) { sl_detached_wait(&g_live); }
