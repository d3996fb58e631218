/* The JSON Schema of a config file, from the component specs and sections
 * (`sluice list --format jsonschema`). The caller owns the returned object
 * (json_decref). */
#ifndef SL_SCHEMA_H
#define SL_SCHEMA_H
#include <jansson.h>

json_t *sl_schema_config(void);

#endif
