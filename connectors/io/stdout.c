/* `stdout` output: writes messages to standard output; a batch is acked once
 * its bytes were handed to the kernel. */
#include "core/component.h"
#include "core/log.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const codecs[] = {"lines", "all", NULL};

static const sl_field_t fields[] = {
  {"codec", SL_F_ENUM, "lines", 0,
   "`lines`: each message followed by a newline. `all`: message contents written as they "
   "are, with nothing between them.", codecs, NULL},
  SL_BATCHING_FIELD,
  {0},
};

typedef struct pend {
  sl_batch_t *b;
  sl_write_cb cb;
  void *arg;
} pend_t;

/* Bytes of the batches written since the last flush, and whom to tell. */
typedef struct queue {
  char *buf;
  size_t len, cap;
  pend_t *p;
  uint32_t n, pcap;
} queue_t;

typedef struct out {
  sl_output_t base;
  int all;
  int fd;                    /* our duplicate of fd 1, or -1 */
  int is_stream;             /* pipe/tty/socket through libuv; else write(2) */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h;
  int handle_open;           /* initialised, close callback not yet run */
  uv_write_t req;
  int writing, completing, closing, destroyed;
  queue_t q[2];              /* q[cur] collects; the other one is being written */
  int cur;
  void (*close_done)(sl_output_t *, void *);
  void *close_arg;
} out_t;

static void out_free(out_t *s) {
  for (int i = 0; i < 2; i++) {
    free(s->q[i].buf);
    free(s->q[i].p);
  }
  free(s);
}

static void append(out_t *s, queue_t *q, const sl_batch_t *b) {
  size_t need = q->len + sl_batch_bytes(b) + (s->all ? 0 : b->n);
  if (need > q->cap) {
    q->cap = need > q->cap * 2 ? need : q->cap * 2;
    q->buf = sl_xrealloc(q->buf, q->cap);
  }
  for (uint32_t i = 0; i < b->n; i++) {
    const sl_bytes_t *c = b->msgs[i]->content;
    memcpy(q->buf + q->len, c->data, c->len);
    q->len += c->len;
    if (!s->all) q->buf[q->len++] = '\n';
  }
}

static void finish_close(out_t *s);
static void flush(out_t *s);

static void complete(out_t *s, queue_t *q, int status) {
  const char *err = status ? uv_strerror(status) : NULL;
  char *msg = err ? sl_xasprintf("stdout: %s", err) : NULL;
  s->completing = 1;
  for (uint32_t i = 0; i < q->n; i++) q->p[i].cb(&s->base, q->p[i].b, status ? -1 : 0, msg, q->p[i].arg);
  s->completing = 0;
  free(msg);
  q->n = 0;
  q->len = 0;
  if (s->q[s->cur].n) flush(s);
  else if (s->closing) finish_close(s);
}

static void on_write(uv_write_t *req, int status) {
  out_t *s = req->data;
  s->writing = 0;
  if (s->destroyed) return;   /* cancelled at teardown: nobody waits any more */
  complete(s, &s->q[s->cur ^ 1], status);
}

static void flush(out_t *s) {
  queue_t *q = &s->q[s->cur];
  if (q->n == 0) return;
  s->cur ^= 1;
  if (q->len == 0) {
    complete(s, q, 0);
    return;
  }
  uv_buf_t buf = uv_buf_init(q->buf, (unsigned)q->len);
  s->req.data = s;
  int rc = uv_write(&s->req, &s->h.s, &buf, 1, on_write);
  if (rc == 0) s->writing = 1;
  else complete(s, q, rc);
}

