/* YAML → sl_cnode_t with positions (libyaml's event parser), ${ENV}
 * substitution, and the cnode helpers. Aliases are expanded by copy under a
 * node budget so that a "billion laughs" file is an error, not an OOM. */
#include "conf.h"
#include "sbuf.h"
#include "xalloc.h"
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <yaml.h>

#define SL_MAX_NODES 1000000u
#define SL_MAX_DEPTH 256
#define SL_MAX_ANCHORS 1024

typedef struct anchor { char *name; sl_cnode_t *node; } anchor_t;

typedef struct parser {
  yaml_parser_t yp;
  const char *file;
  sl_diags_t *diags;
  unsigned nodes, max_nodes;
  int failed;
  anchor_t anchors[SL_MAX_ANCHORS];
  unsigned nanchors;
  sl_cnode_t *discarded;     /* nodes dropped while parsing: an anchor may still name them */
} parser_t;

/* Frees n once the parse is over, not now: `&a key: …` anchors a key that
 * is dropped at once, and a later `*a` must still find it. */
static void discard(parser_t *p, sl_cnode_t *n) {
  if (!n) return;
  if (!p->discarded) p->discarded = sl_cnode_new(SL_CN_SEQ, NULL);
  sl_cnode_seq_push(p->discarded, n);
}

/* ---------- nodes ---------- */

static void map_append(sl_cnode_t *map, const char *key, sl_cnode_t *val, int line, int col);

sl_cnode_t *sl_cnode_new(sl_cntype_t t, const sl_cnode_t *pos) {
  sl_cnode_t *n = sl_xcalloc(1, sizeof(*n));
  n->type = t;
  if (pos) {
    n->file = pos->file;
    n->line = pos->line;
    n->col = pos->col;
  }
  return n;
}

sl_cnode_t *sl_cnode_scalar(const char *s, const sl_cnode_t *pos) {
  sl_cnode_t *n = sl_cnode_new(SL_CN_SCALAR, pos);
  n->str = sl_xstrdup(s);
  n->len = strlen(s);
  return n;
}

static unsigned count_nodes(const sl_cnode_t *n) {
  unsigned c = 1;
  for (uint32_t i = 0; i < n->n; i++) c += count_nodes(n->items[i]);
  return c;
}

sl_cnode_t *sl_cnode_dup(const sl_cnode_t *n) {
  sl_cnode_t *d = sl_cnode_new(n->type, n);
  d->quoted = n->quoted;
  d->block = n->block;
  d->synthetic = n->synthetic;
  if (n->str) {
    d->str = sl_xmalloc(n->len + 1);
    memcpy(d->str, n->str, n->len + 1);
    d->len = n->len;
  }
  if (n->env_raw) d->env_raw = sl_xstrdup(n->env_raw);
  for (uint32_t i = 0; i < n->n; i++) {
    if (n->type == SL_CN_MAP) map_append(d, n->keys[i], sl_cnode_dup(n->items[i]), n->kline[i], n->kcol[i]);
    else sl_cnode_seq_push(d, sl_cnode_dup(n->items[i]));
  }
  return d;
}

void sl_cnode_free(sl_cnode_t *n) {
  if (!n) return;
  for (uint32_t i = 0; i < n->n; i++) {
    sl_cnode_free(n->items[i]);
    if (n->keys) free(n->keys[i]);
  }
  free(n->keys);
  free(n->slots);
  free(n->kline);
  free(n->kcol);
  free(n->items);
  free(n->str);
  free(n->env_raw);
  free(n);
}

static void grow(sl_cnode_t *n) {
  if (n->n < n->cap) return;
  n->cap = n->cap ? n->cap * 2 : 4;
  n->items = sl_xrealloc(n->items, n->cap * sizeof(*n->items));
  if (n->type == SL_CN_MAP) {
    n->keys = sl_xrealloc(n->keys, n->cap * sizeof(*n->keys));
    n->kline = sl_xrealloc(n->kline, n->cap * sizeof(*n->kline));
    n->kcol = sl_xrealloc(n->kcol, n->cap * sizeof(*n->kcol));
  }
}

