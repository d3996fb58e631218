/* A token bucket per owner, and a timer for the count of what it left out. */
#include "faillog.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define BURST 5
#define PERIOD_MS 1000

struct sl_lfaillog {
  uv_timer_t timer;
  uv_loop_t *loop;
  char *stream;
  char *const *label;
  double tokens;
  uint64_t refilled_at;
  uint64_t left_out;         /* failures not logged since the last line */
  uint64_t failed;           /* since the last sl_lfaillog_take */
};

sl_lfaillog_t *sl_lfaillog_new(uv_loop_t *loop, const char *stream, char *const *label) {
  sl_lfaillog_t *l = sl_xcalloc(1, sizeof(*l));
  l->loop = loop;
  l->stream = stream ? sl_xstrdup(stream) : NULL;
  l->label = label;
  l->tokens = BURST;
  l->refilled_at = uv_now(loop);
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  return l;
}

static void closed(uv_handle_t *h) {
  sl_lfaillog_t *l = h->data;
  free(l->stream);
  free(l);
}

static void line(sl_lfaillog_t *l, const char *msg, const char *text) {
  char n[24];
  snprintf(n, sizeof n, "%" PRIu64, l->left_out);
  const char *kv[] = {"error", text, l->left_out ? "not_logged" : NULL, n, NULL};
  sl_log_fields(SL_LOG_WARN, l->stream, *l->label, msg, text ? kv : kv + 2);
  l->left_out = 0;
}

static void summary(sl_lfaillog_t *l) {
  if (l->left_out) line(l, "more messages failed by the script were not logged", NULL);
}

static void on_timer(uv_timer_t *t) { summary(t->data); }

void sl_lfaillog_free(sl_lfaillog_t *l) {
  if (!l) return;
  summary(l);
  uv_close((uv_handle_t *)&l->timer, closed);
}

uint64_t sl_lfaillog_take(sl_lfaillog_t *l) {
  uint64_t n = l->failed;
  l->failed = 0;
  return n;
}

void sl_lfaillog_note(sl_lfaillog_t *l, const char *text, unsigned n) {
  l->failed += n;
  uint64_t now = uv_now(l->loop);
  l->tokens += (double)(now - l->refilled_at) / PERIOD_MS;
  if (l->tokens > BURST) l->tokens = BURST;
  l->refilled_at = now;
  if (l->tokens >= 1) {
    l->tokens -= 1;
    line(l, n > 1 ? "script failed a batch" : "script failed a message", text);
    return;
  }
  if (!l->left_out) uv_timer_start(&l->timer, on_timer, PERIOD_MS, 0);
  l->left_out += n;
}
