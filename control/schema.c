/* The JSON Schema of a whole config file, derived from the component specs
 * and sections as validation is, so that an editor (yaml-language-server's
 * `# yaml-language-server: $schema=...`) completes and checks what lint
 * checks. What a schema cannot say (one component per block, Lua syntax,
 * interpolations, cross-field rules) stays lint's. */
#include "schema.h"
#include "core/config.h"
#include "core/section.h"
#include "core/tyk_openapi.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static json_t *field_schema(const sl_field_t *f);

static json_t *ref(const char *def) {
  char path[64];
  snprintf(path, sizeof path, "#/definitions/%s", def);
  return json_pack("{s:s}", "$ref", path);
}

/* A field's default as the type it has in YAML ("20s" stays a string). */
static json_t *default_value(const sl_field_t *f) {
  const char *d = f->def;
  char *end;
  switch (f->type) {
  case SL_F_INT: {
    long long v = strtoll(d, &end, 10);
    return *d && !*end ? json_integer(v) : json_string(d);
  }
  case SL_F_FLOAT: {
    double v = strtod(d, &end);
    return *d && !*end ? json_real(v) : json_string(d);
  }
  case SL_F_BOOL:
    if (!strcmp(d, "true") || !strcmp(d, "false")) return json_boolean(!strcmp(d, "true"));
    return json_string(d);
  case SL_F_STRLIST: return *d ? json_pack("[s]", d) : json_array();
  default: return json_string(d);
  }
}

/* Enums are taken in any case (lint reads WARN as warn): the values for
 * completion, and a pattern that accepts their other spellings. */
static json_t *enum_schema(const char *const *values) {
  json_t *e = json_array();
  size_t len = 8;
  for (const char *const *v = values; v && *v; v++) len += strlen(*v) * 4 + 1;
  char *pat = malloc(len), *p = pat;
  p += sprintf(p, "^(");
  for (const char *const *v = values; v && *v; v++) {
    json_array_append_new(e, json_string(*v));
    if (v != values) *p++ = '|';
    for (const char *c = *v; *c; c++) {
      if (isalpha((unsigned char)*c)) p += sprintf(p, "[%c%c]", toupper((unsigned char)*c), tolower((unsigned char)*c));
      else if (isalnum((unsigned char)*c) || *c == '_' || *c == '-') *p++ = *c;
      else p += sprintf(p, "\\%c", *c);
    }
  }
  strcpy(p, ")$");
  json_t *s = json_pack("{s:[{s:o},{s:s,s:s}]}", "anyOf", "enum", e, "type", "string", "pattern", pat);
  free(pat);
  return s;
}

/* Numbers bounded by SL_BOUNDS, when the bounds are plain numbers. */
static void bounds(json_t *s, const sl_field_t *f) {
  if (!f->values || f->type == SL_F_ENUM) return;
  static const char *const keys[2] = {"minimum", "maximum"};
  for (int i = 0; i < 2; i++) {
    char *end;
    double v = strtod(f->values[i], &end);
    if (*f->values[i] && !*end) json_object_set_new(s, keys[i], f->type == SL_F_INT ? json_integer((json_int_t)v) : json_real(v));
  }
}

static json_t *object_schema(const sl_field_t *fields) {
  json_t *props = json_object(), *req = json_array();
  for (const sl_field_t *f = fields; f && f->name; f++) {
    if (f->flags & SL_MOVED) continue;
    json_object_set_new(props, f->name, field_schema(f));
    if (f->flags & SL_REQUIRED) json_array_append_new(req, json_string(f->name));
  }
  json_t *s = json_pack("{s:s,s:o,s:b}", "type", "object", "properties", props, "additionalProperties", 0);
  if (json_array_size(req)) json_object_set_new(s, "required", req);
  else json_decref(req);
  return s;
}

static json_t *type_schema(const sl_field_t *f) {
  switch (f->type) {
  case SL_F_STRING: case SL_F_CODE: case SL_F_ADDRESS: return json_pack("{s:s}", "type", "string");
  case SL_F_INT: return json_pack("{s:s}", "type", "integer");
  case SL_F_FLOAT: return json_pack("{s:s}", "type", "number");
  case SL_F_BOOL: return json_pack("{s:s}", "type", "boolean");
  /* "1s", "500ms", "1MiB", or a bare number. */
  case SL_F_DURATION: case SL_F_SIZE: return json_pack("{s:[s,s]}", "type", "string", "number");
  case SL_F_ENUM: return enum_schema(f->values);
  case SL_F_STRLIST:
    return json_pack("{s:[{s:s},{s:s,s:{s:s}}]}", "anyOf", "type", "string", "type", "array", "items", "type", "string");
  case SL_F_MAP: return json_pack("{s:s,s:{s:[s,s,s]}}", "type", "object", "additionalProperties", "type", "string", "number", "boolean");
  case SL_F_OBJECT: return object_schema(f->fields);
  case SL_F_OBJLIST: return json_pack("{s:s,s:o}", "type", "array", "items", object_schema(f->fields));
  case SL_F_INPUT: return ref("input");
  case SL_F_OUTPUT: return ref("output");
  case SL_F_PROCESSOR: return ref("processor");
  case SL_F_INPUTS: return json_pack("{s:s,s:o}", "type", "array", "items", ref("input"));
  case SL_F_OUTPUTS: return json_pack("{s:s,s:o}", "type", "array", "items", ref("output"));
  case SL_F_PROCESSORS: return json_pack("{s:s,s:o}", "type", "array", "items", ref("processor"));
  case SL_F_ANY: return json_object();
  }
  return json_object();
}

