/* Debounced file watching over uv_fs_event (one watch per directory). */
#include "fswatch.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

typedef struct dirwatch {
  uv_fs_event_t h;
  struct dirwatch *next;
  sl_fswatch_t *owner;
  char *dir;
  char **names;              /* files of interest in dir */
  unsigned n;
} dirwatch_t;

struct sl_fswatch {
  uv_timer_t timer;
  uv_loop_t *loop;
  uint64_t debounce_ms, burst_start;
  sl_fswatch_cb cb;
  void *arg;
  dirwatch_t *dirs;
  unsigned open_handles;     /* freed when the last one has closed */
};

sl_fswatch_t *sl_fswatch_new(uv_loop_t *loop, uint64_t debounce_ms, sl_fswatch_cb cb, void *arg) {
  sl_fswatch_t *w = sl_xcalloc(1, sizeof(*w));
  w->loop = loop;
  w->debounce_ms = debounce_ms;
  w->cb = cb;
  w->arg = arg;
  uv_timer_init(loop, &w->timer);
  uv_unref((uv_handle_t *)&w->timer);
  w->timer.data = w;
  w->open_handles = 1;
  return w;
}

static void on_timer(uv_timer_t *t) {
  sl_fswatch_t *w = t->data;
  w->cb(w->arg);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status) {
  (void)events;
  dirwatch_t *d = h->data;
  sl_fswatch_t *w = d->owner;
  if (status < 0) return;
  if (name) {
    unsigned i = 0;
    while (i < d->n && strcmp(d->names[i], name) != 0) i++;
    if (i == d->n) return;
  }
  uint64_t now = uv_now(w->loop), delay = w->debounce_ms;
  if (!uv_is_active((uv_handle_t *)&w->timer)) {
    w->burst_start = now;
  } else {
    uint64_t deadline = w->burst_start + 10 * w->debounce_ms;
    if (deadline < now + delay) delay = deadline > now ? deadline - now : 0;
  }
  uv_timer_start(&w->timer, on_timer, delay, 0);
}

int sl_fswatch_add(sl_fswatch_t *w, const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? sl_xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : sl_xstrdup(".");
  const char *name = slash ? slash + 1 : path;
  dirwatch_t *d = w->dirs;
  while (d && strcmp(d->dir, dir) != 0) d = d->next;
  if (!d) {
    d = sl_xcalloc(1, sizeof(*d));
    d->owner = w;
    d->dir = dir;
    d->h.data = d;
    uv_fs_event_init(w->loop, &d->h);
    int rc = uv_fs_event_start(&d->h, on_event, dir, 0);
    if (rc != 0) {
      /* Not kept: the next add of a file there tries again. */
      uv_close((uv_handle_t *)&d->h, (uv_close_cb)free);
      free(dir);
      return rc;
    }
    uv_unref((uv_handle_t *)&d->h);
    d->next = w->dirs;
    w->dirs = d;
    w->open_handles++;
  } else {
    free(dir);
  }
  for (unsigned i = 0; i < d->n; i++)
    if (strcmp(d->names[i], name) == 0) return 0;
  d->names = sl_xrealloc(d->names, (d->n + 1) * sizeof(*d->names));
  d->names[d->n++] = sl_xstrdup(name);
  return 0;
}

static void on_closed(uv_handle_t *h) {
  sl_fswatch_t *w = h->data;
  if (h->type == UV_FS_EVENT) {
    dirwatch_t *d = h->data;
    w = d->owner;
    for (unsigned i = 0; i < d->n; i++) free(d->names[i]);
    free(d->names);
    free(d->dir);
    free(d);
  }
  if (--w->open_handles == 0) free(w);
}

void sl_fswatch_close(sl_fswatch_t *w) {
  if (!w) return;
  for (dirwatch_t *d = w->dirs, *next; d; d = next) {
    next = d->next;
    uv_close((uv_handle_t *)&d->h, on_closed);
  }
  w->dirs = NULL;
  uv_close((uv_handle_t *)&w->timer, on_closed);
}
