#include "metrics.h"
#include "xalloc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* 1µs to 10s: a processor call on a batch is microseconds, an output write
 * or an end-to-end acknowledgement up to seconds. */
const uint64_t sl_histo_bounds[SL_HISTO_BUCKETS] = {
  1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000,
  10000000, 50000000, 100000000, 500000000, 1000000000, 10000000000u};

typedef struct series {
  struct series *next;
  char *labels;              /* `k="v",k2="v2"` or "" */
  int64_t value;
  sl_histo_t histo;
  UT_hash_handle hh;         /* in its family's by_labels */
} series_t;

/* Families are a few dozen names; their series one per component and
 * stream, so they are found by hash (a stream of 36k processors took
 * minutes to build through a list). */
typedef struct family {
  struct family *next;
  char *name, *help;
  sl_mkind_t kind;
  series_t *series, **tail;
  series_t *by_labels;
} family_t;

static family_t *families, **families_tail = &families;

typedef struct collector { void (*fn)(void *); void *arg; } collector_t;
static collector_t *collectors;
static size_t ncollectors;

static void put_escaped(FILE *f, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') fputc('\\', f);
    if (*v == '\n') fputs("\\n", f);
    else fputc(*v, f);
  }
}

static series_t *find_series(sl_mkind_t kind, const char *name, const char *help, va_list ap) {
  char *labels = NULL;
  size_t ll = 0;
  FILE *f = open_memstream(&labels, &ll);
  int first = 1;
  for (const char *k; (k = va_arg(ap, const char *)); first = 0) {
    const char *v = va_arg(ap, const char *);
    fprintf(f, "%s%s=\"", first ? "" : ",", k);
    put_escaped(f, v ? v : "");
    fputc('"', f);
  }
  fclose(f);
  family_t *fam = families;
  while (fam && strcmp(fam->name, name) != 0) fam = fam->next;
  if (!fam) {
    fam = sl_xcalloc(1, sizeof(*fam));
    fam->name = sl_xstrdup(name);
    fam->help = sl_xstrdup(help);
    fam->kind = kind;
    fam->tail = &fam->series;
    *families_tail = fam;
    families_tail = &fam->next;
  }
  series_t *s;
  HASH_FIND_STR(fam->by_labels, labels, s);
  if (s) {
    free(labels);
    return s;
  }
  s = sl_xcalloc(1, sizeof(*s));
  s->labels = labels;
  HASH_ADD_KEYPTR(hh, fam->by_labels, s->labels, strlen(s->labels), s);
  *fam->tail = s;
  fam->tail = &s->next;
  return s;
}

int64_t *sl_metric(sl_mkind_t kind, const char *name, const char *help, ...) {
  va_list ap;
  va_start(ap, help);
  series_t *s = find_series(kind, name, help, ap);
  va_end(ap);
  return &s->value;
}

sl_histo_t *sl_histogram(const char *name, const char *help, ...) {
  va_list ap;
  va_start(ap, help);
  series_t *s = find_series(SL_HISTOGRAM, name, help, ap);
  va_end(ap);
  return &s->histo;
}

char *sl_metrics_path(const char *stream, const char *cfg_path) {
  char *prefix = sl_xasprintf("streams.%s.", stream ? stream : "");
  size_t pl = strlen(prefix);
  char *path = strncmp(cfg_path, prefix, pl) == 0 ? sl_xasprintf("root.%s", cfg_path + pl) : sl_xstrdup(cfg_path);
  free(prefix);
  return path;
}

void sl_cmetrics_init(sl_cmetrics_t *m, sl_cmkind_t kind, const char *stream, const char *label, const char *cfg_path) {
  static const char *const kinds[] = {"input", "processor", "output"};
  char *st = sl_xstrndup(stream, strcspn(stream, "{"));
  char *path = sl_metrics_path(stream, cfg_path);
  const char *k = kinds[kind];
  char name[64];
#define SERIES(suffix) (snprintf(name, sizeof name, "%s_%s", k, suffix), name)
#define LABELS "stream", st, "label", label, "path", path, NULL
  memset(m, 0, sizeof(*m));
  if (kind != SL_CM_OUTPUT)
    m->received = sl_metric(SL_COUNTER, SERIES("received"), "Messages received by a component.", LABELS);
  if (kind != SL_CM_INPUT) {
    m->sent = sl_metric(SL_COUNTER, SERIES("sent"), "Messages a component passed on (outputs: delivered).", LABELS);
    m->error = sl_metric(SL_COUNTER, SERIES("error"),
                         "Messages a component failed (processors: flagged; outputs: not delivered after retries).",
                         LABELS);
  }
  m->latency = sl_histogram(SERIES("latency_ns"),
                            kind == SL_CM_INPUT ? "Nanoseconds from reading a batch to its acknowledgement."
                            : kind == SL_CM_PROCESSOR ? "Nanoseconds a processor spent on a batch."
                                                      : "Nanoseconds an output took to deliver a batch.",
                            LABELS);
#undef SERIES
#undef LABELS
  free(st);
  free(path);
}