/* Maps of INDEX_FROM keys or more are indexed by a hash of their keys, kept
 * up to date by every change, so that lookups (a duplicate check per key
 * while parsing) stay constant time: 100k keys load in linear time. The
 * index is built eagerly rather than on first lookup because validated
 * trees are read, never written, by their users. */
enum { INDEX_FROM = 8 };

static uint32_t key_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static void index_put(sl_cnode_t *m, uint32_t i) {
  uint32_t mask = m->nslots - 1;
  for (uint32_t h = key_hash(m->keys[i]) & mask;; h = (h + 1) & mask)
    if (!m->slots[h]) {
      m->slots[h] = i + 1;
      return;
    }
}

static void index_build(sl_cnode_t *m) {
  free(m->slots);
  m->slots = NULL;
  m->nslots = 0;
  if (m->n < INDEX_FROM) return;
  m->nslots = 4 * INDEX_FROM;
  while (m->nslots < 2 * m->n) m->nslots *= 2;
  m->slots = sl_xcalloc(m->nslots, sizeof(*m->slots));
  for (uint32_t i = 0; i < m->n; i++) index_put(m, i);
}

/* Index of key in map, or -1. */
static int64_t map_find(const sl_cnode_t *m, const char *key) {
  if (!m->slots) {
    for (uint32_t i = 0; i < m->n; i++)
      if (strcmp(m->keys[i], key) == 0) return i;
    return -1;
  }
  uint32_t mask = m->nslots - 1;
  for (uint32_t h = key_hash(key) & mask; m->slots[h]; h = (h + 1) & mask)
    if (strcmp(m->keys[m->slots[h] - 1], key) == 0) return m->slots[h] - 1;
  return -1;
}

static void map_append(sl_cnode_t *map, const char *key, sl_cnode_t *val, int line, int col) {
  grow(map);
  map->keys[map->n] = sl_xstrdup(key);
  map->kline[map->n] = line;
  map->kcol[map->n] = col;
  map->items[map->n++] = val;
  if (map->n >= INDEX_FROM && 2 * map->n <= map->nslots) index_put(map, map->n - 1);
  else if (map->n >= INDEX_FROM) index_build(map);
}

sl_cnode_t sl_cnode_key_pos(const sl_cnode_t *map, uint32_t i) {
  sl_cnode_t pos = {.file = map->file, .line = map->kline[i], .col = map->kcol[i]};
  return pos;
}

sl_cnode_t *sl_cnode_take(sl_cnode_t *map, const char *key) {
  if (!map || map->type != SL_CN_MAP) return NULL;
  int64_t at = map_find(map, key);
  if (at < 0) return NULL;
  uint32_t i = (uint32_t)at;
  sl_cnode_t *v = map->items[i];
  free(map->keys[i]);
  uint32_t rest = map->n - i - 1;
  memmove(map->keys + i, map->keys + i + 1, rest * sizeof(*map->keys));
  memmove(map->kline + i, map->kline + i + 1, rest * sizeof(*map->kline));
  memmove(map->kcol + i, map->kcol + i + 1, rest * sizeof(*map->kcol));
  memmove(map->items + i, map->items + i + 1, rest * sizeof(*map->items));
  map->n--;
  index_build(map);   /* the items after i moved: as dear as the memmove */
  return v;
}

void sl_cnode_map_set(sl_cnode_t *map, const char *key, sl_cnode_t *val) {
  int64_t at = map_find(map, key);
  if (at >= 0) {
    sl_cnode_free(map->items[at]);
    map->items[at] = val;
    return;
  }
  map_append(map, key, val, val->line, val->col);
}

void sl_cnode_seq_push(sl_cnode_t *seq, sl_cnode_t *val) {
  grow(seq);
  seq->items[seq->n++] = val;
}

sl_cnode_t *sl_cnode_get(const sl_cnode_t *map, const char *key) {
  if (!map || map->type != SL_CN_MAP) return NULL;
  int64_t at = map_find(map, key);
  return at < 0 ? NULL : map->items[at];
}

/* ---------- ${ENV} substitution ---------- */


static int env_name_char(char c, int first) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

/* `${NAME}` and `${NAME:default}` become the variable's value; `$${` is a
 * literal `${`; `${! ...}` (Lua) and `${ctx...}` are kept for later stages.
 * An unset variable without default is an error rather than a silent "". */
