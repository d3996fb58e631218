/* Hot-reloaded Lua module files: one instance per (file, worker), and a
 * process-wide list of files for the status and the metrics. */
#include "module.h"
#include "core/fswatch.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Long enough to coalesce an editor's save (write chunks, rename dance),
 * short enough for 10 reloads a second. */
#define SL_LMODULE_DEBOUNCE_MS 50

typedef struct entry {
  struct entry *next;
  char *file;
  int version;                   /* highest version any worker runs */
  struct timespec loaded_at;     /* when that version took over */
  char *last_error;
  int64_t reloads, errors;
  int64_t *m_reloads, *m_errors;
  sl_lmodule_t *insts;           /* one per worker */
} entry_t;

struct sl_lmodule {
  sl_lmodule_t *next;            /* in entry->insts */
  entry_t *entry;                /* NULL on the lint VM */
  sl_worker_t *w;
  sl_lua_t *vm;
  sl_lscript_t *script;
  int version, refs;
  sl_fswatch_t *watch;
  char **files;                  /* the file, then every file its versions required */
  unsigned nfiles;
  struct reading *reading;       /* a reload's files being read off the loop */
  int again;                     /* changed again meanwhile: read once more */
  int closed;                    /* released meanwhile: freed when the read ends */
};

/* A reload reads the files on libuv's thread pool, then compiles on the loop. */
typedef struct file_read { char *path, *data; size_t len; int err; } file_read_t;
typedef struct reading {
  uv_work_t req;
  sl_lmodule_t *m;
  file_read_t *f;
  unsigned n;
} reading_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *g_entries, **g_tail = &g_entries;

/* Adds path to what a reload reads, and to the watch. */
static void track(sl_lmodule_t *m, const char *path) {
  for (unsigned i = 0; i < m->nfiles; i++)
    if (strcmp(m->files[i], path) == 0) return;
  m->files = sl_xrealloc(m->files, (m->nfiles + 1) * sizeof(*m->files));
  m->files[m->nfiles++] = sl_xstrdup(path);
  if (m->watch) sl_fswatch_add(m->watch, path);
}

void sl_lmodule_dep(void *owner, const char *path) { track(owner, path); }

static void inst_free(sl_lmodule_t *m) {
  sl_fswatch_free(m->watch);
  sl_lscript_free(m->script);
  for (unsigned i = 0; i < m->nfiles; i++) free(m->files[i]);
  free(m->files);
  free(m);
}

/* A stream with pipeline.threads has an instance per pool worker, and every
 * one reloads: one of them (the first worker's, or the stream's own loop's)
 * counts, so that a change counts once. */
static int counts(const sl_lmodule_t *m) { return !m->w->parent || m->w->id == 1; }

/* Compiles the new version from the files read; swaps it in on success. */
static void reload(sl_lmodule_t *m, const sl_lsource_t *pre, unsigned n) {
  entry_t *e = m->entry;
  char *err = NULL;
  sl_lscript_t *s = sl_lscript_module(m->vm, e->file, m, m->script, pre, n, &err);
  pthread_mutex_lock(&g_lock);
  if (s) {
    /* What is on disk runs now: an earlier failure is no longer the news. */
    free(e->last_error);
    e->last_error = NULL;
  }
  if (s == m->script) {
    pthread_mutex_unlock(&g_lock);
    sl_logf(SL_LOG_DEBUG, NULL, "lua", "%s: unchanged, version %d keeps running", e->file, m->version);
    return;
  }
  if (s) {
    sl_lscript_free(m->script);
    m->script = s;
    if (++m->version > e->version) {
      e->version = m->version;
      clock_gettime(CLOCK_REALTIME, &e->loaded_at);
    }
    if (counts(m)) {
      e->reloads++;
      SL_COUNT(e->m_reloads, 1);
    }
  } else {
    free(e->last_error);
    e->last_error = err;
    if (counts(m)) {
      e->errors++;
      SL_COUNT(e->m_errors, 1);
    }
  }
  pthread_mutex_unlock(&g_lock);
  /* The other pool workers' instances say the same at debug level. */
  int say = counts(m);
  if (s) sl_logf(say ? SL_LOG_INFO : SL_LOG_DEBUG, NULL, "lua", "reloaded %s: version %d", e->file, m->version);
  else
    sl_logf(say ? SL_LOG_ERROR : SL_LOG_DEBUG, NULL, "lua", "reload of %s failed, version %d keeps running: %s", e->file,
            m->version, err);
}

static void read_one(file_read_t *f) {
  FILE *fp = fopen(f->path, "rb");
  if (!fp) {
    f->err = errno;
    return;
  }
  size_t cap = 4096, got;
  f->data = sl_xmalloc(cap);
  while ((got = fread(f->data + f->len, 1, cap - f->len, fp)) > 0)
    if ((f->len += got) == cap) f->data = sl_xrealloc(f->data, cap *= 2);
  if (ferror(fp)) {
    f->err = errno ? errno : EIO;
    free(f->data);
    f->data = NULL;
  }
  fclose(fp);
}

static void read_files(uv_work_t *req) {
  reading_t *r = req->data;
  for (unsigned i = 0; i < r->n; i++) read_one(&r->f[i]);
}

static void start_reading(sl_lmodule_t *m);

static void files_read(uv_work_t *req, int status) {
  reading_t *r = req->data;
  sl_lmodule_t *m = r->m;
  m->reading = NULL;
  if (m->closed) {
    inst_free(m);
  } else if (status == 0) {
    sl_lsource_t *pre = sl_xcalloc(r->n, sizeof(*pre));
    for (unsigned i = 0; i < r->n; i++)
      pre[i] = (sl_lsource_t){r->f[i].path, r->f[i].data, r->f[i].len, strerror(r->f[i].err)};
    reload(m, pre, r->n);
    free(pre);
    if (m->again) {
      m->again = 0;
      start_reading(m);
    }
  }
  for (unsigned i = 0; i < r->n; i++) {
    free(r->f[i].path);
    free(r->f[i].data);
  }
  free(r->f);
  free(r);
}

