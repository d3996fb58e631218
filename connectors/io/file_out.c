/* `file` output: appends messages to files whose path may be interpolated per
 * message; keeps a small LRU cache of open descriptors. */
#include "core/component.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include "core/batching.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounded so that a path keyed by a high-cardinality field cannot exhaust fds. */
enum { MAX_OPEN = 16 };

static const char *const codecs[] = {"lines", "all", NULL};

static const sl_field_t fields[] = {
  {"path", SL_F_STRING, NULL, SL_REQUIRED | SL_INTERP,
   "File to write, evaluated per message: `${! meta.topic }` and other `${! lua }` parts "
   "are allowed. Relative paths are relative to the directory of the config file. Files are "
   "created (mode 0644) when missing, with their missing directories (mode 0755).",
   NULL, NULL},
  {"codec", SL_F_ENUM, "lines", 0,
   "`lines`: append each message followed by a newline. `all`: each message replaces the "
   "whole content of its file (one file per message, as with Benthos' `all-bytes`).",
   codecs, NULL},
  SL_BATCHING_FIELD,
  {0},
};

typedef struct ofile {
  char *path;
  int fd;
  uint64_t used;
} ofile_t;

typedef struct fout {
  sl_output_t base;
  sl_interp_t *path;
  char *dir;
  int all;
  ofile_t open[MAX_OPEN];
  unsigned nopen;
  uint64_t tick;
  char *buf;
  size_t cap;
} fout_t;

static void forget(fout_t *f, unsigned i) {
  close(f->open[i].fd);
  free(f->open[i].path);
  f->open[i] = f->open[--f->nopen];
}

static void close_all(fout_t *f) {
  while (f->nopen) forget(f, f->nopen - 1);
}

static char *open_error(const char *path) {
  return sl_xasprintf("cannot open %s: %s", path, strerror(errno));
}

/* mkdir -p of path's directory; errno tells why when it fails. */
static int make_parents(const char *path) {
  char *dir = sl_xstrdup(path);
  char *slash = strrchr(dir, '/');
  int rc = 0;
  if (slash && slash != dir) {
    *slash = 0;
    for (char *p = dir + 1; *p && rc == 0; p++) {
      if (*p != '/') continue;
      *p = 0;
      if (mkdir(dir, 0755) != 0 && errno != EEXIST) rc = -1;
      *p = '/';
    }
    if (rc == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST) rc = -1;
  }
  free(dir);
  return rc;
}

static int open_creating(const char *path, int mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | mode, 0644);
  if (fd < 0 && errno == ENOENT && make_parents(path) == 0) fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | mode, 0644);
  return fd;
}

static int get_fd(fout_t *f, const char *path, char **err) {
  for (unsigned i = 0; i < f->nopen; i++) {
    if (strcmp(f->open[i].path, path) == 0) {
      f->open[i].used = ++f->tick;
      return f->open[i].fd;
    }
  }
  int fd = open_creating(path, O_APPEND);
  if (fd < 0) {
    *err = open_error(path);
    return -1;
  }
  if (f->nopen == MAX_OPEN) {
    unsigned lru = 0;
    for (unsigned i = 1; i < f->nopen; i++)
      if (f->open[i].used < f->open[lru].used) lru = i;
    forget(f, lru);
  }
  f->open[f->nopen++] = (ofile_t){sl_xstrdup(path), fd, ++f->tick};
  return fd;
}

