/* The `store:` section: which backend serves streams (`backend`: the
 * embedded event store, or Kafka for several stateless nodes), the fields
 * every backend shares (whether the REST/SSE/WebSocket API is served, who
 * may use it, partitions of new streams) and each backend's own
 * (sl_store_backend_t.fields). Backends register themselves; the section's
 * table is made again at each registration, so that it lists every backend
 * (in name order) whatever the order their files were linked in. */
#include "store_access.h"
#include "store_api.h"
#include "core/section.h"
#include <string.h>

enum { MAX_BACKENDS = 4, MAX_FIELDS = 32 };
/* Filled by constructors before main; read-only afterwards. */
static const sl_store_backend_t *backends[MAX_BACKENDS];
static unsigned nbackends;
static const char *backend_names[MAX_BACKENDS + 1];

static const sl_field_t shared[] = {
  {"backend", SL_F_ENUM, "embedded", 0,
   "`embedded`: streams are files under `data_dir`, served by this node alone. `kafka`: streams are Kafka topics "
   "(see `kafka`), so any number of sluice nodes serve the same streams (docs/streams-api.md, \"Kafka backend\").",
   backend_names, NULL},
  {"api", SL_F_BOOL, "true", 0,
   "Serve the streams API under `/stream/` on the HTTP server (see docs/streams-api.md).", NULL, NULL},
  {"access", SL_F_OBJECT, NULL, 0,
   "Who may do what on the streams API, once `http.auth` says who asks: scopes per user or JWT claim, and the "
   "streams and consumer names of users who are not admins (docs/security.md). Without `http.auth` the API is "
   "open to whoever reaches it; with it and no `access`, authenticated users read and publish to every stream "
   "and only admins (`http.auth.admin`) create and delete streams.", NULL, sl_store_access_fields},
  {"partitions", SL_F_INT, "1", 0, "Partitions of a stream created without saying.", SL_BOUNDS("1", "1024"), NULL},
  {0}};
static sl_field_t fields[MAX_FIELDS];

void sl_store_backend_register(const sl_store_backend_t *b) {
  if (nbackends == MAX_BACKENDS) return;
  unsigned i = nbackends++;
  for (; i > 0 && strcmp(backends[i - 1]->name, b->name) > 0; i--) backends[i] = backends[i - 1];
  backends[i] = b;
  unsigned n = 0;
  for (const sl_field_t *f = shared; f->name; f++) fields[n++] = *f;
  for (i = 0; i < nbackends; i++) {
    backend_names[i] = backends[i]->name;
    for (const sl_field_t *f = backends[i]->fields; f && f->name && n < MAX_FIELDS - 1; f++) fields[n++] = *f;
  }
  backend_names[nbackends] = NULL;
  fields[n] = (sl_field_t){0};
}

const sl_store_backend_t *sl_store_backend_find(const char *name) {
  for (unsigned i = 0; i < nbackends; i++)
    if (!strcmp(backends[i]->name, name)) return backends[i];
  return NULL;
}

const sl_store_backend_t *sl_store_backend_at(unsigned i) { return i < nbackends ? backends[i] : NULL; }

static const sl_store_backend_t *backend_of(const sl_cnode_t *node) {
  return sl_store_backend_find(sl_conf_str(node, "backend", "embedded"));   /* validated: one of them */
}

static int check(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  uint32_t before = d->n;
  sl_store_access_lint(sl_cnode_get(node, "access"), root, d);
  const sl_store_backend_t *b = backend_of(node);
  if (b && b->check) b->check(node, root, d);
  return (int)(d->n - before);
}

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  if (!node) return 0;
  return backend_of(node)->apply(w, node, sl_conf_bool(node, "api", 1), d);
}

static const sl_section_t store_section = {
  .name = "store",
  .desc = "Durable partitioned streams with offsets, consumer groups, retention and replay, served over REST, SSE "
          "and WebSocket under `/stream/`: kept by the embedded event store (files under `data_dir`, also used by "
          "pipelines through the `stream` input and output), or in Kafka topics with `backend: kafka` (any number of "
          "nodes serve the same streams; `data_dir`, `fsync*`, `segment_*` and `retention_*` are the embedded "
          "store's).",
  .fields = fields,
  .apply = apply,
  .check = check,
};
SL_REGISTER_SECTION(store_section)
