/* Config trees parsed from YAML, with positions, and the diagnostics list.
 * Ownership: sl_conf_load returns a tree owned by the caller (sl_cnode_free);
 * every string inside belongs to the tree. Diagnostics own their strings. */
#ifndef SL_CONF_H
#define SL_CONF_H
#include <stddef.h>
#include <stdint.h>

typedef enum { SL_CN_NULL, SL_CN_SCALAR, SL_CN_MAP, SL_CN_SEQ } sl_cntype_t;

typedef struct sl_cnode sl_cnode_t;
struct sl_cnode {
  sl_cntype_t type;
  char *str;                 /* scalar text (NUL-terminated), NULL otherwise */
  size_t len;
  int quoted;                /* scalar was quoted: never a number/bool/null */
  int block;                 /* `|` or `>` scalar: its text starts on the next line */
  const char *file;          /* shared, owned by the root */
  int line, col;             /* 1-based */
  uint32_t n, cap;
  char **keys;               /* SL_CN_MAP: keys[i] names items[i] */
  int *kline, *kcol;         /* SL_CN_MAP: position of keys[i] */
  sl_cnode_t **items;
  uint32_t *slots, nslots;   /* SL_CN_MAP of 8+ keys: hash index of keys (item index + 1, 0 free) */
  int synthetic;             /* inserted by validation (a default) */
  char *env_raw;             /* scalar text before ${NAME} substitution; NULL when none was made */
};

typedef struct sl_diag { char *file; int line, col; char *key; char *msg; } sl_diag_t;
typedef struct sl_diags { sl_diag_t *v; uint32_t n, cap; } sl_diags_t;

void sl_diag_add(sl_diags_t *d, const sl_cnode_t *at, const char *key, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
void sl_diag_print(const sl_diags_t *d, void *stream /* FILE* */);
void sl_diags_free(sl_diags_t *d);

/* Parse YAML text (file is used for positions). On errors returns NULL or a
 * partial tree and appends to diags. ${ENV} / ${ENV:default} are substituted in
 * scalars; ${! ...} and ${ctx...} are left for later stages. */
sl_cnode_t *sl_conf_parse(const char *text, size_t len, const char *file, sl_diags_t *diags);
/* The same with at most max_nodes nodes, aliases expanded (sl_conf_parse:
 * a million). */
sl_cnode_t *sl_conf_parse_max(const char *text, size_t len, const char *file, unsigned max_nodes, sl_diags_t *diags);
sl_cnode_t *sl_conf_load(const char *path, sl_diags_t *diags);
void sl_cnode_free(sl_cnode_t *n);
sl_cnode_t *sl_cnode_new(sl_cntype_t t, const sl_cnode_t *pos);   /* copies file/line/col of pos */
sl_cnode_t *sl_cnode_scalar(const char *s, const sl_cnode_t *pos);
sl_cnode_t *sl_cnode_dup(const sl_cnode_t *n);
void sl_cnode_map_set(sl_cnode_t *map, const char *key, sl_cnode_t *val);  /* takes val */
void sl_cnode_seq_push(sl_cnode_t *seq, sl_cnode_t *val);                   /* takes val */
sl_cnode_t *sl_cnode_get(const sl_cnode_t *map, const char *key);           /* NULL if absent */
/* A position-only node for key i of map (for diagnostics about the key itself). */
sl_cnode_t sl_cnode_key_pos(const sl_cnode_t *map, uint32_t i);
/* Remove key from map and return its value (caller owns), or NULL. */
sl_cnode_t *sl_cnode_take(sl_cnode_t *map, const char *key);
/* Apply --set a.b.c=value (value parsed as YAML). Returns 0 or -1 with a diag. */
int sl_cnode_set_path(sl_cnode_t *root, const char *assignment, sl_diags_t *diags);

/* path as seen from the config file `file` (a node's file): absolute paths
 * stay, relative ones are joined to the file's directory. Caller frees. */
char *sl_conf_path(const char *file, const char *path);

/* Typed readers for validated trees: the spec has already checked types and
 * inserted defaults, so these only convert. Missing keys give the fallback. */
const char *sl_conf_str(const sl_cnode_t *obj, const char *key, const char *fallback);
int64_t sl_conf_int(const sl_cnode_t *obj, const char *key, int64_t fallback);
double sl_conf_float(const sl_cnode_t *obj, const char *key, double fallback);
int sl_conf_bool(const sl_cnode_t *obj, const char *key, int fallback);
int64_t sl_conf_duration_ms(const sl_cnode_t *obj, const char *key, int64_t fallback);
int64_t sl_conf_size(const sl_cnode_t *obj, const char *key, int64_t fallback);
/* A string map (SL_F_MAP) as key, value, ..., NULL: the strings stay the
 * tree's, the caller frees the array. Never NULL (empty when absent). */
const char **sl_conf_pairs(const sl_cnode_t *obj, const char *key);

/* Parsers shared by validation and readers. Return 0 on success. */
int sl_parse_duration_ms(const char *s, int64_t *out);    /* "5s", "100ms", "1m30s", "2h", "0" */
int sl_parse_size(const char *s, int64_t *out);           /* "64MiB", "1KB", "512" */
int sl_parse_bool(const char *s, int *out);
int sl_parse_int(const char *s, int64_t *out);
int sl_parse_float(const char *s, double *out);
/* "host:port" to listen on: an IPv4 address, [IPv6 address] or localhost
 * (empty: every IPv4 interface) and a port from 0 to 65535. On failure
 * *why (static text) says which part is wrong. */
struct sockaddr_storage;
int sl_parse_address(const char *s, struct sockaddr_storage *out, const char **why);

#endif