static json_t *field_schema(const sl_field_t *f) {
  json_t *s = type_schema(f);
  /* `${NAME}` is replaced when the file is read, so a typed field may hold one. */
  if (f->type == SL_F_INT || f->type == SL_F_FLOAT || f->type == SL_F_BOOL)
    s = json_pack("{s:[o,{s:s,s:s}]}", "anyOf", s, "type", "string", "pattern", "\\$\\{[^}]+\\}");
  if (f->desc) json_object_set_new(s, "description", json_string(f->desc));
  if (f->def && !(f->flags & SL_REQUIRED)) json_object_set_new(s, "default", default_value(f));
  bounds(s, f);
  return s;
}

/* {NAME: body, label, processors}; the body may be the shorthand field's
 * bare value (`lua: <code>`), and a body with no required field may be
 * empty (`drop:`). */
static json_t *component_schema(const sl_spec_t *spec) {
  json_t *body = object_schema(spec->fields);
  if (spec->desc || spec->summary) json_object_set_new(body, "description", json_string(spec->desc ? spec->desc : spec->summary));
  if (spec->shorthand)
    for (const sl_field_t *f = spec->fields; f->name; f++)
      if (!strcmp(f->name, spec->shorthand)) body = json_pack("{s:[o,o]}", "anyOf", body, field_schema(f));
  if (!json_object_get(body, "required")) body = json_pack("{s:[o,{s:s}]}", "anyOf", body, "type", "null");
  json_t *props = json_pack("{s:o,s:{s:s}}", spec->name, body, "label", "type", "string");
  if (spec->kind != SL_KIND_PROCESSOR) json_object_set_new(props, "processors", json_pack("{s:s,s:o}", "type", "array", "items", ref("processor")));
  return json_pack("{s:s,s:o,s:[s],s:b,s:s}", "type", "object", "properties", props, "required", spec->name,
                   "additionalProperties", 0, "description", spec->summary ? spec->summary : "");
}

/* A block of one kind: one of its components, or a bare name (`output: drop`). */
static json_t *kind_schema(sl_kind_t kind) {
  json_t *any = json_array(), *names = json_array();
  const sl_spec_t *s;
  for (unsigned i = 0; (s = sl_registry_at(kind, i)); i++) {
    json_array_append_new(any, component_schema(s));
    json_array_append_new(names, json_string(s->name));
  }
  json_array_append_new(any, json_pack("{s:o}", "enum", names));
  return json_pack("{s:o}", "anyOf", any);
}

json_t *sl_schema_config(void) {
  json_t *stream = object_schema(sl_config_stream_fields());
  json_object_del(stream, "required");   /* lint names what a stream lacks */
  json_t *root = object_schema(sl_config_root_fields());
  json_t *props = json_object_get(root, "properties");
  json_object_set_new(props, "streams", json_pack("{s:s,s:s,s:o}", "description", "Named streams.", "type", "object",
                                                  "additionalProperties", ref("stream")));
  /* The single-stream form: a stream's keys at the top level. */
  json_object_update_missing(props, json_object_get(stream, "properties"));
  const sl_section_t *sec;
  for (unsigned i = 0; (sec = sl_section_at(i)); i++) {
    json_t *s = object_schema(sec->fields);
    if (sec->list) s = json_pack("{s:s,s:o}", "type", "array", "items", s);
    if (sec->desc) json_object_set_new(s, "description", json_string(sec->desc));
    json_object_set_new(props, sec->name, s);
  }
  /* A Tyk API definition: OpenAPI's keys and any `x-` key beside the streams. */
  json_object_set_new(props, "x-tyk-streaming",
                      json_pack("{s:s,s:s,s:{s:{s:s,s:o}},s:b}", "description", "Tyk Streams' streams (a Tyk API definition).",
                                "type", "object", "properties", "streams", "type", "object", "additionalProperties",
                                ref("stream"), "additionalProperties", 0));
  for (const char *const *k = sl_openapi_keys; *k; k++) json_object_set_new(props, *k, json_object());
  json_object_set_new(root, "patternProperties", json_pack("{s:{}}", "^x-"));
  json_object_set_new(root, "$schema", json_string("http://json-schema.org/draft-07/schema#"));
  json_object_set_new(root, "title", json_string("sluice config"));
  json_object_set_new(root, "definitions", json_pack("{s:o,s:o,s:o,s:o}", "input", kind_schema(SL_KIND_INPUT),
                                                     "processor", kind_schema(SL_KIND_PROCESSOR), "output",
                                                     kind_schema(SL_KIND_OUTPUT), "stream", stream));
  return root;
}
