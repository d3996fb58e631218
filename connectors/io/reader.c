#include "reader.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A read brings at most CHUNK bytes; a batch carries at most MAX_LINES lines so
 * one transaction stays small while a 64 KiB read still costs one emit. */
enum { CHUNK = 64 * 1024, MAX_LINES = 1024 };

struct sl_reader {
  sl_reader_opts_t o;
  char *path;
  uv_loop_t *loop;
  int fd;
  int is_stream;
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_pipe_t pipe;
    uv_tty_t tty;
    uv_tcp_t tcp;
  } h;
  uv_fs_t req;
  int reading;               /* stream: uv_read_start active; file: a uv_fs_read in flight */
  int eof, err, ended, closing;
  sl_scanner_t *sc;
  char *buf;                 /* read, not yet taken by the scanner */
  size_t len, cap;
  sl_batch_t *held;          /* taken from the buffer, waiting for readiness */
};

static void reader_free(sl_reader_t *r) {
  if (r->o.own_fd && !r->is_stream && r->fd >= 0) close(r->fd);
  sl_batch_free(r->held);
  sl_scanner_free(r->sc);
  free(r->buf);
  free(r->path);
  free(r);
}

static void push_msg(sl_reader_t *r, sl_batch_t **b, const char *p, size_t n, const char *err, const char *tar_name) {
  if (!*b) *b = sl_batch_new(64);
  sl_msg_t *m = sl_msg_new(p, n);
  if (r->path) sl_kv_set(&m->meta, "path", r->path, strlen(r->path));
  if (tar_name) sl_kv_set(&m->meta, "tar_name", tar_name, strlen(tar_name));
  if (err) sl_msg_set_error(m, err);
  if (r->o.seq) m->seq = ++*r->o.seq;
  sl_batch_push(*b, m);
}

typedef struct take { sl_scan_out_t out; sl_reader_t *r; sl_batch_t *b; } take_t;

static void emit(sl_scan_out_t *o, const char *p, size_t n, const char *err) {
  take_t *t = (take_t *)o;
  sl_reader_t *r = t->r;
  if (err)
    sl_logf(SL_LOG_ERROR, r->o.in->stream ? r->o.in->stream->name : NULL, r->o.in->label, "%s%s%s", err,
            r->path ? ": " : "", r->path ? r->path : "");
  push_msg(r, &t->b, p, n, err, o->tar_name);
  o->room--;
}

/* Messages the scanner cuts off the buffer; what it leaves stays for the next read. */
static sl_batch_t *take(sl_reader_t *r) {
  take_t t = {{emit, MAX_LINES, NULL}, r, NULL};
  size_t used = sl_scanner_scan(r->sc, r->buf, r->len, r->eof, &t.out);
  if (used) {
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
  }
  return t.b;
}

static uv_buf_t free_space(sl_reader_t *r) {
  if (r->cap - r->len < CHUNK) {
    r->cap = r->len + CHUNK;
    r->buf = sl_xrealloc(r->buf, r->cap);
  }
  return uv_buf_init(r->buf + r->len, (unsigned)(r->cap - r->len));
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  *buf = free_space(h->data);
}

static void pump(sl_reader_t *r);

static void got(sl_reader_t *r, ssize_t n) {
  if (n > 0) {
    r->len += (size_t)n;
  } else if (n < 0) {
    if (n != UV_EOF) {
      sl_logf(SL_LOG_ERROR, r->o.in->stream ? r->o.in->stream->name : NULL, r->o.in->label,
              "read error%s%s: %s", r->path ? " on " : "", r->path ? r->path : "", uv_strerror((int)n));
      r->err = 1;
    }
    r->eof = 1;
  }
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  sl_reader_t *r = s->data;
  if (n == 0) return;
  got(r, n);
  if (r->eof) {
    uv_read_stop(s);
    r->reading = 0;
  }
  pump(r);
}

static void fs_read_cb(uv_fs_t *req) {
  sl_reader_t *r = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  r->reading = 0;
  if (r->closing) {
    reader_free(r);
    return;
  }
  got(r, n == 0 ? UV_EOF : n);
  pump(r);
}

static int read_more(sl_reader_t *r) {
  if (r->reading) return 0;
  int rc;
  if (r->is_stream) {
    rc = uv_read_start(&r->h.s, alloc_cb, read_cb);
  } else {
    uv_buf_t buf = free_space(r);
    rc = uv_fs_read(r->loop, &r->req, r->fd, &buf, 1, -1, fs_read_cb);
  }
  if (rc == 0) r->reading = 1;
  return rc;
}

