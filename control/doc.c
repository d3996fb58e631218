#include "doc.h"
#include "schema.h"
#include "yaml_emit.h"
#include "core/config.h"
#include "core/section.h"
#include "core/xalloc.h"
#include "lua/api.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *type_name(const sl_field_t *f) {
  switch (f->type) {
  case SL_F_STRING: return f->flags & SL_INTERP ? "string (interpolated)" : "string";
  case SL_F_INT: return "int";
  case SL_F_FLOAT: return "float";
  case SL_F_BOOL: return "bool";
  case SL_F_DURATION: return "duration";
  case SL_F_SIZE: return "size";
  case SL_F_ENUM: return "enum";
  case SL_F_STRLIST: return "list of strings";
  case SL_F_MAP: return f->flags & SL_INTERP ? "map of interpolated strings" : "map of strings";
  case SL_F_OBJECT: return "object";
  case SL_F_OBJLIST: return "list of objects";
  case SL_F_CODE: return "Lua";
  case SL_F_INPUT: return "input";
  case SL_F_OUTPUT: return "output";
  case SL_F_PROCESSOR: return "processor";
  case SL_F_INPUTS: return "list of inputs";
  case SL_F_OUTPUTS: return "list of outputs";
  case SL_F_PROCESSORS: return "list of processors";
  case SL_F_ADDRESS: return "address";
  case SL_F_ANY: return "any";
  }
  return "?";
}

/* Table cells cannot hold raw newlines or pipes. */
static void cell(FILE *f, const char *s) {
  for (; s && *s; s++) {
    if (*s == '\n') fputc(' ', f);
    else if (*s == '|') fputs("\\|", f);
    else fputc(*s, f);
  }
}

static void fields_table(FILE *f, const sl_field_t *fields, const char *prefix) {
  fprintf(f, "| field | type | default | description |\n| --- | --- | --- | --- |\n");
  for (const sl_field_t *x = fields; x && x->name; x++) {
    if (x->flags & SL_MOVED) continue;
    fprintf(f, "| `%s%s` | %s | ", prefix, x->name, type_name(x));
    if (x->flags & SL_REQUIRED) fputs("required", f);
    else if (x->def) { fputc('`', f); cell(f, *x->def ? x->def : "\"\""); fputc('`', f); }
    else fputs("—", f);
    fputs(" | ", f);
    cell(f, x->desc);
    if (x->type == SL_F_ENUM && x->values) {
      fputs(" One of:", f);
      for (const char *const *e = x->values; *e; e++) fprintf(f, " `%s`", *e);
      fputc('.', f);
    } else if (x->values && x->type != SL_F_ENUM) {
      const char *lo = x->values[0], *hi = x->values[1];
      if (*lo && *hi) fprintf(f, " From `%s` to `%s`.", lo, hi);
      else if (*lo) fprintf(f, " At least `%s`.", lo);
      else if (*hi) fprintf(f, " At most `%s`.", hi);
    }
    fputs(" |\n", f);
  }
  for (const sl_field_t *x = fields; x && x->name; x++) {
    if ((x->type == SL_F_OBJECT || x->type == SL_F_OBJLIST) && x->fields) {
      char *p = sl_xasprintf("%s%s%s.", prefix, x->name, x->type == SL_F_OBJLIST ? "[]" : "");
      fprintf(f, "\n#### `%s%s`\n\n", prefix, x->name);
      fields_table(f, x->fields, p);
      free(p);
    }
  }
}

void sl_doc_component(FILE *f, const sl_spec_t *s) {
  fprintf(f, "# %s (%s)\n\n%s\n\n", s->name, sl_kind_name(s->kind), s->summary ? s->summary : "");
  if (s->desc) fprintf(f, "%s\n\n", s->desc);
  if (s->shorthand)
    fprintf(f, "A bare value (`%s: <value>`) sets `%s`.\n\n", s->name, s->shorthand);
  if (s->fields && s->fields->name) {
    fprintf(f, "## Fields\n\n");
    fields_table(f, s->fields, "");
    fputc('\n', f);
  }
  if (s->example) fprintf(f, "## Example\n\n```yaml\n%s%s```\n", s->example,
                          s->example[strlen(s->example) - 1] == '\n' ? "" : "\n");
}

void sl_doc_config(FILE *f) {
  fprintf(f, "# Config file\n\nA file holds one stream (`input`, `pipeline`, `output` at the top level, run as "
             "stream `main`) or several under `streams: {NAME: {...}}`, plus the sections below. "
             "`${NAME}` and `${NAME:default}` are replaced by environment variables when the file is loaded "
             "(`$${` is a literal `${`).\n\n## Top level\n\n");
  fields_table(f, sl_config_root_fields(), "");
  fprintf(f, "\n## A stream\n\n");
  fields_table(f, sl_config_stream_fields(), "");
  const sl_section_t *sec;
  for (unsigned i = 0; (sec = sl_section_at(i)); i++) {
    fprintf(f, "\n## `%s:`\n\n%s\n\n", sec->name, sec->desc ? sec->desc : "");
    if (sec->fields) fields_table(f, sec->fields, sec->list ? "[]." : "");
  }
}

