/* cnats's socket on a libuv loop (nats_loop.h). cnats calls attach, read,
 * write and detach with its connection's lock held, from the loop (a read
 * or write it processes there) or from its own threads (connect,
 * reconnect, close, a ping): they record what is wanted, which the loop
 * applies at once when the call is its own and through the async
 * otherwise. */
#include "nats_loop.h"
#include "core/xalloc.h"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct sl_nats_io {
  uv_mutex_t mu;             /* what cnats wants, refs, closing */
  uv_mutex_t use;            /* held by the loop while it calls into the connection */
  uv_async_t async;
  uv_thread_t loop_tid;
  int tid_known;
  natsConnection *nc;        /* attach's (a poll keeps its own copy) */
  int pending_fd;            /* a dup of a socket attached and not yet watched, or -1 */
  int detach;                /* stop watching the current socket */
  int events;                /* UV_READABLE | UV_WRITABLE wanted */
  int closing, dead, refs;
  uv_poll_t *poll;           /* loop only: the watched socket's (a poll_t) */
  void (*after_read)(void *arg);
  void *arg;
};

static void unref(sl_nats_io_t *io) {
  uv_mutex_lock(&io->mu);
  int left = --io->refs;
  uv_mutex_unlock(&io->mu);
  if (left) return;
  if (io->pending_fd >= 0) close(io->pending_fd);
  uv_mutex_destroy(&io->mu);
  uv_mutex_destroy(&io->use);
  free(io);
}

typedef struct { uv_poll_t h; int fd; sl_nats_io_t *io; natsConnection *nc; } poll_t;

static void poll_closed(uv_handle_t *h) {
  poll_t *p = (poll_t *)h;
  close(p->fd);
  sl_nats_io_t *io = p->io;
  free(p);
  unref(io);
}

static void stop_watching(sl_nats_io_t *io) {
  if (!io->poll) return;
  uv_close((uv_handle_t *)io->poll, poll_closed);
  io->poll = NULL;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poll_t *p = (poll_t *)h;
  sl_nats_io_t *io = p->io;
  int read = status < 0 || (events & UV_READABLE);
  if (sl_nats_io_enter(io)) {
    /* cnats reads once per call (another connection on the loop gets its
     * turn) and finds a broken socket by reading it */
    if (read) natsConnection_ProcessReadEvent(p->nc);
    if (status == 0 && (events & UV_WRITABLE)) natsConnection_ProcessWriteEvent(p->nc);
    sl_nats_io_leave(io);
  }
  if (read && !io->closing) io->after_read(io->arg);
}

/* Loop: what cnats asked for since the last time. */
static void apply(sl_nats_io_t *io) {
  uv_mutex_lock(&io->mu);
  int fd = io->pending_fd, detach = io->detach, events = io->events, closing = io->closing;
  natsConnection *nc = io->nc;
  io->pending_fd = -1;
  io->detach = 0;
  uv_mutex_unlock(&io->mu);
  if (closing) {
    if (fd >= 0) close(fd);
    return;
  }
  if (detach || fd >= 0) stop_watching(io);
  if (fd >= 0) {
    poll_t *p = sl_xcalloc(1, sizeof(*p));
    p->fd = fd;
    p->io = io;
    p->nc = nc;
    if (uv_poll_init(io->async.loop, &p->h, fd) != 0) {
      close(fd);
      free(p);
      return;
    }
    uv_unref((uv_handle_t *)&p->h);   /* the stream keeps the loop running, not the connection */
    uv_mutex_lock(&io->mu);
    io->refs++;
    uv_mutex_unlock(&io->mu);
    io->poll = &p->h;
  }
  if (!io->poll) return;
  if (events) uv_poll_start(io->poll, events, on_poll);
  else uv_poll_stop(io->poll);
}

static void on_async(uv_async_t *h) {
  sl_nats_io_t *io = h->data;
  uv_mutex_lock(&io->mu);
  io->loop_tid = uv_thread_self();
  io->tid_known = 1;
  uv_mutex_unlock(&io->mu);
  apply(io);
}

/* With io->mu held: applied now on the loop, else through the async. The
 * loop's own calls come with cnats's connection lock held (inside a read
 * or write it processes): uv_poll_start and stop do not call back. */
