/* A token bucket per owner, and a timer for the count of what it left out. */
#include "loglimit.h"
#include "log.h"
#include "xalloc.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BURST 5
#define PERIOD_MS 1000

struct sl_loglimit {
  uv_timer_t timer;
  uv_loop_t *loop;
  char *stream, *component, *summary;
  double tokens;
  uint64_t refilled_at;
  uint64_t left_out;         /* occurrences not logged since the last line */
};

sl_loglimit_t *sl_loglimit_new(uv_loop_t *loop, const char *stream, const char *summary) {
  sl_loglimit_t *l = sl_xcalloc(1, sizeof(*l));
  l->loop = loop;
  l->stream = stream ? sl_xstrdup(stream) : NULL;
  l->summary = sl_xstrdup(summary);
  l->tokens = BURST;
  l->refilled_at = uv_now(loop);
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  return l;
}

static void closed(uv_handle_t *h) {
  sl_loglimit_t *l = h->data;
  free(l->stream);
  free(l->component);
  free(l->summary);
  free(l);
}

static void line(sl_loglimit_t *l, const char *msg, const char *text) {
  char n[24];
  snprintf(n, sizeof n, "%" PRIu64, l->left_out);
  const char *kv[] = {"error", text, l->left_out ? "not_logged" : NULL, n, NULL};
  sl_log_fields(SL_LOG_WARN, l->stream, l->component, msg, text ? kv : kv + 2);
  l->left_out = 0;
}

static void summary(sl_loglimit_t *l) {
  if (l->left_out) line(l, l->summary, NULL);
}

static void on_timer(uv_timer_t *t) { summary(t->data); }

void sl_loglimit_free(sl_loglimit_t *l) {
  if (!l) return;
  summary(l);
  uv_close((uv_handle_t *)&l->timer, closed);
}

void sl_loglimit_warn(sl_loglimit_t *l, const char *component, unsigned n, const char *msg, const char *text) {
  if (!l->component || !component || strcmp(l->component, component)) {
    free(l->component);
    l->component = component ? sl_xstrdup(component) : NULL;
  }
  uint64_t now = uv_now(l->loop);
  l->tokens += (double)(now - l->refilled_at) / PERIOD_MS;
  if (l->tokens > BURST) l->tokens = BURST;
  l->refilled_at = now;
  if (l->tokens >= 1) {
    l->tokens -= 1;
    line(l, msg, text);
    return;
  }
  if (!l->left_out) uv_timer_start(&l->timer, on_timer, PERIOD_MS, 0);
  l->left_out += n;
}
