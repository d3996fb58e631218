/* Why a pool looks like this:
 * - Workers only run processors. What must happen once and in order (the
 *   input's emits, transactions, the output's writes, acks, retries) stays
 *   on the stream's loop, exactly as with one worker.
 * - A batch travels under a proxy transaction (core/txn.h): the worker drops,
 *   clones and fails messages against the proxy, never against the input's
 *   transaction, whose refs stay single-threaded. When the proxy's last
 *   message has come back or been dropped, the batch is done.
 * - Order: batches get sequence numbers; a result is tagged with the highest
 *   number among its messages and held until every earlier batch is done, so
 *   the output sees them in input order. A result can only be released once
 *   no earlier result can come: every batch before it is done (or it belongs
 *   to the first batch not done yet).
 * - Done batches settle in order too: a done batch's ticket (the proxy's
 *   verdict, and a ref on the input's transaction) is let go only after
 *   every earlier batch's, so transactions complete (and answers go out) in
 *   input order.
 * - Log lines: what the processors log while a worker runs a batch (a `log`
 *   processor, a script's log(), a failed script's warning, also after a
 *   call that waits) goes into the batch's hold (sl_pool_hold, through the
 *   log scope) and is written when the batch settles: the log reads in
 *   input order, as with one worker. The oldest batch not settled (every
 *   earlier one's lines are out) writes at once, so a stuck script's lines
 *   show while it is stuck. A processor pins the proxy while it runs, so no
 *   line comes after the batch is done.
 * - Reloads: a batch carries the reload epoch it was handed out in; a
 *   module reload starts a new epoch, and each worker loads the new version
 *   before it runs the first batch carrying it (lua/module.c): every batch
 *   handed out after the switch runs the new version, none before, whichever
 *   worker takes it.
 * - Outputs that may write from any thread (spec writes_anywhere: `drop`,
 *   `sync_response`) get a batch written and freed on the worker that ran
 *   its processors, so the loop never touches its messages (what the output
 *   keeps of one, sync_response's reply, shares nothing with the worker:
 *   isolated first), and a request's answer waits for one crossing back, not
 *   two: message memory crossing cores was
 *   what made threads 2 cost more CPU a message than threads 1 (bench/
 *   RESULTS.md). The order of such writes means nothing; transactions still
 *   settle in order through the tickets. A failed write takes the loop's
 *   path (retries as before); so does every batch while a tracer samples.
 * - Queues are a mutex and a list, woken by an eventfd (core/xq.h): one lock per batch,
 *   not per message. */
#include "pool.h"
#include "log.h"
#include "stream.h"
#include "trace.h"
#include "xalloc.h"
#include "xq.h"
#include <stdlib.h>
#include <string.h>

enum { IN_BATCH, IN_FLUSH, IN_QUIT, OUT_BATCH, OUT_DONE };

typedef struct item {
  struct item *next;
  int kind;
  sl_batch_t *b;
  uint64_t seq;              /* OUT_BATCH: its tag; OUT_DONE: its batch's */
  struct ticket *tk;         /* OUT_DONE */
} item_t;

/* Items cross in an sl_xq (their next pointer first, as its nodes). */
typedef sl_xq_t queue_t;

/* One dispatched batch, until its proxy is released. */
typedef struct ticket {
  struct sl_pool *pool;
  struct pworker *pw;
  uint64_t seq;
  sl_txn_t *target;
  int failed;
  char *err;
  /* Request contexts of its messages, held here so that the last ref of
   * each goes on the stream's loop: their metadata lists share entries
   * (copy on write, plain counts) with the connection's context. */
  sl_ctx_t **ctxs;
  uint32_t nctx;
  sl_log_hold_t hold;        /* lines logged on the worker for it, written when it settles */
  uint64_t epoch;            /* the reload epoch it was handed out in */
} ticket_t;

typedef struct pworker {
  struct sl_pool *pool;
  sl_worker_t *w;
  sl_chain_t *chain;
  uv_thread_t thread;
  int running;
  queue_t in;
  sl_sink_t out;             /* the chain's end on the worker */
  uint64_t cur;              /* worker side: the batch it took last */
  int64_t load;              /* stream side: batches given, not done */
  /* written on the worker, not yet counted in the output's metrics (atomic) */
  int64_t wrote, wrote_batches, wrote_ns;
} pworker_t;

