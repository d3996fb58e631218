/* The config file's top level: one stream or `streams:`, the kernel's own
 * keys, and the sections subsystems register (section.h). The field tables
 * are static data; a stream's includes the sections that are stream keys
 * too, added when first asked for (after every registration). */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H
#include "conf.h"
#include "spec.h"

/* Top-level config validation shared by run, lint and test. Normalises a
 * single-stream file into streams: {main: ...}. Returns the number of errors. */
int sl_config_validate(sl_cnode_t *root, sl_diags_t *d);
/* Whether a config serves the streams API (`store:` with its `api`, or
 * `http.streams_api`): such a file is valid, and keeps running, without a stream. */
int sl_config_serves_api(const sl_cnode_t *root);
/* The field tables behind that validation, for the generated reference. */
const sl_field_t *sl_config_root_fields(void);
const sl_field_t *sl_config_stream_fields(void);

#endif
