/* The component registry and spec-driven validation: type checks, defaults,
 * shorthands, and "did you mean" for misspelt keys, names and enum values. */
#include "spec.h"
#include "ctxref.h"
#include "xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

enum { MAX_SPECS = 256 };
/* Filled by constructors before main; sorted once on first lookup. */
static const sl_spec_t *g_specs[MAX_SPECS];
static unsigned g_nspecs;
static int g_sorted;

void sl_registry_add(const sl_spec_t *spec) {
  if (g_nspecs == MAX_SPECS) {
    fprintf(stderr, "sluice: too many components registered\n");
    abort();
  }
  g_specs[g_nspecs++] = spec;
  g_sorted = 0;
}

static int by_kind_name(const void *a, const void *b) {
  const sl_spec_t *x = *(const sl_spec_t *const *)a, *y = *(const sl_spec_t *const *)b;
  if (x->kind != y->kind) return (int)x->kind - (int)y->kind;
  return strcmp(x->name, y->name);
}

static void sort_once(void) {
  if (g_sorted) return;
  qsort(g_specs, g_nspecs, sizeof(*g_specs), by_kind_name);
  g_sorted = 1;
}

const sl_spec_t *sl_registry_find(sl_kind_t kind, const char *name) {
  sort_once();
  for (unsigned i = 0; i < g_nspecs; i++)
    if (g_specs[i]->kind == kind && strcmp(g_specs[i]->name, name) == 0) return g_specs[i];
  return NULL;
}

const sl_spec_t *sl_registry_at(sl_kind_t kind, unsigned i) {
  sort_once();
  for (unsigned k = 0; k < g_nspecs; k++)
    if (g_specs[k]->kind == kind && i-- == 0) return g_specs[k];
  return NULL;
}

const char *sl_kind_name(sl_kind_t kind) {
  switch (kind) {
  case SL_KIND_INPUT: return "input";
  case SL_KIND_PROCESSOR: return "processor";
  case SL_KIND_OUTPUT: return "output";
  }
  return "component";
}

/* ---------- did you mean ---------- */

/* Optimal string alignment distance: insertions, deletions, substitutions
 * and swaps of two neighbours ("lau" → "lua") each count one. Gives up with
 * limit + 1 as soon as the distance must exceed limit, so that a long
 * unknown word costs little against a long list of candidates. */
static unsigned osa_distance(const char *a, const char *b, unsigned limit) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64 || la > lb + limit || lb > la + limit) return limit + 1;
  unsigned rows[3][65], *before = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= lb; j++) prev[j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (unsigned)i;
    unsigned least = cur[0];
    for (size_t j = 1; j <= lb; j++) {
      unsigned best = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (prev[j] + 1 < best) best = prev[j] + 1;
      if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && before[j - 2] + 1 < best)
        best = before[j - 2] + 1;
      cur[j] = best;
      if (best < least) least = best;
    }
    if (least > limit) return limit + 1;
    unsigned *t = before;
    before = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb];
}

const char *sl_nearest(const char *word, const char *const *candidates, unsigned n) {
  size_t len = strlen(word);
  unsigned limit = len <= 3 ? 1 : len <= 7 ? 2 : 3;
  const char *best = NULL;
  unsigned best_d = limit + 1;
  for (unsigned i = 0; i < n; i++) {
    unsigned d = osa_distance(word, candidates[i], limit);
    if (d < best_d) {
      best_d = d;
      best = candidates[i];
    }
  }
  return best;
}

static const char *nearest_field(const char *word, const sl_field_t *fields) {
  const char *names[128];
  unsigned n = 0;
  for (const sl_field_t *f = fields; f && f->name && n < 128; f++)
    if (!(f->flags & SL_MOVED)) names[n++] = f->name;
  return sl_nearest(word, names, n);
}

static const char *nearest_component(sl_kind_t kind, const char *word) {
  const char *names[MAX_SPECS];
  unsigned n = 0;
  const sl_spec_t *s;
  while ((s = sl_registry_at(kind, n))) names[n++] = s->name;
  return sl_nearest(word, names, n);
}

