/* `sluice lua (-e CODE | FILE)`: runs a mapping once from the shell, as
 * Benthos's `blobl` and jq do: the message is --input, or each line of
 * standard input; what the mapping makes of it is printed, one line per
 * message. It runs as a `lua` processor of a stream would, in the same
 * sandbox, budgets and `lua:` defaults, so that what works here works there. */
#include "cli.h"
#include "core/component.h"
#include "core/log.h"
#include "core/section.h"
#include "core/txn.h"
#include "core/xalloc.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
  sl_sink_t sink;
  int verbose, failed;
} out_t;

static void print_msg(out_t *o, const sl_msg_t *m) {
  if (m->error) {
    o->failed = 1;
    fprintf(stderr, "error: %s\n", m->error);
  }
  if (!o->verbose) {
    if (!m->error) {
      fwrite(m->content->data, 1, m->content->len, stdout);
      fputc('\n', stdout);
    }
    return;
  }
  sl_kv_load(&m->meta);
  json_t *md = json_object();
  for (uint32_t i = 0; i < m->meta.n; i++)
    json_object_set_new(md, m->meta.v[i].key, json_stringn(m->meta.v[i].val, m->meta.v[i].vlen));
  json_t *j = json_pack("{s:s%,s:o}", "content", m->content->data, m->content->len, "metadata", md);
  if (m->error) json_object_set_new(j, "error", json_string(m->error));
  json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(j);
}

/* Printed and freed as they come: the input's transaction ends when the last
 * message is printed or dropped by the mapping. */
static void out_push(sl_sink_t *s, sl_batch_t *b) {
  for (uint32_t i = 0; i < b->n; i++) print_msg((out_t *)s, b->msgs[i]);
  sl_batch_free(b);
}

static void on_done(sl_txn_t *t, int status, const char *err, void *arg) {
  (void)t, (void)status, (void)err;
  *(int *)arg = 1;
}

/* --ctx {"method":..., "path":..., "user":..., "headers":{...}, ...}: the
 * request context a request-scoped stream would see. NULL and *why set when
 * it is not such an object. */
static sl_ctx_t *ctx_from_json(const char *text, char **why) {
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if (!json_is_object(j)) {
    *why = sl_xasprintf("--ctx: expected a JSON object (%s)", j ? "not an object" : je.text);
    json_decref(j);
    return NULL;
  }
  sl_ctx_t *c = sl_ctx_new();
  struct { const char *key; char **field; } strs[] = {{"method", &c->method}, {"path", &c->path},
    {"remote_addr", &c->remote_addr}, {"request_id", &c->request_id}, {"user", &c->user}};
  struct { const char *key; sl_kvlist_t *list; } maps[] = {{"query", &c->query}, {"headers", &c->headers},
    {"params", &c->params}, {"cookies", &c->cookies}, {"jwt", &c->jwt}};
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    int known = 0;
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
      if (!strcmp(k, strs[i].key) && json_is_string(v)) *strs[i].field = sl_xstrdup(json_string_value(v)), known = 1;
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
      if (strcmp(k, maps[i].key) != 0 || !json_is_object(v)) continue;
      known = 1;
      const char *mk;
      json_t *mv;
      json_object_foreach(v, mk, mv) {
        /* jwt claims are kept JSON-encoded; the rest are strings. */
        char *s = maps[i].list == &c->jwt || !json_is_string(mv) ? json_dumps(mv, JSON_ENCODE_ANY | JSON_COMPACT)
                                                                 : sl_xstrdup(json_string_value(mv));
        sl_kv_set(maps[i].list, mk, s, strlen(s));
        free(s);
      }
    }
    if (!known && !*why) *why = sl_xasprintf("--ctx: unknown or mistyped member \"%s\"", k);
  }
  json_decref(j);
  if (*why) {
    sl_ctx_unref(c);
    return NULL;
  }
  return c;
}

