/* `store.backend: embedded` (the default): streams are files under
 * `store.data_dir`, served by this node alone. Its fields of the `store:`
 * section, its setup on a worker, and its registration as a backend. */
#include "store.h"
#include "store_rest.h"
#include "store/store_api.h"

static const sl_field_t fields[] = {
  {"data_dir", SL_F_STRING, "./data", 0, "Directory of the streams' files (relative to the working directory).", NULL, NULL},
  {"fsync", SL_F_ENUM, "interval", 0,
   "Default durability: `always` answers a publish after its records are fsynced (concurrent publishes "
   "share one fsync); `interval` answers at once and fsyncs every `fsync_interval`; `never` leaves it "
   "to the OS.", sl_fsync_names, NULL},
  {"fsync_interval", SL_F_DURATION, "50ms", 0, "Period of `interval` fsyncs.", NULL, NULL},
  {"segment_bytes", SL_F_SIZE, "64MiB", 0, "Segment files roll at this size.", NULL, NULL},
  {"segment_age", SL_F_DURATION, "0", 0, "Segment files also roll when their first record is this old (0: never).", NULL, NULL},
  {"retention_hours", SL_F_FLOAT, "168", 0, "Closed segments whose newest record is older are deleted (0: keep).", NULL, NULL},
  {"retention_bytes", SL_F_SIZE, "0", 0, "Per partition: oldest closed segments are deleted beyond this size (0: no limit).", NULL, NULL},
  {"retention_check", SL_F_DURATION, "10s", SL_ADVANCED, "How often retention is applied.", NULL, NULL},
  {0}};

static int apply(sl_worker_t *w, const sl_cnode_t *node, int api, sl_diags_t *d) {
  if (!w) return 0;
  sl_sconf_t c = {
    .partitions = (int)sl_conf_int(node, "partitions", 1),   /* validated: within bounds */
    .retention_hours = sl_conf_float(node, "retention_hours", 168),
    .retention_bytes = sl_conf_size(node, "retention_bytes", 0),
    .fsync = (sl_fsync_t)sl_fsync_parse(sl_conf_str(node, "fsync", "interval")),   /* validated: one of them */
    .segment_bytes = sl_conf_size(node, "segment_bytes", 64 << 20),
    .segment_age_ms = sl_conf_duration_ms(node, "segment_age", 0),
  };
  sl_store_configure(w, sl_conf_str(node, "data_dir", "./data"), &c, sl_conf_duration_ms(node, "fsync_interval", 50),
                     sl_conf_duration_ms(node, "retention_check", 10000));
  /* Opened now, not at the first request: what it finds damaged is
   * reported (log, /ready) from the start. */
  sl_store_of(w);
  if (api) return sl_store_api_route(w, d, node, sl_store_rest, w);
  return 0;
}

static const sl_store_backend_t embedded = {.name = "embedded", .fields = fields, .apply = apply};
SL_REGISTER_STORE_BACKEND(embedded)