static char *subst_env(parser_t *p, const char *s, size_t len, size_t *out_len, const sl_cnode_t *pos, int *vars) {
  if (!memchr(s, '$', len)) return NULL;
  sl_sbuf_t b = {0};
  size_t i = 0;
  while (i < len) {
    if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
      sl_sbuf_put(&b, "${", 2);
      i += 3;
      continue;
    }
    if (s[i] == '$' && i + 1 < len && s[i + 1] == '{' && i + 2 < len && env_name_char(s[i + 2], 1)) {
      size_t j = i + 2;
      while (j < len && env_name_char(s[j], 0)) j++;
      size_t name_end = j;
      const char *def = NULL;
      size_t def_len = 0;
      if (j < len && s[j] == ':') {
        def = s + j + 1;
        const char *close = memchr(def, '}', len - (size_t)(def - s));
        if (!close) goto literal;
        def_len = (size_t)(close - def);
        j = (size_t)(close - s);
      }
      if (j >= len || s[j] != '}') goto literal;
      char *name = sl_xstrndup(s + i + 2, name_end - i - 2);
      const char *val = getenv(name);
      *vars = 1;
      if (val) sl_sbuf_put(&b, val, strlen(val));
      else if (def) sl_sbuf_put(&b, def, def_len);
      else {
        sl_diag_add(p->diags, pos, name, "environment variable is not set and has no default (write ${%s:} for an empty default)", name);
        p->failed = 1;
      }
      free(name);
      i = j + 1;
      continue;
    }
  literal:
    sl_sbuf_put(&b, s + i, 1);
    i++;
  }
  if (!b.v) sl_sbuf_put(&b, "", 0);
  *out_len = b.len;
  return b.v;
}

/* ---------- parser ---------- */

static void yaml_error(parser_t *p) {
  sl_cnode_t pos = {.file = p->file, .line = (int)p->yp.problem_mark.line + 1, .col = (int)p->yp.problem_mark.column + 1};
  const char *what = p->yp.problem ? p->yp.problem : "invalid YAML";
  if (p->yp.context)
    sl_diag_add(p->diags, &pos, NULL, "%s %s", what, p->yp.context);
  else
    sl_diag_add(p->diags, &pos, NULL, "%s", what);
  p->failed = 1;
}

static int next_event(parser_t *p, yaml_event_t *ev) {
  if (!yaml_parser_parse(&p->yp, ev)) {
    yaml_error(p);
    return -1;
  }
  return 0;
}

static void set_pos(parser_t *p, sl_cnode_t *n, const yaml_event_t *ev) {
  n->file = p->file;
  n->line = (int)ev->start_mark.line + 1;
  n->col = (int)ev->start_mark.column + 1;
}

static void remember_anchor(parser_t *p, const yaml_char_t *anchor, sl_cnode_t *n) {
  if (!anchor) return;
  for (unsigned i = 0; i < p->nanchors; i++)
    if (strcmp(p->anchors[i].name, (const char *)anchor) == 0) {
      p->anchors[i].node = n;   /* YAML allows redefinition: the latest wins */
      return;
    }
  if (p->nanchors == SL_MAX_ANCHORS) {
    sl_diag_add(p->diags, n, NULL, "more than %d YAML anchors", SL_MAX_ANCHORS);
    p->failed = 1;
    return;
  }
  p->anchors[p->nanchors].name = sl_xstrdup((const char *)anchor);
  p->anchors[p->nanchors++].node = n;
}

static sl_cnode_t *parse_node(parser_t *p, yaml_event_t *ev, int depth);

static sl_cnode_t *expand_alias(parser_t *p, yaml_event_t *ev) {
  sl_cnode_t pos = {.file = p->file, .line = (int)ev->start_mark.line + 1, .col = (int)ev->start_mark.column + 1};
  const char *name = (const char *)ev->data.alias.anchor;
  for (unsigned i = p->nanchors; i-- > 0;) {
    if (strcmp(p->anchors[i].name, name) != 0) continue;
    sl_cnode_t *target = p->anchors[i].node;
    unsigned c = count_nodes(target);
    if (p->nodes + c > p->max_nodes) {
      sl_diag_add(p->diags, &pos, NULL, "alias *%s expands the document beyond %u nodes", name, p->max_nodes);
      p->failed = 1;
      return NULL;
    }
    p->nodes += c;
    sl_cnode_t *d = sl_cnode_dup(target);
    d->file = pos.file;
    d->line = pos.line;
    d->col = pos.col;
    return d;
  }
  sl_diag_add(p->diags, &pos, NULL, "unknown alias *%s", name);
  p->failed = 1;
  return NULL;
}