static int usage(void) {
  fprintf(stderr, "usage: sluice lua (-e CODE | FILE) [--input TEXT] [--meta KEY=VALUE]... [--ctx JSON] [-v]\n"
                  "                  [--log-level LEVEL] [--bloblang] [--input-file FILE|-] [--config FILE] [--time]\n"
                  "  runs the mapping on --input, or on each line of standard input, and prints each\n"
                  "  resulting message (-v: as JSON with its metadata and error); exit 1 if one failed.\n"
                  "  The script's log() lines show at --log-level (default error) and above.\n"
                  "  --bloblang: CODE is a Bloblang mapping, run as a `mapping` processor (as blobl does).\n"
                  "  --input-file: the whole file (- standard input) is one message; --config: run under\n"
                  "  that config's `lua:` section (limits, lua_path); --time: a last line {\"time_ms\": T}.\n");
  return 2;
}

/* path "-": standard input (a pipe or a socket, which /dev/stdin cannot open). */
static char *read_file(const char *path) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f) return NULL;
  size_t n = 0, cap = 4096;
  char *s = sl_xmalloc(cap);
  size_t r;
  while ((r = fread(s + n, 1, cap - n - 1, f)) > 0)
    if ((n += r) + 1 == cap) s = sl_xrealloc(s, cap *= 2);
  if (f != stdin) fclose(f);
  s[n] = 0;
  return s;
}

/* --config FILE: that file's `lua:` section (limits, lua_path), alone: the
 * playground runs scripts as the server's pipelines would. */
static sl_cnode_t *lua_section_of(const char *file, sl_cnode_t *pos, sl_diags_t *d) {
  sl_cnode_t *root = sl_cnode_new(SL_CN_MAP, pos);
  if (!file) return root;
  sl_cnode_t *conf = sl_conf_load(file, d);
  const sl_cnode_t *lua = sl_cnode_get(conf, "lua");
  if (lua) sl_cnode_map_set(root, "lua", sl_cnode_dup(lua));
  sl_cnode_free(conf);
  return root;
}

