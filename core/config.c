/* The config file's top level: one stream (input/pipeline/output at the top)
 * or many under `streams:`, the core sections, and the sections registered by
 * subsystems. A single stream is validated where the user wrote it (so error
 * keys read `input.generate.count`) and then moved to `streams.main`. */
#include "config.h"
#include "tyk_openapi.h"
#include "section.h"
#include "spec.h"
#include "xalloc.h"
#include <stdlib.h>
#include <string.h>

static const sl_field_t retry_fields[] = {
  {"max_retries", SL_F_INT, "0", 0, "Attempts before a failed write is given up (nacked to the input); 0 retries until shutdown.", NULL, NULL},
  {"initial_interval", SL_F_DURATION, "100ms", 0, "Wait before the first retry; doubles on each failure.", NULL, NULL},
  {"max_interval", SL_F_DURATION, "5s", 0, "Upper bound of the wait between retries.", NULL, NULL},
  {0}};

static const sl_field_t pipeline_fields[] = {
  {"processors", SL_F_PROCESSORS, NULL, 0, "Processors every message goes through, in order.", NULL, NULL},
  {"threads", SL_F_INT, "-1", SL_ADVANCED,
   "Pool workers that run the processors, each a thread with its own loop and Lua VM; `-1` (or `0`, the "
   "default, as in Benthos) is one per core, so a one-core machine runs them on the stream's loop; `1` "
   "always does. The input, transactions, the output, acks and retries stay on the stream's loop, and "
   "results, acks and log lines keep the input's order (`ordered`). Only chains whose processors all run "
   "side by side safely use a pool (`lua`, `mapping`, `log`; not `cache`, `dedupe`, `rate_limit`, "
   "`batch`, nor nested ones; a tracer's spans come from the workers too), and not request-scoped "
   "instances: others run "
   "on the stream's loop. Scripts' globals live per VM, one per worker: state that must be shared goes "
   "in a cache resource. Absent, the environment's `SLUICE_THREADS` sets it (tests run the suite so).",
   NULL, NULL},
  {"ordered", SL_F_BOOL, "true", SL_ADVANCED,
   "With threads > 1: results reach the output in input order (a reorder buffer holds a batch until every "
   "earlier one is done, so per partition and per key order holds too), transactions complete (acks, "
   "answers to requests) and the lines processors log are written in that order too: a slow batch holds "
   "back the later ones' lines. `false` lets batches, their acks and their lines pass each other.",
   NULL, NULL},
  {0}};

static const sl_field_t scope_fields[] = {
  {"idle_timeout", SL_F_DURATION, "60s", 0, "How long an instance lives on after its last client left.", NULL, NULL},
  {"max_instances", SL_F_INT, "10000", 0, "Instances alive at once; a request needing one more gets 503.", NULL, NULL},
  {0}};

/* The kernel's fields of one stream; shared by the top level and each
 * `streams.NAME`. Stream sections follow them (sl_config_stream_fields). */
static const sl_field_t core_stream_fields[] = {
  {"input", SL_F_INPUT, NULL, SL_REQUIRED,
   "Where messages come from. A file's one stream at the top level (not under `streams:`) reads `stdin` "
   "without it, as in Benthos.", NULL, NULL},
  {"pipeline", SL_F_OBJECT, NULL, 0, "The processing steps.", NULL, pipeline_fields},
  {"output", SL_F_OUTPUT, NULL, SL_REQUIRED,
   "Where messages go. A file's one stream at the top level writes `stdout` without it, as in Benthos.", NULL, NULL},
  {"max_in_flight", SL_F_INT, "64", 0, "Transactions (input batches) open at once; the input waits beyond it.", NULL, NULL},
  {"retry", SL_F_OBJECT, NULL, 0, "How failed output writes are retried (exponential backoff).", NULL, retry_fields},
  {"request_scope", SL_F_OBJECT, NULL, 0,
   "For a request-scoped stream (its input or output uses `${ctx.…}` or a `$tyk_context.…` alias): one "
   "instance per distinct set of resolved values, created by the first client's request, shared by "
   "the clients that resolve the same way, and stopped `idle_timeout` after the last one left. Its "
   "output must be `http_server`; its processors see the `ctx` of the request that created it.",
   NULL, scope_fields},
  {0}};