struct sl_pool {
  int n, ordered;
  pworker_t *ws;
  queue_t out;
  sl_sink_t *sink;
  sl_stream_t *stream;
  uint64_t next_seq;         /* the next batch's number (from 1) */
  uint64_t done_upto;        /* every batch up to it is done */
  uint64_t settled_upto;     /* every batch up to it settled (workers read it: atomic) */
  uint8_t *done;             /* done flags of done_upto+1 .. next_seq-1, by seq & (cap-1) */
  uint64_t cap;
  item_t *held, **held_tail; /* results waiting for earlier batches, by tag */
  int64_t busy;              /* batches given, not done: the loop waits for them */
  unsigned rr;
};

static void queue_put(queue_t *q, item_t *it) { sl_xq_put(q, (sl_xq_node_t *)it); }

static item_t *queue_take(queue_t *q) { return (item_t *)sl_xq_take(q); }

static item_t *item(int kind, sl_batch_t *b, uint64_t seq) {
  item_t *it = sl_xcalloc(1, sizeof(*it));
  it->kind = kind;
  it->b = b;
  it->seq = seq;
  return it;
}

/* ---- on a worker ---- */

static void proxy_done(sl_txn_t *t, int status, const char *err, void *arg);

static void to_loop(pworker_t *pw, sl_batch_t *b) {
  uint64_t tag = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    sl_msg_isolate(m);
    uint64_t t = m->txn && sl_txn_arg_of(m->txn, proxy_done) ? sl_txn_tag(m->txn) : pw->cur;
    if (t > tag) tag = t;
  }
  queue_put(&pw->pool->out, item(OUT_BATCH, b, tag));
}

typedef struct wwrite { pworker_t *pw; uint64_t t0; } wwrite_t;

static void worker_wrote(sl_output_t *o, sl_batch_t *b, int status, const char *err, void *arg) {
  (void)o;
  (void)err;   /* the loop's write reports its own */
  wwrite_t *w = arg;
  pworker_t *pw = w->pw;
  if (status != 0) {
    to_loop(pw, b);
  } else {
    if (w->t0) {
      __atomic_add_fetch(&pw->wrote_ns, (int64_t)(sl_now_ns() - w->t0), __ATOMIC_RELAXED);
      __atomic_add_fetch(&pw->wrote_batches, 1, __ATOMIC_RELAXED);
      __atomic_add_fetch(&pw->wrote, (int64_t)b->n, __ATOMIC_RELAXED);
    }
    sl_batch_free(b);
  }
  free(w);
}

static void worker_out(sl_sink_t *sink, sl_batch_t *b) {
  pworker_t *pw = (pworker_t *)((char *)sink - offsetof(pworker_t, out));
  sl_stream_t *s = pw->pool->stream;
  if (!s->output->spec->writes_anywhere || sl_tracing()) {
    to_loop(pw, b);
    return;
  }
  /* what the output keeps of a message (sync_response's reply) is released
   * on another thread: it shares no plain count with what stays here */
  for (uint32_t i = 0; i < b->n; i++) sl_msg_isolate(b->msgs[i]);
  wwrite_t *w = sl_xmalloc(sizeof(*w));
  *w = (wwrite_t){pw, s->m_out.sent ? sl_now_ns() : 0};
  s->output->vt->write(s->output, b, worker_wrote, w);
}

/* A batch comes from another core: its messages, their bytes and metadata
 * are in that core's cache, and the processors reach each through a chain
 * of pointers, one miss after the other (a fifth of a one-field filter's
 * CPU on the worker). Asking for all of them first lets the misses overlap. */
static void warm(const sl_batch_t *b) {
  for (uint32_t i = 0; i < b->n; i++) __builtin_prefetch(b->msgs[i]);
  for (uint32_t i = 0; i < b->n; i++) {
    const sl_msg_t *m = b->msgs[i];
    const char *c = (const char *)m->content;
    for (size_t off = 0; off < sizeof(sl_bytes_t) + m->content->len && off < 512; off += 64) __builtin_prefetch(c + off);
    if (m->meta.v) __builtin_prefetch(m->meta.v);
  }
}

