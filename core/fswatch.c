/* Debounced file watching over uv_fs_event (one watch per directory). */
#include "fswatch.h"
#include "log.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct dirwatch {
  uv_fs_event_t h;
  struct dirwatch *next;
  sl_fswatch_t *owner;
  char *dir;
  char **names;              /* files of interest in dir */
  unsigned n;
  int any;                   /* the directory itself was asked for */
} dirwatch_t;

struct sl_fswatch {
  uv_timer_t timer;
  uv_loop_t *loop;
  uint64_t debounce_ms, burst_start;
  void (*cb)(void *arg);
  void *arg;
  dirwatch_t *dirs;
  unsigned open_handles;     /* freed when the last one has closed */
};

static void on_timer(uv_timer_t *t) {
  sl_fswatch_t *w = t->data;
  w->cb(w->arg);
}

static void on_event(uv_fs_event_t *h, const char *name, int events, int status) {
  (void)events;
  dirwatch_t *d = h->data;
  sl_fswatch_t *w = d->owner;
  if (status < 0) return;
  if (name && !d->any) {
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
  struct stat st;
  int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
  const char *slash = is_dir ? NULL : strrchr(path, '/');
  char *dir = is_dir ? sl_xstrdup(path)
              : slash ? sl_xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : sl_xstrdup(".");
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
      sl_warn("cannot watch %s: %s", dir, uv_strerror(rc));
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
  if (is_dir) {
    d->any = 1;
    return 0;
  }
  const char *name = slash ? slash + 1 : path;
  for (unsigned i = 0; i < d->n; i++)
    if (strcmp(d->names[i], name) == 0) return 0;
  d->names = sl_xrealloc(d->names, (d->n + 1) * sizeof(*d->names));
  d->names[d->n++] = sl_xstrdup(name);
  return 0;
}

sl_fswatch_t *sl_fswatch_new(uv_loop_t *loop, const char *path, uint64_t debounce_ms, void (*cb)(void *arg),
                             void *arg) {
  sl_fswatch_t *w = sl_xcalloc(1, sizeof(*w));
  w->loop = loop;
  w->debounce_ms = debounce_ms;
  w->cb = cb;
  w->arg = arg;
  uv_timer_init(loop, &w->timer);
  uv_unref((uv_handle_t *)&w->timer);
  w->timer.data = w;
  w->open_handles = 1;
  if (sl_fswatch_add(w, path) != 0) {
    sl_fswatch_free(w);
    return NULL;
  }
  return w;
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

void sl_fswatch_free(sl_fswatch_t *w) {
  if (!w) return;
  for (dirwatch_t *d = w->dirs, *next; d; d = next) {
    next = d->next;
    uv_close((uv_handle_t *)&d->h, on_closed);
  }
  w->dirs = NULL;
  uv_close((uv_handle_t *)&w->timer, on_closed);
}
