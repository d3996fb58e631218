/* `sluice test [PATH...]`: config unit tests in *_test.yaml files (Benthos's
 * shape): input batches with metadata go through a config's processors and
 * the output batches are checked; a failure prints expected and actual. */
#include "cli.h"
#include "core/component.h"
#include "core/conf_json.h"
#include "core/config.h"
#include "core/section.h"
#include "core/xalloc.h"
#include <ftw.h>
#include <jansson.h>
#include <sys/stat.h>
#include <libgen.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct collect {
  sl_sink_t sink;
  sl_batch_t **v;
  unsigned n;
} collect_t;

static void collect_push(sl_sink_t *s, sl_batch_t *b) {
  collect_t *c = (collect_t *)s;
  c->v = sl_xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
  c->v[c->n++] = b;
}

static char *json_text(const json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY); }

/* JSON equality where 5 and 5.0 are the same number, as in JSON itself. */
static int json_same(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
  if (json_typeof(a) != json_typeof(b)) return 0;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!json_same(json_array_get(a, i), json_array_get(b, i))) return 0;
    return 1;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
      json_t *w = json_object_get(b, k);
      if (!w || !json_same(v, w)) return 0;
    }
    return 1;
  }
  return json_equal((json_t *)a, (json_t *)b);
}

/* ---------- one test ---------- */

typedef struct run {
  const char *test_file;
  int failures, passes;
} run_t;

static const sl_cnode_t *resolve_target(const sl_cnode_t *root, const char *pointer) {
  const sl_cnode_t *bases[2] = {root, NULL};
  const sl_cnode_t *streams = sl_cnode_get(root, "streams");
  if (streams && streams->type == SL_CN_MAP && streams->n == 1) bases[1] = streams->items[0];
  for (int b = 0; b < 2 && bases[b]; b++) {
    char *p = sl_xstrdup(pointer), *save = NULL;
    const sl_cnode_t *cur = bases[b];
    for (char *seg = strtok_r(p, "/", &save); seg && cur; seg = strtok_r(NULL, "/", &save)) {
      if (cur->type == SL_CN_SEQ) {
        char *end;
        unsigned long i = strtoul(seg, &end, 10);
        cur = *end == 0 && i < cur->n ? cur->items[i] : NULL;
      } else {
        cur = sl_cnode_get(cur, seg);
      }
    }
    free(p);
    if (cur && cur->type == SL_CN_SEQ) return cur;
  }
  return NULL;
}

static sl_batch_t *input_batch(const sl_cnode_t *items) {
  sl_batch_t *b = sl_batch_new(items ? items->n : 1);
  for (uint32_t i = 0; items && i < items->n; i++) {
    const sl_cnode_t *it = items->items[i];
    const sl_cnode_t *content = sl_cnode_get(it, "content"), *jc = sl_cnode_get(it, "json_content");
    sl_msg_t *m;
    if (jc) {
      json_t *jv = sl_cnode_to_json(jc);
      char *j = json_text(jv);
      m = sl_msg_new(j, strlen(j));
      free(j);
      json_decref(jv);
    } else {
      const char *s = content && content->str ? content->str : "";
      m = sl_msg_new(s, strlen(s));
    }
    const sl_cnode_t *md = sl_cnode_get(it, "metadata");
    for (uint32_t k = 0; md && md->type == SL_CN_MAP && k < md->n; k++)
      if (md->items[k]->str) sl_kv_set(&m->meta, md->keys[k], md->items[k]->str, md->items[k]->len);
    m->seq = i + 1;
    sl_batch_push(b, m);
  }
  return b;
}

static void on_deadline(uv_timer_t *t) { uv_stop(t->loop); }

static void report(int *ok, const char *what, unsigned bi, unsigned mi, const char *expected, const char *actual) {
  if (*ok < 0) {   /* quiet: only the verdict */
    *ok = -2;
    return;
  }
  *ok = 0;
  printf("    batch %u message %u: %s\n      expected: %s\n      actual:   %s\n", bi, mi, what, expected, actual);
}

/* Returns 1 when every condition holds; quiet checks print nothing. */
/* Two JSON objects that differ only in the order of their keys: Benthos
 * writes keys sorted, sluice in its encoder's order, and a test written
 * against one compares bytes. Anything else must be the same bytes. */
static int same_object_text(const char *want, const char *got) {
  json_t *a = json_loads(want, 0, NULL), *b = json_loads(got, 0, NULL);
  int same = json_is_object(a) && json_is_object(b) && json_same(a, b);
  json_decref(a);
  json_decref(b);
  return same;
}

