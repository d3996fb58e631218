/* The `cache_resources:` section, Benthos' shape: a list of resources, each
 * a `label` and one backend's body (`memory: {...}`). A reload applies it
 * again before the streams it names are rebuilt: a resource it keeps keeps
 * its contents (new settings apply to them), a new one is added, and one it
 * drops stays until the process restarts, since a reload that fails after
 * this point must leave running streams their caches. The item table is
 * made again at each backend's registration, so that it lists every backend
 * (in name order) whatever the order their files were linked in. */
#include "cache_int.h"
#include "declared.h"
#include "core/section.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

enum { MAX_BACKENDS = 8 };
/* Filled by constructors before main; read-only afterwards. */
static const sl_cache_backend_t *backends[MAX_BACKENDS];
static unsigned nbackends;
static sl_field_t item_fields[MAX_BACKENDS + 2];
static const sl_field_t label_field = {
  "label", SL_F_STRING, NULL, SL_REQUIRED,
  "The resource's name, which processors (`resource:`, `cache:`) and scripts (`cache.get(name, key)`; "
  "`redis.call(name, ...)` for a `redis` resource) use.", NULL,
  NULL};

void sl_cache_backend_register(const sl_cache_backend_t *b) {
  if (nbackends == MAX_BACKENDS) return;
  unsigned i = nbackends++;
  for (; i > 0 && strcmp(backends[i - 1]->name, b->name) > 0; i--) backends[i] = backends[i - 1];
  backends[i] = b;
  item_fields[0] = label_field;
  for (i = 0; i < nbackends; i++)
    item_fields[i + 1] = (sl_field_t){backends[i]->name, SL_F_OBJECT, NULL, 0, backends[i]->desc, NULL,
                                      backends[i]->fields};
  item_fields[nbackends + 1] = (sl_field_t){0};
}

/* The backend an item names, and its body; NULL when it names none or more. */
static const sl_cache_backend_t *backend_of(const sl_cnode_t *item, const sl_cnode_t **body, unsigned *count) {
  const sl_cache_backend_t *found = NULL;
  *count = 0;
  for (unsigned i = 0; i < nbackends; i++) {
    const sl_cnode_t *b = sl_cnode_get(item, backends[i]->name);
    if (!b) continue;
    found = backends[i];
    *body = b;
    (*count)++;
  }
  return *count == 1 ? found : NULL;
}

static sl_declared_t declared;

static int check(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  (void)root;
  uint32_t n = sl_declared_begin(&declared, node), before = d->n;
  for (uint32_t i = 0; i < n; i++) {
    const sl_cnode_t *item = node->items[i], *body = NULL, *label = sl_cnode_get(item, "label");
    char *path = sl_xasprintf("cache_resources.%u", i);
    unsigned count;
    const sl_cache_backend_t *be = backend_of(item, &body, &count);
    if (!be) {
      char list[256] = "";
      for (unsigned k = 0; k < nbackends; k++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "", backends[k]->name);
      if (count) sl_diag_add(d, item, path, "a resource has one backend, not %u", count);
      else sl_diag_add(d, item, path, "no backend: expected one of %s", list);
    }
    char *lpath = sl_xasprintf("%s.label", path);
    if (label) sl_declared_add(&declared, label, lpath, d);
    free(lpath);
    const sl_cache_t *running = label ? sl_cache_find(label->str, strlen(label->str)) : NULL;
    if (be && running && running->be != be)
      sl_diag_add(d, item, path, "resource \"%s\" runs on backend %s: changing it to %s needs a restart", label->str,
                  running->be->name, be->name);
    if (be && be->check) be->check(body, d);
    free(path);
  }
  return (int)(d->n - before);
}

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)d;
  for (uint32_t i = 0; node && node->type == SL_CN_SEQ && i < node->n; i++) {
    const sl_cnode_t *item = node->items[i], *body = NULL;
    unsigned count;
    const sl_cache_backend_t *be = backend_of(item, &body, &count);   /* validated: one */
    const char *label = sl_conf_str(item, "label", "");
    sl_cache_t *c = sl_cache_find(label, strlen(label));
    if (c) c->be->update(c->self, body);
    else sl_cache_add_resource(label, be, be->create(body));
  }
  sl_cache_attach_worker(w);
  return 0;
}

int sl_cache_known(const char *name, size_t len, int lint_only) {
  if (!lint_only) return sl_cache_find(name, len) != NULL;
  return sl_declared_has(&declared, name, len);
}

int sl_cache_check_name(const sl_cnode_t *at, const char *key, const char *name, size_t len, int lint_only,
                        sl_diags_t *d) {
  if (sl_cache_known(name, len, lint_only)) return 0;
  sl_declared_missing(&declared, at, key, "cache resource", "cache_resources", name, len, d);
  return -1;
}

int sl_cache_check_ref(const sl_cnode_t *body, const char *field, int lint_only, sl_diags_t *d) {
  const sl_cnode_t *v = sl_cnode_get(body, field);
  const char *name = v && v->str ? v->str : "";
  return sl_cache_check_name(v ? v : body, field, name, strlen(name), lint_only, d);
}

static const sl_section_t cache_section = {
  .name = "cache_resources",
  .desc = "Named caches, a list as in Benthos: each item a `label` and one backend (`memory: {...}`). "
          "Processors (`cache`, `dedupe`, `cached`) and scripts (`cache.get(label, key)`, see `sluice doc lua`) "
          "of every stream share them, and their contents outlive reloads of the scripts and streams that use "
          "them: a reload that keeps a resource keeps its contents (new settings apply to them), adds new ones, "
          "and leaves a dropped one in place until the next restart. docs/caches.md.",
  .fields = item_fields,
  .list = 1,
  .reload = 1,
  .apply = apply,
  .check = check,
};
SL_REGISTER_SECTION(cache_section)
