/* The HTTP server's connection layer: accepting, TLS, llhttp parsing with
 * limits, pipelining (the parser pauses after each request until it is
 * answered; a loop, not recursion, goes on to the next), responses,
 * streamed and taken-over connections, timeouts (read, idle, send), and
 * reading paused while a client is ahead of its answers. */
#include "http_int.h"
#include "core/blocks.h"
#include "core/dec.h"
#include "core/metrics.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

static llhttp_settings_t g_settings;

/* ---------- small helpers ---------- */

/* s into a cap-byte field, cut to fit (snprintf's "%s" without its cost
 * on the request path). */
static void set_str(char *dst, size_t cap, const char *s) {
  size_t n = strlen(s);
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *sl_http_form_decode(const char *s, size_t n, size_t *out_len) {
  char *o = sl_xmalloc(n + 1);
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') o[j++] = ' ';
    else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      o[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else o[j++] = s[i];
  }
  o[j] = 0;
  *out_len = j;
  return o;
}

/* Percent-decodes in place; an encoded '/' or NUL makes the path invalid so
 * that routes and static files never see a hidden separator. */
static int path_decode(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
      char c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
      if (c == '/' || c == 0) return -1;
      *o++ = c;
      p += 2;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
  return 0;
}

/* A pipelining client is read no further while this many bytes wait to be
 * parsed, or while this many answers wait to be written (it pipelines faster
 * than it takes its answers): memory per connection stays bounded however
 * many requests it sends. */
enum { MAX_UNPARSED = 64 << 10, MAX_UNANSWERED = 64 };
/* A taken-over (WebSocket) connection is read no further while this many
 * bytes wait to be sent to it: replies to what it sends (pongs, echoes) do
 * not pile up for a peer that does not read. */
#define RAW_MAX_QUEUED (4 * SL_HTTP_MAX_BUFFER)
/* Queued bytes written at once instead of at the end of the loop turn. */
enum { SENDQ_NOW = 64 << 10 };

/* ---------- send timeout ---------- */

/* While bytes wait to be written to a connection, one timer per server (not
 * per connection: it would be most of an idle one's memory) looks at it
 * SEND_CHECKS times per send_timeout, and drops it once the socket took none
 * of them for send_timeout (so between 1 and 1 + 1/SEND_CHECKS times it after
 * the peer stopped reading). Progress is what the socket takes, not answers
 * completed: a slow reader of a large answer stays while it reads, and a
 * stream with nothing to send (an idle SSE client) is never looked at. */
enum { SEND_CHECKS = 4 };

static uint64_t taken(const conn_t *c) { return c->wired - c->tcp.write_queue_size; }

/* Bytes waiting for the client: in the socket's write queue and in the send queue. */
static size_t queued(const conn_t *c) { return c->tcp.write_queue_size + c->sendq.bytes; }

static void unwatch(conn_t *c) {
  if (!c->watched) return;
  c->watched = 0;
  if (--c->srv->watched == 0) uv_timer_stop(c->srv->sweep);
}

static void on_sweep(uv_timer_t *t) {
  sl_http_t *s = t->data;
  uint64_t now = uv_now(t->loop);
  /* A closed connection stays linked to its successor until the loop frees
   * it, after this callback: the walk may go on through it. */
  for (conn_t *c = SL_DLIST_FIRST(&s->conns, conn_t, node), *next; c; c = next) {
    next = SL_DLIST_NEXT(c, conn_t, node);
    if (!c->watched || c->closing) continue;
    if (!c->tcp.write_queue_size) {
      unwatch(c);
    } else if (taken(c) != c->taken) {
      c->taken = taken(c);
      c->taken_at = now;
    } else if (now - c->taken_at >= (uint64_t)s->send_timeout_ms) {
      /* Nothing more is sent to it, not even a WebSocket close: it reads
       * nothing. A reset, as nginx's reset_timedout_connection, so that the
       * kernel does not keep the socket buffers (MiBs) for an orphan that
       * would wait on the peer's window. */
      if (s->hw) {   /* counted on the engine's loop */
        sl_hmsg_t *m = sl_hmsg_new(HM_DROPPED, NULL);
        m->owner = c->owner;
        sl_hgroup_to_engine(s, m);
      }
      else sl_http_slow_dropped(c->owner ? c->owner : "", NULL, "send_timeout");
      c->reset = 1;
      sl_http_conn_close(c);
    }
  }
}

/* After a write: bytes the socket did not take at once start the clock. */
static void watch_send(conn_t *c) {
  sl_http_t *s = c->srv;
  if (c->watched || s->send_timeout_ms <= 0 || !c->tcp.write_queue_size) return;
  c->watched = 1;
  c->taken = taken(c);
  c->taken_at = uv_now(c->tcp.loop);
  if (s->watched++ == 0) {
    uint64_t every = (uint64_t)s->send_timeout_ms / SEND_CHECKS ? (uint64_t)s->send_timeout_ms / SEND_CHECKS : 1;
    uv_timer_start(s->sweep, on_sweep, every, every);
  }
}

void sl_http_sweep_init(sl_http_t *s) {
  s->sweep = sl_xmalloc(sizeof(*s->sweep));
  uv_timer_init(s->worker->loop, s->sweep);
  s->sweep->data = s;
  uv_unref((uv_handle_t *)s->sweep);
  s->flusher = sl_xmalloc(sizeof(*s->flusher));
  uv_prepare_init(s->worker->loop, s->flusher);
  s->flusher->data = s;
  uv_unref((uv_handle_t *)s->flusher);
}

static void sweep_closed(uv_handle_t *h) { free(h); }

void sl_http_sweep_free(sl_http_t *s) {
  uv_close((uv_handle_t *)s->sweep, sweep_closed);
  uv_close((uv_handle_t *)s->flusher, sweep_closed);
  free(s->to_flush);
  free(s->rbuf);
}

/* ---------- flushing send queues ---------- */

static void on_flush(uv_prepare_t *p);

/* c's send queue is written before the loop next waits (a prepare handle:
 * after this turn's timers and I/O callbacks, so that every event a turn
 * broadcasts goes out in one writev per client). */
static void flush_later(conn_t *c) {
  sl_http_t *s = c->srv;
  if (c->flush_at || c->closing) return;
  if (s->nto_flush == s->cap_flush) {
    s->cap_flush = s->cap_flush ? s->cap_flush * 2 : 64;
    s->to_flush = sl_xrealloc(s->to_flush, s->cap_flush * sizeof(*s->to_flush));
  }
  s->to_flush[s->nto_flush++] = c;
  c->flush_at = s->nto_flush;
  if (s->nto_flush == 1) uv_prepare_start(s->flusher, on_flush);
}

static void flush_unlist(conn_t *c) {
  sl_http_t *s = c->srv;
  if (!c->flush_at) return;
  conn_t *last = s->to_flush[--s->nto_flush];
  s->to_flush[c->flush_at - 1] = last;
  last->flush_at = c->flush_at;
  c->flush_at = 0;
  if (!s->nto_flush) uv_prepare_stop(s->flusher);
}

/* ---------- connection lifetime ---------- */

static void conn_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles > 0) return;
  free(c->url.v);
  free(c->field.v);
  free(c->value.v);
  free(c->hdrs.v);
  free(c->hvlen);
  free(c->hkv);
  free(c->body);
  free(c->in);
  sl_tls_free(c->tls);
  free(c);
}

