/* `log` processor: writes a log line per message (to stderr), with fields
 * interpolated from the message; messages pass unchanged. */
#include "../core/component.h"
#include "../core/log.h"
#include "../core/stream.h"
#include "../core/xalloc.h"
#include "../lua/lhost.h"
#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"trace", "debug", "info", "warn", "error", NULL};

static const sl_field_t fields[] = {
  {"level", SL_F_ENUM, "info", 0, "Level of the lines (shown when `logger.level` lets it through).", levels, NULL},
  {"message", SL_F_STRING, "${! content() }", SL_INTERP, "The line's message.", NULL, NULL},
  {"fields", SL_F_MAP, "{}", SL_INTERP, "Extra fields of the line, name to interpolated value.", NULL, NULL},
  {0}};

typedef struct logp {
  sl_processor_t base;
  sl_log_level_t level;
  sl_interp_t *message;
  unsigned nfields;
  char **names;
  sl_interp_t **values;
} logp_t;

static void log_process(sl_processor_t *p, sl_batch_t *b) {
  logp_t *l = (logp_t *)p;
  if (sl_log_enabled(l->level)) {
    const char **kv = sl_xcalloc(2 * l->nfields + 1, sizeof(*kv));
    char **owned = sl_xcalloc(l->nfields + 1, sizeof(*owned));
    for (uint32_t i = 0; i < b->n; i++) {
      sl_msg_t *m = b->msgs[i];
      char *err = NULL;
      char *msg = sl_interp_eval(l->message, m, i, NULL, &err);
      if (!msg) {
        msg = sl_xasprintf("(message failed: %s)", err);
        free(err);
        err = NULL;
      }
      for (unsigned f = 0; f < l->nfields; f++) {
        owned[f] = sl_interp_eval(l->values[f], m, i, NULL, &err);
        if (!owned[f]) {
          owned[f] = sl_xasprintf("(failed: %s)", err);
          free(err);
          err = NULL;
        }
        kv[2 * f] = l->names[f];
        kv[2 * f + 1] = owned[f];
      }
      kv[2 * l->nfields] = NULL;
      sl_log_fields(l->level, p->stream ? p->stream->name : NULL, p->label, msg, kv);
      free(msg);
      for (unsigned f = 0; f < l->nfields; f++) free(owned[f]);
    }
    free(kv);
    free(owned);
  }
  sl_processor_emit(p, b);
}

static void log_destroy(sl_processor_t *p) {
  logp_t *l = (logp_t *)p;
  sl_interp_free(l->message);
  for (unsigned f = 0; f < l->nfields; f++) {
    free(l->names[f]);
    sl_interp_free(l->values[f]);
  }
  free(l->names);
  free(l->values);
  free(l);
}

static const sl_processor_vt vt = {log_process, NULL, log_destroy};
static const sl_spec_t spec;

static void *log_create(sl_build_t *b, const sl_cnode_t *conf) {
  logp_t *l = sl_xcalloc(1, sizeof(*l));
  sl_component_init_processor(&l->base, &vt, &spec, b);
  sl_log_parse_level(sl_conf_str(conf, "level", "info"), &l->level);
  l->message = sl_lua_interp_field(b->worker, conf, b->diags, "message");
  const sl_cnode_t *fm = sl_cnode_get(conf, "fields");
  int bad = !l->message;
  if (fm && fm->type == SL_CN_MAP) {
    l->names = sl_xcalloc(fm->n ? fm->n : 1, sizeof(*l->names));
    l->values = sl_xcalloc(fm->n ? fm->n : 1, sizeof(*l->values));
    for (uint32_t i = 0; i < fm->n; i++) {
      sl_interp_t *v = sl_lua_interp_field(b->worker, fm, b->diags, fm->keys[i]);
      if (!v) {
        bad = 1;
        continue;
      }
      l->names[l->nfields] = sl_xstrdup(fm->keys[i]);
      l->values[l->nfields++] = v;
    }
  }
  if (bad) {
    log_destroy(&l->base);
    return NULL;
  }
  return l;
}

static const sl_spec_t spec = {
  .name = "log",
  .kind = SL_KIND_PROCESSOR,
  .summary = "Logs a line per message with interpolated fields; messages pass unchanged.",
  .desc = "Lines go to stderr in the `logger.format` (logfmt or JSON) with `stream` and `component` "
          "fields, plus the configured ones. `${! }` parts are Lua expressions over the message, as "
          "in the `lua` processor (`this`, `meta`, `content()`, `error_message()`...).",
  .fields = fields,
  .example =
    "pipeline:\n"
    "  processors:\n"
    "    - log:\n"
    "        level: info\n"
    "        message: 'order ${! this.id } for ${! this.user }'\n"
    "        fields:\n"
    "          topic: '${! meta.topic }'\n",
  .create = log_create,
};
SL_REGISTER(spec)