static void changed_locked(sl_nats_io_t *io, int *now) {
  uv_thread_t self = uv_thread_self();
  *now = 0;
  if (io->closing) return;
  if (io->tid_known && uv_thread_equal(&self, &io->loop_tid)) *now = 1;
  else uv_async_send(&io->async);
}

static natsStatus io_attach(void **user, void *loop, natsConnection *nc, natsSock fd) {
  sl_nats_io_t *io = loop;
  *user = io;
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  /* The same again over it, where ThreadSanitizer sees it made: it does
   * not model fcntl's F_DUPFD, took the loop's close of d for a race with
   * the number's earlier life on another thread, and failed an internal
   * check reporting it. */
  if (d >= 0 && dup3(fd, d, O_CLOEXEC) < 0) {
    close(d);
    d = -1;
  }
  if (d < 0) return NATS_SYS_ERROR;
  int now;
  uv_mutex_lock(&io->mu);
  if (io->closing) {
    uv_mutex_unlock(&io->mu);
    close(d);
    return NATS_CONNECTION_CLOSED;
  }
  if (io->pending_fd >= 0) close(io->pending_fd);
  io->pending_fd = d;
  io->nc = nc;
  io->events = UV_READABLE;
  changed_locked(io, &now);
  uv_mutex_unlock(&io->mu);
  if (now) apply(io);
  return NATS_OK;
}

static natsStatus want(void *user, int event, bool add) {
  sl_nats_io_t *io = user;
  int now;
  uv_mutex_lock(&io->mu);
  io->events = add ? io->events | event : io->events & ~event;
  changed_locked(io, &now);
  uv_mutex_unlock(&io->mu);
  if (now) apply(io);
  return NATS_OK;
}

static natsStatus io_read(void *user, bool add) { return want(user, UV_READABLE, add); }
static natsStatus io_write(void *user, bool add) { return want(user, UV_WRITABLE, add); }

static natsStatus io_detach(void *user) {
  sl_nats_io_t *io = user;
  int now;
  uv_mutex_lock(&io->mu);
  if (io->pending_fd >= 0) close(io->pending_fd);
  io->pending_fd = -1;
  io->detach = 1;
  io->events = 0;
  changed_locked(io, &now);
  uv_mutex_unlock(&io->mu);
  if (now) apply(io);
  return NATS_OK;
}

sl_nats_io_t *sl_nats_io_new(uv_loop_t *loop, void (*after_read)(void *arg), void *arg) {
  sl_nats_io_t *io = sl_xcalloc(1, sizeof(*io));
  uv_mutex_init(&io->mu);
  uv_mutex_init(&io->use);
  io->pending_fd = -1;
  io->refs = 2;              /* the loop's, the connection's */
  io->after_read = after_read;
  io->arg = arg;
  uv_async_init(loop, &io->async, on_async);
  uv_unref((uv_handle_t *)&io->async);
  io->async.data = io;
  return io;
}

natsStatus sl_nats_io_options(sl_nats_io_t *io, natsOptions *o) {
  natsStatus s = natsOptions_SetEventLoop(o, io, io_attach, io_read, io_write, io_detach);
  return s == NATS_OK ? natsOptions_SetSendAsap(o, true) : s;
}

int sl_nats_io_enter(sl_nats_io_t *io) {
  uv_mutex_lock(&io->use);
  if (!io->dead) return 1;
  uv_mutex_unlock(&io->use);
  return 0;
}

void sl_nats_io_leave(sl_nats_io_t *io) { uv_mutex_unlock(&io->use); }

void sl_nats_io_dead(sl_nats_io_t *io) {
  if (!io) return;
  uv_mutex_lock(&io->use);
  io->dead = 1;
  uv_mutex_unlock(&io->use);
}

void sl_nats_io_settle(sl_nats_io_t *io) {
  if (io) apply(io);
}

void sl_nats_io_release(sl_nats_io_t *io) {
  if (io) unref(io);
}

static void async_closed(uv_handle_t *h) { unref(h->data); }

void sl_nats_io_close(sl_nats_io_t *io) {
  if (!io) return;
  uv_mutex_lock(&io->mu);
  io->closing = 1;
  uv_mutex_unlock(&io->mu);
  stop_watching(io);
  uv_close((uv_handle_t *)&io->async, async_closed);
}
