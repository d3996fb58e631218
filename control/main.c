/* sluice command line: run, lint, test, list, doc, version. */
#include "cli.h"
#include "doc.h"
#include "engine.h"
#include "clients/nats_link.h"
#include "connectors/amqp/amqp_link.h"
#include "store/kafka/kafka_common.h"
#include "core/log.h"
#include "core/spec.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SL_VERSION
#define SL_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
  fprintf(f,
          "usage: sluice <command> [options]\n\n"
          "commands:\n"
          "  run FILE...        run the pipelines in the config files (-w: reload them when they change)\n"
          "  streams [FILE...]  streams mode: run FILE's streams and manage streams over /streams\n"
          "  lint FILE...       check config files; print every error as file:line:col: key: message\n"
          "  test [PATH...]     run config unit tests (*_test.yaml) found under PATH (default .)\n"
          "  lua (-e CODE | FILE) [--input TEXT] [--meta K=V] [--ctx JSON] [-v] [--bloblang]\n"
          "                     run a mapping on TEXT or on each line of stdin, print the results\n"
          "  migrate FILE       print FILE with its Bloblang processors rewritten as lua\n"
          "  list [--format F]  list the components (F: text, json, yaml) or print the config's\n"
          "                     JSON Schema (F: jsonschema, for editors' completion)\n"
          "  doc NAME | config | --all [--out DIR]  show a component's (or the config file's) reference\n"
          "  doc lua [--format md|luals|json] [--out PATH] [--check]\n"
          "                     the Lua API scripts see: markdown, lua-language-server definitions, JSON;\n"
          "                     --check compares it with the sandbox's globals\n"
          "  version            print the version\n\n"
          "options for run, streams and lint:\n"
          "  --log-level LEVEL  trace|debug|info|warn|error|off (overrides logger.level)\n"
          "  --set PATH=VALUE   override a config value, e.g. --set input.generate.count=5\n"
          "                     (multi-stream files: --set streams.NAME.input...)\n");
}

typedef struct opts {
  const char **files; int nfiles;
  const char **sets; int nsets;
  const char *log_level;
  int watch;
  const char *streams_dir;
} opts_t;

/* Returns 0, or 2 after printing what is wrong. */
static int parse_opts(int argc, char **argv, opts_t *o, int streams) {
  o->files = sl_xcalloc((size_t)argc + 1, sizeof(char *));
  o->sets = sl_xcalloc((size_t)argc + 1, sizeof(char *));
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    if (strncmp(a, "--set=", 6) == 0) val = a + 6;
    else if (strcmp(a, "--set") == 0 && i + 1 < argc) val = argv[++i];
    if (val) { o->sets[o->nsets++] = val; continue; }
    if (strncmp(a, "--log-level=", 12) == 0) { o->log_level = a + 12; continue; }
    if (strcmp(a, "--log-level") == 0 && i + 1 < argc) { o->log_level = argv[++i]; continue; }
    if (strcmp(a, "-w") == 0 || strcmp(a, "--watch") == 0) { o->watch = 1; continue; }
    if (strcmp(a, "--streams-dir") == 0 && i + 1 < argc) { o->streams_dir = argv[++i]; continue; }
    if (a[0] == '-' && a[1]) {
      fprintf(stderr, "sluice: unknown option %s\n", a);
      return 2;
    }
    o->files[o->nfiles++] = a;
  }
  if (o->log_level) {
    sl_log_level_t l;
    if (sl_log_parse_level(o->log_level, &l) != 0) {
      fprintf(stderr, "sluice: unknown log level \"%s\" (trace|debug|info|warn|error|off)\n", o->log_level);
      return 2;
    }
    sl_log_set_level(l);
  }
  if (o->nfiles == 0 && !streams) {
    fprintf(stderr, "sluice: no config file given\n");
    return 2;
  }
  return 0;
}

enum { CMD_RUN, CMD_LINT, CMD_STREAMS };