/* ---------- Benthos names ---------- */

#define LUA_DOC "see docs/components/processors/lua.md"
#define KAFKA "use `kafka` (librdkafka; its fields are those of Benthos's `kafka`)"
#define INPROC "use `stream`: a durable stream another stream writes with the `stream` output (`name`)"

/* Components of Benthos (and so of Tyk Streams) that sluice has under another
 * name or shape: such a name gets its way across instead of a guess. */
static const sl_hint_t hints[] = {
  {SL_KIND_PROCESSOR, "jq", "write the transformation as a `lua` processor; " LUA_DOC},
  {SL_KIND_PROCESSOR, "jmespath", "write the transformation as a `lua` processor; " LUA_DOC},
  {SL_KIND_PROCESSOR, "awk", "write the transformation as a `lua` processor; " LUA_DOC},
  {SL_KIND_PROCESSOR, "noop", "leave it out: `processors: []` passes messages unchanged"},
  {SL_KIND_INPUT, "kafka_franz", KAFKA},
  {SL_KIND_INPUT, "redpanda", KAFKA},
  {SL_KIND_INPUT, "inproc", INPROC},
  {SL_KIND_OUTPUT, "kafka_franz", KAFKA},
  {SL_KIND_OUTPUT, "redpanda", KAFKA},
  {SL_KIND_OUTPUT, "inproc", "use `stream`: a durable stream another stream reads with the `stream` input (`name`)"},
  {SL_KIND_OUTPUT, "retry",
   "every output retries failed writes: set the stream's `retry:` (`max_retries`, `initial_interval`, `max_interval`)"},
  {0}};

const sl_hint_t *sl_hint_at(unsigned i) {
  return i < sizeof(hints) / sizeof(hints[0]) - 1 ? &hints[i] : NULL;
}

/* An unknown component name, with its Benthos hint or the nearest name. */
static void unknown_component(sl_kind_t kind, const char *name, const sl_cnode_t *at, const char *path, sl_diags_t *d) {
  const char *kname = sl_kind_name(kind);
  for (const sl_hint_t *h = hints; h->name; h++)
    if (h->kind == kind && !strcmp(h->name, name)) {
      sl_diag_add(d, at, path, "unknown %s \"%s\": %s", kname, name, h->text);
      return;
    }
  const char *near = nearest_component(kind, name);
  if (near) sl_diag_add(d, at, path, "unknown %s \"%s\" (did you mean \"%s\"?)", kname, name, near);
  else sl_diag_add(d, at, path, "unknown %s \"%s\" (see `sluice list`)", kname, name);
}

/* ---------- validation ---------- */

static char *join(const char *path, const char *key) {
  return path && *path ? sl_xasprintf("%s.%s", path, key) : sl_xstrdup(key);
}

static char *join_index(const char *path, uint32_t i) {
  return sl_xasprintf("%s.%u", path && *path ? path : "", i);
}

static const char *type_word(sl_ftype_t t) {
  switch (t) {
  case SL_F_STRING: case SL_F_CODE: return "a string";
  case SL_F_INT: return "an integer";
  case SL_F_FLOAT: return "a number";
  case SL_F_BOOL: return "true or false";
  case SL_F_DURATION: return "a duration such as 500ms, 5s or 1m30s (\"\" is 0)";
  case SL_F_SIZE: return "a size such as 512, 64KiB or 1MB";
  case SL_F_ENUM: return "one of the listed values";
  case SL_F_STRLIST: return "a string or a list of strings";
  case SL_F_MAP: return "a map of strings";
  case SL_F_OBJECT: return "a map";
  case SL_F_OBJLIST: case SL_F_INPUTS: case SL_F_OUTPUTS: case SL_F_PROCESSORS: return "a list";
  case SL_F_INPUT: return "an input";
  case SL_F_OUTPUT: return "an output";
  case SL_F_PROCESSOR: return "a processor";
  case SL_F_ADDRESS: return "an address host:port";
  case SL_F_ANY: return "a value";
  }
  return "a value";
}

