/* Fans: one broadcast, written by every HTTP worker to its own clients.
 * The engine's loop formats an event once and hands each worker with
 * members a copy (http_worker.c merges a turn's events into one message per
 * worker); the worker queues it for each member (a ref of its copy) and its
 * flusher writes each connection's queue with one writev, so the per-client
 * work runs on as many cores as there are workers. Each worker gets a copy of
 * its own rather than a ref of the engine's bytes: the refs its members take
 * stay plain counts, touched by one thread (one buffer's count shared by the
 * clients of two workers would bounce between their cores on every ref).
 * The fan itself crosses threads: its count is atomic (the creator, each
 * message on its way, each member linked on a worker). */
#include "http_int.h"
#include "core/xalloc.h"
#include <stdatomic.h>
#include <stdlib.h>

typedef struct sl_fan_site {
  struct sl_fan_site *next;  /* engine side; read by the last unref to free */
  struct sl_http_fan *fan;
  struct sl_hworker *hw;
  int members;               /* engine side: members on this worker */
  sl_dlist_t links;          /* worker side: their links (sl_hlink_t.fnode) */
} sl_fan_site_t;

struct sl_http_fan {
  atomic_int refs;
  sl_fan_site_t *sites;
  int members;               /* engine side */
};

sl_http_fan_t *sl_http_fan_new(void) {
  sl_http_fan_t *f = sl_xcalloc(1, sizeof(*f));
  atomic_init(&f->refs, 1);
  return f;
}

static void fan_unref(sl_http_fan_t *f) {
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
  for (sl_fan_site_t *s = f->sites, *next; s; s = next) {
    next = s->next;
    free(s);
  }
  free(f);
}

void sl_http_fan_free(sl_http_fan_t *f) {
  if (f) fan_unref(f);
}

void sl_fan_site_unref(sl_fan_site_t *site) { fan_unref(site->fan); }

int sl_http_fan_members(const sl_http_fan_t *f) { return f ? f->members : 0; }

int sl_http_fan_join(sl_http_fan_t *f, sl_http_stream_t *st, size_t max_buffer) {
  sl_hlink_t *l = sl_http_stream_link(st);
  if (!l) return 0;
  sl_fan_site_t *site = f->sites;
  while (site && site->hw != l->hw) site = site->next;
  if (!site) {
    site = sl_xcalloc(1, sizeof(*site));
    site->fan = f;
    site->hw = l->hw;
    site->next = f->sites;
    f->sites = site;
  }
  site->members++;
  f->members++;
  sl_http_stream_set_site(st, site);
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);   /* the message's, then the member's */
  sl_hmsg_t *m = sl_hmsg_new(HM_JOIN, l);
  m->site = site;
  m->max_buffer = max_buffer;
  sl_hlink_send(l, m);
  return 1;
}

void sl_fan_site_left(sl_fan_site_t *site) {
  site->members--;
  site->fan->members--;
}

void sl_http_fan_send(sl_http_fan_t *f, const sl_bytes_t *b) {
  for (sl_fan_site_t *s = f->sites; s && f->members; s = s->next) {
    if (!s->members) continue;
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    sl_hgroup_fan(s->hw, s, sl_bytes_new(b->data, b->len));
  }
}

/* ---- on a worker's thread ---- */

void sl_fan_site_join(sl_fan_site_t *site, sl_hlink_t *l, size_t max_buffer) {
  l->site = site;
  l->max_buffer = max_buffer;
  sl_dlist_push(&site->links, &l->fnode);
}

void sl_fan_site_leave(sl_hlink_t *l) {
  sl_fan_site_t *site = l->site;
  if (!site) return;
  sl_dlist_remove(&site->links, &l->fnode);
  l->site = NULL;
  fan_unref(site->fan);
}

/* Each run of events for one fan goes to each member in one go: its queue
 * is touched once per run, not once per event. An SSE member's event is
 * framed as an HTTP chunk once for every member of the worker: one queue
 * item and one buffer per client, not a chunk head formatted per client. */
void sl_fan_site_send(sl_hmsg_t *m) {
  for (uint32_t i = 0, end; i < m->nbytes; i = end) {
    sl_fan_site_t *site = m->sites[i];
    for (end = i + 1; end < m->nbytes && m->sites[end] == site;) end++;
    sl_bytes_t **chunks = NULL;
    SL_DLIST_EACH(&site->links, sl_hlink_t, fnode, l) {
      int chunked = sl_http_wstream_chunked(l);
      if (chunked && !chunks) {
        chunks = sl_xmalloc((end - i) * sizeof(*chunks));
        for (uint32_t k = i; k < end; k++) chunks[k - i] = sl_http_chunk(m->bytes[k]);
      }
      for (uint32_t k = i; k < end && !l->slow; k++)
        if (sl_http_wstream_send(l, chunked ? chunks[k - i] : m->bytes[k], 1, l->max_buffer) < 0) break;
    }
    for (uint32_t k = i; chunks && k < end; k++) sl_bytes_unref(chunks[k - i]);
    free(chunks);
  }
}
