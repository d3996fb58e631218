/* HTTP workers (http.workers > 1): threads with a loop each, each with its
 * own SO_REUSEPORT listener on the shared server's address (the kernel
 * spreads new connections), reading, parsing and answering its own
 * connections with the connection layer as it is. What the engine's loop
 * owns (routes and every handler behind them: stream inputs, the store,
 * admin, reload) stays there: a parsed request crosses to it, its answer
 * crosses back (sl_xq). What a loop turn sends one way is gathered and
 * handed over before the loop next waits (a uv_prepare): one lock and one
 * wake-up per turn, not per request. A connection that
 * becomes a stream (SSE, WebSocket) moves over to the engine's loop, with
 * its TLS session and what the client sent after its request, once the
 * answers before it are written, unless its handler asked it to stay
 * (sl_http_req_stay: the broadcast output's subscribers): then the stream
 * is written on the worker, what the engine writes to it crosses over in
 * order, and a fan's events cross once per worker (http_fan.c). */
#include "http_int.h"
#include "core/blocks.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/xalloc.h"
#include "core/xq.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct sl_hworker {
  struct sl_hgroup *g;
  int id;
  sl_worker_t *w;            /* its loop (the thread's only) */
  sl_http_t *srv;            /* its server: listener and connections */
  sl_xq_t in;                /* answers and moves from the engine's loop */
  sl_xq_batch_t to_engine;   /* worker side: this turn's requests and news */
  sl_xq_batch_t from_engine; /* engine side: this turn's answers and moves for it */
  uv_prepare_t flusher;      /* worker side: hands to_engine over */
  uv_thread_t thread;
  int started;
  int64_t *requests;         /* sluice_http_worker_requests_total{worker}, counted on the engine's loop */
  int64_t *streams;          /* sluice_http_worker_streams{worker}, the same */
  sl_hmsg_t *last_fan;       /* engine side: from_engine's tail when it is an HM_FAN */
  atomic_int_fast64_t pings; /* GET /ping answered here; the engine counts them at each scrape */
} sl_hworker_t;

typedef struct sl_hgroup {
  sl_http_t *shared;
  int n;
  sl_hworker_t *ws;
  sl_xq_t in;                /* requests and the rest from the workers, on the engine's loop */
  uv_prepare_t flusher;      /* engine side: hands each worker's from_engine over */
  int flushing;
  int handles;               /* at close: handles whose close has not ended yet */
  atomic_int_fast64_t conns; /* open connections over all workers, against max_connections */
  int port;
  int closing;               /* requests still crossing are dropped: their clients are gone */
} sl_hgroup_t;

/* Messages, links and requests come from sl_blocks (core/blocks.h): each
 * is made on one side and freed on the other, which glibc serves through
 * the other thread's arena (calloc and free were a tenth of a request's
 * instructions at http.workers 2). */
sl_hmsg_t *sl_hmsg_new(int kind, sl_hlink_t *l) {
  sl_hmsg_t *m = sl_blocks_zero(sizeof(*m));
  m->kind = kind;
  m->fd = -1;
  if (l) atomic_fetch_add_explicit((_Atomic int *)&l->refs, 1, memory_order_relaxed);
  m->link = l;
  return m;
}

void sl_hlink_unref(sl_hlink_t *l) {
  if (l && atomic_fetch_sub_explicit((_Atomic int *)&l->refs, 1, memory_order_acq_rel) == 1) sl_blocks_put(l, sizeof(*l));
}

void sl_hmsg_free(sl_hmsg_t *m) {
  if (m->r) sl_http_req_free(m->r);
  free(m->ctype);
  free(m->body);
  free(m->cors);
  sl_kv_clear(&m->headers);
  if (m->fd >= 0) close(m->fd);
  sl_tls_free(m->tls);
  sl_hlink_unref(m->link);
  for (uint32_t i = 0; i < m->nbytes; i++) {
    sl_bytes_unref(m->bytes[i]);
    if (m->sites) sl_fan_site_unref(m->sites[i]);
  }
  free(m->bytes);
  free(m->sites);
  if (m->site) sl_fan_site_unref(m->site);
  sl_blocks_put(m, sizeof(*m));
}

