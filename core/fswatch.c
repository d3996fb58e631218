#include "fswatch.h"
#include "log.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sl_fswatch {
  uv_fs_event_t ev;
  uv_timer_t timer;
  char *base;                /* file name inside the watched directory, NULL: any */
  uint64_t debounce_ms;
  void (*cb)(void *arg);
  void *arg;
  int closing;
};

static void on_fire(uv_timer_t *t) {
  sl_fswatch_t *w = t->data;
  w->cb(w->arg);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  (void)events;
  sl_fswatch_t *w = h->data;
  if (status < 0 || (w->base && filename && strcmp(filename, w->base) != 0)) return;
  uv_timer_start(&w->timer, on_fire, w->debounce_ms, 0);
}

sl_fswatch_t *sl_fswatch_new(uv_loop_t *loop, const char *path, uint64_t debounce_ms, void (*cb)(void *arg),
                             void *arg) {
  sl_fswatch_t *w = sl_xcalloc(1, sizeof(*w));
  w->debounce_ms = debounce_ms;
  w->cb = cb;
  w->arg = arg;
  struct stat st;
  char *dir;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    dir = sl_xstrdup(path);
  } else {
    const char *slash = strrchr(path, '/');
    dir = slash ? sl_xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : sl_xstrdup(".");
    w->base = sl_xstrdup(slash ? slash + 1 : path);
  }
  uv_fs_event_init(loop, &w->ev);
  uv_timer_init(loop, &w->timer);
  w->ev.data = w->timer.data = w;
  int rc = uv_fs_event_start(&w->ev, on_event, dir, 0);
  if (rc != 0) sl_error("cannot watch %s: %s", dir, uv_strerror(rc));
  free(dir);
  if (rc != 0) {
    sl_fswatch_free(w);
    return NULL;
  }
  return w;
}

static void closed(uv_handle_t *h) {
  sl_fswatch_t *w = h->data;
  if (++w->closing < 3) return;
  free(w->base);
  free(w);
}

void sl_fswatch_free(sl_fswatch_t *w) {
  if (!w) return;
  w->closing = 1;
  uv_close((uv_handle_t *)&w->ev, closed);
  uv_close((uv_handle_t *)&w->timer, closed);
}