/* `<<: *base` merges the keys of base that the map does not set itself. */
static void merge_into(sl_cnode_t *map, const sl_cnode_t *src) {
  if (!src) return;
  if (src->type == SL_CN_SEQ) {
    for (uint32_t i = 0; i < src->n; i++) merge_into(map, src->items[i]);
    return;
  }
  if (src->type != SL_CN_MAP) return;
  for (uint32_t i = 0; i < src->n; i++)
    if (!sl_cnode_get(map, src->keys[i])) map_append(map, src->keys[i], sl_cnode_dup(src->items[i]), src->kline[i], src->kcol[i]);
}

static sl_cnode_t *parse_mapping(parser_t *p, yaml_event_t *start, int depth) {
  sl_cnode_t *m = sl_cnode_new(SL_CN_MAP, NULL);
  set_pos(p, m, start);
  remember_anchor(p, start->data.mapping_start.anchor, m);
  sl_cnode_t *merge = NULL;
  for (;;) {
    yaml_event_t kev;
    if (next_event(p, &kev) != 0) break;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      break;
    }
    sl_cnode_t *key = parse_node(p, &kev, depth + 1);
    yaml_event_delete(&kev);
    yaml_event_t vev;
    if (next_event(p, &vev) != 0) {
      discard(p, key);
      break;
    }
    sl_cnode_t *val = parse_node(p, &vev, depth + 1);
    yaml_event_delete(&vev);
    if (!key || !val) {
      discard(p, key);
      discard(p, val);
      if (p->failed) break;
      continue;
    }
    if (key->type != SL_CN_SCALAR && key->type != SL_CN_NULL) {
      sl_diag_add(p->diags, key, NULL, "map keys must be plain strings");
      p->failed = 1;
    } else if (!key->quoted && key->str && strcmp(key->str, "<<") == 0) {
      discard(p, merge);
      merge = val;
      val = NULL;
    } else if (sl_cnode_get(m, key->str ? key->str : "")) {
      sl_diag_add(p->diags, key, key->str, "duplicate key (first set at line %d)",
                  sl_cnode_get(m, key->str ? key->str : "")->line);
      p->failed = 1;
    } else {
      map_append(m, key->str ? key->str : "", val, key->line, key->col);
      val = NULL;
    }
    discard(p, key);
    discard(p, val);
  }
  merge_into(m, merge);
  discard(p, merge);
  return m;
}

static sl_cnode_t *parse_sequence(parser_t *p, yaml_event_t *start, int depth) {
  sl_cnode_t *s = sl_cnode_new(SL_CN_SEQ, NULL);
  set_pos(p, s, start);
  remember_anchor(p, start->data.sequence_start.anchor, s);
  for (;;) {
    yaml_event_t ev;
    if (next_event(p, &ev) != 0) break;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    sl_cnode_t *item = parse_node(p, &ev, depth + 1);
    yaml_event_delete(&ev);
    if (item) sl_cnode_seq_push(s, item);
    else if (p->failed) break;
  }
  return s;
}

static sl_cnode_t *parse_scalar(parser_t *p, yaml_event_t *ev) {
  const char *v = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag;
  sl_cnode_t *n;
  if (plain && (len == 0 || (len == 1 && v[0] == '~') || (len == 4 && memcmp(v, "null", 4) == 0) ||
                (len == 4 && memcmp(v, "Null", 4) == 0) || (len == 4 && memcmp(v, "NULL", 4) == 0))) {
    n = sl_cnode_new(SL_CN_NULL, NULL);
    set_pos(p, n, ev);
  } else {
    n = sl_cnode_new(SL_CN_SCALAR, NULL);
    set_pos(p, n, ev);
    n->quoted = !plain;
    n->block = ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE || ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
    size_t nl;
    int vars = 0;
    char *sub = subst_env(p, v, len, &nl, n, &vars);
    if (sub) {
      n->str = sub;
      n->len = nl;
      /* Lua fields refuse variables in code (lua/script.c). */
      if (vars) n->env_raw = sl_xstrndup(v, len);
    } else {
      n->str = sl_xstrndup(v, len);
      n->len = len;
    }
  }
  remember_anchor(p, ev->data.scalar.anchor, n);
  return n;
}