void sl_hmsg_add_bytes(sl_hmsg_t *m, sl_bytes_t *b) {
  if (m->nbytes == m->capbytes) {
    m->capbytes = m->capbytes ? m->capbytes * 2 : 4;
    m->bytes = sl_xrealloc(m->bytes, m->capbytes * sizeof(*m->bytes));
  }
  m->bytes[m->nbytes++] = b;
}

static void worker_flush(uv_prepare_t *p) {
  sl_hworker_t *hw = p->data;
  uv_prepare_stop(p);
  sl_xq_put_batch(&hw->g->in, &hw->to_engine);
}

void sl_hgroup_to_engine(sl_http_t *ws, sl_hmsg_t *m) {
  sl_hworker_t *hw = ws->hw;
  if (!hw->to_engine.head) uv_prepare_start(&hw->flusher, worker_flush);
  sl_xq_batch_add(&hw->to_engine, &m->node);
}

static void engine_flush(uv_prepare_t *p) {
  sl_hgroup_t *g = p->data;
  uv_prepare_stop(p);
  g->flushing = 0;
  for (int i = 0; i < g->n; i++) {
    sl_xq_put_batch(&g->ws[i].in, &g->ws[i].from_engine);
    g->ws[i].last_fan = NULL;
  }
}

static void to_worker(sl_hworker_t *hw, sl_hmsg_t *m) {
  sl_hgroup_t *g = hw->g;
  if (!g->flushing) {
    g->flushing = 1;
    uv_prepare_start(&g->flusher, engine_flush);
  }
  sl_xq_batch_add(&hw->from_engine, &m->node);
  hw->last_fan = m->kind == HM_FAN ? m : NULL;
}

void sl_hlink_send(sl_hlink_t *l, sl_hmsg_t *m) { to_worker(l->hw, m); }

void sl_hgroup_fan(sl_hworker_t *hw, struct sl_fan_site *site, sl_bytes_t *copy) {
  sl_hmsg_t *m = hw->last_fan;
  if (!m) {
    m = sl_hmsg_new(HM_FAN, NULL);
    to_worker(hw, m);
  }
  uint32_t cap = m->capbytes;
  sl_hmsg_add_bytes(m, copy);
  if (m->capbytes != cap) m->sites = sl_xrealloc(m->sites, m->capbytes * sizeof(*m->sites));
  m->sites[m->nbytes - 1] = site;
}

void sl_hlink_streams(sl_hlink_t *l, int delta) { *l->hw->streams += delta; }

void sl_hlink_tell(sl_hlink_t *l, sl_hmsg_t *m) { sl_hgroup_to_engine(l->hw->srv, m); }

int sl_hgroup_admit(sl_http_t *ws, int delta) {
  int64_t n = atomic_fetch_add(&ws->group->conns, delta) + delta;
  return n <= ws->max_connections;
}

void sl_hgroup_pinged(sl_http_t *ws) { atomic_fetch_add_explicit(&ws->hw->pings, 1, memory_order_relaxed); }

int64_t sl_hgroup_pings(sl_http_t *s) {
  int64_t n = 0;
  for (int i = 0; s->group && i < s->group->n; i++) n += atomic_exchange(&s->group->ws[i].pings, 0);
  return n;
}

int64_t sl_hgroup_conns(const sl_http_t *s) { return s->group ? atomic_load(&s->group->conns) : 0; }

int sl_hgroup_port(const sl_http_t *s) { return s->group ? s->group->port : -1; }

/* ---- on a worker's thread ---- */

static void worker_closed(uv_handle_t *h) { (void)h; }

