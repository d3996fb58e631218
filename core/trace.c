#include "trace.h"
#include "metrics.h"
#include "rand.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uthash.h>

int sl_trace_on;
static const sl_trace_sink_t *g_sink;

/* Atomic: pool workers end spans while a reload starts an exporter. */
void sl_trace_set_sink(const sl_trace_sink_t *sink) { __atomic_store_n(&g_sink, sink, __ATOMIC_RELEASE); }

/* A trace is kept when the low 64 bits of its id fall in the ratio's share. */
static int keep(double ratio, uint64_t lo) {
  if (ratio >= 1.0) return 1;
  if (ratio <= 0) return 0;
  double t = ratio * 0x1p64;
  return t >= 0x1p64 || lo < (uint64_t)t;
}

/* Sites by kind, label, stream, path and type: one per component, found by
 * hash so that building a stream of many processors stays linear. */
typedef struct site_entry {
  sl_trace_site_t site;
  char *key;
  UT_hash_handle hh;
} site_entry_t;

sl_trace_site_t *sl_trace_site(sl_tskind_t kind, const char *stream, const char *label, const char *type,
                               const char *cfg_path) {
  static site_entry_t *sites;
  char *st = sl_xstrndup(stream ? stream : "", strcspn(stream ? stream : "", "{"));
  char *path = sl_metrics_path(stream, cfg_path);
  char *key = sl_xasprintf("%d\x1f%s\x1f%s\x1f%s\x1f%s", (int)kind, label, st, path, type);
  site_entry_t *e;
  HASH_FIND_STR(sites, key, e);
  if (e) {
    free(st);
    free(path);
    free(key);
    return &e->site;
  }
  e = sl_xcalloc(1, sizeof(*e));
  e->site = (sl_trace_site_t){kind, sl_xstrdup(label), st, path, sl_xstrdup(type)};
  e->key = key;
  HASH_ADD_KEYPTR(hh, sites, e->key, strlen(e->key), e);
  return &e->site;
}

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Hex digit values (-1: not one); snprintf/strtoull were most of a span's cost. */
static signed char hexval[256];

static void __attribute__((constructor)) init_hexval(void) {
  memset(hexval, -1, sizeof hexval);
  for (int i = 0; i < 10; i++) hexval['0' + i] = (signed char)i;
  for (int i = 0; i < 6; i++) hexval['a' + i] = hexval['A' + i] = (signed char)(10 + i);
}

static int hex64(const char *p, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    int d = hexval[(unsigned char)p[i]];
    if (d < 0) return -1;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

static void put_hex64(char *p, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, v >>= 4) p[i] = digits[v & 15];
}

/* `traceparent` (any case: Kafka headers keep the sender's); NULL if absent. */
static const sl_kv_t *find_tp(const sl_msg_t *m) {
  sl_kv_load(&m->meta);
  for (uint32_t i = 0; i < m->meta.n; i++)
    if (!strcasecmp(m->meta.v[i].key, "traceparent")) return &m->meta.v[i];
  return NULL;
}

/* 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>; 0 on success. */
static int parse_tp(const sl_kv_t *kv, sl_span_t *sp, int *sampled) {
  const char *v = kv->val;
  if (kv->vlen < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || !strncmp(v, "ff", 2)) return -1;
  if (hex64(v + 3, &sp->trace_hi) || hex64(v + 19, &sp->trace_lo) || hex64(v + 36, &sp->parent)) return -1;
  int flags = hexval[(unsigned char)v[54]];
  if (hexval[(unsigned char)v[53]] < 0 || flags < 0 || !(sp->trace_hi | sp->trace_lo) || !sp->parent) return -1;
  *sampled = flags & 1;
  return 0;
}

static void set_tp(sl_msg_t *m, const sl_kv_t *old, uint64_t hi, uint64_t lo, uint64_t span, int sampled) {
  char v[56] = "00-";
  put_hex64(v + 3, hi);
  put_hex64(v + 19, lo);
  v[35] = '-';
  put_hex64(v + 36, span);
  memcpy(v + 52, sampled ? "-01" : "-00", 4);
  /* Replaced under the key it came with, so one header goes on. */
  char key[] = "traceparent";
  if (old) memcpy(key, old->key, sizeof key);   /* the same length: "traceparent" in some case */
  sl_kv_set(&m->meta, key, v, 55);
}

sl_spans_t *sl_trace_begin(const sl_trace_site_t *site, sl_batch_t *b) {
  sl_spans_t *sp = NULL;
  const sl_trace_sink_t *sink = __atomic_load_n(&g_sink, __ATOMIC_ACQUIRE);
  double ratio = site->kind == SL_TS_INPUT && sink ? sink->ratio(site->stream) : 0;
  for (uint32_t i = 0; i < b->n; i++) {
    sl_msg_t *m = b->msgs[i];
    const sl_kv_t *tp = find_tp(m);
    sl_span_t s = {0};
    int sampled = 0;
    if (tp && parse_tp(tp, &s, &sampled) != 0) tp = NULL;
    if (site->kind == SL_TS_INPUT) {
      if (!tp) {
        s.trace_lo = sl_rand64();   /* decides; the high half only for kept traces */
        s.parent = 0;
        sampled = 1;
      }
      /* The ratio applies to the trace id, so every hop of a trace decides alike. */
      sampled = sampled && keep(ratio, s.trace_lo);
      if (sampled && !tp) s.trace_hi = sl_rand64();
      if (!sampled) {
        if (tp) set_tp(m, tp, s.trace_hi, s.trace_lo, s.parent, 0);
        continue;
      }
    } else if (!tp || !sampled) {
      continue;
    }
    s.id = sl_rand64();
    if (site->kind != SL_TS_PROCESSOR) set_tp(m, tp, s.trace_hi, s.trace_lo, s.id, 1);
    if (!sp) {
      sp = sl_xmalloc(sizeof(*sp) + (size_t)(b->n - i) * sizeof(sl_span_t));
      sp->site = site;
      sp->n = 0;
      sp->start_ns = wall_ns();
    }
    sp->s[sp->n++] = s;
  }
  return sp;
}

void sl_trace_end(sl_spans_t *sp, int failed, uint64_t excluded_ns) {
  if (!sp) return;
  uint64_t end = wall_ns() - excluded_ns;
  const sl_trace_sink_t *sink = __atomic_load_n(&g_sink, __ATOMIC_ACQUIRE);
  if (sink) sink->add(sp, end > sp->start_ns ? end : sp->start_ns, failed);
  free(sp);
}