void sl_http_req_free(sl_http_req_t *r) {
  if (!r) return;
  free(r->path);   /* and the query after it */
  sl_kv_clear(&r->headers);
  sl_kv_clear(&r->params);
  sl_kv_clear(&r->jwt);
  free(r->user);
  if (r->body) sl_bytes_unref(r->body);
  sl_blocks_put(r, sizeof(*r));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

struct sl_http_stream {
  conn_t *conn;              /* NULL once the client is gone */
  void (*on_close)(void *arg);
  void (*on_data)(void *arg, const char *p, size_t n);   /* raw (taken over) connections */
  void *arg;
  void (*on_drain)(void *arg);   /* once the socket buffer is down to drain_below */
  void *drain_arg;
  size_t drain_below;
  int64_t *open;             /* sluice_http_streams{kind}, while the client is there */
  /* Its connection is moving over from an HTTP worker: what is written
   * waits in pendq, a close in closed (then the move frees the stream). */
  sl_hlink_t *pending;
  sl_sendq_t pendq;
  int closed;
  /* Engine side of a stream whose connection stays on its worker
   * (sl_http_req_stay): the engine's ref of the link, whether the client
   * left, the fan part it joined, and who hears that it is slow. */
  sl_hlink_t *remote;
  int remote_gone;
  struct sl_fan_site *site;
  void (*on_slow)(void *arg);
  void *slow_arg;
  int held;                  /* sl_http_stream_hold: the client is not read */
  /* sl_http_stream_when_written, first asked first: once placed, `at` is
   * the count of bytes its connection on this loop must have handed the
   * socket; unplaced while the connection moves over (placed when it
   * arrives) or when it stays on a worker (whose HM_WRITTEN ends the first). */
  struct wmark {
    struct wmark *next;
    uint64_t at;
    int placed;
    void (*cb)(void *, int);
    void *arg;
  } *marks, **marks_tail;
};

static void mark_add(struct sl_http_stream *st, void (*cb)(void *, int), void *arg) {
  struct wmark *m = sl_xmalloc(sizeof(*m));
  *m = (struct wmark){NULL, 0, 0, cb, arg};
  if (!st->marks) st->marks_tail = &st->marks;
  *st->marks_tail = m;
  st->marks_tail = &m->next;
}

/* The first mark ends with status. */
static void mark_end(struct sl_http_stream *st, int status) {
  struct wmark *m = st->marks;
  st->marks = m->next;
  m->cb(m->arg, status);
  free(m);
}

/* The client left or the stream closes: nothing more is known to be written. */
static void marks_fail(struct sl_http_stream *st) {
  while (st->marks) mark_end(st, -1);
}

/* c's socket took more: the marks it reached end. */
static void marks_reached(conn_t *c) {
  for (struct sl_http_stream *st; !c->closing && (st = c->stream) && st->marks && st->marks->placed &&
                                  taken(c) >= st->marks->at;)
    mark_end(st, 0);
}

static void flush(conn_t *c, int now);

/* The marks not placed yet wait for every byte written to c so far. */
static void marks_place(conn_t *c, struct sl_http_stream *st) {
  if (c->sendq.bytes) flush(c, 1);
  if (c->closing) return;   /* it failed them */
  for (struct wmark *m = st->marks; m; m = m->next)
    if (!m->placed) {
      m->at = c->wired;
      m->placed = 1;
    }
  marks_reached(c);
}

static void stream_ended(struct sl_http_stream *st) {
  if (st->open) (*st->open)--;
  st->open = NULL;
}

static void stream_gone(struct sl_http_stream *st) {
  stream_ended(st);
  marks_fail(st);
  st->conn = NULL;
  if (st->on_close) st->on_close(st->arg);
}

void sl_http_conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  sl_http_t *s = c->srv;
  sl_dlist_remove(&s->conns, &c->node);
  s->nconns--;
  if (s->hw) sl_hgroup_admit(s, -1);
  sl_http_req_free(c->req);
  c->req = NULL;
  /* A handler still holds the busy request: it learns the client left. */
  sl_http_req_t *busy = c->busy;
  c->busy = NULL;
  if (c->moving) {
    c->moving->kind = HM_MOVED;   /* fd -1: nothing moves */
    sl_hgroup_to_engine(s, c->moving);
    c->moving = NULL;
  } else if (c->link && busy) {
    sl_hgroup_to_engine(s, sl_hmsg_new(HM_GONE, c->link));
  }
  if (c->link) {
    c->link->c = NULL;
    sl_hlink_unref(c->link);
    c->link = NULL;
    busy = NULL;   /* the engine's */
  }
  if (busy) {
    busy->conn = NULL;
    if (busy->on_gone) busy->on_gone(busy, busy->gone_arg);
  }
  if (c->stream) stream_gone(c->stream);
  unwatch(c);
  flush_unlist(c);
  sl_sendq_clear(&c->sendq);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
  sl_fd_closing((uv_handle_t *)&c->tcp);
  if (!c->reset || uv_tcp_close_reset(&c->tcp, conn_handle_closed) != 0)
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void on_timeout(uv_timer_t *t);

/* A connection's clock moves at least three times a request (read_timeout,
 * stopped, idle_timeout): rather than a timer restart or stop each time (a
 * heap operation each, ~1,200 instructions a keep-alive request), the
 * deadline moves (0: stopped) and a timer due before it, once it fires,
 * waits again for what is left (on_timeout). */
static void arm_timer(conn_t *c, int64_t ms) {
  if (ms <= 0) {
    c->deadline = 0;
    return;
  }
  c->deadline = uv_now(c->tcp.loop) + (uint64_t)ms;
  if (!uv_is_active((uv_handle_t *)&c->timer) || uv_timer_get_due_in(&c->timer) > (uint64_t)ms)
    uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
}

/* The connection's last answer is under way: no further request is read,
 * and the connection closes once it is written (a client that stops taking
 * it meets send_timeout). */
static void finish(conn_t *c) {
  c->finished = 1;
  arm_timer(c, 0);
}

/* ---------- writing ---------- */

typedef struct wreq {
  uv_write_t w;
  conn_t *c;
  int close_after;
  sl_sendq_t held;           /* send queue items under way (their bytes are the buffers) */
  char data[];
} wreq_t;

static void drain(conn_t *c);
static void set_reading(conn_t *c);

/* A stream's drain callback, once what waits is down to its bound. */
static void drained(conn_t *c) {
  struct sl_http_stream *st = c->stream;
  if (st && st->on_drain && queued(c) <= st->drain_below) {
    void (*cb)(void *) = st->on_drain;
    st->on_drain = NULL;
    cb(st->drain_arg);
  }
}

static void move_now(conn_t *c);

static void on_written(uv_write_t *w, int status) {
  wreq_t *wr = (wreq_t *)w;
  conn_t *c = wr->c;
  c->writes--;
  int close_after = wr->close_after;
  sl_sendq_clear(&wr->held);
  free(wr);
  if (c->closing) return;
  if (status < 0 || close_after) {
    sl_http_conn_close(c);
    return;
  }
  if (c->moving) {
    if (!c->writes) move_now(c);
    return;
  }
  /* What was queued while the socket was full goes out in one piece. */
  if (c->sendq.bytes) flush_later(c);
  drained(c);
  marks_reached(c);
  /* Answers went out: a paused pipeline or a paused raw reader goes on. */
  if (c->closing || c->finished) return;
  if (c->stream) set_reading(c);
  else if (c->writes <= MAX_UNANSWERED / 2) drain(c);
}

/* Puts bytes on the wire as they are (ciphertext, or plaintext without TLS). */
static void wire_write(conn_t *c, const char *head, size_t hlen, const void *body, size_t blen, int close_after);
static void flush(conn_t *c, int now);

static void write_raw(conn_t *c, const char *head, size_t hlen, const void *body, size_t blen, int close_after) {
  if (c->sendq.bytes) flush(c, 1);   /* what was queued goes first */
  if (c->closing) return;
  if (!c->tls) {
    wire_write(c, head, hlen, body, blen, close_after);
    return;
  }
  sl_tls_send(c->tls, head, hlen);
  sl_tls_send(c->tls, body, blen);
  size_t n = 0;
  char *out = sl_tls_take_output(c->tls, &n);
  wire_write(c, out ? out : "", n, NULL, 0, close_after);
  free(out);
}

static void wire_write(conn_t *c, const char *head, size_t hlen, const void *body, size_t blen, int close_after) {
  if (!close_after && !c->stream) {
    /* An answer the socket takes at once needs no write request: no copy,
     * no completion callback, and no epoll_ctl (libuv re-arms the socket's
     * registration when a write request completes: a syscall a request).
     * What it does not take goes in a request as before. A closing write
     * and a stream's (marks, drain callbacks) keep their completion. */
    uv_buf_t bufs[2] = {uv_buf_init((char *)head, (unsigned)hlen), uv_buf_init((char *)body, (unsigned)blen)};
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, blen ? 2 : 1);
    if (n > 0) {
      c->wired += (uint64_t)n;
      if ((size_t)n == hlen + blen) return;
      size_t h = (size_t)n < hlen ? (size_t)n : hlen;
      head += h;
      hlen -= h;
      if (blen) {
        body = (const char *)body + ((size_t)n - h);
        blen -= (size_t)n - h;
      }
    }
  }
  wreq_t *wr = sl_xmalloc(sizeof(*wr) + hlen + blen);
  if (hlen) memcpy(wr->data, head, hlen);
  if (blen) memcpy(wr->data + hlen, body, blen);
  wr->c = c;
  wr->close_after = close_after;
  wr->held = (sl_sendq_t){0};
  uv_buf_t buf = uv_buf_init(wr->data, (unsigned)(hlen + blen));
  c->writes++;
  c->wired += hlen + blen;
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
    c->writes--;
    free(wr);
    sl_http_conn_close(c);
    return;
  }
  watch_send(c);
}