static void worker_wake(void *data) {
  pworker_t *pw = data;
  for (item_t *it = queue_take(&pw->in), *next; it; it = next) {
    next = it->next;
    if (it->kind == IN_BATCH) {
      warm(it->b);
      pw->cur = it->seq;
      pw->chain->sink.push(&pw->chain->sink, it->b);
    } else if (it->kind == IN_FLUSH) {
      sl_chain_flush(pw->chain);
    } else {
      sl_xq_close_handle(&pw->in, NULL);
      uv_stop(pw->w->loop);
    }
    free(it);
  }
}

static void worker_main(void *arg) {
  pworker_t *pw = arg;
  sl_worker_thread_started(pw->w);
  uv_run(pw->w->loop, UV_RUN_DEFAULT);
}

/* Runs on whichever thread releases the proxy's last ref. */
static void proxy_done(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t;
  ticket_t *tk = arg;
  tk->failed = status != 0;
  tk->err = status != 0 && err ? sl_xstrdup(err) : NULL;
  item_t *it = item(OUT_DONE, NULL, tk->seq);
  it->tk = tk;
  queue_put(&tk->pool->out, it);
}

/* The batch's turn: every earlier batch settled, its lines are out. */
static int hold_turn(const sl_log_hold_t *h) {
  const ticket_t *tk = (const ticket_t *)((const char *)h - offsetof(ticket_t, hold));
  return __atomic_load_n(&tk->pool->settled_upto, __ATOMIC_ACQUIRE) + 1 == tk->seq;
}

/* The ticket of b's pool batch (and its proxy in *proxy), or NULL. */
static ticket_t *ticket_of(const sl_batch_t *b, sl_txn_t **proxy) {
  sl_txn_t *t = b && b->n ? b->msgs[0]->txn : NULL;
  /* other proxies (catch and switch keep a batch's order with theirs) may
   * wrap the pool's */
  ticket_t *tk = NULL;
  while (t && sl_txn_target(t) && !(tk = sl_txn_arg_of(t, proxy_done))) t = sl_txn_target(t);
  *proxy = t;
  return tk;
}

sl_log_hold_t *sl_pool_hold(const sl_batch_t *b, sl_txn_t **pin) {
  sl_txn_t *t;
  ticket_t *tk = ticket_of(b, &t);
  if (!tk || !tk->pool->ordered) return NULL;
  *pin = sl_txn_ref(t);
  tk->hold.turn = hold_turn;
  return &tk->hold;
}

/* Process-wide: a reload of one pool's module bumps every pool's epoch,
 * which only makes the others look once and find nothing new. */
static uint64_t g_epoch;

uint64_t sl_pool_epoch_next(void) { return __atomic_add_fetch(&g_epoch, 1, __ATOMIC_SEQ_CST); }

uint64_t sl_pool_epoch(const sl_batch_t *b) {
  sl_txn_t *t;
  const ticket_t *tk = ticket_of(b, &t);
  return tk ? tk->epoch : 0;
}

/* ---- on the stream's loop ---- */

static void ticket_free(ticket_t *tk);

/* The batch's lines are written, the proxy's verdict goes to the input's
 * transaction, and the ticket's ref on it goes: the transaction completes
 * once its messages are written. */
static void settle(ticket_t *tk) {
  if (tk->failed) sl_txn_fail(tk->target, tk->err);
  ticket_free(tk);
}

/* Lets out what no earlier batch can still precede, in batch order:
 * results (tagged with a batch not done yet at most: the first such) and
 * the tickets of done batches. */
static void release(sl_pool_t *p) {
  while (p->held && p->held->seq <= p->done_upto + 1) {
    item_t *it = p->held;
    p->held = it->next;
    if (!p->held) p->held_tail = &p->held;
    if (it->kind == OUT_DONE) {
      settle(it->tk);
      __atomic_store_n(&p->settled_upto, it->seq, __ATOMIC_RELEASE);
    } else {
      p->sink->push(p->sink, it->b);
    }
    free(it);
  }
}

