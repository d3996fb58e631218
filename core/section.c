#include "section.h"
#include <string.h>

enum { MAX_SECTIONS = 32 };
/* Filled by constructors before main; read-only afterwards. */
static const sl_section_t *g_sections[MAX_SECTIONS];
static unsigned g_n;

void sl_section_register(const sl_section_t *s) {
  if (g_n == MAX_SECTIONS) return;
  unsigned i = g_n++;
  for (; i > 0 && strcmp(g_sections[i - 1]->name, s->name) > 0; i--) g_sections[i] = g_sections[i - 1];
  g_sections[i] = s;
}

const sl_section_t *sl_section_find(const char *name) {
  for (unsigned i = 0; i < g_n; i++)
    if (strcmp(g_sections[i]->name, name) == 0) return g_sections[i];
  return NULL;
}

const sl_section_t *sl_section_at(unsigned i) { return i < g_n ? g_sections[i] : NULL; }

int sl_sections_apply(sl_worker_t *w, const sl_cnode_t *root, sl_diags_t *d) {
  int rc = 0;
  for (unsigned i = 0; i < g_n; i++)
    if (g_sections[i]->apply(w, sl_cnode_get(root, g_sections[i]->name), d) != 0) rc = -1;
  return rc;
}

void sl_sections_apply_stream(sl_worker_t *w, const sl_cnode_t *stream, const char *name) {
  /* A request-scoped instance (named after its template, `name{values}`)
   * counts and traces as its template. */
  if (strchr(name, '{')) return;
  for (unsigned i = 0; i < g_n; i++)
    if (g_sections[i]->apply_stream) g_sections[i]->apply_stream(w, sl_cnode_get(stream, g_sections[i]->name), name);
}