/* Writes c's send queue: as much as the socket takes at once (uv_try_write:
 * no request, no epoll_ctl), the rest with one uv_write. While an earlier
 * uv_write is under way the queue waits for it (on_written lists c again),
 * unless `now`: a write that must follow the queued bytes is next. */
static void flush(conn_t *c, int now) {
  flush_unlist(c);
  if (c->closing || !c->sendq.bytes || (c->tcp.write_queue_size && !now)) return;
  enum { IOV = 256 };   /* buffers per writev (IOV_MAX is 1024) */
  uv_buf_t bufs[IOV];
  while (c->sendq.bytes && !c->tcp.write_queue_size && !c->tls) {
    int nb = sl_sendq_gather(&c->sendq, bufs, IOV);
    size_t offered = 0;
    for (int i = 0; i < nb; i++) offered += bufs[i].len;
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)nb);
    /* An error (the client left) is not acted on here, inside a send whose
     * caller still holds the stream: uv_write below meets it again and
     * reports it from the loop, as any write error. */
    if (n < 0) break;
    c->wired += (uint64_t)n;
    sl_sendq_consume(&c->sendq, (size_t)n);
    if ((size_t)n < offered) break;   /* the socket is full */
  }
  marks_reached(c);
  if (!c->sendq.bytes) {
    drained(c);
    if (c->stream && !c->closing) set_reading(c);   /* a raw reader paused on what waited */
    return;
  }
  if (c->tls) {
    /* Encrypted in order into one buffer, written as any other answer. */
    uv_buf_t one;
    while (sl_sendq_gather(&c->sendq, &one, 1)) {
      sl_tls_send(c->tls, one.base, one.len);
      sl_sendq_consume(&c->sendq, one.len);
    }
    size_t olen = 0;
    char *out = sl_tls_take_output(c->tls, &olen);
    wire_write(c, out ? out : "", olen, NULL, 0, 0);
    free(out);
    return;
  }
  /* The rest waits in one request whose buffers are the queued bytes. */
  wreq_t *wr = sl_xcalloc(1, sizeof(*wr));
  wr->c = c;
  sl_sendq_take(&c->sendq, &wr->held);
  uint32_t count = wr->held.n - wr->held.head;
  uv_buf_t *all = sl_xmalloc(count * sizeof(uv_buf_t));
  int nb = sl_sendq_gather(&wr->held, all, (int)count);
  c->writes++;
  c->wired += wr->held.bytes;
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, all, (unsigned)nb, on_written);
  free(all);
  if (rc != 0) {
    c->writes--;
    sl_sendq_clear(&wr->held);
    free(wr);
    sl_http_conn_close(c);
    return;
  }
  watch_send(c);
}

static void on_flush(uv_prepare_t *p) {
  sl_http_t *s = p->data;
  /* flush() unlists each: the list shrinks from the end as it goes. */
  while (s->nto_flush) flush(s->to_flush[s->nto_flush - 1], 0);
}

/* The Date header changes once a second; formatting it per response would
 * show in the request rate. Per thread, as workers are. Returns its length. */
static size_t http_date(char *out, size_t cap) {
  static _Thread_local time_t cached_at;
  static _Thread_local char cached[40];
  static _Thread_local size_t cached_len;
  time_t now = time(NULL);
  if (now != cached_at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    cached_len = strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_at = now;
  }
  size_t n = cached_len < cap ? cached_len : cap - 1;
  memcpy(out, cached, n);
  out[n] = 0;
  return n;
}

/* Appends n bytes at *p (the caller sized the buffer). */
static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}
#define PUT(p, lit) put(p, lit, sizeof lit - 1)

/* The head is built with memcpy: snprintf's formatting was a sixth of the
 * instructions of a request to http_server -> drop (bench/RESULTS.md). */
static void send_response(conn_t *c, int status, const char *ctype, const void *body, size_t len,
                          const sl_kvlist_t *headers, const char *request_id, int head, int close_after) {
  char date[40];
  size_t dlen = http_date(date, sizeof date);
  const char *reason = sl_http_reason(status);
  size_t rlen = strlen(reason);
  int has_ctype = 0;
  size_t extra = 0;
  for (uint32_t i = 0; headers && i < headers->n; i++) {
    if (strcasecmp(headers->v[i].key, "content-type") == 0) has_ctype = 1;
    extra += strlen(headers->v[i].key) + headers->v[i].vlen + 4;
  }
  if (has_ctype || !(len || ctype)) ctype = NULL;
  else if (!ctype) ctype = "application/octet-stream";
  size_t clen = ctype ? strlen(ctype) : 0;
  size_t ilen = request_id ? strlen(request_id) : 0;
  /* The fixed words and numbers of the head fit in 256 bytes. */
  size_t cap = 256 + rlen + dlen + clen + ilen + extra;
  char small[1024];
  char *h = cap <= sizeof small ? small : sl_xmalloc(cap);
  char *p = PUT(h, "HTTP/1.1 ");
  p += sl_dec(p, status);
  *p++ = ' ';
  p = put(p, reason, rlen);
  p = PUT(p, "\r\nDate: ");
  p = put(p, date, dlen);
  p = PUT(p, "\r\nContent-Length: ");
  p += sl_dec_u64(p, len);
  p = PUT(p, "\r\n");
  if (ctype) {
    p = PUT(p, "Content-Type: ");
    p = put(p, ctype, clen);
    p = PUT(p, "\r\n");
  }
  if (ilen) {
    p = PUT(p, "X-Request-Id: ");
    p = put(p, request_id, ilen);
    p = PUT(p, "\r\n");
  }
  for (uint32_t i = 0; headers && i < headers->n; i++) {
    p = put(p, headers->v[i].key, strlen(headers->v[i].key));
    p = PUT(p, ": ");
    p = put(p, headers->v[i].val, strlen(headers->v[i].val));   /* to a NUL, as it always was */
    p = PUT(p, "\r\n");
  }
  p = close_after ? PUT(p, "Connection: close\r\n\r\n") : PUT(p, "Connection: keep-alive\r\n\r\n");
  write_raw(c, h, (size_t)(p - h), body, head ? 0 : len, close_after);
  if (h != small) free(h);
}

static void send_error(conn_t *c, int status, const char *msg, const char *request_id, int close_after) {
  char *body = sl_http_error_body(status, msg);
  send_response(c, status, "application/json", body, strlen(body), NULL, request_id, 0, close_after);
  free(body);
}