static void hold(sl_pool_t *p, item_t *it) {
  item_t **at = &p->held;
  while (*at && (*at)->seq <= it->seq) at = &(*at)->next;   /* mostly the end: results come nearly in order */
  it->next = *at;
  *at = it;
  if (!it->next) p->held_tail = &it->next;
}

static void mark_done(sl_pool_t *p, uint64_t seq) {
  p->done[seq & (p->cap - 1)] = 1;
  while (p->done_upto + 1 < p->next_seq && p->done[(p->done_upto + 1) & (p->cap - 1)]) {
    p->done_upto++;
    p->done[p->done_upto & (p->cap - 1)] = 0;
  }
}

static void ticket_free(ticket_t *tk) {
  if (tk->hold.len) sl_log_write(tk->hold.buf, tk->hold.len);
  free(tk->hold.buf);
  sl_txn_unref(tk->target);
  for (uint32_t i = 0; i < tk->nctx; i++) sl_ctx_unref(tk->ctxs[i]);
  free(tk->ctxs);
  free(tk->err);
  free(tk);
}

/* The batch's proxy was released: it is done. Ordered, its ticket waits
 * for the earlier batches' (release): transactions complete, and lines are
 * written, in input order, as one worker would (a WebSocket's replies go out
 * when their transactions complete), however the workers finished. */
static void batch_done(sl_pool_t *p, item_t *it) {
  ticket_t *tk = it->tk;
  tk->pw->load--;
  if (--p->busy == 0) uv_unref((uv_handle_t *)&p->out.poll);
  mark_done(p, tk->seq);
  if (!p->ordered) {
    free(it);
    settle(tk);
    return;
  }
  hold(p, it);
  release(p);
}

/* What the workers wrote goes into the output's metrics on the loop, their
 * one writer; a batch's latency is the mean of those counted together. */
static void count_written(sl_pool_t *p) {
  sl_cmetrics_t *m = &p->stream->m_out;
  if (!m->sent) return;
  for (int i = 0; i < p->n; i++) {
    pworker_t *pw = &p->ws[i];
    int64_t n = __atomic_exchange_n(&pw->wrote, 0, __ATOMIC_RELAXED);
    int64_t nb = __atomic_exchange_n(&pw->wrote_batches, 0, __ATOMIC_RELAXED);
    int64_t ns = __atomic_exchange_n(&pw->wrote_ns, 0, __ATOMIC_RELAXED);
    SL_COUNT(m->sent, n);
    for (int64_t j = 0; j < nb; j++) sl_histo_observe(m->latency, (uint64_t)(ns / nb));
  }
}

static void stream_wake(void *data) {
  sl_pool_t *p = data;
  count_written(p);
  for (item_t *it = queue_take(&p->out), *next; it; it = next) {
    next = it->next;
    if (it->kind == OUT_BATCH) {
      sl_batch_t *b = it->b;
      for (uint32_t i = 0; i < b->n; i++) {
        sl_txn_t *t = b->msgs[i]->txn;
        if (t && sl_txn_target(t)) sl_msg_set_txn(b->msgs[i], sl_txn_target(t));
      }
      if (!p->ordered) {
        free(it);
        p->sink->push(p->sink, b);
        continue;
      }
      hold(p, it);
      release(p);
      continue;
    }
    batch_done(p, it);
  }
}

static void grow(sl_pool_t *p) {
  uint64_t cap = p->cap * 2;
  uint8_t *d = sl_xcalloc(cap, 1);
  for (uint64_t s = p->done_upto + 1; s < p->next_seq; s++) d[s & (cap - 1)] = p->done[s & (p->cap - 1)];
  free(p->done);
  p->done = d;
  p->cap = cap;
}