/* The value of a number, duration (ms) or size (bytes) scalar, or -1. */
static int scalar_number(sl_ftype_t t, const char *s, double *out) {
  int64_t i;
  switch (t) {
  case SL_F_FLOAT: return sl_parse_float(s, out);
  case SL_F_INT: if (sl_parse_int(s, &i) != 0) return -1; break;
  case SL_F_DURATION: if (sl_parse_duration_ms(s, &i) != 0) return -1; break;
  case SL_F_SIZE: if (sl_parse_size(s, &i) != 0) return -1; break;
  default: return -1;
  }
  *out = (double)i;
  return 0;
}

/* A value outside the field's bounds (a valid scalar of its type). */
static int out_of_bounds(const sl_field_t *f, const sl_cnode_t *v, const char *path, sl_diags_t *d) {
  const char *lo = f->values[0], *hi = f->values[1];
  double x, b;
  if (scalar_number(f->type, v->str, &x) != 0) return 0;
  int below = *lo && scalar_number(f->type, lo, &b) == 0 && x < b;
  int above = *hi && scalar_number(f->type, hi, &b) == 0 && x > b;
  if (!below && !above) return 0;
  if (*lo && *hi) sl_diag_add(d, v, path, "%s is out of range: must be between %s and %s", v->str, lo, hi);
  else if (*lo) sl_diag_add(d, v, path, "%s is out of range: must be at least %s", v->str, lo);
  else sl_diag_add(d, v, path, "%s is out of range: must be at most %s", v->str, hi);
  return 1;
}


/* A default as a node: scalars are taken as written, lists and maps parsed as YAML. */
static sl_cnode_t *default_node(const sl_field_t *f, const sl_cnode_t *pos) {
  sl_cnode_t *n;
  if (f->def[0] == '[' || f->def[0] == '{') {
    sl_diags_t d = {0};
    n = sl_conf_parse(f->def, strlen(f->def), pos->file, &d);
    sl_diags_free(&d);
    n->file = pos->file;
    n->line = pos->line;
    n->col = pos->col;
  } else {
    n = sl_cnode_scalar(f->def, pos);
  }
  n->synthetic = 1;
  return n;
}


static int validate_list(sl_kind_t kind, int of_components, const sl_field_t *f, sl_cnode_t *v, const char *path,
                         sl_diags_t *d) {
  if (v->type == SL_CN_NULL) {
    v->type = SL_CN_SEQ;
    return 0;
  }
  if (v->type != SL_CN_SEQ) {
    sl_diag_add(d, v, path, "expected %s", type_word(f->type));
    return 1;
  }
  int errs = 0;
  for (uint32_t i = 0; i < v->n; i++) {
    char *p = join_index(path, i);
    if (of_components) errs += sl_spec_validate_component(kind, v->items[i], p, d);
    else if (v->items[i]->type != SL_CN_MAP && v->items[i]->type != SL_CN_NULL) {
      sl_diag_add(d, v->items[i], p, "expected a map");
      errs++;
    } else {
      if (v->items[i]->type == SL_CN_NULL) v->items[i]->type = SL_CN_MAP;
      errs += sl_spec_validate_fields(f->fields, v->items[i], p, d);
    }
    free(p);
  }
  return errs;
}