static int write_fd(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static char *resolve(fout_t *f, sl_msg_t *m, uint32_t i, char **err) {
  char *e = NULL;
  char *p = sl_interp_eval(f->path, m, i, NULL, &e);
  if (!p) {
    *err = sl_xasprintf("path: %s", e ? e : "evaluation failed");
    free(e);
    return NULL;
  }
  if (!*p) {
    free(p);
    *err = sl_xstrdup("path: evaluated to an empty string");
    return NULL;
  }
  if (p[0] == '/' || !f->dir) return p;
  char *full = sl_xasprintf("%s/%s", f->dir, p);
  free(p);
  return full;
}

/* Appends a run of messages that share one path with a single write. */
static int append_run(fout_t *f, const char *path, sl_batch_t *b, uint32_t from, uint32_t to, char **err) {
  size_t n = 0;
  for (uint32_t i = from; i < to; i++) n += b->msgs[i]->content->len + 1;
  if (n > f->cap) {
    f->cap = n;
    f->buf = sl_xrealloc(f->buf, n);
  }
  size_t len = 0;
  for (uint32_t i = from; i < to; i++) {
    const sl_bytes_t *c = b->msgs[i]->content;
    memcpy(f->buf + len, c->data, c->len);
    len += c->len;
    f->buf[len++] = '\n';
  }
  int fd = get_fd(f, path, err);
  if (fd < 0) return -1;
  if (write_fd(fd, f->buf, len) == 0) return 0;
  *err = sl_xasprintf("cannot write %s: %s", path, strerror(errno));
  for (unsigned i = 0; i < f->nopen; i++)
    if (f->open[i].fd == fd) forget(f, i);
  return -1;
}

static int replace_file(const char *path, const sl_bytes_t *c, char **err) {
  int fd = open_creating(path, O_TRUNC);
  if (fd < 0) {
    *err = open_error(path);
    return -1;
  }
  int rc = write_fd(fd, c->data, c->len);
  if (rc) *err = sl_xasprintf("cannot write %s: %s", path, strerror(errno));
  close(fd);
  return rc;
}

static void fout_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  fout_t *f = (fout_t *)o;
  char *err = NULL;
  int fixed = sl_interp_is_static(f->path);
  char *run = NULL;          /* path of the current run of messages */
  uint32_t from = 0;
  for (uint32_t i = 0; i < b->n && !err; i++) {
    char *p = NULL;
    if (!fixed || !run) {
      p = resolve(f, b->msgs[i], i, &err);
      if (!p) break;
    }
    if (f->all) {
      replace_file(p ? p : run, b->msgs[i]->content, &err);
    } else if (p && run && strcmp(p, run) != 0) {
      append_run(f, run, b, from, i, &err);
      from = i;
    }
    if (p) {
      free(run);
      run = p;
    }
  }
  if (!f->all && run && !err) append_run(f, run, b, from, b->n, &err);
  free(run);
  cb(o, b, err ? -1 : 0, err, arg);
  free(err);
}

static void fout_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  close_all((fout_t *)o);
  done(o, arg);
}

static void fout_destroy(sl_output_t *o) {
  fout_t *f = (fout_t *)o;
  close_all(f);
  sl_interp_free(f->path);
  free(f->dir);
  free(f->buf);
  free(f);
}

static const sl_output_vt vt = {NULL, fout_write, fout_close, fout_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *fout_create(sl_build_t *b, const sl_cnode_t *conf) {
  fout_t *f = sl_xcalloc(1, sizeof(*f));
  sl_component_init_output(&f->base, &vt, &spec, b);
  f->all = strcmp(sl_conf_str(conf, "codec", "lines"), "all") == 0;
  f->dir = b->config_dir && *b->config_dir ? sl_xstrdup(b->config_dir) : NULL;
  f->path = sl_lua_interp_field(b->worker, conf, b->diags, "path");
  if (!f->path) {
    fout_destroy(&f->base);
    return NULL;
  }
  return f;
}

static const sl_spec_t spec = {
  .name = "file",
  .kind = SL_KIND_OUTPUT,
  .summary = "Writes messages to files; the path may depend on the message.",
  .desc =
    "Appends each message (codec `lines`) or writes it as a whole file (codec `all`). The "
    "path is evaluated per message, so one output can spread messages over many files; "
    "consecutive messages of a batch that go to the same file are written with one "
    "write(2). A batch is acknowledged after write(2) returned for all of its messages "
    "(handed to the kernel; no fsync).\n\n"
    "Up to 16 files are kept open; the least recently used one is closed when another is "
    "needed. A file that cannot be opened or written (for example because its directory "
    "does not exist) fails the batch with the reason, so the stream's `retry` policy or a "
    "`fallback` output takes over.",
  .fields = fields,
  .example =
    "output:\n"
    "  file:\n"
    "    path: './out/${! meta.topic }.ndjson'\n"
    "    codec: lines\n",
  .create = fout_create,
};
SL_REGISTER(spec)
