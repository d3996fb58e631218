#include "health.h"
#include "xalloc.h"
#include <stdlib.h>

typedef struct check { sl_health_fn fn; void *arg; } check_t;
static check_t *checks;
static size_t nchecks;

void sl_health_check_add(sl_health_fn fn, void *arg) {
  checks = sl_xrealloc(checks, (nchecks + 1) * sizeof(*checks));
  checks[nchecks++] = (check_t){fn, arg};
}

void sl_health_check_remove(sl_health_fn fn, void *arg) {
  for (size_t i = 0; i < nchecks; i++)
    if (checks[i].fn == fn && checks[i].arg == arg) {
      checks[i] = checks[--nchecks];
      break;
    }
  if (!nchecks) {
    free(checks);
    checks = NULL;
  }
}

json_t *sl_health_problems(void) {
  json_t *o = json_object();
  for (size_t i = 0; i < nchecks; i++) checks[i].fn(checks[i].arg, o);
  if (json_object_size(o)) return o;
  json_decref(o);
  return NULL;
}