/* {"inputs": [{name, summary}], "processors": [...], "outputs": [...]} */
static json_t *components(void) {
  json_t *all = json_object();
  for (int k = SL_KIND_INPUT; k <= SL_KIND_OUTPUT; k++) {
    char key[32];
    snprintf(key, sizeof key, "%ss", sl_kind_name((sl_kind_t)k));
    json_t *list = json_array();
    const sl_spec_t *s;
    for (unsigned i = 0; (s = sl_registry_at((sl_kind_t)k, i)); i++)
      json_array_append_new(list, json_pack("{s:s,s:s}", "name", s->name, "summary", s->summary ? s->summary : ""));
    json_object_set_new(all, key, list);
  }
  return all;
}

int sl_doc_list(FILE *f, const char *format) {
  json_t *j;
  if (!strcmp(format, "jsonschema")) j = sl_schema_config();
  else if (!strcmp(format, "json") || !strcmp(format, "yaml")) j = components();
  else if (!strcmp(format, "text")) {
    for (int k = SL_KIND_INPUT; k <= SL_KIND_OUTPUT; k++) {
      fprintf(f, "%s%ss:\n", k ? "\n" : "", sl_kind_name((sl_kind_t)k));
      const sl_spec_t *s;
      for (unsigned i = 0; (s = sl_registry_at((sl_kind_t)k, i)); i++)
        fprintf(f, "  %-16s %s\n", s->name, s->summary ? s->summary : "");
    }
    return 0;
  } else {
    return -1;
  }
  int rc = 0;
  if (!strcmp(format, "yaml")) rc = sl_yaml_emit(f, j);
  else if (json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0) fputc('\n', f);
  else rc = -1;
  json_decref(j);
  return rc;
}

static int mkdir_p(const char *dir) {
  char *tmp = sl_xstrdup(dir);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) { free(tmp); return -1; }
    *p = '/';
  }
  int rc = mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
  free(tmp);
  return rc;
}

int sl_doc_write_all(const char *dir) {
  char *index_path = sl_xasprintf("%s/README.md", dir);
  if (mkdir_p(dir) != 0) { free(index_path); return -1; }
  FILE *idx = fopen(index_path, "w");
  free(index_path);
  if (!idx) return -1;
  fprintf(idx, "# Component reference\n\nGenerated by `sluice doc --all` from the component specs; "
               "do not edit by hand.\n");
  int rc = 0;
  for (int k = SL_KIND_INPUT; k <= SL_KIND_OUTPUT; k++) {
    const char *kind = sl_kind_name((sl_kind_t)k);
    fprintf(idx, "\n## %ss\n\n", kind);
    char *sub = sl_xasprintf("%s/%ss", dir, kind);
    if (mkdir_p(sub) != 0) rc = -1;
    const sl_spec_t *s;
    for (unsigned i = 0; (s = sl_registry_at((sl_kind_t)k, i)); i++) {
      fprintf(idx, "- [%s](%ss/%s.md): %s\n", s->name, kind, s->name, s->summary ? s->summary : "");
      char *path = sl_xasprintf("%s/%s.md", sub, s->name);
      FILE *f = fopen(path, "w");
      free(path);
      if (!f) { rc = -1; continue; }
      sl_doc_component(f, s);
      fclose(f);
    }
    free(sub);
  }
  fprintf(idx, "\n## Benthos names\n\nComponents of Benthos (and Tyk Streams) that sluice has under another name or "
               "shape; `sluice lint` and `sluice run` answer them with these hints.\n\n");
  const sl_hint_t *h;
  for (unsigned i = 0; (h = sl_hint_at(i)); i++) fprintf(idx, "- `%s` (%s): %s\n", h->name, sl_kind_name(h->kind), h->text);
  fprintf(idx, "\nThe config file's own keys and sections: [config.md](config.md). The Lua API scripts see: "
               "[lua-api.md](lua-api.md).\n");
  fclose(idx);
  char *api_path = sl_xasprintf("%s/lua-api.md", dir);
  FILE *af = fopen(api_path, "w");
  free(api_path);
  if (!af || sl_lua_api_doc(af, "md") != 0) rc = -1;
  if (af) fclose(af);
  char *cfg_path = sl_xasprintf("%s/config.md", dir);
  FILE *cf = fopen(cfg_path, "w");
  free(cfg_path);
  if (!cf) return -1;
  sl_doc_config(cf);
  fclose(cf);
  return rc;
}

int sl_doc_lua_api(const char *format, const char *out, int check) {
  if (check) {
    char *diff = NULL;
    if (sl_lua_api_check(&diff) != 0) {
      fprintf(stderr, "sluice: %s\n", diff);
      free(diff);
      return 1;
    }
    if (!format && !out) return 0;
  }
  if (!format) format = "md";
  FILE *f = stdout;
  char *path = NULL;
  if (out) {
    struct stat st;
    path = stat(out, &st) == 0 && S_ISDIR(st.st_mode) ? sl_xasprintf("%s/sluice.lua", out) : sl_xstrdup(out);
    f = fopen(path, "w");
    if (!f) {
      fprintf(stderr, "sluice: cannot write %s: %s\n", path, strerror(errno));
      free(path);
      return 1;
    }
  }
  int rc = sl_lua_api_doc(f, format);
  if (out) fclose(f);
  free(path);
  if (rc == -1) fprintf(stderr, "sluice: unknown format \"%s\" for doc lua (md, luals, json)\n", format);
  return rc == 0 ? 0 : rc == -1 ? 2 : 1;
}
