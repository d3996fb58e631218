/* Hot-reloaded Lua module files: one instance per (file, worker), and a
 * process-wide list of files for the status and the metrics. */
#include "module.h"
#include "core/fswatch.h"
#include "core/pool.h"
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

/* A version published to a pool's instances of the file. */
typedef struct gen {
  struct gen *next;              /* the next newer one */
  uint64_t epoch;                /* batches carrying this pool epoch or a later one run it */
  int version;
  sl_lsource_t *src;             /* the files the lead read (owned) */
  unsigned n;
} gen_t;

/* The instances of one file on one pool's workers switch versions at one
 * batch: each worker reloading between its own batches would let two
 * workers tag with different versions for a moment, and versions step back
 * in the output. So the lead (the instance on the pool's first worker)
 * alone watches, reads and compiles; a version that loads there becomes a
 * generation under a new pool epoch (sl_pool_epoch_next), and every
 * instance loads it, from the same bytes, before it runs the first batch
 * carrying that epoch (sl_pool_epoch), never before. */
typedef struct group {
  gen_t *gens, **tail;           /* oldest first; one goes once every instance runs a newer one */
  int version;                   /* the newest generation's (1: as opened) */
  int refs;                      /* instances */
} group_t;

struct sl_lmodule {
  sl_lmodule_t *next;            /* in entry->insts */
  entry_t *entry;                /* NULL on the lint VM */
  sl_worker_t *w;
  sl_lua_t *vm;
  sl_lscript_t *script;
  int version, refs;
  group_t *group;                /* on a pool worker; NULL on a stream's own loop */
  uint64_t epoch;                /* the generation it runs (0: as opened) */
  uint64_t seen;                 /* the highest batch epoch it looked for a generation at */
  sl_lscript_t *pending;         /* the lead's newest generation, compiled, not run yet */
  uint64_t pending_epoch;
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
  sl_lscript_free(m->pending);
  for (unsigned i = 0; i < m->nfiles; i++) free(m->files[i]);
  free(m->files);
  free(m);
}

/* Whether m watches and reloads: on a stream's own loop, or the lead of a
 * pool's instances. */
static int leads(const sl_lmodule_t *m) { return !m->w->lead || m->w == m->w->lead; }

/* Publishes s, compiled by the lead from pre, as g's next generation.
 * Called with g_lock held: a worker looking for the generation of a batch
 * carrying the new epoch waits for it here. Returns its version. */
static int publish(sl_lmodule_t *m, sl_lscript_t *s, const sl_lsource_t *pre, unsigned n) {
  group_t *g = m->group;
  gen_t *x = sl_xcalloc(1, sizeof(*x));
  x->epoch = sl_pool_epoch_next();
  x->version = ++g->version;
  x->src = sl_xcalloc(n ? n : 1, sizeof(*x->src));
  x->n = n;
  for (unsigned i = 0; i < n; i++) {
    x->src[i].path = sl_xstrdup(pre[i].path);
    if (pre[i].data) {
      char *d = sl_xmalloc(pre[i].len + 1);
      memcpy(d, pre[i].data, pre[i].len);
      x->src[i].data = d;
    }
    x->src[i].len = pre[i].len;
    x->src[i].error = sl_xstrdup(pre[i].error ? pre[i].error : "");
  }
  *g->tail = x;
  g->tail = &x->next;
  sl_lscript_free(m->pending);   /* an older generation it never ran: compiled again if a batch needs it */
  m->pending = s;
  m->pending_epoch = x->epoch;
  return x->version;
}

static void gen_free(gen_t *x) {
  for (unsigned i = 0; i < x->n; i++) {
    free((char *)x->src[i].path);
    free((char *)x->src[i].data);
    free((char *)x->src[i].error);
  }
  free(x->src);
  free(x);
}

/* Compiles the new version from the files read. On success it runs from
 * the next batch on the stream's own loop, or from the next pool epoch on a
 * pool's workers. */