static int cmd_run(int argc, char **argv, int cmd) {
  int lint = cmd == CMD_LINT;
  opts_t o = {0};
  int rc = parse_opts(argc, argv, &o, cmd == CMD_STREAMS);
  if (rc) { free(o.files); free(o.sets); return rc; }
  sl_diags_t d = {0};
  sl_engine_opts_t eo = {.files = o.files, .nfiles = o.nfiles, .sets = o.sets, .nsets = o.nsets,
                         .lint_only = lint, .watch = o.watch, .streams_mode = cmd == CMD_STREAMS,
                         .streams_dir = o.streams_dir, .log_level_fixed = o.log_level != NULL};
  sl_engine_t *e = sl_engine_load(&eo, &d);
  if (!e) {
    sl_diag_print(&d, stderr);
    fprintf(stderr, "%u error%s\n", d.n, d.n == 1 ? "" : "s");
    rc = 1;
  } else if (!lint) {
    if (o.log_level) {
      sl_log_level_t l;
      sl_log_parse_level(o.log_level, &l);
      sl_log_set_level(l);   /* the flag wins over logger.level */
    }
    rc = sl_engine_run(e);
    sl_lua_exiting();
  }
  sl_engine_free(e);
  sl_diags_free(&d);
  free(o.files);
  free(o.sets);
  return rc;
}

static int cmd_doc(int argc, char **argv) {
  const char *out = NULL, *name = NULL, *format = NULL;
  int all = 0, check = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--all") == 0) all = 1;
    else if (strcmp(argv[i], "--check") == 0) check = 1;
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
    else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) format = argv[++i];
    else name = argv[i];
  }
  if (name && strcmp(name, "lua") == 0 && (format || check || out)) return sl_doc_lua_api(format, out, check);
  if (all) {
    const char *dir = out ? out : "docs/components";
    if (sl_doc_write_all(dir) != 0) {
      fprintf(stderr, "sluice: cannot write docs to %s\n", dir);
      return 1;
    }
    return 0;
  }
  if (!name) { fprintf(stderr, "sluice: doc needs a component name or --all\n"); return 2; }
  if (strcmp(name, "config") == 0) {
    sl_doc_config(stdout);
    return 0;
  }
  int found = 0;
  for (int k = SL_KIND_INPUT; k <= SL_KIND_OUTPUT; k++) {
    const sl_spec_t *s = sl_registry_find((sl_kind_t)k, name);
    if (s) { if (found) fputs("\n---\n\n", stdout); sl_doc_component(stdout, s); found = 1; }
  }
  /* The processor's page, then the API its scripts see. */
  if (found && strcmp(name, "lua") == 0) {
    fputs("\n---\n\n", stdout);
    return sl_doc_lua_api("md", NULL, 0);
  }
  if (!found) {
    const char *names[256];
    unsigned n = 0;
    for (int k = SL_KIND_INPUT; k <= SL_KIND_OUTPUT; k++) {
      const sl_spec_t *s;
      for (unsigned i = 0; n < 256 && (s = sl_registry_at((sl_kind_t)k, i)); i++) names[n++] = s->name;
    }
    const char *near = sl_nearest(name, names, n);
    fprintf(stderr, "sluice: no component named \"%s\"%s%s%s\n", name, near ? " (did you mean \"" : "",
            near ? near : "", near ? "\"?)" : "");
    return 1;
  }
  return 0;
}

static int command(int argc, char **argv) {
  if (argc < 2) { usage(stderr); return 2; }
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2, CMD_RUN);
  if (strcmp(cmd, "streams") == 0) return cmd_run(argc - 2, argv + 2, CMD_STREAMS);
  if (strcmp(cmd, "lint") == 0) return cmd_run(argc - 2, argv + 2, CMD_LINT);
  if (strcmp(cmd, "test") == 0) return sl_cli_test(argc - 2, argv + 2);
  if (strcmp(cmd, "lua") == 0) return sl_cli_lua(argc - 2, argv + 2);
  if (strcmp(cmd, "migrate") == 0) return sl_cli_migrate(argc - 2, argv + 2);
  if (strcmp(cmd, "list") == 0) {
    const char *format = "text";
    if (argc == 4 && strcmp(argv[2], "--format") == 0) format = argv[3];
    else if (argc != 2) {
      fprintf(stderr, "sluice: usage: sluice list [--format text|json|yaml|jsonschema]\n");
      return 2;
    }
    if (sl_doc_list(stdout, format) != 0) {
      fprintf(stderr, "sluice: unknown list format \"%s\": text, json, yaml or jsonschema\n", format);
      return 2;
    }
    return 0;
  }
  if (strcmp(cmd, "doc") == 0) return cmd_doc(argc - 2, argv + 2);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("sluice %s\n", SL_VERSION);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "sluice: unknown command \"%s\"\n", cmd);
  usage(stderr);
  return 2;
}

int main(int argc, char **argv) {
  int rc = command(argc, argv);
  sl_nats_exit();
  sl_amqp_link_exit();
  sl_kafka_exit();
  return rc;
}