static sl_cnode_t *parse_node(parser_t *p, yaml_event_t *ev, int depth) {
  if (++p->nodes > p->max_nodes || depth > SL_MAX_DEPTH) {
    if (!p->failed) {
      sl_cnode_t pos = {.file = p->file, .line = (int)ev->start_mark.line + 1, .col = (int)ev->start_mark.column + 1};
      sl_diag_add(p->diags, &pos, NULL, "document too large or nested too deeply");
    }
    p->failed = 1;
    return NULL;
  }
  switch (ev->type) {
  case YAML_SCALAR_EVENT: return parse_scalar(p, ev);
  case YAML_MAPPING_START_EVENT: return parse_mapping(p, ev, depth);
  case YAML_SEQUENCE_START_EVENT: return parse_sequence(p, ev, depth);
  case YAML_ALIAS_EVENT: return expand_alias(p, ev);
  default: return NULL;
  }
}

sl_cnode_t *sl_conf_parse(const char *text, size_t len, const char *file, sl_diags_t *diags) {
  return sl_conf_parse_max(text, len, file, SL_MAX_NODES, diags);
}

sl_cnode_t *sl_conf_parse_max(const char *text, size_t len, const char *file, unsigned max_nodes, sl_diags_t *diags) {
  parser_t *p = sl_xcalloc(1, sizeof(*p));
  p->max_nodes = max_nodes;
  p->file = file;
  p->diags = diags;
  yaml_parser_initialize(&p->yp);
  yaml_parser_set_input_string(&p->yp, (const unsigned char *)text, len);
  sl_cnode_t *root = NULL;
  int docs = 0;
  for (;;) {
    yaml_event_t ev;
    if (next_event(p, &ev) != 0) break;
    yaml_event_type_t t = ev.type;
    if (t == YAML_STREAM_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
      sl_cnode_t pos = {.file = file, .line = (int)ev.start_mark.line + 1, .col = (int)ev.start_mark.column + 1};
      sl_diag_add(diags, &pos, NULL, "a config file holds one YAML document; put several streams under `streams:`");
      p->failed = 1;
      yaml_event_delete(&ev);
      break;
    }
    if (t == YAML_SCALAR_EVENT || t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT ||
        t == YAML_ALIAS_EVENT) {
      sl_cnode_free(root);
      root = parse_node(p, &ev, 0);
    }
    yaml_event_delete(&ev);
    if (p->failed) break;
  }
  yaml_parser_delete(&p->yp);
  for (unsigned i = 0; i < p->nanchors; i++) free(p->anchors[i].name);
  sl_cnode_free(p->discarded);
  free(p);
  if (!root) {
    root = sl_cnode_new(SL_CN_MAP, NULL);
    root->file = file;
    root->line = root->col = 1;
  }
  return root;
}

/* Node positions point at the file name, which must outlive the tree: the
 * loader keeps one copy per file for the life of the process (configs are
 * loaded a handful of times, and reloads reuse the same names). */
static const char *intern_file(const char *path) {
  static struct { char **v; unsigned n; } names;
  for (unsigned i = 0; i < names.n; i++)
    if (strcmp(names.v[i], path) == 0) return names.v[i];
  names.v = sl_xrealloc(names.v, (names.n + 1) * sizeof(char *));
  return names.v[names.n++] = sl_xstrdup(path);
}

sl_cnode_t *sl_conf_load(const char *path, sl_diags_t *diags) {
  const char *file = intern_file(path);
  FILE *f = fopen(path, "rb");
  sl_cnode_t pos = {.file = file, .line = 0, .col = 0};
  if (!f) {
    sl_diag_add(diags, &pos, NULL, "cannot open: %s", strerror(errno));
    return NULL;
  }
  sl_sbuf_t b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) sl_sbuf_put(&b, chunk, n);
  int err = ferror(f);
  fclose(f);
  if (err) {
    sl_diag_add(diags, &pos, NULL, "read error");
    free(b.v);
    return NULL;
  }
  sl_cnode_t *root = sl_conf_parse(b.v ? b.v : "", b.len, file, diags);
  free(b.v);
  return root;
}