static void reload(sl_lmodule_t *m, const sl_lsource_t *pre, unsigned n) {
  entry_t *e = m->entry;
  char *err = NULL;
  sl_lscript_t *prev = m->pending ? m->pending : m->script;
  sl_lscript_t *s = sl_lscript_module(m->vm, e->file, m, prev, pre, n, &err);
  pthread_mutex_lock(&g_lock);
  int v = m->group ? m->group->version : m->version;
  if (s) {
    /* What is on disk runs now: an earlier failure is no longer the news. */
    free(e->last_error);
    e->last_error = NULL;
  }
  if (s == prev) {
    pthread_mutex_unlock(&g_lock);
    sl_logf(SL_LOG_DEBUG, NULL, "lua", "%s: unchanged, version %d keeps running", e->file, v);
    return;
  }
  if (s) {
    if (m->group) {
      v = publish(m, s, pre, n);
    } else {
      sl_lscript_free(m->script);
      m->script = s;
      v = ++m->version;
    }
    if (v > e->version) {
      e->version = v;
      clock_gettime(CLOCK_REALTIME, &e->loaded_at);
    }
    e->reloads++;
    SL_COUNT(e->m_reloads, 1);
  } else {
    free(e->last_error);
    e->last_error = err;
    e->errors++;
    SL_COUNT(e->m_errors, 1);
  }
  pthread_mutex_unlock(&g_lock);
  if (s) sl_logf(SL_LOG_INFO, NULL, "lua", "reloaded %s: version %d", e->file, v);
  else sl_logf(SL_LOG_ERROR, NULL, "lua", "reload of %s failed, version %d keeps running: %s", e->file, v, err);
}

/* Lets go of the generations no instance of g can need any more: each
 * before one that every instance has reached. Called with g_lock held. */
static void collect(entry_t *e, group_t *g) {
  uint64_t min = UINT64_MAX;
  for (sl_lmodule_t *i = e->insts; i; i = i->next)
    if (i->group == g && i->epoch < min) min = i->epoch;
  while (g->gens && g->gens->next && g->gens->next->epoch <= min) {
    gen_t *x = g->gens;
    g->gens = x->next;
    gen_free(x);
  }
}

/* On m's worker, before a batch carrying epoch ep: runs the newest
 * generation published under ep or earlier. A generation that fails to
 * load here (a top level that depends on more than its files) leaves this
 * worker on the version it runs, and says so. */
static void adopt(sl_lmodule_t *m, uint64_t ep) {
  entry_t *e = m->entry;
  pthread_mutex_lock(&g_lock);
  gen_t *to = NULL;
  for (gen_t *x = m->group->gens; x && x->epoch <= ep; x = x->next) to = x;
  pthread_mutex_unlock(&g_lock);
  /* (to stays: collect keeps every generation newer than what m runs) */
  if (!to || to->epoch <= m->epoch) return;
  sl_lscript_t *s = NULL;
  char *err = NULL;
  if (m->pending && m->pending_epoch == to->epoch) {
    s = m->pending;
    m->pending = NULL;
  } else {
    s = sl_lscript_module(m->vm, e->file, m, NULL, to->src, to->n, &err);
  }
  if (s) {
    sl_lscript_free(m->script);
    m->script = s;
    m->version = to->version;
  }
  pthread_mutex_lock(&g_lock);
  m->epoch = to->epoch;
  collect(e, m->group);
  pthread_mutex_unlock(&g_lock);
  if (s) {
    sl_logf(SL_LOG_DEBUG, NULL, "lua", "%s: version %d runs on pipeline thread %d", e->file, m->version, m->w->id);
  } else {
    sl_logf(SL_LOG_ERROR, NULL, "lua", "%s: version %d failed to load on pipeline thread %d, version %d keeps running there: %s",
            e->file, to->version, m->w->id, m->version, err);
    free(err);
  }
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
  if (w && leads(m)) {
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
  if (w->lead) {
    /* The pool's workers build their chains one after another: the first
     * instance makes the group, the others join it. */
    for (sl_lmodule_t *i = e->insts; i && !m->group; i = i->next)
      if (i->w->lead == w->lead) m->group = i->group;
    if (!m->group) {
      m->group = sl_xcalloc(1, sizeof(*m->group));
      m->group->tail = &m->group->gens;
      m->group->version = 1;
    }
    m->group->refs++;
  }
  m->next = e->insts;
  e->insts = m;
  pthread_mutex_unlock(&g_lock);
  return m;
}

sl_lscript_t *sl_lmodule_script(sl_lmodule_t *m, const sl_batch_t *b) {
  if (m->group) {
    uint64_t ep = sl_pool_epoch(b);
    if (ep > m->seen) {
      m->seen = ep;
      adopt(m, ep);
    }
  }
  return m->script;
}

/* Unlinks m; a file no worker runs any more leaves the status. */
static void unlink_inst(sl_lmodule_t *m) {
  entry_t *e = m->entry;
  sl_lmodule_t **p = &e->insts;
  while (*p != m) p = &(*p)->next;
  *p = m->next;
  group_t *g = m->group;
  if (g && --g->refs == 0) {
    for (gen_t *x = g->gens, *next; x; x = next) {
      next = x->next;
      gen_free(x);
    }
    free(g);
  }
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