static int validate_scalar(const sl_field_t *f, sl_cnode_t *v, const char *path, sl_diags_t *d) {
  if (v->type == SL_CN_NULL && (f->type == SL_F_STRING || f->type == SL_F_CODE)) {
    v->type = SL_CN_SCALAR;
    v->str = sl_xstrdup("");
    v->len = 0;
    return 0;
  }
  if (v->type != SL_CN_SCALAR) {
    sl_diag_add(d, v, path, "expected %s", type_word(f->type));
    return 1;
  }
  {
    sl_ctxref_t ref;
    int rc = sl_ctxref_next(v->str, 0, &ref);
    sl_ctxref_clear(&ref);
    if (rc < 0) {
      sl_diag_add(d, v, path, "not a request-context reference: write ${ctx.user}, ${ctx.method}, ${ctx.path}, "
                  "${ctx.remote_addr}, ${ctx.request_id}, or ${ctx.query.NAME} (also headers, params, cookies, jwt), "
                  "optionally with a :default; Tyk's $tyk_context.request_data_NAME, headers_NAME, jwt_claims_NAME, "
                  "cookies_NAME are accepted");
      return 1;
    }
    if (rc > 0 && f->type != SL_F_CODE) return 0;   /* checked once resolved, per request (control/scoped.c) */
  }
  int64_t i;
  double x;
  int ok = 1;
  switch (f->type) {
  case SL_F_INT: ok = sl_parse_int(v->str, &i) == 0; break;
  case SL_F_FLOAT: ok = sl_parse_float(v->str, &x) == 0; break;
  case SL_F_BOOL: ok = sl_parse_bool(v->str, &(int){0}) == 0; break;
  case SL_F_DURATION:
    if (!*v->str) {
      /* Benthos writes an empty duration for none (`interval: ""`). */
      free(v->str);
      v->str = sl_xstrdup("0");
      v->len = 1;
    }
    ok = sl_parse_duration_ms(v->str, &i) == 0;
    break;
  case SL_F_SIZE: ok = sl_parse_size(v->str, &i) == 0; break;
  case SL_F_ADDRESS: {
    const char *why;
    if (sl_parse_address(v->str, &(struct sockaddr_storage){0}, &why) == 0) return 0;
    sl_diag_add(d, v, path, "\"%s\" is not an address to listen on: %s (e.g. 0.0.0.0:4195, 127.0.0.1:4195, [::]:4195)",
                v->str, why);
    return 1;
  }
  case SL_F_ENUM: {
    unsigned n = 0;
    for (; f->values && f->values[n]; n++) {
      if (strcasecmp(f->values[n], v->str) != 0) continue;
      /* Benthos writes `level: WARN`: any case is taken, readers see ours. */
      free(v->str);
      v->str = sl_xstrdup(f->values[n]);
      v->len = strlen(v->str);
      return 0;
    }
    char list[512] = "";
    for (unsigned k = 0; k < n; k++) {
      size_t used = strlen(list);
      snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "", f->values[k]);
    }
    const char *near = sl_nearest(v->str, f->values, n);
    if (near)
      sl_diag_add(d, v, path, "unknown value \"%s\" (did you mean \"%s\"?); expected one of: %s", v->str, near, list);
    else
      sl_diag_add(d, v, path, "unknown value \"%s\"; expected one of: %s", v->str, list);
    return 1;
  }
  default: break;
  }
  if (!ok) {
    sl_diag_add(d, v, path, "\"%s\" is not %s", v->str, type_word(f->type));
    return 1;
  }
  return f->values ? out_of_bounds(f, v, path, d) : 0;
}

