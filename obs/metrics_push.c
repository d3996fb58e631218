#include "metrics_push.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "http/http_client.h"
#include <stdlib.h>
#include <string.h>

typedef struct pusher {
  struct pusher *next;
  sl_hclient_t *hc;
  uv_timer_t timer;
  char *url;
  char *stream;              /* only this stream's series; NULL: all */
  int stopping, final_sent;
} pusher_t;

static pusher_t *g_push;   /* the running pushers */

static void timer_closed(uv_handle_t *h) {
  pusher_t *p = h->data;
  sl_hclient_close(p->hc);
  free(p->url);
  free(p->stream);
  free(p);
}

static void finish(pusher_t *p) {
  if (!uv_is_closing((uv_handle_t *)&p->timer)) uv_close((uv_handle_t *)&p->timer, timer_closed);
}

static void push(pusher_t *p);

static void pushed(int status, const char *err, const char *body, size_t len, void *arg) {
  pusher_t *p = arg;
  if (status < 200 || status > 299)
    sl_logf(SL_LOG_WARN, NULL, "metrics", "push to %s failed: %s%.*s", p->url,
            status < 0 ? err : "", status < 0 ? 0 : (int)len, body);
  if (!p->stopping) return;
  if (p->final_sent) finish(p);
  else push(p);
}

static void push(pusher_t *p) {
  if (p->stopping) p->final_sent = 1;
  size_t len;
  char *text = sl_metrics_text_stream(p->stream, &len);
  static const char *const headers[] = {"Content-Type: text/plain; version=0.0.4", NULL};
  sl_hclient_request(p->hc, "PUT", p->url, headers, text, len, 5000, pushed, p);
  free(text);
}

/* A push still in flight is not stacked behind: the next tick sends newer numbers. */
static void on_tick(uv_timer_t *t) {
  pusher_t *p = t->data;
  if (!sl_hclient_pending(p->hc)) push(p);
}

static void stop(pusher_t *p, int final) {
  p->stopping = 1;
  p->final_sent = !final;
  uv_timer_stop(&p->timer);
  if (sl_hclient_pending(p->hc)) return;   /* pushed() goes on from there */
  if (final) push(p);
  else finish(p);
}

/* Unlinks and returns the pusher of stream (NULL: the process-wide one). */
static pusher_t *take(const char *stream) {
  for (pusher_t **pp = &g_push; *pp; pp = &(*pp)->next) {
    pusher_t *p = *pp;
    if (!p->stream == !stream && (!stream || !strcmp(p->stream, stream))) {
      *pp = p->next;
      return p;
    }
  }
  return NULL;
}

void sl_metrics_push_remove(const char *stream) {
  pusher_t *old = take(stream);
  if (old) stop(old, 0);
}

void sl_metrics_push_start(uv_loop_t *loop, const char *url, const char *job, int64_t interval_ms,
                           const char *stream) {
  sl_metrics_push_remove(stream);
  pusher_t *p = sl_xcalloc(1, sizeof(*p));
  size_t ul = strlen(url);
  while (ul && url[ul - 1] == '/') ul--;
  p->url = sl_xasprintf("%.*s/metrics/job/%s", (int)ul, url, job);
  p->stream = stream ? sl_xstrdup(stream) : NULL;
  p->hc = sl_hclient_new(loop);
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, on_tick, (uint64_t)interval_ms, (uint64_t)interval_ms);
  /* The timer alone must not keep a finished run alive. */
  uv_unref((uv_handle_t *)&p->timer);
  p->next = g_push;
  g_push = p;
}

void sl_metrics_push_stop(void) {
  while (g_push) {
    pusher_t *p = g_push;
    g_push = p->next;
    stop(p, 1);
  }
}