/* Answers c's busy request; the next one it pipelined goes on. */
static void answer(conn_t *c, int status, const char *content_type, const void *body, size_t len,
                   const sl_kvlist_t *headers, const char *request_id, int head, const char *cors) {
  c->busy = NULL;
  int close_after = !c->keep_alive || c->srv->stopping;
  sl_kvlist_t all = {0};
  if (cors) {
    if (headers) sl_kv_copy(&all, headers);
    sl_kv_add(&all, "Access-Control-Allow-Origin", cors, strlen(cors));
    sl_kv_add(&all, "Access-Control-Expose-Headers", "X-Request-Id", 12);
    sl_kv_add(&all, "Vary", "Origin", 6);
    headers = &all;
  }
  send_response(c, status, content_type, body, len, headers, request_id, head, close_after);
  sl_kv_clear(&all);
  if (close_after) finish(c);
  else drain(c);
}

static char *dup_or_null(const void *p, size_t n) {
  if (!p) return NULL;
  char *d = sl_xmalloc(n + 1);
  memcpy(d, p, n);
  d[n] = 0;
  return d;
}

/* The answer crosses to the connection's worker as copies: nothing the
 * engine's loop owns is touched there. */
static void respond_remote(sl_http_req_t *r, int status, const char *content_type, const void *body, size_t len,
                           const sl_kvlist_t *headers) {
  sl_hlink_t *l = r->link;
  sl_hmsg_t *m = sl_hmsg_new(HM_RESP, l);
  m->status = status;
  m->ctype = content_type ? sl_xstrdup(content_type) : NULL;
  m->body = dup_or_null(len ? body : NULL, len);
  m->len = len;
  for (uint32_t i = 0; headers && i < headers->n; i++)
    sl_kv_add(&m->headers, headers->v[i].key, headers->v[i].val, headers->v[i].vlen);
  set_str(m->request_id, sizeof m->request_id, r->request_id);
  m->head = r->head;
  m->cors = r->cors ? sl_xstrdup(r->cors) : NULL;
  m->owner = l->owner;
  l->r = NULL;
  r->link = NULL;
  sl_hlink_send(l, m);
  sl_hlink_unref(l);
}

void sl_http_conn_answer(conn_t *c, const sl_hmsg_t *m) {
  if (!c->busy || c->link != m->link) return;
  sl_hlink_t *l = c->link;
  c->link = NULL;
  l->c = NULL;
  sl_hlink_unref(l);
  c->owner = m->owner;
  answer(c, m->status, m->ctype, m->body, m->len, &m->headers, m->request_id, m->head, m->cors);
}

void sl_http_respond(sl_http_req_t *r, int status, const char *content_type, const void *body, size_t len,
                     const sl_kvlist_t *headers) {
  conn_t *c = r->conn;
  /* Metrics live on the engine's loop: a worker's own refusals are not counted. */
  if (!c || !c->srv->hw) sl_http_count(r, status);
  if (r->link) respond_remote(r, status, content_type, body, len, headers);
  else if (c && c->busy == r) answer(c, status, content_type, body, len, headers, r->request_id, r->head, r->cors);
  sl_http_req_free(r);
}

char *sl_http_error_body(int status, const char *msg);

/* JSON string escaping for error texts. */
static char *json_escape(const char *s) {
  size_t n = strlen(s);
  char *o = sl_xmalloc(n * 6 + 1), *p = o;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') { *p++ = '\\'; *p++ = (char)ch; }
    else if (ch == '\n') { *p++ = '\\'; *p++ = 'n'; }
    else if (ch < 0x20) p += sprintf(p, "\\u%04x", ch);
    else *p++ = (char)ch;
  }
  *p = 0;
  return o;
}

int sl_http_origin_allowed(const sl_http_req_t *r) {
  const char *origin = sl_kv_get(&r->headers, "origin");
  if (!origin || (!r->conn && !r->link)) return 1;
  const sl_cors_t *c = r->conn ? &r->conn->srv->cors : &r->link->srv->cors;
  return c->n == 0 || sl_cors_allow(c, origin) != NULL;
}

char *sl_http_error_body(int status, const char *msg) {
  char *e = json_escape(msg);
  char *body = sl_xasprintf("{\"error\":\"%s\",\"status\":%d}", e, status);
  free(e);
  return body;
}

void sl_http_error(sl_http_req_t *r, int status, const char *msg) {
  char *body = sl_http_error_body(status, msg);
  sl_http_respond(r, status, "application/json", body, strlen(body), NULL);
  free(body);
}

/* Bytes written to a stream whose connection is still moving. */
static void pend(sl_http_stream_t *st, const void *p, size_t n) {
  sl_bytes_t *b = sl_bytes_new(p, n);
  sl_sendq_push(&st->pendq, b, NULL, n);
  sl_bytes_unref(b);
}

/* A stream that stays on its worker is opened there with its head. */
static void remote_open(sl_http_stream_t *st, const char *head, size_t len) {
  sl_hmsg_t *m = sl_hmsg_new(HM_STREAM, st->remote);
  m->body = dup_or_null(head, len);
  m->len = len;
  m->raw = st->on_data != NULL;
  sl_hlink_send(st->remote, m);
}

/* Hands r's connection to a new stream (NULL conn when the client left). */
/* kind: "websocket", "sse" or "chunked", the label of sluice_http_streams. */
static sl_http_stream_t *attach_stream(sl_http_req_t *r, const char *kind, void (*on_data)(void *, const char *, size_t),
                                       void (*on_close)(void *), void *arg, conn_t **conn) {
  sl_http_stream_t *st = sl_xcalloc(1, sizeof(*st));
  st->on_close = on_close;
  st->on_data = on_data;
  st->arg = arg;
  conn_t *c = r->conn;
  *conn = NULL;
  if (r->link) {
    /* The connection is on a worker: it stays there (HM_STREAM, sent with
     * the answer's head), or it moves here (HM_MOVE), and the stream is
     * written to meanwhile as if it were (sl_http_conn_adopt). */
    sl_hlink_t *l = r->link;
    r->link = NULL;
    l->r = NULL;
    l->st = st;
    if (r->stay) {
      st->remote = l;   /* the engine's ref, r's until now */
      sl_hlink_streams(l, 1);
    } else {
      st->pending = l;
      sl_hlink_send(l, sl_hmsg_new(HM_MOVE, l));
    }
  }
  if (st->pending || st->remote) {
    st->open = sl_metric(SL_GAUGE, "sluice_http_streams", "Open SSE, WebSocket and other streamed answers.", "kind",
                         kind, NULL);
    (*st->open)++;
  }
  if (c && c->busy == r) {
    c->busy = NULL;
    c->stream = st;
    st->conn = c;
    arm_timer(c, 0);
    *conn = c;
    st->open = sl_metric(SL_GAUGE, "sluice_http_streams", "Open SSE, WebSocket and other streamed answers.", "kind",
                         kind, NULL);
    (*st->open)++;
  }
  return st;
}