int sl_spec_validate_value(const sl_field_t *f, sl_cnode_t *v, const char *path, sl_diags_t *d) {
  switch (f->type) {
  case SL_F_STRLIST:
    if (v->type == SL_CN_SCALAR) {
      /* A single value is a one-item list: rewrite in place so readers see a list. */
      sl_cnode_t *item = sl_cnode_dup(v);
      free(v->str);
      v->str = NULL;
      v->len = 0;
      v->quoted = 0;
      v->type = SL_CN_SEQ;
      sl_cnode_seq_push(v, item);
      return 0;
    }
    if (v->type == SL_CN_NULL) {
      v->type = SL_CN_SEQ;
      return 0;
    }
    if (v->type != SL_CN_SEQ) break;
    for (uint32_t i = 0; i < v->n; i++)
      if (v->items[i]->type != SL_CN_SCALAR) {
        char *p = join_index(path, i);
        sl_diag_add(d, v->items[i], p, "expected a string");
        free(p);
        return 1;
      }
    return 0;
  case SL_F_MAP:
    if (v->type == SL_CN_NULL) {
      v->type = SL_CN_MAP;
      return 0;
    }
    if (v->type != SL_CN_MAP) break;
    for (uint32_t i = 0; i < v->n; i++)
      if (v->items[i]->type != SL_CN_SCALAR) {
        char *p = join(path, v->keys[i]);
        sl_diag_add(d, v->items[i], p, "expected a string value");
        free(p);
        return 1;
      }
    return 0;
  case SL_F_OBJECT:
    if (v->type == SL_CN_NULL) v->type = SL_CN_MAP;
    if (v->type != SL_CN_MAP) break;
    return f->fields ? sl_spec_validate_fields(f->fields, v, path, d) : 0;
  case SL_F_OBJLIST: return validate_list(SL_KIND_INPUT, 0, f, v, path, d);
  case SL_F_INPUTS: return validate_list(SL_KIND_INPUT, 1, f, v, path, d);
  case SL_F_OUTPUTS: return validate_list(SL_KIND_OUTPUT, 1, f, v, path, d);
  case SL_F_PROCESSORS: return validate_list(SL_KIND_PROCESSOR, 1, f, v, path, d);
  case SL_F_INPUT: return sl_spec_validate_component(SL_KIND_INPUT, v, path, d);
  case SL_F_OUTPUT: return sl_spec_validate_component(SL_KIND_OUTPUT, v, path, d);
  case SL_F_PROCESSOR: return sl_spec_validate_component(SL_KIND_PROCESSOR, v, path, d);
  case SL_F_ANY: return 0;
  default: return validate_scalar(f, v, path, d);
  }
  sl_diag_add(d, v, path, "expected %s", type_word(f->type));
  return 1;
}

int sl_spec_validate_fields(const sl_field_t *fields, sl_cnode_t *node, const char *path, sl_diags_t *d) {
  if (node->type == SL_CN_NULL) node->type = SL_CN_MAP;
  if (node->type != SL_CN_MAP) {
    sl_diag_add(d, node, path, "expected a map of fields");
    return 1;
  }
  int errs = 0;
  for (uint32_t i = 0; i < node->n; i++) {
    const sl_field_t *f = fields;
    while (f && f->name && strcmp(f->name, node->keys[i]) != 0) f++;
    char *p = join(path, node->keys[i]);
    if (!f || !f->name) {
      sl_cnode_t pos = sl_cnode_key_pos(node, i);
      const char *near = nearest_field(node->keys[i], fields);
      if (near) sl_diag_add(d, &pos, p, "unknown field (did you mean \"%s\"?)", near);
      else sl_diag_add(d, &pos, p, "unknown field");
      errs++;
    } else if (f->flags & SL_MOVED) {
      sl_cnode_t pos = sl_cnode_key_pos(node, i);
      sl_diag_add(d, &pos, p, "%s", f->desc);
      errs++;
    } else {
      errs += sl_spec_validate_value(f, node->items[i], p, d);
    }
    free(p);
  }
  for (const sl_field_t *f = fields; f && f->name; f++) {
    if (sl_cnode_get(node, f->name)) continue;
    char *p = join(path, f->name);
    if (f->flags & SL_REQUIRED) {
      sl_diag_add(d, node, p, "missing required field");
      errs++;
    } else if (f->def) {
      sl_cnode_t *dn = default_node(f, node);
      sl_cnode_map_set(node, f->name, dn);
      errs += sl_spec_validate_value(f, dn, p, d);
    }
    free(p);
  }
  return errs;
}

const char *sl_component_name(const sl_cnode_t *wrapper, const sl_cnode_t **body) {
  if (!wrapper || wrapper->type != SL_CN_MAP) return NULL;
  for (uint32_t i = 0; i < wrapper->n; i++) {
    if (!strcmp(wrapper->keys[i], "label") || !strcmp(wrapper->keys[i], "processors")) continue;
    if (body) *body = wrapper->items[i];
    return wrapper->keys[i];
  }
  return NULL;
}

