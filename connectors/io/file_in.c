/* `file` input: reads files named by paths or glob patterns, one after the
 * other, in chunks through the loop's thread pool. */
#include "reader.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const codecs[] = {"lines", "ndjson", "all", NULL};

static const sl_field_t fields[] = {
  {"paths", SL_F_STRLIST, NULL, SL_REQUIRED,
   "Files to read, in order. Each entry is a path or a glob(3) pattern (`*`, `?`, `[...]`); "
   "a pattern's matches are read in sorted order. Relative paths are relative to the "
   "directory of the config file. A plain path that does not exist is an error at start; "
   "a pattern that matches nothing is logged as a warning.", NULL, NULL},
  {"codec", SL_F_ENUM, "lines", 0,
   "How each file is cut into messages. `lines`: one message per line, the line ending "
   "(`\\n` or `\\r\\n`) removed and empty lines skipped. `ndjson`: the same as `lines`, "
   "for files holding one JSON document per line (the JSON is not validated here: a `lua` "
   "processor touching `this` reports bad lines). `all`: each whole file is one message.",
   codecs, NULL},
  {"max_buffer", SL_F_SIZE, "1MiB", 0,
   "Longest line (or file, with codec `all`) kept in memory. Anything longer is logged and "
   "emitted truncated to this size, flagged as failed; the rest of that line is discarded.",
   NULL, NULL},
  SL_SCANNER_FIELD,
  SL_BATCHING_FIELD,
  {0},
};

typedef struct file_in {
  sl_input_t base;
  char **patterns;
  uint32_t npatterns;
  sl_scanconf_t *scan;
  char **files;
  size_t nfiles, next;
  uint64_t seq;
  sl_reader_t *reader;
  uv_fs_t open_req;
  int opening, stopped, destroyed;
} file_in_t;

static const char *stream_name(const sl_input_t *in) { return in->stream ? in->stream->name : NULL; }

static void free_all(file_in_t *f) {
  for (uint32_t i = 0; i < f->npatterns; i++) free(f->patterns[i]);
  free(f->patterns);
  for (size_t i = 0; i < f->nfiles; i++) free(f->files[i]);
  free(f->files);
  sl_scanconf_free(f->scan);
  free(f);
}

static void add_file(file_in_t *f, const char *p) {
  f->files = sl_xrealloc(f->files, (f->nfiles + 1) * sizeof(*f->files));
  f->files[f->nfiles++] = sl_xstrdup(p);
}

static void open_next(file_in_t *f);

static void on_end(sl_reader_t *r, int status, void *arg) {
  (void)status;
  file_in_t *f = arg;
  sl_reader_close(r);
  f->reader = NULL;
  f->next++;
  open_next(f);
}

static void on_open(uv_fs_t *req) {
  file_in_t *f = req->data;
  int fd = (int)req->result;
  uv_fs_req_cleanup(req);
  f->opening = 0;
  if (f->destroyed || f->stopped) {
    if (fd >= 0) close(fd);
    if (f->destroyed) free_all(f);
    return;
  }
  const char *path = f->files[f->next];
  if (fd < 0) {
    sl_logf(SL_LOG_ERROR, stream_name(&f->base), f->base.label, "cannot open %s: %s", path, uv_strerror(fd));
    f->next++;
    open_next(f);
    return;
  }
  sl_reader_opts_t o = {.in = &f->base, .scan = f->scan, .own_fd = 1,
                        .path = path, .seq = &f->seq, .on_end = on_end, .arg = f};
  f->reader = sl_reader_open(f->base.worker->loop, fd, &o);
  if (!f->reader) {
    f->next++;
    open_next(f);
  }
}

static void open_next(file_in_t *f) {
  if (f->stopped) return;
  if (f->next >= f->nfiles) {
    sl_input_eof(&f->base);
    return;
  }
  f->open_req.data = f;
  int rc = uv_fs_open(f->base.worker->loop, &f->open_req, f->files[f->next], O_RDONLY | O_CLOEXEC, 0, on_open);
  if (rc) {
    sl_logf(SL_LOG_ERROR, stream_name(&f->base), f->base.label, "cannot open %s: %s", f->files[f->next],
            uv_strerror(rc));
    f->next++;
    open_next(f);
    return;
  }
  f->opening = 1;
}