void sl_connmetrics_init(sl_connmetrics_t *m, sl_cmkind_t kind, const char *stream, const char *label,
                         const char *cfg_path) {
  char *st = sl_xstrndup(stream, strcspn(stream, "{"));
  char *path = sl_metrics_path(stream, cfg_path);
  const char *k = kind == SL_CM_INPUT ? "input" : kind == SL_CM_OUTPUT ? "output" : "processor";
  char name[64];
#define SERIES(suffix) (snprintf(name, sizeof name, "%s_connection_%s", k, suffix), name)
#define LABELS "stream", st, "label", label ? label : "", "path", path, NULL
  m->up = sl_metric(SL_COUNTER, SERIES("up"), "Connections a component established.", LABELS);
  m->lost = sl_metric(SL_COUNTER, SERIES("lost"), "Connections a component lost.", LABELS);
  m->failed = sl_metric(SL_COUNTER, SERIES("failed"), "Connection attempts of a component that failed.", LABELS);
#undef SERIES
#undef LABELS
  free(st);
  free(path);
}

void sl_metrics_collector_add(void (*fn)(void *), void *arg) {
  collectors = sl_xrealloc(collectors, (ncollectors + 1) * sizeof(*collectors));
  collectors[ncollectors++] = (collector_t){fn, arg};
}

void sl_metrics_collector_remove(void (*fn)(void *), void *arg) {
  for (size_t i = 0; i < ncollectors; i++)
    if (collectors[i].fn == fn && collectors[i].arg == arg) {
      collectors[i] = collectors[--ncollectors];
      return;
    }
}

static void put_histogram(FILE *f, const char *name, const series_t *s) {
  const char *sep = *s->labels ? "," : "";
  uint64_t cum = 0;
  for (unsigned i = 0; i <= SL_HISTO_BUCKETS; i++) {
    cum += SL_READ(&s->histo.bucket[i]);
    if (i < SL_HISTO_BUCKETS)
      fprintf(f, "%s_bucket{%s%sle=\"%llu\"} %llu\n", name, s->labels, sep, (unsigned long long)sl_histo_bounds[i],
              (unsigned long long)cum);
    else
      fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, s->labels, sep, (unsigned long long)cum);
  }
  const char *o = *s->labels ? "{" : "", *c = *s->labels ? "}" : "";
  fprintf(f, "%s_sum%s%s%s %llu\n%s_count%s%s%s %llu\n", name, o, s->labels, c, (unsigned long long)s->histo.sum, name,
          o, s->labels, c, (unsigned long long)s->histo.count);
}

/* Does a label set hold stream="<want>" (want already in label syntax)? */
static int of_stream(const char *labels, const char *want) {
  size_t wl = strlen(want);
  for (const char *p = labels; (p = strstr(p, want)); p += wl)
    if (p == labels || p[-1] == ',') return 1;
  return 0;
}

void sl_metrics_each(const char *prefix, sl_metrics_each_fn fn, void *arg) {
  size_t pl = strlen(prefix);
  for (family_t *fam = families; fam; fam = fam->next) {
    if (strncmp(fam->name, prefix, pl)) continue;
    for (series_t *s = fam->series; s; s = s->next)
      fn(fam->name, s->labels, fam->kind == SL_HISTOGRAM ? 0 : SL_READ(&s->value),
         fam->kind == SL_HISTOGRAM ? &s->histo : NULL, arg);
  }
}

int sl_metrics_label(const char *labels, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = labels; *p;) {
    int hit = !strncmp(p, key, kl) && p[kl] == '=';
    p = strchr(p, '"');   /* values are quoted and their quotes escaped (put_escaped) */
    if (!p) return -1;
    size_t n = 0;
    for (p++; *p && *p != '"'; p++) {
      char c = *p;
      if (c == '\\' && p[1]) c = *++p == 'n' ? '\n' : *p;
      if (hit && n + 1 < cap) out[n++] = c;
    }
    if (hit) {
      if (cap) out[n] = 0;
      return 0;
    }
    if (*p) p++;
    if (*p == ',') p++;
  }
  return -1;
}

char *sl_metrics_text(size_t *len) { return sl_metrics_text_stream(NULL, len); }

char *sl_metrics_text_stream(const char *stream, size_t *len) {
  for (size_t i = 0; i < ncollectors; i++) collectors[i].fn(collectors[i].arg);
  char *want = NULL;
  size_t wl = 0;
  if (stream) {
    FILE *w = open_memstream(&want, &wl);
    fputs("stream=\"", w);
    put_escaped(w, stream);
    fputc('"', w);
    fclose(w);
  }
  static const char *const types[] = {"counter", "gauge", "histogram"};
  char *out = NULL;
  FILE *f = open_memstream(&out, len);
  for (family_t *fam = families; fam; fam = fam->next) {
    int head = 0;
    for (series_t *s = fam->series; s; s = s->next) {
      if (want && !of_stream(s->labels, want)) continue;
      if (!head++) fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, types[fam->kind]);
      if (fam->kind == SL_HISTOGRAM) put_histogram(f, fam->name, s);
      else
        fprintf(f, "%s%s%s%s %lld\n", fam->name, *s->labels ? "{" : "", s->labels, *s->labels ? "}" : "",
                (long long)SL_READ(&s->value));
    }
  }
  fclose(f);
  free(want);
  return out;
}