sl_http_stream_t *sl_http_stream_open(sl_http_req_t *r, int status, const char *content_type,
                                      const sl_kvlist_t *headers, void (*on_close)(void *arg), void *arg) {
  conn_t *c;
  const char *kind = strncmp(content_type, "text/event-stream", 17) ? "chunked" : "sse";
  sl_http_stream_t *st = attach_stream(r, kind, NULL, on_close, arg, &c);
  if (c || st->pending || st->remote) {
    char *h = NULL;
    size_t hl = 0;
    FILE *f = open_memstream(&h, &hl);
    char date[64];
    http_date(date, sizeof date);
    fprintf(f, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
               "X-Request-Id: %s\r\n", status, sl_http_reason(status), date, content_type, r->request_id);
    if (r->cors) fprintf(f, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", r->cors);
    for (uint32_t i = 0; headers && i < headers->n; i++) fprintf(f, "%s: %s\r\n", headers->v[i].key, headers->v[i].val);
    fprintf(f, "Connection: close\r\n\r\n");
    fclose(f);
    if (c) write_raw(c, h, hl, NULL, 0, 0);
    else if (st->remote) remote_open(st, h, hl);
    else pend(st, h, hl);
    free(h);
  }
  sl_http_req_free(r);
  return st;
}

sl_http_stream_t *sl_http_sse_open(sl_http_req_t *r, void (*on_close)(void *arg), void *arg) {
  sl_kvlist_t hd = {0};
  sl_kv_add(&hd, "Cache-Control", "no-cache", 8);
  sl_kv_add(&hd, "X-Accel-Buffering", "no", 2);   /* a proxy such as nginx passes each event on at once */
  sl_http_stream_t *st = sl_http_stream_open(r, 200, "text/event-stream", &hd, on_close, arg);
  sl_kv_clear(&hd);
  return st;
}

/* Bytes the client sent right after its upgrade request are its first frames. */
static void first_frames(conn_t *c, void (*on_data)(void *, const char *, size_t), void *arg) {
  char *data = c->in;
  size_t off = c->in_off, n = c->in_len;
  c->in = NULL;
  c->in_off = c->in_len = 0;
  if (n > off) on_data(arg, data + off, n - off);
  free(data);
}

sl_http_stream_t *sl_http_takeover(sl_http_req_t *r, const void *head, size_t len,
                                   void (*on_data)(void *arg, const char *p, size_t n),
                                   void (*on_close)(void *arg), void *arg) {
  conn_t *c;
  sl_http_stream_t *st = attach_stream(r, "websocket", on_data, on_close, arg, &c);
  if (c) {
    write_raw(c, head, len, NULL, 0, 0);
    first_frames(c, on_data, arg);
    set_reading(c);
  } else if (st->pending) {
    pend(st, head, len);
  } else if (st->remote) {
    remote_open(st, head, len);
  }
  sl_http_req_free(r);
  return st;
}

/* Queues b, framed as a chunk unless the connection is raw or b is framed already. */
static void enqueue(sl_sendq_t *q, const sl_http_stream_t *st, sl_bytes_t *b, int framed) {
  if (st->on_data || framed) {
    sl_sendq_push(q, b, NULL, b->len);
  } else {
    char head[16];
    int hl = snprintf(head, sizeof head, "%zx\r\n", b->len);
    sl_sendq_push(q, NULL, head, (size_t)hl);
    sl_sendq_push(q, b, NULL, b->len);
    sl_sendq_push(q, NULL, "\r\n", 2);
  }
}

/* To a stream that stays on its worker: a copy of its own, so that the
 * worker's refs of it stay plain counts. */
static int remote_send(sl_http_stream_t *st, const void *data, size_t len, size_t max_buffer) {
  if (st->remote_gone) return -1;
  if (len) {
    sl_hmsg_t *m = sl_hmsg_new(HM_SDATA, st->remote);
    sl_hmsg_add_bytes(m, sl_bytes_new(data, len));
    m->max_buffer = max_buffer;
    sl_hlink_send(st->remote, m);
  }
  return 0;
}

static int stream_send(sl_http_stream_t *st, sl_bytes_t *b, int framed, size_t max_buffer) {
  conn_t *c = st->conn;
  if (st->remote) return remote_send(st, b->data, b->len, max_buffer);
  if (st->pending) {
    if (b->len) enqueue(&st->pendq, st, b, framed);
    return st->pendq.bytes > max_buffer ? 1 : 0;
  }
  if (!c || c->closing) return -1;
  if (!b->len) return 0;
  enqueue(&c->sendq, st, b, framed);
  /* A turn that queues a lot (a large batch) does not wait for its end:
   * what waits stays small, and a client that keeps up is never "slow". */
  if (c->sendq.bytes >= SENDQ_NOW) flush(c, 0);
  else flush_later(c);
  if (c->closing) return -1;
  return queued(c) > max_buffer ? 1 : 0;
}

int sl_http_stream_send(sl_http_stream_t *st, sl_bytes_t *b, size_t max_buffer) { return stream_send(st, b, 0, max_buffer); }

sl_bytes_t *sl_http_chunk(const sl_bytes_t *b) {
  if (!b->len) return sl_bytes_new(NULL, 0);   /* nothing to send: "0\r\n\r\n" would end the stream */
  char head[20];
  int hl = snprintf(head, sizeof head, "%zx\r\n", b->len);
  size_t len = (size_t)hl + b->len + 2;
  char *tmp = sl_xmalloc(len);   /* once per event and worker, not per client */
  memcpy(tmp, head, (size_t)hl);
  memcpy(tmp + hl, b->data, b->len);
  memcpy(tmp + hl + b->len, "\r\n", 2);
  sl_bytes_t *chunk = sl_bytes_new(tmp, len);
  free(tmp);
  return chunk;
}

int sl_http_stream_write(sl_http_stream_t *st, const void *data, size_t len, size_t max_buffer) {
  if (st->remote) return remote_send(st, data, len, max_buffer);
  if (st->pending) {
    sl_bytes_t *b = sl_bytes_new(data, len);
    int rc = sl_http_stream_send(st, b, max_buffer);
    sl_bytes_unref(b);
    return rc;
  }
  conn_t *c = st->conn;
  if (!c || c->closing) return -1;
  if (!len) return 0;
  if (st->on_data) {
    write_raw(c, data, len, NULL, 0, 0);
    if (c->closing) return -1;
    return queued(c) > max_buffer ? 1 : 0;
  }
  char head[32];
  int hl = snprintf(head, sizeof head, "%zx\r\n", len);
  char *chunk = sl_xmalloc(len + 2);
  memcpy(chunk, data, len);
  memcpy(chunk + len, "\r\n", 2);
  write_raw(c, head, (size_t)hl, chunk, len + 2, 0);
  free(chunk);
  if (c->closing) return -1;
  return queued(c) > max_buffer ? 1 : 0;
}

void sl_http_stream_hold(sl_http_stream_t *st, int hold) {
  st->held = hold;
  /* A stream still moving over is read as this says once it arrives. */
  if (st->conn && !st->conn->closing) set_reading(st->conn);
}

void sl_http_stream_on_drain(sl_http_stream_t *st, size_t below, void (*cb)(void *arg), void *arg) {
  st->on_drain = cb;
  st->drain_arg = arg;
  st->drain_below = below;
}

void sl_http_stream_when_written(sl_http_stream_t *st, void (*cb)(void *arg, int status), void *arg) {
  conn_t *c = st->conn;
  if (st->remote ? st->remote_gone : !st->pending && (!c || c->closing)) {
    cb(arg, -1);
    return;
  }
  mark_add(st, cb, arg);
  if (st->remote) sl_hlink_send(st->remote, sl_hmsg_new(HM_SMARK, st->remote));
  else if (!st->pending) marks_place(c, st);
}

size_t sl_http_stream_queued(const sl_http_stream_t *st) {
  if (st->pending) return st->pendq.bytes;
  if (st->remote) return st->remote_gone ? SIZE_MAX : 0;
  const conn_t *c = st->conn;
  return !c || c->closing ? SIZE_MAX : queued(c);
}

void sl_http_stream_close(sl_http_stream_t *st) {
  conn_t *c = st->conn;
  stream_ended(st);
  marks_fail(st);
  if (st->remote) {
    sl_hlink_t *l = st->remote;
    sl_hlink_send(l, sl_hmsg_new(HM_SCLOSE, l));
    if (st->site) sl_fan_site_left(st->site);
    sl_hlink_streams(l, -1);
    l->st = NULL;
    sl_hlink_unref(l);
    free(st);
    return;
  }
  if (st->pending) {
    st->closed = 1;   /* closed for good when the connection arrives */
    return;
  }
  if (c && !c->closing) {
    c->stream = NULL;
    finish(c);
    if (st->on_data) {
      /* Raw: close once what was written is flushed. */
      if (c->writes || c->sendq.bytes) write_raw(c, "", 0, NULL, 0, 1);
      else sl_http_conn_close(c);
    } else {
      static const char last[] = "0\r\n\r\n";
      write_raw(c, last, sizeof last - 1, NULL, 0, 1);
    }
  }
  free(st);
}

/* ---------- parsing ---------- */

static conn_t *conn_of(llhttp_t *p) { return p->data; }

static int refuse(conn_t *c, int status, const char *msg) {
  c->error_status = status;
  c->error_msg = msg;
  return -1;
}

static int count_header(conn_t *c, size_t n) {
  c->header_bytes += n;
  return c->header_bytes > (size_t)c->srv->max_header_bytes ? refuse(c, 431, "request headers too large") : 0;
}

static int on_message_begin(llhttp_t *p) {
  conn_t *c = conn_of(p);
  c->req = sl_blocks_zero(sizeof(*c->req));   /* freed on the engine's loop at http.workers > 1 (sl_hmsg_new) */
  c->url.len = c->field.len = c->value.len = c->hdrs.len = c->body_len = c->header_bytes = 0;
  if (c->url.v) c->url.v[0] = 0;
  c->nh = 0;
  c->in_value = 0;
  c->hosts = 0;
  arm_timer(c, c->srv->read_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = conn_of(p);
  sl_sbuf_put(&c->url, at, n);
  return count_header(c, n);
}

/* A header line goes to c->hdrs as "name\0value\0" (its value's length in
 * c->hvlen); the request gets them all at once (pack_headers). */
static void push_header(conn_t *c) {
  if (!c->field.len) return;
  for (size_t i = 0; i < c->field.len; i++)
    if (c->field.v[i] >= 'A' && c->field.v[i] <= 'Z') c->field.v[i] = (char)(c->field.v[i] + 32);
  if (strcmp(c->field.v, "host") == 0) c->hosts++;
  sl_sbuf_put(&c->hdrs, c->field.v, c->field.len + 1);
  sl_sbuf_put(&c->hdrs, c->value.len ? c->value.v : "", c->value.len + 1);
  if (c->nh == c->hcap) {
    c->hcap = c->hcap ? c->hcap * 2 : 16;
    c->hvlen = sl_xrealloc(c->hvlen, c->hcap * sizeof(*c->hvlen));
    c->hkv = sl_xrealloc(c->hkv, c->hcap * sizeof(*c->hkv));
  }
  c->hvlen[c->nh++] = c->value.len;
  c->field.len = c->value.len = 0;
  c->field.v[0] = 0;
  if (c->value.v) c->value.v[0] = 0;
}

/* The request's headers in one allocation (sl_kv_pack), not one a line. */
static void pack_headers(conn_t *c) {
  const char *p = c->hdrs.v;
  for (uint32_t i = 0; i < c->nh; i++) {
    size_t kl = strlen(p);
    c->hkv[i] = (sl_kv_t){(char *)p, (char *)p + kl + 1, c->hvlen[i]};
    p += kl + 1 + c->hvlen[i] + 1;
  }
  sl_kv_pack(&c->req->headers, c->hkv, c->nh);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = conn_of(p);
  if (c->in_value) {
    push_header(c);
    c->in_value = 0;
  }
  sl_sbuf_put(&c->field, at, n);
  return count_header(c, n);
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = conn_of(p);
  /* A value goes on after a line break only when folded (obs-fold), which
   * llhttp joins; RFC 9112 5.2 lets a server refuse it, and we do: a
   * folded line is how headers are smuggled past proxies that read them
   * differently. Elsewhere a value starts after ':' or a space. */
  char before = at > c->exec_at ? at[-1] : c->last_byte;
  if (n && before == '\n') return refuse(c, 400, "obsolete line folding in a header (RFC 9112 5.2)");
  c->in_value = 1;
  sl_sbuf_put(&c->value, at, n);
  return count_header(c, n);
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = conn_of(p);
  push_header(c);
  c->in_value = 0;
  pack_headers(c);
  sl_http_req_t *r = c->req;
  /* RFC 9112 3.2: a Host line exactly once in HTTP/1.1, at most once before. */
  if (c->hosts > 1) return refuse(c, 400, "more than one Host header");
  if (!c->hosts && p->http_major == 1 && p->http_minor >= 1) return refuse(c, 400, "missing Host header");
  set_str(r->method, sizeof r->method, llhttp_method_name(llhttp_get_method(p)));
  if (p->content_length > (uint64_t)c->srv->max_body_bytes)
    return refuse(c, 413, "request body too large");
  const char *expect = sl_kv_get(&r->headers, "expect");
  if (expect && strcasecmp(expect, "100-continue") == 0) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    write_raw(c, cont, sizeof cont - 1, NULL, 0, 0);
  }
  return 0;
}

/* A chunk announces its size before its bytes: one that cannot fit is
 * refused now rather than waited for. */
static int on_chunk_header(llhttp_t *p) {
  conn_t *c = conn_of(p);
  if (p->content_length > (uint64_t)c->srv->max_body_bytes - c->body_len)
    return refuse(c, 413, "request body too large");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  conn_t *c = conn_of(p);
  if (c->body_len + n > (size_t)c->srv->max_body_bytes) return refuse(c, 413, "request body too large");
  if (c->body_len + n > c->body_cap) {
    c->body_cap = (c->body_len + n) * 2;
    if (c->body_cap > (size_t)c->srv->max_body_bytes) c->body_cap = (size_t)c->srv->max_body_bytes;
    c->body = sl_xrealloc(c->body, c->body_cap ? c->body_cap : 1);
  }
  memcpy(c->body + c->body_len, at, n);
  c->body_len += n;
  return 0;
}

/* Pauses the parser: the request is handed out and the next one waits. */
static int on_message_complete(llhttp_t *p) {
  conn_t *c = conn_of(p);
  arm_timer(c, 0);
  c->keep_alive = llhttp_should_keep_alive(p);
  return HPE_PAUSED;
}

static int is_ping(const sl_http_t *s, const char *path) {
  size_t bl = strlen(s->base_path);
  return !strncmp(path, s->base_path, bl) && !strcmp(path + bl, "/ping");
}

static void dispatch(conn_t *c) {
  sl_http_t *s = c->srv;
  sl_http_req_t *r = c->req;
  c->req = NULL;
  c->busy = r;
  r->conn = c;
  r->body = sl_bytes_new(c->body ? c->body : "", c->body_len);
  set_str(r->remote_addr, sizeof r->remote_addr, c->remote);
  const char *rid = sl_kv_get(&r->headers, "x-request-id");
  if (rid && *rid && strlen(rid) < sizeof r->request_id) set_str(r->request_id, sizeof r->request_id, rid);
  else sl_uuid_v4(r->request_id);
  char *q = c->url.v ? strchr(c->url.v, '?') : NULL;
  /* Path and query in one allocation: "path\0query\0" (the path only shrinks after). */
  const char *url = c->url.v ? c->url.v : "/";
  size_t plen = q ? (size_t)(q - url) : strlen(url), qlen = q ? strlen(q + 1) : 0;
  r->path = sl_xmalloc(plen + 1 + qlen + 1);
  memcpy(r->path, url, plen);
  r->path[plen] = 0;
  r->query = r->path + plen + 1;
  memcpy(r->query, q ? q + 1 : "", qlen + 1);
  if (strcmp(r->method, "HEAD") == 0) {
    r->head = 1;
    set_str(r->method, sizeof r->method, "GET");
  }
  if (path_decode(r->path) != 0 || r->path[0] != '/') {
    sl_http_error(r, 400, "bad request path");
    return;
  }
  if (s->hw && !strcmp(r->method, "GET") && !sl_kv_get(&r->headers, "origin") && is_ping(s, r->path)) {
    /* Liveness of this worker, answered by it (no CORS to add). */
    sl_hgroup_pinged(s);
    sl_http_respond(r, 200, "text/plain", "pong", 4, NULL);
    return;
  }
  if (s->hw) {
    /* On a worker: the engine's loop serves it; c waits for the answer. */
    r->conn = NULL;
    sl_hlink_t *l = sl_blocks_zero(sizeof(*l));   /* as sl_hmsg_new's */
    l->refs = 2;   /* c's and the engine's */
    l->hw = s->hw;
    l->c = c;
    c->link = l;
    sl_hmsg_t *m = sl_hmsg_new(HM_REQ, l);
    m->r = r;
    sl_hgroup_to_engine(s, m);
    return;
  }
  sl_http_serve(s, r);
}

static void pause_reading(conn_t *c) {
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

/* Reads while there is room: an HTTP connection while less than
 * MAX_UNPARSED waits to be parsed, a raw one while less than RAW_MAX_QUEUED
 * (half of it once paused) waits to be sent. */
static void set_reading(conn_t *c) {
  if (c->closing || c->finished || c->eof) return;
  int want;
  if (c->stream)
    want = !c->stream->held &&
           (!c->stream->on_data || queued(c) <= (c->reading ? RAW_MAX_QUEUED : RAW_MAX_QUEUED / 2));
  else
    want = c->in_len - c->in_off < MAX_UNPARSED;
  if (want && !c->reading) uv_read_start((uv_stream_t *)&c->tcp, read_alloc, on_read);
  else if (!want) pause_reading(c);
  c->reading = want;
}

/* Answers a request the parser refused, then closes. */
static void refuse_request(conn_t *c) {
  int status = c->error_status ? c->error_status : 400;
  const char *msg = c->error_msg ? c->error_msg : llhttp_get_error_reason(&c->parser);
  char buf[200];
  snprintf(buf, sizeof buf, "%s", msg ? msg : "malformed request");
  pause_reading(c);
  finish(c);
  send_error(c, status, buf, NULL, 1);
}

/* Parses what was read, one request at a time, each once the one before it
 * is answered. An answer given at once comes back here (through
 * sl_http_respond) while the loop runs and only lets the loop go on, so a
 * client pipelining any number of requests costs no stack; parsing also
 * waits while MAX_UNANSWERED answers are not yet written. */
static void drain(conn_t *c) {
  if (c->draining) return;
  c->draining = 1;
  while (!c->closing && !c->finished && !c->stream && !c->busy && c->writes < MAX_UNANSWERED &&
         c->in_off < c->in_len) {
    const char *data = c->in + c->in_off;
    size_t len = c->in_len - c->in_off;
    c->exec_at = data;
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    const char *pos = e == HPE_OK ? data + len : llhttp_get_error_pos(&c->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    if (used) c->last_byte = data[used - 1];
    if (e == HPE_PAUSED) {
      c->in_off += used;
      llhttp_resume(&c->parser);
      dispatch(c);
    } else if (e == HPE_PAUSED_UPGRADE) {
      /* An upgrade the handler answered as plain HTTP: the connection stays HTTP. */
      c->in_off += used;
      llhttp_resume_after_upgrade(&c->parser);
    } else if (e == HPE_OK) {
      c->in_off = c->in_len;
    } else {
      refuse_request(c);
    }
  }
  c->draining = 0;
  if (c->in_off == c->in_len) {
    free(c->in);   /* an idle connection keeps no buffer */
    c->in = NULL;
    c->in_off = c->in_len = 0;
  } else if (c->in_off) {
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
  }
  if (c->closing || c->finished || c->stream) return;
  if (c->eof && !c->busy && (c->writes < MAX_UNANSWERED || c->in_off == c->in_len)) {
    /* Half-closed, and every request it sent whole is answered (what is
     * left is one it never finished): close once the answers are out. */
    finish(c);
    if (c->writes) write_raw(c, "", 0, NULL, 0, 1);
    else sl_http_conn_close(c);
    return;
  }
  /* Idle from its last answer on: bytes that start no request (empty lines)
   * do not restart the clock. */
  if (!c->busy && !c->req && !c->deadline) arm_timer(c, c->srv->idle_timeout_ms);
  set_reading(c);
}

/* ---------- reading and accepting ---------- */

static void on_timeout(uv_timer_t *t) {
  conn_t *c = t->data;
  if (!c->deadline) return;
  uint64_t now = uv_now(t->loop);
  if (now < c->deadline) {
    uv_timer_start(t, on_timeout, c->deadline - now, 0);
    return;
  }
  c->deadline = 0;
  if (c->closing || c->finished) return;
  if (c->req) {
    /* Slow headers or body. */
    pause_reading(c);
    finish(c);
    send_error(c, 408, "request timed out", NULL, 1);
  } else if (!c->busy && !c->writes) {
    sl_http_conn_close(c);   /* idle keep-alive */
  }
}

/* Takes n bytes the client sent, in buf (malloc'd: this frees or keeps it). */
static void received(conn_t *c, char *buf, size_t n) {
  if (c->closing || c->finished || !n) {
    free(buf);
    return;
  }
  if (c->stream) {
    /* A taken-over connection gets its bytes; a streamed answer ignores them. */
    if (c->stream->on_data) c->stream->on_data(c->stream->arg, buf, n);
    free(buf);
    set_reading(c);
    return;
  }
  if (!c->in) {
    c->in = buf;
    c->in_off = 0;
    c->in_len = n;
  } else {
    c->in = sl_xrealloc(c->in, c->in_len + n);
    memcpy(c->in + c->in_len, buf, n);
    c->in_len += n;
    free(buf);
  }
  drain(c);
}

/* Reads land in the server's one buffer (a loop reads one socket at a
 * time) and are copied to their size: a malloc and free of 64 KiB a read
 * made glibc consolidate its bins on every request. */
static void read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sl_http_t *s = ((conn_t *)h->data)->srv;
  (void)suggested;
  if (!s->rbuf) s->rbuf = sl_xmalloc(SL_HTTP_RBUF);
  *buf = uv_buf_init(s->rbuf, SL_HTTP_RBUF);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  conn_t *c = st->data;
  if (n < 0) {
    if (c->closing) return;
    /* A client that half-closes after pipelining still gets the answers to
     * what it sent, even while one of them waits for its handler (on an
     * HTTP worker every request does); a lone request that waits learns
     * that its client left (a long-poll). */
    if (n == UV_EOF && !c->stream && !c->finished && c->in_off < c->in_len) {
      c->eof = 1;
      pause_reading(c);
      drain(c);
      return;
    }
    sl_http_conn_close(c);
    return;
  }
  if (n > 0 && !c->closing && c->tls) {
    char *plain = NULL;
    size_t plen = 0;
    int rc = sl_tls_recv(c->tls, buf->base, (size_t)n, &plain, &plen);
    size_t olen = 0;
    char *out = sl_tls_take_output(c->tls, &olen);   /* handshake answers */
    if (out) wire_write(c, out, olen, NULL, 0, rc < 0);
    free(out);
    if (rc < 0) {
      free(plain);
      if (!out) sl_http_conn_close(c);
      return;
    }
    received(c, plain, plen);
    return;
  }
  if (n > 0) received(c, dup_or_null(buf->base, (size_t)n), (size_t)n);
}

void sl_http_on_connection(uv_stream_t *ls, int status) {
  sl_http_t *s = ls->data;
  if (status < 0) return;
  conn_t *c = sl_xcalloc(1, sizeof(*c));
  c->srv = s;
  uv_tcp_init(s->worker->loop, &c->tcp);
  uv_timer_init(s->worker->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    c->closing = 1;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    return;
  }
  sl_dlist_push(&s->conns, &c->node);
  s->nconns++;
  int over = s->hw ? !sl_hgroup_admit(s, 1) : s->nconns > s->max_connections;
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage sa;
  int len = sizeof sa;
  char ip[48] = "";
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
    if (sa.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
      snprintf(c->remote, sizeof c->remote, "%s:%d", ip, ntohs(((struct sockaddr_in *)&sa)->sin_port));
    } else {
      uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
      snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, ntohs(((struct sockaddr_in6 *)&sa)->sin6_port));
    }
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
  c->parser.data = c;
  if (s->tls) c->tls = sl_tls_new(s->tls);
  if (over) {
    finish(c);
    send_error(c, 503, "too many connections", NULL, 1);
    return;
  }
  set_reading(c);
  arm_timer(c, s->idle_timeout_ms);
}

int sl_http_conn_idle(const conn_t *c) { return !c->busy && !c->req && !c->writes; }

void sl_http_settings_init(void) {
  llhttp_settings_init(&g_settings);
  g_settings.on_message_begin = on_message_begin;
  g_settings.on_url = on_url;
  g_settings.on_header_field = on_header_field;
  g_settings.on_header_value = on_header_value;
  g_settings.on_headers_complete = on_headers_complete;
  g_settings.on_chunk_header = on_chunk_header;
  g_settings.on_body = on_body;
  g_settings.on_message_complete = on_message_complete;
}

/* ---------- moving a connection from a worker to the engine's loop ---------- */

static void move_now(conn_t *c) {
  sl_hmsg_t *m = c->moving;
  c->moving = NULL;
  pause_reading(c);
  m->kind = HM_MOVED;
  uv_os_fd_t fd;
  /* A dup: closing the worker's handle leaves the socket open for the
   * engine. Made as libuv makes and closes descriptors, with a raw syscall:
   * ThreadSanitizer keeps a table of the ones it sees, which would be out
   * of step with libuv's. */
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) m->fd = (int)syscall(SYS_dup, fd);
  if (m->fd >= 0) {
    m->len = c->in_len - c->in_off;
    m->body = dup_or_null(m->len ? c->in + c->in_off : NULL, m->len);
    m->tls = c->tls;
    c->tls = NULL;
    m->keep_alive = c->keep_alive;
    memcpy(m->remote, c->remote, sizeof m->remote);
  }
  c->busy = NULL;
  sl_http_t *s = c->srv;
  sl_http_conn_close(c);
  sl_hgroup_to_engine(s, m);
}

