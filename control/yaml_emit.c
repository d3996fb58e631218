#include "yaml_emit.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* A string that a YAML reader would take for null, a bool or a number
 * (YAML 1.1, as libyaml's users read it) must be quoted to stay a string. */
static int looks_typed(const char *s) {
  static const char *const words[] = {"null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"};
  if (!*s) return 1;
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (!strcasecmp(s, words[i])) return 1;
  char *end;
  strtod(s, &end);
  return !*end;
}

/* typed: a number, bool or null, written plain; a string is plain where that
 * reads back as the same string, quoted otherwise. */
static int scalar(yaml_emitter_t *e, const char *text, int typed) {
  yaml_event_t ev;
  int plain = typed || !looks_typed(text);
  /* Text of several lines (Lua code) prints as a literal block. */
  yaml_scalar_style_t style = typed ? YAML_PLAIN_SCALAR_STYLE
                              : strchr(text, '\n') ? YAML_LITERAL_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
  yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, -1, plain, !typed, style);
  return yaml_emitter_emit(e, &ev);
}

static int node(yaml_emitter_t *e, const json_t *j) {
  yaml_event_t ev;
  char num[64];
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *v;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    if (!yaml_emitter_emit(e, &ev)) return 0;
    json_object_foreach((json_t *)j, k, v) if (!scalar(e, k, 0) || !node(e, v)) return 0;
    yaml_mapping_end_event_initialize(&ev);
    return yaml_emitter_emit(e, &ev);
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *v;
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
    if (!yaml_emitter_emit(e, &ev)) return 0;
    json_array_foreach(j, i, v) if (!node(e, v)) return 0;
    yaml_sequence_end_event_initialize(&ev);
    return yaml_emitter_emit(e, &ev);
  }
  /* Strings are quoted where YAML would read them as another type. */
  case JSON_STRING: return scalar(e, json_string_value(j), 0);
  case JSON_INTEGER: snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j)); return scalar(e, num, 1);
  case JSON_REAL: snprintf(num, sizeof num, "%.17g", json_real_value(j)); return scalar(e, num, 1);
  case JSON_TRUE: return scalar(e, "true", 1);
  case JSON_FALSE: return scalar(e, "false", 1);
  case JSON_NULL: return scalar(e, "null", 1);
  }
  return 0;
}

static int write_file(void *f, unsigned char *buf, size_t n) { return fwrite(buf, 1, n, f) == n; }

int sl_yaml_emit(FILE *f, const json_t *json) {
  yaml_emitter_t e;
  yaml_event_t ev;
  if (!yaml_emitter_initialize(&e)) return -1;
  yaml_emitter_set_output(&e, write_file, f);
  yaml_emitter_set_unicode(&e, 1);
  yaml_emitter_set_width(&e, -1);
  int ok = 1;
  yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
  ok = ok && yaml_emitter_emit(&e, &ev);
  yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
  ok = ok && yaml_emitter_emit(&e, &ev);
  ok = ok && node(&e, json);
  yaml_document_end_event_initialize(&ev, 1);
  ok = ok && yaml_emitter_emit(&e, &ev);
  yaml_stream_end_event_initialize(&ev);
  ok = ok && yaml_emitter_emit(&e, &ev);
  yaml_emitter_delete(&e);
  return ok ? 0 : -1;
}