static int file_start(sl_input_t *in) {
  file_in_t *f = (file_in_t *)in;
  for (uint32_t i = 0; i < f->npatterns; i++) {
    const char *p = f->patterns[i];
    if (!strpbrk(p, "*?[")) {
      struct stat st;
      if (stat(p, &st) != 0) {
        sl_logf(SL_LOG_ERROR, stream_name(in), in->label, "cannot read %s: %s", p, strerror(errno));
        return -1;
      }
      add_file(f, p);
      continue;
    }
    glob_t g;
    int rc = glob(p, GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH) {
      sl_logf(SL_LOG_WARN, stream_name(in), in->label, "no file matches %s", p);
    } else if (rc != 0) {
      sl_logf(SL_LOG_ERROR, stream_name(in), in->label, "cannot expand %s: %s", p,
              rc == GLOB_NOSPACE ? "out of memory" : "read error");
      return -1;
    } else {
      for (size_t j = 0; j < g.gl_pathc; j++) add_file(f, g.gl_pathv[j]);
    }
    if (rc != GLOB_NOMATCH) globfree(&g);
  }
  open_next(f);
  return 0;
}

static void file_resume(sl_input_t *in) { sl_reader_resume(((file_in_t *)in)->reader); }

static void file_stop(sl_input_t *in) {
  file_in_t *f = (file_in_t *)in;
  f->stopped = 1;
  sl_reader_close(f->reader);
  f->reader = NULL;
}

static void file_destroy(sl_input_t *in) {
  file_in_t *f = (file_in_t *)in;
  file_stop(in);
  if (f->opening) f->destroyed = 1;   /* on_open frees */
  else free_all(f);
}

static const sl_input_vt vt = {file_start, file_resume, file_stop, file_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *file_create(sl_build_t *b, const sl_cnode_t *conf) {
  file_in_t *f = sl_xcalloc(1, sizeof(*f));
  sl_component_init_input(&f->base, &vt, &spec, b);
  const sl_cnode_t *paths = sl_cnode_get(conf, "paths");
  int bad = !(f->scan = sl_scanconf_input(conf, b->diags));
  if (paths && paths->type == SL_CN_SCALAR && paths->str) {
    f->patterns = sl_xcalloc(1, sizeof(*f->patterns));
    f->patterns[f->npatterns++] = sl_build_path(b, paths->str);
  } else if (paths && paths->type == SL_CN_SEQ) {
    f->patterns = sl_xcalloc(paths->n ? paths->n : 1, sizeof(*f->patterns));
    for (uint32_t i = 0; i < paths->n; i++)
      if (paths->items[i]->str && *paths->items[i]->str)
        f->patterns[f->npatterns++] = sl_build_path(b, paths->items[i]->str);
  }
  if (!bad && f->npatterns == 0) {
    sl_diag_add(b->diags, paths ? paths : conf, "paths", "at least one path is required");
    bad = 1;
  }
  if (bad) {
    free_all(f);
    return NULL;
  }
  return f;
}

static const sl_spec_t spec = {
  .name = "file",
  .kind = SL_KIND_INPUT,
  .summary = "Reads messages from files, line by line or whole.",
  .desc =
    "Reads each file named in `paths` in turn, in 64 KiB chunks on the loop's thread pool, so "
    "large files never block the loop and reading pauses while the stream has `max_in_flight` "
    "transactions open. Lines read together are emitted as one batch (one transaction) of at "
    "most 1024 messages.\n\n"
    "The input finishes after the last file: a run whose inputs are all finished exits once "
    "everything is delivered. A file that cannot be opened at its turn is logged and skipped.\n\n"
    "Metadata: `path`, the file the message came from (relative entries resolved against the "
    "config file's directory).",
  .fields = fields,
  .example =
    "input:\n"
    "  file:\n"
    "    paths: [ ./data/*.ndjson, /var/log/app.log ]\n"
    "    codec: ndjson\n",
  .create = file_create,
};
SL_REGISTER(spec)