void sl_http_conn_move(conn_t *c, sl_hmsg_t *m) {
  c->moving = m;
  /* Answers to what it pipelined before go out first, from here. */
  if (!c->writes) move_now(c);
}

void sl_http_conn_adopt(sl_http_t *s, sl_hmsg_t *m) {
  sl_hlink_t *l = m->link;
  struct sl_http_stream *st = l->st;
  l->st = NULL;
  st->pending = NULL;
  sl_hlink_unref(l);   /* the stream's */
  conn_t *c = NULL;
  if (m->fd >= 0) {
    c = sl_xcalloc(1, sizeof(*c));
    c->srv = s;
    uv_tcp_init(s->worker->loop, &c->tcp);
    uv_timer_init(s->worker->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    int rc = uv_tcp_open(&c->tcp, m->fd);
    if (rc == 0) m->fd = -1;   /* c's now */
    c->tls = m->tls;
    m->tls = NULL;
    sl_dlist_push(&s->conns, &c->node);
    s->nconns++;
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
    c->keep_alive = m->keep_alive;
    memcpy(c->remote, m->remote, sizeof c->remote);
    c->owner = l->owner;
    if (rc != 0) {
      sl_http_conn_close(c);
      c = NULL;
    }
  }
  if (!c) {
    sl_sendq_clear(&st->pendq);
    if (st->closed) free(st);
    else stream_gone(st);
    return;
  }
  c->stream = st;
  st->conn = c;
  sl_sendq_take(&st->pendq, &c->sendq);
  if (c->sendq.bytes) flush(c, 0);
  if (st->marks && !st->closed) {
    marks_place(c, st);
    if (c->closing) return;   /* the client left: its stream is gone */
  }
  if (st->closed) {
    sl_http_stream_close(st);
    return;
  }
  /* What it sent after its upgrade request: its first frames. */
  if (st->on_data && m->len && !c->closing) st->on_data(st->arg, m->body, m->len);
  set_reading(c);
}

/* ---------- streams that stay on their worker (sl_http_req_stay) ---------- */

void sl_http_req_stay(sl_http_req_t *r) { r->stay = 1; }

void sl_http_stream_on_slow(sl_http_stream_t *st, void (*cb)(void *arg), void *arg) {
  st->on_slow = cb;
  st->slow_arg = arg;
}

sl_hlink_t *sl_http_stream_link(const sl_http_stream_t *st) { return st->remote_gone ? NULL : st->remote; }

void sl_http_stream_set_site(sl_http_stream_t *st, struct sl_fan_site *site) { st->site = site; }

/* Engine side: what the worker says about the stream, unless closed since. */
void sl_http_rstream_news(sl_hmsg_t *m) {
  struct sl_http_stream *st = m->link->st;
  if (!st || !st->remote || st->remote_gone) return;
  if (m->kind == HM_RAW) {
    if (st->on_data) st->on_data(st->arg, m->body, m->len);
  } else if (m->kind == HM_SGONE) {
    st->remote_gone = 1;
    stream_gone(st);
  } else if (m->kind == HM_WRITTEN) {
    if (st->marks) mark_end(st, m->status);
  } else if (st->on_slow) {
    void (*cb)(void *) = st->on_slow;
    st->on_slow = NULL;
    cb(st->slow_arg);
  }
}

/* Worker side: the stream's end there forwards what the client does. */
static void wstream_data(void *arg, const char *p, size_t n) {
  sl_hmsg_t *m = sl_hmsg_new(HM_RAW, arg);
  m->body = dup_or_null(p, n);
  m->len = n;
  sl_hlink_tell(arg, m);
}

static void wstream_gone(void *arg) { sl_hlink_tell(arg, sl_hmsg_new(HM_SGONE, arg)); }

static void wstream_written(void *arg, int status) {
  sl_hmsg_t *m = sl_hmsg_new(HM_WRITTEN, arg);
  m->status = status;
  sl_hlink_tell(arg, m);
}

void sl_http_wstream_mark(sl_hlink_t *l) {
  if (l->wst) sl_http_stream_when_written(l->wst, wstream_written, l);
  else wstream_written(l, -1);
}

void sl_http_wstream_open(sl_http_t *ws, sl_hmsg_t *m) {
  sl_hlink_t *l = m->link;
  conn_t *c = l->c;
  if (!c || c->closing || c->link != l) {   /* the client left: its stream is gone */
    wstream_gone(l);
    return;
  }
  sl_http_stream_t *st = sl_xcalloc(1, sizeof(*st));
  st->on_data = m->raw ? wstream_data : NULL;
  st->on_close = wstream_gone;
  st->arg = l;
  l->wst = st;   /* the link's worker ref, c's until now */
  l->c = NULL;
  c->link = NULL;
  sl_dlist_push(&ws->wstreams, &l->wnode);
  c->busy = NULL;
  c->stream = st;
  st->conn = c;
  arm_timer(c, 0);
  write_raw(c, m->body, m->len, NULL, 0, 0);
  if (c->closing) return;
  if (m->raw) first_frames(c, wstream_data, l);
  set_reading(c);
}

int sl_http_wstream_chunked(const sl_hlink_t *l) { return l->wst && !l->wst->on_data; }

int sl_http_wstream_send(sl_hlink_t *l, sl_bytes_t *b, int framed, size_t max_buffer) {
  if (!l->wst) return -1;
  int rc = stream_send(l->wst, b, framed, max_buffer);
  if (rc > 0 && !l->slow) {
    l->slow = 1;
    sl_hlink_tell(l, sl_hmsg_new(HM_SLOW, l));
  }
  return rc;
}

void sl_http_wstream_close(sl_http_t *ws, sl_hlink_t *l) {
  sl_fan_site_leave(l);
  sl_http_stream_t *st = l->wst;
  if (!st) return;
  sl_dlist_remove(&ws->wstreams, &l->wnode);
  l->wst = NULL;
  sl_http_stream_close(st);
  sl_hlink_unref(l);
}

void sl_http_wstreams_close(sl_http_t *ws) {
  while (ws->wstreams.first) sl_http_wstream_close(ws, SL_DLIST_FIRST(&ws->wstreams, sl_hlink_t, wnode));
}
