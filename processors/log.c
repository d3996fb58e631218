/* `log` processor: writes a log line per message (to stderr), with fields
 * interpolated from the message or computed by Lua; messages pass unchanged. */
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/stream.h"
#include "core/xalloc.h"
#include "lua/lhost.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"trace", "debug", "info", "warn", "error", NULL};

static const sl_field_t fields[] = {
  {"level", SL_F_ENUM, "info", 0, "Level of the lines (shown when `logger.level` lets it through).", levels, NULL},
  {"message", SL_F_STRING, "${! content() }", SL_INTERP, "The line's message.", NULL, NULL},
  {"fields", SL_F_MAP, "{}", SL_INTERP, "Extra fields of the line, name to interpolated value.", NULL, NULL},
  {"fields_mapping", SL_F_CODE, NULL, 0,
   "Lua run per message that returns a table of extra fields (after `fields`), with the scope of the "
   "`lua` processor: `return {user = this.user, size = #content()}`. Strings are written as they are, "
   "other values as JSON. A failing mapping logs its error in a `fields_mapping_error` field.", NULL, NULL},
  {0}};

typedef struct logp {
  sl_processor_t base;
  sl_log_level_t level;
  sl_interp_t *message;
  sl_interp_map_t fields;
  sl_interp_t *mapping;      /* fields_mapping, evaluated to a JSON object */
  char *path;                /* Benthos path, a field of every line */
} logp_t;

/* Appends the mapping's fields to kv (strings it owns go to owned). */
static void add_mapping(logp_t *l, sl_msg_t *m, uint32_t i, const char ***kv, size_t *n, char ***owned,
                        size_t *nowned) {
  char *err = NULL;
  char *text = sl_interp_eval(l->mapping, m, i, NULL, &err);
  json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
  free(text);
  const char *k;
  json_t *v;
  size_t grow = json_is_object(j) ? 2 * json_object_size(j) : 2;
  *kv = sl_xrealloc(*kv, (*n + grow + 3) * sizeof(**kv));   /* then path and NULL */
  *owned = sl_xrealloc(*owned, (*nowned + grow + 1) * sizeof(**owned));
  if (!json_is_object(j)) {
    (*kv)[(*n)++] = "fields_mapping_error";
    (*kv)[(*n)++] = (*owned)[(*nowned)++] = err ? err : sl_xstrdup("fields_mapping must return a table");
  } else {
    json_object_foreach(j, k, v) {
      (*kv)[(*n)++] = (*owned)[(*nowned)++] = sl_xstrdup(k);
      (*kv)[(*n)++] = (*owned)[(*nowned)++] =
        json_is_string(v) ? sl_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    }
  }
  json_decref(j);
}

static void log_process(sl_processor_t *p, sl_batch_t *b) {
  logp_t *l = (logp_t *)p;
  if (sl_log_enabled(l->level)) {
    for (uint32_t i = 0; i < b->n; i++) {
      sl_msg_t *m = b->msgs[i];
      size_t n = 0, nowned = 0;
      const char **kv = sl_xcalloc(2 * l->fields.n + 3, sizeof(*kv));   /* fields, path, NULL */
      char **owned = sl_xcalloc(l->fields.n + 1, sizeof(*owned));
      char *err = NULL;
      char *msg = sl_interp_eval(l->message, m, i, NULL, &err);
      if (!msg) {
        msg = sl_xasprintf("(message failed: %s)", err);
        free(err);
        err = NULL;
      }
      for (unsigned f = 0; f < l->fields.n; f++) {
        char *v = sl_interp_eval(l->fields.values[f], m, i, NULL, &err);
        if (!v) {
          v = sl_xasprintf("(failed: %s)", err);
          free(err);
          err = NULL;
        }
        kv[n++] = l->fields.names[f];
        kv[n++] = owned[nowned++] = v;
      }
      if (l->mapping) add_mapping(l, m, i, &kv, &n, &owned, &nowned);
      kv[n++] = "path";
      kv[n++] = l->path;
      kv[n] = NULL;
      sl_log_fields(l->level, p->stream ? p->stream->name : NULL, p->label, msg, kv);
      free(msg);
      for (size_t f = 0; f < nowned; f++) free(owned[f]);
      free(kv);
      free(owned);
    }
  }
  sl_processor_emit(p, b);
}

static void log_destroy(sl_processor_t *p) {
  logp_t *l = (logp_t *)p;
  sl_interp_free(l->message);
  sl_interp_map_free(&l->fields);
  sl_interp_free(l->mapping);
  free(l->path);
  free(l);
}

static const sl_processor_vt vt = {log_process, NULL, log_destroy};
static const sl_spec_t spec;

static void *log_create(sl_build_t *b, const sl_cnode_t *conf) {
  logp_t *l = sl_xcalloc(1, sizeof(*l));
  sl_component_init_processor(&l->base, &vt, &spec, b);
  sl_log_parse_level(sl_conf_str(conf, "level", "info"), &l->level);
  l->message = sl_lua_interp_field(b->worker, conf, b->diags, "message");
  int bad = !l->message;
  bad |= sl_lua_interp_map_field(b->worker, conf, b->diags, "fields", &l->fields) != 0;
  const sl_cnode_t *fmap = sl_cnode_get(conf, "fields_mapping");
  if (fmap && fmap->str && sl_lua_env_check(fmap, b->diags, "fields_mapping", 0) != 0) {
    bad = 1;
  } else if (fmap && fmap->str) {
    /* An interpolation of the code as a function body: its table comes back JSON-encoded. */
    char *tmpl = sl_xasprintf("${! (function() %s\nend)() }", fmap->str);
    char *err = NULL;
    l->mapping = sl_interp_compile(sl_lua_get(b->worker), tmpl, fmap->file ? fmap->file : "config",
                                   fmap->line + (fmap->block ? 1 : 0), &err);
    free(tmpl);
    if (!l->mapping) {
      sl_diag_add(b->diags, fmap, "fields_mapping", "Lua: %s", err);
      free(err);
      bad = 1;
    }
  }
  l->path = sl_metrics_path(b->stream_name, b->path ? b->path : "");
  if (bad) {
    log_destroy(&l->base);
    return NULL;
  }
  return l;
}

static const sl_spec_t spec = {
  .name = "log",
  .kind = SL_KIND_PROCESSOR,
  .pooled = 1,
  .summary = "Logs a line per message with interpolated fields; messages pass unchanged.",
  .desc = "Lines go to stderr in the `logger.format` (logfmt or JSON) with `stream`, `component` (the "
          "label) and `path` (Benthos' path, `root.pipeline.processors.0`) fields, plus the configured ones. `${! }` parts are Lua expressions over the message, as "
          "in the `lua` processor (`this`, `meta`, `content()`, `error_message()`...).",
  .fields = fields,
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - log:\n"
    "        level: info\n"
    "        message: 'order ${! this.id } for ${! this.user }'\n"
    "        fields:\n"
    "          topic: '${! meta.topic }'\n"
    "        fields_mapping: 'return {size = #content(), user = this.user}'\n",
  .create = log_create,
};
SL_REGISTER(spec)