static void worker_wake(void *data) {
  sl_hworker_t *hw = data;
  sl_xq_node_t *n = sl_xq_take(&hw->in);
  for (sl_xq_node_t *next; n; n = next) {
    next = n->next;
    sl_hmsg_t *m = (sl_hmsg_t *)n;
    conn_t *c = m->link ? m->link->c : NULL;
    switch (m->kind) {
    case HM_RESP:
      if (c) sl_http_conn_answer(c, m);
      break;
    case HM_MOVE:
      if (c) {
        sl_http_conn_move(c, m);   /* it sends m back */
        continue;
      }
      m->kind = HM_MOVED;
      sl_hgroup_to_engine(hw->srv, m);
      continue;
    case HM_STREAM:
      sl_http_wstream_open(hw->srv, m);
      break;
    case HM_SDATA:
      for (uint32_t i = 0; i < m->nbytes; i++) sl_http_wstream_send(m->link, m->bytes[i], 0, m->max_buffer);
      break;
    case HM_SMARK:
      sl_http_wstream_mark(m->link);
      break;
    case HM_SCLOSE:
      sl_http_wstream_close(hw->srv, m->link);
      break;
    case HM_JOIN:
      if (m->link->wst && !m->link->site) {
        sl_fan_site_join(m->site, m->link, m->max_buffer);
        m->site = NULL;   /* its fan ref is the member's now */
      }
      break;
    case HM_FAN:
      sl_fan_site_send(m);
      break;
    case HM_STOP:
      sl_http_srv_stop(hw->srv);
      break;
    case HM_CLOSE:
      sl_http_srv_stop(hw->srv);
      while (hw->srv->conns.first) sl_http_conn_close(SL_DLIST_FIRST(&hw->srv->conns, conn_t, node));
      sl_http_wstreams_close(hw->srv);
      worker_flush(&hw->flusher);   /* the news of those closes: the loop ends before it would prepare again */
      uv_close((uv_handle_t *)&hw->flusher, worker_closed);
      sl_xq_close(&hw->in, worker_closed);
      break;
    }
    sl_hmsg_free(m);
  }
}

static void worker_main(void *arg) {
  sl_hworker_t *hw = arg;
  uv_run(hw->w->loop, UV_RUN_DEFAULT);
}

/* ---- on the engine's loop ---- */

static void engine_wake(void *data) {
  sl_hgroup_t *g = data;
  sl_xq_node_t *n = sl_xq_take(&g->in);
  for (sl_xq_node_t *next; n; n = next) {
    next = n->next;
    sl_hmsg_t *m = (sl_hmsg_t *)n;
    sl_hlink_t *l = m->link;
    switch (m->kind) {
    case HM_REQ: {
      if (g->closing) {
        sl_hlink_unref(l);   /* the engine's ref, never taken up */
        break;
      }
      sl_http_req_t *r = m->r;
      m->r = NULL;
      (*l->hw->requests)++;
      l->r = r;   /* the link's engine ref, made with it, is r's now */
      l->srv = g->shared;
      r->link = l;
      sl_http_serve(g->shared, r);
      break;
    }
    case HM_GONE: {
      sl_http_req_t *r = l->r;
      if (!r) break;   /* answered before the news came */
      l->r = NULL;
      r->link = NULL;
      sl_hlink_unref(l);
      if (r->on_gone) r->on_gone(r, r->gone_arg);
      break;
    }
    case HM_MOVED:
      sl_http_conn_adopt(g->shared, m);
      break;
    case HM_DROPPED:
      sl_http_slow_dropped(m->owner ? m->owner : "", NULL, "send_timeout");
      break;
    case HM_RAW:
    case HM_SGONE:
    case HM_SLOW:
    case HM_WRITTEN:
      sl_http_rstream_news(m);
      break;
    }
    sl_hmsg_free(m);
  }
}

