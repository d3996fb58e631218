/* The failures of one owner, counted and logged through a core/loglimit. */
#include "faillog.h"
#include "core/loglimit.h"
#include "core/xalloc.h"
#include <stdlib.h>

struct sl_lfaillog {
  sl_loglimit_t *lim;
  char *const *label;
  uint64_t failed;           /* since the last sl_lfaillog_take */
};

sl_lfaillog_t *sl_lfaillog_new(uv_loop_t *loop, const char *stream, char *const *label) {
  sl_lfaillog_t *l = sl_xcalloc(1, sizeof(*l));
  l->lim = sl_loglimit_new(loop, stream, "more messages failed by the script were not logged");
  l->label = label;
  return l;
}

void sl_lfaillog_free(sl_lfaillog_t *l) {
  if (!l) return;
  sl_loglimit_free(l->lim);
  free(l);
}

uint64_t sl_lfaillog_take(sl_lfaillog_t *l) {
  uint64_t n = l->failed;
  l->failed = 0;
  return n;
}

void sl_lfaillog_note(sl_lfaillog_t *l, const char *text, unsigned n) {
  l->failed += n;
  sl_loglimit_warn(l->lim, *l->label, n, n > 1 ? "script failed a batch" : "script failed a message", text);
}