/* ---------- --set a.b.c=value ---------- */

static int is_index(const char *s, size_t n, size_t *out) {
  if (n == 0 || n > 9) return 0;
  size_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (size_t)(s[i] - '0');
  }
  *out = v;
  return 1;
}

int sl_cnode_set_path(sl_cnode_t *root, const char *assignment, sl_diags_t *diags) {
  static const char set_file[] = "--set";
  sl_cnode_t pos = {.file = set_file, .line = 1, .col = 1};
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment) {
    sl_diag_add(diags, &pos, assignment, "expected PATH=VALUE");
    return -1;
  }
  sl_diags_t vd = {0};
  sl_cnode_t *val = sl_conf_parse(eq + 1, strlen(eq + 1), set_file, &vd);
  if (vd.n) {
    for (uint32_t i = 0; i < vd.n; i++) sl_diag_add(diags, &pos, assignment, "%s", vd.v[i].msg);
    sl_diags_free(&vd);
    sl_cnode_free(val);
    return -1;
  }
  if (val->type == SL_CN_MAP && val->n == 0 && eq[1] == 0) {
    val->type = SL_CN_NULL;
  }
  char *path = sl_xstrndup(assignment, (size_t)(eq - assignment));
  sl_cnode_t *cur = root;
  char *save = NULL;
  char *seg = strtok_r(path, ".", &save);
  int rc = 0;
  while (seg) {
    char *next = strtok_r(NULL, ".", &save);
    size_t idx;
    if (cur->type == SL_CN_SEQ && is_index(seg, strlen(seg), &idx)) {
      if (idx >= cur->n) {
        sl_diag_add(diags, &pos, assignment, "index %zu is past the end of the list (%u items)", idx, cur->n);
        rc = -1;
        break;
      }
      if (!next) {
        sl_cnode_free(cur->items[idx]);
        cur->items[idx] = val;
        val = NULL;
        break;
      }
      cur = cur->items[idx];
      seg = next;
      continue;
    }
    if (cur->type == SL_CN_NULL) cur->type = SL_CN_MAP;
    if (cur->type != SL_CN_MAP) {
      sl_diag_add(diags, &pos, assignment, "\"%s\" is inside a value that is not a map", seg);
      rc = -1;
      break;
    }
    if (!next) {
      sl_cnode_map_set(cur, seg, val);
      val = NULL;
      break;
    }
    sl_cnode_t *child = sl_cnode_get(cur, seg);
    if (!child) {
      child = sl_cnode_new(SL_CN_MAP, &pos);
      sl_cnode_map_set(cur, seg, child);
    }
    cur = child;
    seg = next;
  }
  free(path);
  sl_cnode_free(val);
  return rc;
}

char *sl_conf_path(const char *file, const char *path) {
  const char *slash = file ? strrchr(file, '/') : NULL;
  if (path[0] == '/' || !slash) return sl_xstrdup(path);
  return sl_xasprintf("%.*s/%s", (int)(slash - file), file, path);
}

/* ---------- typed readers and parsers ---------- */

static const sl_cnode_t *scalar_at(const sl_cnode_t *obj, const char *key) {
  const sl_cnode_t *n = sl_cnode_get(obj, key);
  return n && n->type == SL_CN_SCALAR ? n : NULL;
}

const char *sl_conf_str(const sl_cnode_t *obj, const char *key, const char *fallback) {
  const sl_cnode_t *n = scalar_at(obj, key);
  return n ? n->str : fallback;
}

/* The typed readers: the scalar at key, parsed, or fallback when it is
 * absent or does not parse. */
#define SL_CONF_READER(fn, type, parse)                          \
  type fn(const sl_cnode_t *obj, const char *key, type fallback) { \
    const sl_cnode_t *n = scalar_at(obj, key);                     \
    type v;                                                        \
    return n && parse(n->str, &v) == 0 ? v : fallback;             \
  }