int sl_cli_lua(int argc, char **argv) {
  const char *code = NULL, *file = NULL, *input = NULL, *ctx_json = NULL, *level = "error";
  const char *input_file = NULL, *config = NULL;
  int verbose = 0, nmeta = 0, bloblang = 0, timed = 0;
  const char **metas = sl_xcalloc((size_t)argc + 1, sizeof(*metas));
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (!strcmp(a, "-e") && has) code = argv[++i];
    else if (!strcmp(a, "--input") && has) input = argv[++i];
    else if (!strcmp(a, "--input-file") && has) input_file = argv[++i];
    else if (!strcmp(a, "--config") && has) config = argv[++i];
    else if (!strcmp(a, "--time")) timed = 1;
    else if (!strcmp(a, "--meta") && has && strchr(argv[i + 1], '=')) metas[nmeta++] = argv[++i];
    else if (!strcmp(a, "--ctx") && has) ctx_json = argv[++i];
    else if (!strcmp(a, "--log-level") && has) level = argv[++i];
    else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose = 1;
    else if (!strcmp(a, "--bloblang")) bloblang = 1;
    else if (a[0] != '-' && !file) file = a;
    else { free(metas); return usage(); }
  }
  sl_log_level_t lvl;
  if (!code == !file || sl_log_parse_level(level, &lvl) != 0) { free(metas); return usage(); }
  char *text = file ? read_file(file) : sl_xstrdup(code);
  if (!text) {
    fprintf(stderr, "sluice: cannot read %s\n", file);
    free(metas);
    return 2;
  }
  /* One message of the whole file (newlines and all), "-" standard input. */
  char *whole = NULL;
  if (input_file && !input) {
    whole = read_file(input_file);
    if (!whole) {
      fprintf(stderr, "sluice: cannot read %s\n", input_file);
      free(text), free(metas);
      return 2;
    }
    input = whole;
  }
  char *why = NULL;
  sl_ctx_t *ctx = ctx_json ? ctx_from_json(ctx_json, &why) : NULL;
  if (why) {
    fprintf(stderr, "sluice: %s\n", why);
    free(why), free(text), free(metas), free(whole);
    return 2;
  }

  /* [{lua: {code: TEXT}}] (or {mapping: {mapping: TEXT}}), at the file's first line. */
  sl_cnode_t pos = {.file = file ? file : "-e", .line = 1, .col = 1};
  sl_cnode_t *procs = sl_cnode_new(SL_CN_SEQ, &pos), *wrap = sl_cnode_new(SL_CN_MAP, &pos);
  sl_cnode_t *body = sl_cnode_new(SL_CN_MAP, &pos);
  sl_cnode_map_set(body, bloblang ? "mapping" : "code", sl_cnode_scalar(text, &pos));
  sl_cnode_map_set(wrap, bloblang ? "mapping" : "lua", body);
  sl_cnode_seq_push(procs, wrap);
  free(text);
  sl_diags_t d = {0};
  sl_worker_t *w = sl_worker_new(0);
  sl_cnode_t *root = lua_section_of(config, &pos, &d);
  sl_sections_apply(w, root, &d);
  /* A failure is printed as `error:` below; the script's own log() lines
   * show from --log-level down. */
  sl_log_set_level(lvl);
  sl_chain_t *chain = NULL;
  if (sl_spec_validate_component(SL_KIND_PROCESSOR, wrap, bloblang ? "mapping" : "lua", &d) == 0) {
    sl_build_t b = {.worker = w, .diags = &d, .stream_name = "lua", .config_dir = "."};
    chain = sl_chain_build(&b, procs, "");
  }
  int rc = 2;
  if (chain && !d.n) {
    out_t out = {.sink.push = out_push, .verbose = verbose};
    sl_chain_connect(chain, &out.sink, NULL);
    int done = 0;
    sl_txn_t *txn = sl_txn_new(on_done, &done);
    sl_batch_t *batch = sl_batch_new(1);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t seq = 0, t0 = uv_hrtime();
    for (;;) {
      const char *content = input;
      size_t clen = input ? strlen(input) : 0;
      if (!input) {
        if ((len = getline(&line, &cap, stdin)) < 0) break;
        if (len && line[len - 1] == '\n') len--;
        content = line, clen = (size_t)len;
      }
      sl_msg_t *m = sl_msg_new(content, clen);
      m->seq = ++seq;
      for (int i = 0; i < nmeta; i++) {
        const char *eq = strchr(metas[i], '=');
        char *k = sl_xstrndup(metas[i], (size_t)(eq - metas[i]));
        sl_kv_set(&m->meta, k, eq + 1, strlen(eq + 1));
        free(k);
      }
      if (ctx) sl_msg_set_ctx(m, ctx);
      sl_msg_set_txn(m, txn);
      sl_batch_push(batch, m);
      /* Lines go in batches of up to 256, so that a long input streams. */
      if (input || batch->n == 256) {
        chain->sink.push(&chain->sink, batch);
        batch = sl_batch_new(1);
        uv_run(w->loop, UV_RUN_NOWAIT);
      }
      if (input) break;
    }
    free(line);
    if (batch->n) chain->sink.push(&chain->sink, batch);
    else sl_batch_free(batch);
    sl_chain_flush(chain);
    sl_txn_unref(txn);
    while (!done && uv_run(w->loop, UV_RUN_ONCE)) {
    }
    if (timed) printf("{\"time_ms\":%.3f}\n", (double)(uv_hrtime() - t0) / 1e6);
    fflush(stdout);
    rc = out.failed ? 1 : 0;
  } else {
    sl_diag_print(&d, stderr);
  }
  if (chain) sl_chain_free(chain);
  sl_cnode_free(procs);
  sl_cnode_free(root);
  if (ctx) sl_ctx_unref(ctx);
  sl_worker_free(w);
  sl_diags_free(&d);
  free(metas);
  free(whole);
  return rc;
}