static int check_message(const sl_cnode_t *cond, sl_msg_t *m, unsigned bi, unsigned mi, int quiet) {
  int ok = quiet ? -1 : 1;
  const char *actual = m->content->data;
  const sl_cnode_t *v;
  if ((v = sl_cnode_get(cond, "content_equals")) && v->str && strcmp(v->str, actual) != 0 &&
      !same_object_text(v->str, actual))
    report(&ok, "content_equals", bi, mi, v->str, actual);
  if ((v = sl_cnode_get(cond, "content_matches")) && v->str) {
    regex_t re;
    if (regcomp(&re, v->str, REG_EXTENDED | REG_NOSUB) != 0) report(&ok, "content_matches (bad regex)", bi, mi, v->str, actual);
    else {
      if (regexec(&re, actual, 0, NULL, 0) != 0) report(&ok, "content_matches", bi, mi, v->str, actual);
      regfree(&re);
    }
  }
  if ((v = sl_cnode_get(cond, "json_equals"))) {
    json_t *want = sl_cnode_to_json(v), *got = json_loadb(actual, m->content->len, JSON_DECODE_ANY, NULL);
    char *j = json_text(want);
    if (!got || !json_same(want, got)) report(&ok, "json_equals", bi, mi, j, actual);
    free(j);
    json_decref(want);
    json_decref(got);
  }
  if ((v = sl_cnode_get(cond, "metadata_equals")) && v->type == SL_CN_MAP) {
    for (uint32_t k = 0; k < v->n; k++) {
      const char *got = sl_kv_get(&m->meta, v->keys[k]);
      const char *want = v->items[k]->str ? v->items[k]->str : "";
      if (!got || strcmp(got, want) != 0) {
        char *what = sl_xasprintf("metadata_equals %s", v->keys[k]);
        report(&ok, what, bi, mi, want, got ? got : "(absent)");
        free(what);
      }
    }
  }
  if ((v = sl_cnode_get(cond, "errored")) && v->str) {
    int want = 0;
    sl_parse_bool(v->str, &want);
    if (want != (m->error != NULL)) report(&ok, "errored", bi, mi, v->str, m->error ? m->error : "not errored");
  }
  return ok == 1 || ok == -1;
}