static void start_reading(sl_reader_t *r) {
  int rc = read_more(r);
  if (rc == 0) return;
  got(r, rc);
  pump(r);
}

static void pause_reading(sl_reader_t *r) {
  /* A file read in flight cannot be cancelled; its bytes just wait in the buffer. */
  if (r->is_stream && r->reading) {
    uv_read_stop(&r->h.s);
    r->reading = 0;
  }
}

/* Emits what the buffer holds while the input is ready, then reads more, waits
 * for resume, or ends. Only what the scanner keeps of one message is held
 * while waiting, so memory stays under its buffer size + CHUNK. */
static void pump(sl_reader_t *r) {
  if (r->closing || r->ended) return;
  for (;;) {
    if (!r->held) r->held = take(r);
    if (!r->held) break;
    if (!sl_input_ready(r->o.in)) {
      pause_reading(r);
      return;
    }
    sl_batch_t *b = r->held;
    r->held = NULL;
    sl_input_emit(r->o.in, b, NULL, NULL);
  }
  if (r->eof) {
    r->ended = 1;
    pause_reading(r);
    r->o.on_end(r, r->err ? -1 : 0, r->o.arg);
    return;
  }
  if (sl_input_ready(r->o.in)) start_reading(r);
  else pause_reading(r);
}

static void on_handle_closed(uv_handle_t *h) { reader_free(h->data); }

sl_reader_t *sl_reader_open(uv_loop_t *loop, int fd, const sl_reader_opts_t *opts) {
  sl_reader_t *r = sl_xcalloc(1, sizeof(*r));
  r->o = *opts;
  r->path = opts->path ? sl_xstrdup(opts->path) : NULL;
  r->loop = loop;
  r->fd = fd;
  r->sc = sl_scanner_new(opts->scan, opts->path);
  uv_handle_type t = uv_guess_handle(fd);
  int rc = 0, inited = 0;
  if (t == UV_TTY || t == UV_NAMED_PIPE || t == UV_TCP) {
    /* libuv takes the fd over (non-blocking, closed with the handle): give it
     * a duplicate so that the original (stdin) stays ours. */
    int dfd = dup(fd);
    if (dfd < 0) {
      rc = uv_translate_sys_error(errno);
    } else {
      r->is_stream = 1;
      if (t == UV_TTY) {
        rc = uv_tty_init(loop, &r->h.tty, dfd, 1);
        inited = rc == 0;
      } else if (t == UV_TCP) {
        uv_tcp_init(loop, &r->h.tcp);
        inited = 1;
        rc = uv_tcp_open(&r->h.tcp, dfd);
      } else {
        uv_pipe_init(loop, &r->h.pipe, 0);
        inited = 1;
        rc = uv_pipe_open(&r->h.pipe, dfd);
      }
      r->h.h.data = r;
      if (rc) close(dfd);
      if (opts->own_fd) close(fd);
    }
  } else if (t != UV_FILE) {
    rc = UV_EINVAL;
  }
  r->req.data = r;
  /* Never calls back from here: the first bytes arrive from the loop. */
  if (!rc) rc = read_more(r);
  if (rc) {
    sl_logf(SL_LOG_ERROR, opts->in->stream ? opts->in->stream->name : NULL, opts->in->label,
            "cannot read %s: %s", opts->path ? opts->path : "stdin",
            rc == UV_EINVAL ? "unsupported file type" : uv_strerror(rc));
    if (inited) uv_close(&r->h.h, on_handle_closed);
    else reader_free(r);
    return NULL;
  }
  return r;
}

void sl_reader_resume(sl_reader_t *r) {
  if (r) pump(r);
}

void sl_reader_close(sl_reader_t *r) {
  if (!r || r->closing) return;
  r->closing = 1;
  if (r->is_stream) {
    /* The description is shared with whoever started us: give it back blocking. */
    uv_os_fd_t fd;
    if (uv_fileno(&r->h.h, &fd) == 0) {
      int fl = fcntl(fd, F_GETFL);
      if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    uv_close(&r->h.h, on_handle_closed);
  }
  else if (!r->reading) reader_free(r);
  /* else: fs_read_cb frees it */
}