static int write_fd(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return uv_translate_sys_error(errno);
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void out_write(sl_output_t *o, sl_batch_t *b, sl_write_cb cb, void *arg) {
  out_t *s = (out_t *)o;
  queue_t *q = &s->q[s->cur];
  if (!s->is_stream) {
    q->len = 0;
    append(s, q, b);
    int rc = s->fd < 0 ? UV_EBADF : write_fd(s->fd, q->buf, q->len);
    char *msg = rc ? sl_xasprintf("stdout: %s", uv_strerror(rc)) : NULL;
    cb(o, b, rc ? -1 : 0, msg, arg);
    free(msg);
    return;
  }
  append(s, q, b);
  if (q->n == q->pcap) {
    q->pcap = q->pcap ? q->pcap * 2 : 16;
    q->p = sl_xrealloc(q->p, q->pcap * sizeof(*q->p));
  }
  q->p[q->n++] = (pend_t){b, cb, arg};
  /* While a write is in flight, later batches collect into one buffer. */
  if (!s->writing && !s->completing) flush(s);
}

static void on_handle_closed(uv_handle_t *h) {
  out_t *s = h->data;
  s->handle_open = 0;
  if (s->destroyed) out_free(s);
}

static void finish_close(out_t *s) {
  s->closing = 0;
  if (s->handle_open) {
    /* The description is shared with whoever started us: give it back blocking. */
    uv_os_fd_t fd;
    if (uv_fileno(&s->h.h, &fd) == 0) {
      int fl = fcntl(fd, F_GETFL);
      if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (!uv_is_closing(&s->h.h)) uv_close(&s->h.h, on_handle_closed);
  } else if (s->fd >= 0) {
    close(s->fd);
  }
  s->fd = -1;
  if (s->close_done) s->close_done(&s->base, s->close_arg);
}

static int out_start(sl_output_t *o) {
  out_t *s = (out_t *)o;
  s->fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (s->fd < 0) {
    sl_logf(SL_LOG_ERROR, o->stream ? o->stream->name : NULL, o->label, "stdout unusable: %s", strerror(errno));
    return -1;
  }
  uv_handle_type t = uv_guess_handle(s->fd);
  if (t == UV_FILE) return 0;
  int rc;
  if (t == UV_TTY) {
    rc = uv_tty_init(o->worker->loop, &s->h.tty, s->fd, 0);
    s->handle_open = rc == 0;
  } else {
    uv_pipe_init(o->worker->loop, &s->h.pipe, 0);
    s->handle_open = 1;
    rc = uv_pipe_open(&s->h.pipe, s->fd);
  }
  s->h.h.data = s;
  if (rc) {
    sl_logf(SL_LOG_ERROR, o->stream ? o->stream->name : NULL, o->label, "stdout unusable: %s", uv_strerror(rc));
    if (s->handle_open) uv_close(&s->h.h, on_handle_closed);
    close(s->fd);
    s->fd = -1;
    return -1;
  }
  s->is_stream = 1;
  return 0;
}

static void out_close(sl_output_t *o, void (*done)(sl_output_t *, void *), void *arg) {
  out_t *s = (out_t *)o;
  s->close_done = done;
  s->close_arg = arg;
  if (s->writing || s->q[s->cur].n) s->closing = 1;   /* complete() finishes */
  else finish_close(s);
}

static void out_destroy(sl_output_t *o) {
  out_t *s = (out_t *)o;
  s->close_done = NULL;
  if (s->fd >= 0 || s->handle_open) finish_close(s);
  if (s->handle_open) s->destroyed = 1;   /* on_handle_closed frees */
  else out_free(s);
}

static const sl_output_vt vt = {out_start, out_write, out_close, out_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *out_create(sl_build_t *b, const sl_cnode_t *conf) {
  out_t *s = sl_xcalloc(1, sizeof(*s));
  sl_component_init_output(&s->base, &vt, &spec, b);
  s->fd = -1;
  s->all = strcmp(sl_conf_str(conf, "codec", "lines"), "all") == 0;
  return s;
}

static const sl_spec_t spec = {
  .name = "stdout",
  .kind = SL_KIND_OUTPUT,
  .summary = "Writes messages to standard output.",
  .desc =
    "Writes each message's content to standard output (logs go to standard error). A batch "
    "is acknowledged only after its bytes were handed to the kernel, so an acked message "
    "has been written. Pipes and terminals are written without blocking the loop; batches "
    "that arrive while a write is in progress are sent together in the next write. A "
    "regular file (`> out.txt`) is written directly.\n\n"
    "A closed pipe (the reader went away) fails the write, and the stream's `retry` policy "
    "applies.",
  .fields = fields,
  .example = "output:\n  stdout:\n    codec: lines\n",
  .create = out_create,
};
SL_REGISTER(spec)