static const sl_field_t *find_field(const sl_field_t *fields, const char *name) {
  for (const sl_field_t *f = fields; f && f->name; f++)
    if (!strcmp(f->name, name)) return f;
  return NULL;
}

/* A bare value, or a map that names none of the spec's fields when the
 * shorthand field is itself a component (`reject_errored: {stdout: {}}`). */
static int shorthand_applies(const sl_spec_t *spec, const sl_cnode_t *body) {
  if (body->type == SL_CN_SCALAR || body->type == SL_CN_SEQ) return 1;
  if (body->type != SL_CN_MAP || body->n == 0) return 0;
  const sl_field_t *sf = find_field(spec->fields, spec->shorthand);
  if (!sf || (sf->type != SL_F_INPUT && sf->type != SL_F_OUTPUT && sf->type != SL_F_PROCESSOR)) return 0;
  for (uint32_t i = 0; i < body->n; i++)
    if (find_field(spec->fields, body->keys[i])) return 0;
  return 1;
}

static const sl_field_t processors_field[] = {
  {.name = "processors", .type = SL_F_PROCESSORS}, {0}};

int sl_spec_validate_component(sl_kind_t kind, sl_cnode_t *node, const char *path, sl_diags_t *d) {
  const char *kname = sl_kind_name(kind);
  /* `output: drop` is accepted for `output: {drop: {}}`. */
  if (node->type == SL_CN_SCALAR && sl_registry_find(kind, node->str)) {
    char *name = node->str;
    node->str = NULL;
    node->len = 0;
    node->type = SL_CN_MAP;
    sl_cnode_map_set(node, name, sl_cnode_new(SL_CN_MAP, node));
    free(name);
  }
  if (node->type != SL_CN_MAP) {
    if (node->type == SL_CN_SCALAR && *node->str) unknown_component(kind, node->str, node, path, d);
    else sl_diag_add(d, node, path, "expected %s: a map such as {%s: {...}}", kname, kind == SL_KIND_OUTPUT ? "stdout" : kind == SL_KIND_INPUT ? "stdin" : "lua");
    return 1;
  }
  int errs = 0;
  const char *first = NULL;
  uint32_t body_i = 0;
  for (uint32_t i = 0; i < node->n; i++) {
    const char *k = node->keys[i];
    char *p = join(path, k);
    sl_cnode_t kpos = sl_cnode_key_pos(node, i);
    if (!strcmp(k, "label")) {
      if (node->items[i]->type != SL_CN_SCALAR) {
        sl_diag_add(d, node->items[i], p, "expected a string");
        errs++;
      }
    } else if (!strcmp(k, "processors") && kind != SL_KIND_PROCESSOR) {
      errs += sl_spec_validate_value(processors_field, node->items[i], p, d);
    } else if (!sl_registry_find(kind, k)) {
      unknown_component(kind, k, &kpos, p, d);
      errs++;
      if (!first) first = k;
    } else if (first) {
      sl_diag_add(d, &kpos, p, "only one %s per block: \"%s\" is already given", kname, first);
      errs++;
    } else {
      first = k;
      body_i = i;
    }
    free(p);
  }
  if (!first) {
    sl_diag_add(d, node, path, "no %s given (see `sluice list`)", kname);
    return errs + 1;
  }
  const sl_spec_t *spec = sl_registry_find(kind, node->keys[body_i]);
  if (!spec) return errs;
  sl_cnode_t *body = node->items[body_i];
  char *p = join(path, spec->name);
  if (spec->shorthand && shorthand_applies(spec, body)) {
    /* Shorthand: `lua: <code>` means `lua: {code: <code>}`. */
    sl_cnode_t *wrapped = sl_cnode_new(SL_CN_MAP, body);
    sl_cnode_map_set(wrapped, spec->shorthand, body);
    node->items[body_i] = wrapped;
    body = wrapped;
  }
  errs += sl_spec_validate_fields(spec->fields, body, p, d);
  free(p);
  return errs;
}