enum { MAX_STREAM_FIELDS = 48 };
static sl_field_t stream_fields[MAX_STREAM_FIELDS];

const sl_field_t *sl_config_stream_fields(void) {
  if (stream_fields[0].name) return stream_fields;
  unsigned n = 0;
  for (const sl_field_t *f = core_stream_fields; f->name; f++) stream_fields[n++] = *f;
  const sl_section_t *sec;
  for (unsigned i = 0; n < MAX_STREAM_FIELDS - 1 && (sec = sl_section_at(i)); i++)
    if (sec->stream_desc)
      stream_fields[n++] = (sl_field_t){sec->name, SL_F_OBJECT, NULL, 0, sec->stream_desc, NULL, sec->fields};
  return stream_fields;
}

/* The kernel's top-level keys; the sections subsystems register are looked
 * up too. */
static const sl_field_t root_fields[] = {
  {"streams", SL_F_ANY, NULL, 0, "Named streams: `streams: {NAME: {input, pipeline, output}}`.", NULL, NULL},
  {"tests", SL_F_ANY, NULL, 0,
   "Config unit tests of this file's processors (Benthos's inline form, the shape of a `*_test.yaml` file's "
   "`tests:`), run by `sluice test FILE`; `run` and `lint` leave them to it.", NULL, NULL},
  {"shutdown_timeout", SL_F_DURATION, "20s", 0,
   "How long SIGINT/SIGTERM waits for in-flight messages. A drain that finishes exits 0 (messages handed "
   "back unacknowledged to an input that redelivers them count as finished); past the timeout the process "
   "logs what each stream still waits for and exits 1, abandoning it (unacknowledged messages come again "
   "from their source). A hard bound: a watchdog thread ends the process 1 s later if the event loop "
   "itself is blocked.", NULL, NULL},
  {0}};

const sl_field_t *sl_config_root_fields(void) { return root_fields; }

/* metrics and tracer are stream keys too, but at the top level the sections. */
static int is_stream_key(const char *k) {
  if (sl_section_find(k)) return 0;
  for (const sl_field_t *f = sl_config_stream_fields(); f->name; f++)
    if (!strcmp(f->name, k)) return 1;
  return 0;
}

static const sl_field_t *root_field(const char *k) {
  for (const sl_field_t *f = root_fields; f->name; f++)
    if (!strcmp(f->name, k)) return f;
  return NULL;
}

static void unknown_root_key(const sl_cnode_t *root, uint32_t i, sl_diags_t *d) {
  const char *names[64];
  unsigned n = 0;
  for (const sl_field_t *f = root_fields; f->name; f++) names[n++] = f->name;
  for (const sl_field_t *f = sl_config_stream_fields(); f->name; f++) names[n++] = f->name;
  const sl_section_t *sec;
  for (unsigned k = 0; n < 64 && (sec = sl_section_at(k)); k++) names[n++] = sec->name;
  const char *near = sl_nearest(root->keys[i], names, n);
  sl_cnode_t pos = sl_cnode_key_pos(root, i);
  if (near) sl_diag_add(d, &pos, root->keys[i], "unknown top-level key (did you mean \"%s\"?)", near);
  else sl_diag_add(d, &pos, root->keys[i], "unknown top-level key");
}

static int validate_streams(sl_cnode_t *streams, sl_diags_t *d) {
  if (streams->type == SL_CN_NULL) streams->type = SL_CN_MAP;
  if (streams->type != SL_CN_MAP) {
    sl_diag_add(d, streams, "streams", "expected a map of stream name to {input, pipeline, output}");
    return 1;
  }
  int errs = 0;
  for (uint32_t i = 0; i < streams->n; i++) {
    char *p = sl_xasprintf("streams.%s", streams->keys[i]);
    errs += sl_spec_validate_fields(sl_config_stream_fields(), streams->items[i], p, d);
    free(p);
  }
  return errs;
}