SL_CONF_READER(sl_conf_int, int64_t, sl_parse_int)
SL_CONF_READER(sl_conf_float, double, sl_parse_float)
SL_CONF_READER(sl_conf_bool, int, sl_parse_bool)
SL_CONF_READER(sl_conf_duration_ms, int64_t, sl_parse_duration_ms)
SL_CONF_READER(sl_conf_size, int64_t, sl_parse_size)

const char **sl_conf_pairs(const sl_cnode_t *obj, const char *key) {
  const sl_cnode_t *m = sl_cnode_get(obj, key);
  uint32_t n = m && m->type == SL_CN_MAP ? m->n : 0;
  const char **kv = sl_xcalloc(2 * n + 1, sizeof(*kv));
  for (uint32_t i = 0; i < n; i++) {
    kv[2 * i] = m->keys[i];
    kv[2 * i + 1] = m->items[i]->str ? m->items[i]->str : "";
  }
  return kv;
}

int sl_parse_int(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 0);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

int sl_parse_float(const char *s, double *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || v != v) return -1;
  *out = v;
  return 0;
}

int sl_parse_bool(const char *s, int *out) {
  if (!s) return -1;
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) *out = 1;
  else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) *out = 0;
  else return -1;
  return 0;
}

int sl_parse_address(const char *s, struct sockaddr_storage *out, const char **why) {
  const char *colon = s ? strrchr(s, ':') : NULL;
  if (!colon || strchr(colon, ']')) {
    *why = "expected host:port";
    return -1;
  }
  const char *p = colon + 1;
  unsigned port = 0;
  size_t digits = strspn(p, "0123456789");
  for (size_t i = 0; i < digits && port <= 65535; i++) port = port * 10 + (unsigned)(p[i] - '0');
  if (digits == 0 || p[digits] || port > 65535) {
    *why = "the port must be a number from 0 to 65535";
    return -1;
  }
  char host[64];
  size_t hl = (size_t)(colon - s);
  memset(out, 0, sizeof(*out));
  if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']' && hl - 2 < sizeof host) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    memcpy(host, s + 1, hl - 2);
    host[hl - 2] = 0;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) return 0;
  } else if (hl < sizeof host) {
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;
    memcpy(host, s, hl);
    host[hl] = 0;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (!hl) return 0;   /* INADDR_ANY */
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) return 0;
  }
  *why = "the host must be an IPv4 address, an IPv6 address in brackets or localhost";
  return -1;
}

/* Go-style durations ("1m30s", "250ms", "1.5h"); a bare 0 is allowed. */
int sl_parse_duration_ms(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  if (!strcmp(s, "0")) {
    *out = 0;
    return 0;
  }
  double total_ms = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno || v < 0 || v != v) return -1;
    p = end;
    double unit;
    if (!strncmp(p, "ns", 2)) unit = 1e-6, p += 2;
    else if (!strncmp(p, "us", 2)) unit = 1e-3, p += 2;
    else if (!strncmp(p, "µs", strlen("µs"))) unit = 1e-3, p += strlen("µs");
    else if (!strncmp(p, "ms", 2)) unit = 1, p += 2;
    else if (*p == 's') unit = 1000, p++;
    else if (*p == 'm') unit = 60000, p++;
    else if (*p == 'h') unit = 3600000, p++;
    else if (*p == 'd') unit = 86400000, p++;
    else return -1;
    total_ms += v * unit;
  }
  if (total_ms > 9e15) return -1;
  int64_t ms = (int64_t)(total_ms + 0.5);
  if (ms == 0 && total_ms > 0) ms = 1;
  *out = ms;
  return 0;
}

int sl_parse_size(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || v < 0 || v != v) return -1;
  while (*end == ' ') end++;
  static const struct { const char *suf; double mul; } units[] = {
    {"", 1}, {"B", 1}, {"b", 1},
    {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
    {"kB", 1e3}, {"K", 1024.0}, {"k", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0},
  };
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
    if (!strcmp(end, units[i].suf)) {
      double b = v * units[i].mul;
      if (b > 9e18) return -1;
      *out = (int64_t)b;
      return 0;
    }
  return -1;
}