static int run_case(run_t *r, const sl_cnode_t *root, const char *config_path, const sl_cnode_t *tc, unsigned idx) {
  const char *name = sl_conf_str(tc, "name", NULL);
  char fallback[32];
  snprintf(fallback, sizeof fallback, "test %u", idx);
  if (!name) name = fallback;
  sl_diags_t d = {0};
  const char *pointer = sl_conf_str(tc, "target_processors", "/pipeline/processors");
  const sl_cnode_t *procs = resolve_target(root, pointer);
  if (!procs) {
    printf("FAIL %s: %s\n    target_processors %s not found in %s\n", r->test_file, name, pointer, config_path);
    return 0;
  }
  sl_worker_t *w = sl_worker_new(0);
  sl_sections_apply(w, root, &d);
  char *tmp = sl_xstrdup(config_path);
  sl_build_t b = {.worker = w, .diags = &d, .stream_name = "test", .config_dir = dirname(tmp)};
  sl_chain_t *chain = sl_chain_build(&b, procs, pointer);
  int ok = 1;
  if (!chain || d.n) {
    printf("FAIL %s: %s\n", r->test_file, name);
    sl_diag_print(&d, stdout);
    ok = 0;
  }
  collect_t out = {.sink.push = collect_push};
  const sl_cnode_t *expected = sl_cnode_get(tc, "output_batches");
  if (ok) {
    sl_chain_connect(chain, &out.sink, NULL);
    /* Benthos's input_batches: several batches, in order, through one chain. */
    const sl_cnode_t *many = sl_cnode_get(tc, "input_batches");
    if (many && many->type == SL_CN_SEQ)
      for (uint32_t i = 0; i < many->n; i++) chain->sink.push(&chain->sink, input_batch(many->items[i]));
    else
      chain->sink.push(&chain->sink, input_batch(sl_cnode_get(tc, "input_batch")));
    uv_run(w->loop, UV_RUN_NOWAIT);
    sl_chain_flush(chain);
    /* Asynchronous processors (batch periods, rate limits) get up to 5 s. */
    uv_timer_t deadline;
    uv_timer_init(w->loop, &deadline);
    unsigned want = expected ? expected->n : 0;
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    while (out.n < want && uv_run(w->loop, UV_RUN_ONCE) && uv_is_active((uv_handle_t *)&deadline)) {
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(w->loop, UV_RUN_NOWAIT);
    unsigned nexp = expected && expected->type == SL_CN_SEQ ? expected->n : 0;
    int header = 0;
    if (out.n != nexp) {
      printf("FAIL %s: %s\n    expected %u output batch(es), got %u\n", r->test_file, name, nexp, out.n);
      header = 1;
      ok = 0;
    }
    for (unsigned bi = 0; bi < nexp && bi < out.n; bi++) {
      const sl_cnode_t *eb = expected->items[bi];
      sl_batch_t *ab = out.v[bi];
      if (eb->type != SL_CN_SEQ || eb->n != ab->n) {
        if (!header) printf("FAIL %s: %s\n", r->test_file, name);
        header = 1;
        printf("    batch %u: expected %u message(s), got %u\n", bi, eb->type == SL_CN_SEQ ? eb->n : 0, ab->n);
        for (unsigned mi = 0; mi < ab->n; mi++) printf("      actual %u: %s\n", mi, ab->msgs[mi]->content->data);
        ok = 0;
        continue;
      }
      for (unsigned mi = 0; mi < ab->n; mi++) {
        if (check_message(eb->items[mi], ab->msgs[mi], bi, mi, 1)) continue;
        if (!header) printf("FAIL %s: %s\n", r->test_file, name);
        header = 1;
        check_message(eb->items[mi], ab->msgs[mi], bi, mi, 0);
        ok = 0;
      }
    }
  }
  for (unsigned i = 0; i < out.n; i++) sl_batch_free(out.v[i]);
  free(out.v);
  sl_chain_free(chain);
  sl_worker_free(w);
  sl_diags_free(&d);
  free(tmp);
  if (ok) printf("PASS %s: %s\n", r->test_file, name);
  return ok;
}

static int is_test_file(const char *path) {
  size_t n = strlen(path);
  return n > 10 && strcmp(path + n - 10, "_test.yaml") == 0;
}

static char *config_for(const char *test_path, const sl_cnode_t *troot) {
  const char *explicit = sl_conf_str(troot, "config", NULL);
  char *dir_tmp = sl_xstrdup(test_path);
  char *dir = dirname(dir_tmp);
  char *res;
  if (explicit) {
    res = explicit[0] == '/' ? sl_xstrdup(explicit) : sl_xasprintf("%s/%s", dir, explicit);
  } else if (is_test_file(test_path)) {
    /* foo_test.yaml tests foo.yaml; Benthos names them foo_benthos_test.yaml */
    size_t n = strlen(test_path), cut = strlen("_test.yaml");
    if (n > 17 && strcmp(test_path + n - 18, "_benthos_test.yaml") == 0) cut = 18;
    res = sl_xasprintf("%.*s.yaml", (int)(n - cut), test_path);
  } else {
    res = sl_xstrdup(test_path);   /* a config that holds its own tests (Benthos's inline form) */
  }
  free(dir_tmp);
  return res;
}

static run_t *g_run;

static void run_file(const char *path) {
  run_t *r = g_run;
  r->test_file = path;
  sl_diags_t d = {0};
  sl_cnode_t *troot = sl_conf_load(path, &d);
  const sl_cnode_t *tests = sl_cnode_get(troot, "tests");
  if (d.n || !tests || tests->type != SL_CN_SEQ) {
    if (!d.n) sl_diag_add(&d, troot, "tests", "expected a list of tests");
    sl_diag_print(&d, stdout);
    printf("FAIL %s\n", path);
    r->failures++;
    sl_diags_free(&d);
    sl_cnode_free(troot);
    return;
  }
  char *config_path = config_for(path, troot);
  for (uint32_t i = 0; i < tests->n; i++) {
    const sl_cnode_t *tc = tests->items[i];
    const sl_cnode_t *env = sl_cnode_get(tc, "environment");
    for (uint32_t k = 0; env && env->type == SL_CN_MAP && k < env->n; k++)
      setenv(env->keys[k], env->items[k]->str ? env->items[k]->str : "", 1);
    sl_diags_t cd = {0};
    sl_cnode_t *root = sl_conf_load(config_path, &cd);
    if (root && !cd.n) sl_config_validate(root, &cd);
    if (cd.n) {
      printf("FAIL %s: config %s\n", path, config_path);
      sl_diag_print(&cd, stdout);
      r->failures++;
    } else if (run_case(r, root, config_path, tc, i)) {
      r->passes++;
    } else {
      r->failures++;
    }
    sl_diags_free(&cd);
    sl_cnode_free(root);
    for (uint32_t k = 0; env && env->type == SL_CN_MAP && k < env->n; k++) unsetenv(env->keys[k]);
  }
  free(config_path);
  sl_diags_free(&d);
  sl_cnode_free(troot);
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)ftw;
  size_t n = strlen(path);
  if (flag != FTW_F) return 0;
  if (is_test_file(path)) {
    run_file(path);
  } else if (n > 5 && strcmp(path + n - 5, ".yaml") == 0) {
    /* a config with a top-level tests: list */
    sl_diags_t d = {0};
    sl_cnode_t *root = sl_conf_load(path, &d);
    if (root && sl_cnode_get(root, "tests")) run_file(path);
    sl_cnode_free(root);
    sl_diags_free(&d);
  }
  return 0;
}

int sl_cli_test(int argc, char **argv) {
  run_t r = {0};
  g_run = &r;
  const char *def[] = {"."};
  const char *const *paths = argc ? (const char *const *)argv : def;
  int n = argc ? argc : 1;
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (stat(paths[i], &st) != 0) {
      fprintf(stderr, "sluice test: %s: no such file or directory\n", paths[i]);
      r.failures++;
    } else if (S_ISDIR(st.st_mode)) {
      nftw(paths[i], visit, 16, FTW_PHYS);
    } else {
      run_file(paths[i]);
    }
  }
  printf("%d passed, %d failed\n", r.passes, r.failures);
  if (r.passes + r.failures == 0) {
    fprintf(stderr, "sluice test: no *_test.yaml files (nor configs with tests:) found\n");
    return 1;
  }
  return r.failures ? 1 : 0;
}