void sl_pool_push(sl_pool_t *p, sl_batch_t *b, sl_txn_t *t) {
  if (p->next_seq - p->done_upto >= p->cap) grow(p);
  pworker_t *pw = NULL;
  for (int i = 0; i < p->n; i++) {
    pworker_t *c = &p->ws[(p->rr + (unsigned)i) % (unsigned)p->n];
    if (!pw || c->load < pw->load) pw = c;
  }
  p->rr++;
  ticket_t *tk = sl_xcalloc(1, sizeof(*tk));
  *tk = (ticket_t){.pool = p, .pw = pw, .seq = p->next_seq++, .target = sl_txn_ref(t),
                   .epoch = __atomic_load_n(&g_epoch, __ATOMIC_SEQ_CST)};
  sl_txn_t *proxy = sl_txn_proxy(t, tk->seq, proxy_done, tk);
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    sl_msg_isolate(m);
    sl_msg_set_txn(m, proxy);
    if (m->ctx && (!tk->nctx || tk->ctxs[tk->nctx - 1] != m->ctx)) {
      tk->ctxs = sl_xrealloc(tk->ctxs, (tk->nctx + 1) * sizeof(*tk->ctxs));
      tk->ctxs[tk->nctx++] = sl_ctx_ref(m->ctx);
    }
  }
  sl_txn_unref(proxy);
  pw->load++;
  if (p->busy++ == 0) uv_ref((uv_handle_t *)&p->out.poll);
  queue_put(&pw->in, item(IN_BATCH, b, tk->seq));
}

void sl_pool_flush(sl_pool_t *p) {
  for (int i = 0; i < p->n; i++) queue_put(&p->ws[i].in, item(IN_FLUSH, NULL, 0));
}

sl_pool_t *sl_pool_new(sl_worker_t *parent, int n, int ordered, sl_sink_t *out) {
  sl_pool_t *p = sl_xcalloc(1, sizeof(*p));
  p->n = n;
  p->ordered = ordered;
  p->sink = out;
  p->next_seq = 1;
  p->cap = 64;
  p->done = sl_xcalloc(p->cap, 1);
  p->held_tail = &p->held;
  p->ws = sl_xcalloc((size_t)n, sizeof(*p->ws));
  sl_xq_init(&p->out, parent->loop, stream_wake, p);
  uv_unref((uv_handle_t *)&p->out.poll);
  for (int i = 0; i < n; i++) {
    pworker_t *pw = &p->ws[i];
    pw->pool = p;
    pw->w = sl_worker_spawn(parent, i + 1);
    pw->w->lead = p->ws[0].w;
    pw->out.push = worker_out;
    sl_xq_init(&pw->in, pw->w->loop, worker_wake, pw);
  }
  return p;
}

int sl_pool_size(const sl_pool_t *p) { return p->n; }
sl_worker_t *sl_pool_worker(sl_pool_t *p, int i) { return p->ws[i].w; }
void sl_pool_set_chain(sl_pool_t *p, int i, sl_chain_t *c) { p->ws[i].chain = c; }

void sl_pool_start(sl_pool_t *p, sl_stream_t *s) {
  p->stream = s;
  for (int i = 0; i < p->n; i++) {
    pworker_t *pw = &p->ws[i];
    sl_chain_connect(pw->chain, &pw->out, s);
    if (uv_thread_create(&pw->thread, worker_main, pw) != 0) {
      sl_error("cannot start a pipeline thread");
      abort();
    }
    pw->running = 1;
  }
}

/* What the pool holds at its end: batches are dropped, done batches
 * settle. */
static void free_items(item_t *it) {
  for (item_t *next; it; it = next) {
    next = it->next;
    sl_batch_free(it->b);
    if (it->tk) settle(it->tk);
    free(it);
  }
}

static void pool_closed(uv_handle_t *h) {
  sl_pool_t *p = h->data;
  uv_mutex_destroy(&p->out.mu);
  free(p);
}

void sl_pool_free(sl_pool_t *p) {
  if (!p) return;
  for (int i = 0; i < p->n; i++) {
    pworker_t *pw = &p->ws[i];
    if (pw->running) {
      queue_put(&pw->in, item(IN_QUIT, NULL, 0));
      uv_thread_join(&pw->thread);
    } else {
      sl_xq_close_handle(&pw->in, NULL);
    }
    free_items(queue_take(&pw->in));
    sl_chain_free(pw->chain);
    sl_worker_free(pw->w);
    sl_xq_destroy(&pw->in);
  }
  free_items(p->held);
  if (p->stream) count_written(p);
  /* Results not taken yet still hold their proxies: freeing them queues
   * their tickets, freed in the next round. */
  for (item_t *it; (it = queue_take(&p->out));) free_items(it);
  free(p->ws);
  free(p->done);
  sl_xq_close(&p->out, pool_closed);
}
