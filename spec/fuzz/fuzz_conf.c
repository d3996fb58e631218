/* libFuzzer target: any bytes through the YAML loader and config validation
 * must give diagnostics, never a crash, a leak or undefined behaviour. */
#include "core/conf.h"
#include "core/config.h"
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sl_diags_t d = {0};
  sl_cnode_t *root = sl_conf_parse((const char *)data, size, "fuzz.yaml", &d);
  if (root) {
    sl_cnode_t *copy = sl_cnode_dup(root);
    sl_config_validate(copy, &d);
    sl_cnode_free(copy);
    sl_cnode_set_path(root, "streams.main.input.generate.count=5", &d);
    sl_cnode_free(root);
  }
  sl_diags_free(&d);
  return 0;
}
