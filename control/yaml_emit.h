/* Writes a JSON value as a YAML document (libyaml's emitter), for the
 * command line's `--format yaml`. Nothing is kept; json stays the caller's. */
#ifndef SL_YAML_EMIT_H
#define SL_YAML_EMIT_H
#include <jansson.h>
#include <stdio.h>

int sl_yaml_emit(FILE *f, const json_t *json);   /* 0, or -1 when the emitter failed */

#endif