int sl_hgroup_start(sl_http_t *s) {
  sl_hgroup_t *g = sl_xcalloc(1, sizeof(*g));
  g->shared = s;
  g->n = s->workers;
  g->ws = sl_xcalloc((size_t)g->n, sizeof(*g->ws));
  g->port = -1;
  s->group = g;
  sl_xq_init(&g->in, s->worker->loop, engine_wake, g);
  uv_prepare_init(s->worker->loop, &g->flusher);
  g->flusher.data = g;
  uv_unref((uv_handle_t *)&g->flusher);
  char *address = NULL;
  for (int i = 0; i < g->n; i++) {
    sl_hworker_t *hw = &g->ws[i];
    hw->g = g;
    hw->id = i;
    hw->w = sl_worker_new(i + 1);
    hw->srv = sl_http_worker_srv(hw->w, s);
    hw->srv->group = g;
    hw->srv->hw = hw;
    char id[16];
    snprintf(id, sizeof id, "%d", i);
    hw->requests = sl_metric(SL_COUNTER, "sluice_http_worker_requests_total",
                             "Requests each HTTP worker (http.workers) read and handed to the engine.", "worker", id, NULL);
    hw->streams = sl_metric(SL_GAUGE, "sluice_http_worker_streams",
                            "Open SSE and WebSocket streams written by each HTTP worker (broadcast subscribers).", "worker",
                            id, NULL);
    sl_xq_init(&hw->in, hw->w->loop, worker_wake, hw);
    uv_prepare_init(hw->w->loop, &hw->flusher);
    hw->flusher.data = hw;
    uv_unref((uv_handle_t *)&hw->flusher);
    /* Port 0: the first listener picks one, the others take the same. */
    if (sl_http_listen_on(hw->srv, address ? address : s->address, 1) != 0) {
      g->n = i + 1;
      free(address);
      return -1;
    }
    if (!address) {
      struct sockaddr_storage sa;
      int len = sizeof sa;
      uv_tcp_getsockname(&hw->srv->listener, (struct sockaddr *)&sa, &len);
      g->port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
                                              : ((struct sockaddr_in6 *)&sa)->sin6_port);
      const char *colon = strrchr(s->address, ':');
      address = sl_xasprintf("%.*s:%d", colon ? (int)(colon - s->address) : 0, s->address, g->port);
    }
  }
  free(address);
  for (int i = 0; i < g->n; i++) {
    if (uv_thread_create(&g->ws[i].thread, worker_main, &g->ws[i]) != 0) {
      sl_error("http: cannot start HTTP worker %d", i);
      return -1;
    }
    g->ws[i].started = 1;
  }
  return 0;
}

void sl_hgroup_stop(sl_http_t *s) {
  sl_hgroup_t *g = s->group;
  if (g) engine_flush(&g->flusher);   /* answers given before go first */
  for (int i = 0; g && i < g->n; i++)
    if (g->ws[i].started) sl_xq_put(&g->ws[i].in, (sl_xq_node_t *)sl_hmsg_new(HM_STOP, NULL));
}

static void group_closed(uv_handle_t *h) {
  sl_hgroup_t *g = h->data;
  if (--g->handles == 0) free(g);
}

void sl_hgroup_close(sl_http_t *s) {
  sl_hgroup_t *g = s->group;
  if (!g) return;
  g->closing = 1;
  engine_flush(&g->flusher);
  for (int i = 0; i < g->n; i++) {
    sl_hworker_t *hw = &g->ws[i];
    if (hw->started) {
      sl_xq_put(&hw->in, (sl_xq_node_t *)sl_hmsg_new(HM_CLOSE, NULL));
      uv_thread_join(&hw->thread);
    } else {
      /* Never ran: its handles close on its loop here. */
      sl_http_srv_stop(hw->srv);
      uv_close((uv_handle_t *)&hw->flusher, worker_closed);
      sl_xq_close(&hw->in, worker_closed);
    }
    sl_http_worker_srv_free(hw->srv);
    sl_worker_free(hw->w);
  }
  /* What the workers said last (a client gone, a move that failed) is
   * heard now, as a close of the engine's own connections would be. */
  engine_wake(g);
  for (int i = 0; i < g->n; i++)   /* answers to clients already gone */
    for (sl_xq_node_t *n = g->ws[i].from_engine.head, *next; n; n = next) {
      next = n->next;
      sl_hmsg_free((sl_hmsg_t *)n);
    }
  uv_prepare_stop(&g->flusher);
  free(g->ws);
  s->group = NULL;
  g->handles = 2;
  sl_xq_close(&g->in, group_closed);
  uv_close((uv_handle_t *)&g->flusher, group_closed);
}
