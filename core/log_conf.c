/* The `logger:` section: level, line format and fields on every line. */
#include "log.h"
#include "section.h"
#include <stdlib.h>
#include <string.h>

static const char *const levels[] = {"trace", "debug", "info", "warn", "error", "off", NULL};
static const char *const formats[] = {"logfmt", "json", NULL};
static const sl_field_t fields[] = {
  {"level", SL_F_ENUM, "info", 0, "Lowest level written to stderr (`--log-level` overrides it).", levels, NULL},
  {"format", SL_F_ENUM, "logfmt", 0,
   "Line format: `logfmt` (`time=… level=info stream=a component=lua msg=\"…\"`) or `json` (one object "
   "per line, every value a string).", formats, NULL},
  {"static_fields", SL_F_MAP, "{}", 0,
   "Fields added to every line (after `stream` and `component`), e.g. `{service: orders, env: prod}`.", NULL, NULL},
  {0}};

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)w;
  (void)d;
  sl_log_level_t lvl = SL_LOG_INFO;
  sl_log_parse_level(sl_conf_str(node, "level", "info"), &lvl);   /* validated: one of them */
  sl_log_set_level(lvl);
  sl_log_set_json(!strcmp(sl_conf_str(node, "format", "logfmt"), "json"));
  const char **kv = sl_conf_pairs(node, "static_fields");
  sl_log_set_static(kv);
  free(kv);
  return 0;
}

static const sl_section_t logger_section = {
  .name = "logger",
  .desc = "Logging to stderr (stdout belongs to the `stdout` output). Lines from a component carry "
          "`stream` and `component` (its label) fields.",
  .fields = fields,
  .apply = apply,
};
SL_REGISTER_SECTION(logger_section)
