#include "metrics.h"
#include "xalloc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct series {
  struct series *next;
  char *labels;              /* `k="v",k2="v2"` or "" */
  int64_t value;
} series_t;

typedef struct family {
  struct family *next;
  char *name, *help;
  sl_mkind_t kind;
  series_t *series, **tail;
} family_t;

static family_t *families, **families_tail = &families;

static void put_escaped(FILE *f, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') fputc('\\', f);
    if (*v == '\n') fputs("\\n", f);
    else fputc(*v, f);
  }
}

int64_t *sl_metric(sl_mkind_t kind, const char *name, const char *help, ...) {
  char *labels = NULL;
  size_t ll = 0;
  FILE *f = open_memstream(&labels, &ll);
  va_list ap;
  va_start(ap, help);
  int first = 1;
  for (const char *k; (k = va_arg(ap, const char *)); first = 0) {
    const char *v = va_arg(ap, const char *);
    fprintf(f, "%s%s=\"", first ? "" : ",", k);
    put_escaped(f, v ? v : "");
    fputc('"', f);
  }
  va_end(ap);
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
  for (series_t *s = fam->series; s; s = s->next)
    if (!strcmp(s->labels, labels)) {
      free(labels);
      return &s->value;
    }
  series_t *s = sl_xcalloc(1, sizeof(*s));
  s->labels = labels;
  *fam->tail = s;
  fam->tail = &s->next;
  return &s->value;
}

char *sl_metrics_text(size_t *len) {
  char *out = NULL;
  FILE *f = open_memstream(&out, len);
  for (family_t *fam = families; fam; fam = fam->next) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
            fam->kind == SL_COUNTER ? "counter" : "gauge");
    for (series_t *s = fam->series; s; s = s->next)
      fprintf(f, "%s%s%s%s %lld\n", fam->name, *s->labels ? "{" : "", s->labels, *s->labels ? "}" : "",
              (long long)s->value);
  }
  fclose(f);
  return out;
}