int sl_config_serves_api(const sl_cnode_t *root) {
  const sl_cnode_t *store = sl_cnode_get(root, "store");
  return (store && sl_conf_bool(store, "api", 1)) || sl_conf_bool(sl_cnode_get(root, "http"), "streams_api", 0);
}

int sl_config_validate(sl_cnode_t *root, sl_diags_t *d) {
  if (root->type == SL_CN_NULL) root->type = SL_CN_MAP;
  if (root->type != SL_CN_MAP) {
    sl_diag_add(d, root, NULL, "expected a map at the top level (input, pipeline, output or streams)");
    return 1;
  }
  if (sl_tyk_openapi_unwrap(root, d)) return 1;
  int errs = 0, single = 0;
  for (uint32_t i = 0; i < root->n; i++) {
    const char *k = root->keys[i];
    if (is_stream_key(k)) {
      single = 1;
      continue;
    }
    const sl_field_t *f = root_field(k);
    const sl_section_t *sec = f ? NULL : sl_section_find(k);
    if (f && strcmp(k, "streams") != 0) {
      errs += sl_spec_validate_value(f, root->items[i], k, d);
    } else if (sec && sec->fields) {
      const sl_field_t list = {k, SL_F_OBJLIST, NULL, 0, NULL, NULL, sec->fields};
      int bad = sec->list ? sl_spec_validate_value(&list, root->items[i], k, d)
                          : sl_spec_validate_fields(sec->fields, root->items[i], k, d);
      if (!bad && sec->check) bad = sec->check(root->items[i], root, d);
      errs += bad;
    } else if (!f && !sec) {
      unknown_root_key(root, i, d);
      errs++;
    }
  }
  sl_cnode_t *streams = sl_cnode_get(root, "streams");
  if (streams && single) {
    sl_diag_add(d, streams, "streams",
                "a file holds either one stream (input/pipeline/output at the top) or `streams:`, not both");
    return errs + 1;
  }
  if (!streams && !single) {
    if (sl_config_serves_api(root)) {
      sl_cnode_map_set(root, "streams", sl_cnode_new(SL_CN_MAP, root));
      return errs;
    }
    sl_diag_add(d, root, NULL,
                "no stream defined: add input and output (or streams: {NAME: {input, output}}, or a store: section "
                "to serve only the streams API)");
    return errs + 1;
  }
  if (streams) return errs + validate_streams(streams, d);

  /* One stream at the top level reads stdin and writes stdout unless it says
   * otherwise, as Benthos's config files do (its test and cookbook configs
   * often hold only a pipeline). */
  static const char *const io_defaults[][2] = {{"input", "stdin"}, {"output", "stdout"}};
  for (int k = 0; k < 2; k++)
    if (!sl_cnode_get(root, io_defaults[k][0])) {
      sl_cnode_t *v = sl_cnode_new(SL_CN_MAP, root);
      sl_cnode_map_set(v, io_defaults[k][1], sl_cnode_new(SL_CN_MAP, root));
      sl_cnode_map_set(root, io_defaults[k][0], v);
    }
  /* Validate the single stream in place (error keys as written), then nest it. */
  sl_cnode_t *body = sl_cnode_new(SL_CN_MAP, root);
  for (const sl_field_t *f = sl_config_stream_fields(); f->name; f++) {
    sl_cnode_t *v = is_stream_key(f->name) ? sl_cnode_take(root, f->name) : NULL;
    if (v) sl_cnode_map_set(body, f->name, v);
  }
  errs += sl_spec_validate_fields(sl_config_stream_fields(), body, "", d);
  sl_cnode_t *all = sl_cnode_new(SL_CN_MAP, root);
  sl_cnode_map_set(all, "main", body);
  sl_cnode_map_set(root, "streams", all);
  return errs;
}