static void start_reading(sl_lmodule_t *m) {
  reading_t *r = sl_xcalloc(1, sizeof(*r));
  r->m = m;
  r->req.data = r;
  r->n = m->nfiles;
  r->f = sl_xcalloc(r->n, sizeof(*r->f));
  for (unsigned i = 0; i < r->n; i++) r->f[i].path = sl_xstrdup(m->files[i]);
  m->reading = r;
  uv_queue_work(m->w->loop, &r->req, read_files, files_read);
}

static void on_change(void *arg) {
  sl_lmodule_t *m = arg;
  if (m->reading) m->again = 1;
  else start_reading(m);
}

/* The entry of file, made on first use. Called with g_lock held. */
static entry_t *entry_for(const char *file) {
  entry_t *e = g_entries;
  while (e && strcmp(e->file, file) != 0) e = e->next;
  if (e) return e;
  e = sl_xcalloc(1, sizeof(*e));
  e->file = sl_xstrdup(file);
  e->m_reloads = sl_metric(SL_COUNTER, "sluice_lua_reloads_total",
                           "Lua module files reloaded (a changed file's new version took over).", "file", file, NULL);
  e->m_errors = sl_metric(SL_COUNTER, "sluice_lua_reload_errors_total",
                          "Changed Lua module files that failed to load (the previous version kept running).",
                          "file", file, NULL);
  *g_tail = e;
  g_tail = &e->next;
  return e;
}

static sl_lmodule_t *find_inst(const char *file, const sl_worker_t *w) {
  for (entry_t *e = g_entries; e; e = e->next)
    if (strcmp(e->file, file) == 0)
      for (sl_lmodule_t *m = e->insts; m; m = m->next)
        if (m->w == w) return m;
  return NULL;
}

sl_lmodule_t *sl_lmodule_open(sl_worker_t *w, const char *path, char **err) {
  if (w) {
    pthread_mutex_lock(&g_lock);
    sl_lmodule_t *m = find_inst(path, w);
    if (m) m->refs++;
    pthread_mutex_unlock(&g_lock);
    if (m) return m;
  }
  sl_lmodule_t *m = sl_xcalloc(1, sizeof(*m));
  m->w = w;
  m->vm = sl_lua_get(w);
  m->refs = m->version = 1;
  /* Before the first load: what the top level requires is watched too. */
  if (w) {
    m->watch = sl_fswatch_new(w->loop, path, SL_LMODULE_DEBOUNCE_MS, on_change, m);
    if (!m->watch) sl_logf(SL_LOG_WARN, NULL, "lua", "%s will not be reloaded when it changes", path);
    track(m, path);
  }
  m->script = sl_lscript_module(m->vm, path, w ? m : NULL, NULL, NULL, 0, err);
  if (!m->script) {
    inst_free(m);
    return NULL;
  }
  if (!w) return m;
  pthread_mutex_lock(&g_lock);
  entry_t *e = entry_for(path);
  if (!e->insts) {
    e->version = 1;
    clock_gettime(CLOCK_REALTIME, &e->loaded_at);
  }
  m->entry = e;
  m->next = e->insts;
  e->insts = m;
  pthread_mutex_unlock(&g_lock);
  return m;
}

sl_lscript_t *sl_lmodule_script(const sl_lmodule_t *m) { return m->script; }

/* Unlinks m; a file no worker runs any more leaves the status. */
static void unlink_inst(sl_lmodule_t *m) {
  entry_t *e = m->entry;
  sl_lmodule_t **p = &e->insts;
  while (*p != m) p = &(*p)->next;
  *p = m->next;
  if (e->insts) return;
  entry_t **q = &g_entries;
  while (*q != e) q = &(*q)->next;
  *q = e->next;
  if (g_tail == &e->next) g_tail = q;
  free(e->file);
  free(e->last_error);
  free(e);
}

void sl_lmodule_close(sl_lmodule_t *m) {
  if (!m) return;
  pthread_mutex_lock(&g_lock);
  int last = --m->refs == 0;
  if (last && m->entry) unlink_inst(m);
  pthread_mutex_unlock(&g_lock);
  if (!last) return;
  if (m->reading) {
    m->closed = 1;
    uv_cancel((uv_req_t *)&m->reading->req);
  } else {
    inst_free(m);
  }
}

json_t *sl_lua_modules_status(void) {
  json_t *a = json_array();
  pthread_mutex_lock(&g_lock);
  for (entry_t *e = g_entries; e; e = e->next) {
    char at[40];
    struct tm tm;
    gmtime_r(&e->loaded_at.tv_sec, &tm);
    size_t n = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(at + n, sizeof(at) - n, ".%03ldZ", e->loaded_at.tv_nsec / 1000000);
    json_array_append_new(a, json_pack("{s:s, s:i, s:s, s:s?, s:I, s:I}", "file", e->file, "version", e->version,
                                       "loaded_at", at, "last_error", e->last_error, "reloads",
                                       (json_int_t)e->reloads, "errors", (json_int_t)e->errors));
  }
  pthread_mutex_unlock(&g_lock);
  return a;
}

/* GET /admin/status shows them as `lua_modules`. */
static json_t *status_member(void *arg) {
  (void)arg;
  return sl_lua_modules_status();
}

static void __attribute__((constructor)) register_status(void) {
  sl_status_member_add("lua_modules", status_member, NULL);
}
