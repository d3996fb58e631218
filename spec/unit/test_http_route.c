/* The route table's handover (config reload): staged routes, outgoing
 * units, and removal by unit. */
#include "http/http_route.h"
#include <stdio.h>
#include <string.h>

#include "check.h"

static int old_arg, new_arg, other_arg;

static const sl_route_t *find(sl_routes_t *t, const char *path) {
  sl_kvlist_t params = {0};
  int ok;
  const sl_route_t *r = sl_routes_match(t, "POST", path, &params, &ok);
  sl_kv_clear(&params);
  return r;
}

static const sl_route_t *add(sl_routes_t *t, const char *pattern, void *arg, uint64_t unit, int staging) {
  t->unit = unit;
  t->staging = staging;
  sl_route_t r = {.pattern = (char *)pattern, .arg = arg, .owner = "s"};
  const sl_route_t *taken = sl_routes_add(t, &r);
  t->unit = 0;
  t->staging = 0;
  return taken;
}

static void test_handover(void) {
  sl_routes_t t = {0};
  CHECK(!add(&t, "/in", &old_arg, 1, 0), "first route");
  CHECK(!add(&t, "/other", &other_arg, 2, 0), "second route");
  /* Not outgoing: a staged route may not take the path. */
  CHECK(add(&t, "/in", &new_arg, 3, 1) != NULL, "conflict with a unit that stays");
  sl_routes_mark_outgoing(&t, 1, 1);
  CHECK(!add(&t, "/in", &new_arg, 3, 1), "staged next to the outgoing unit");
  CHECK(add(&t, "/in", &new_arg, 4, 1) != NULL, "only one route may wait for a path");
  CHECK(find(&t, "/in")->arg == &old_arg, "the old route serves until the handover");
  CHECK(!add(&t, "/fresh", &new_arg, 3, 1), "a new path is staged");
  CHECK(find(&t, "/fresh") == NULL, "a staged path is not served yet");
  sl_routes_handover(&t);
  CHECK(find(&t, "/in")->arg == &new_arg, "the new route serves after the handover");
  CHECK(find(&t, "/fresh")->arg == &new_arg, "the new path serves after the handover");
  CHECK(find(&t, "/other")->arg == &other_arg, "untouched route");
  /* The old unit's removal (when it is freed) leaves the new route. */
  t.unit = 1;
  sl_routes_remove(&t, "/in");
  t.unit = 0;
  CHECK(find(&t, "/in") && find(&t, "/in")->arg == &new_arg, "removal by unit");
  CHECK(t.n == 3, "three routes left (%u)", t.n);
  sl_routes_free(&t);
}

static void test_abort(void) {
  sl_routes_t t = {0};
  add(&t, "/in", &old_arg, 1, 0);
  sl_routes_mark_outgoing(&t, 1, 1);
  add(&t, "/in", &new_arg, 2, 1);
  /* The reload failed: the new unit is freed and the mark cleared. */
  t.unit = 2;
  sl_routes_remove(&t, "/in");
  t.unit = 0;
  sl_routes_mark_outgoing(&t, 1, 0);
  sl_routes_handover(&t);
  CHECK(find(&t, "/in") && find(&t, "/in")->arg == &old_arg, "the old route stays after an abort");
  CHECK(t.n == 1, "one route left (%u)", t.n);
  sl_routes_free(&t);
}

static void test_removed_unit_retires(void) {
  sl_routes_t t = {0};
  add(&t, "/gone", &old_arg, 1, 0);
  sl_routes_mark_outgoing(&t, 1, 1);
  sl_routes_handover(&t);
  CHECK(find(&t, "/gone") == NULL, "a removed unit's path is no longer served");
  CHECK(!add(&t, "/gone", &new_arg, 2, 0), "and may be taken again while it drains");
  sl_routes_free(&t);
}

int main(void) {
  RUN(test_handover);
  RUN(test_abort);
  RUN(test_removed_unit_retires);
  return check_report("test_http_route");
}
