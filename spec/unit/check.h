/* Checks for the C units (spec/unit): CHECK(cond, fmt, ...) counts a failure
 * and prints where it happened; RUN(test_fn) runs one case, failed when any of
 * its checks failed; check_report(name) prints "name: N cases, F failed" (the
 * line scripts/test.sh adds up) and returns the exit status. */
#ifndef SL_SPEC_CHECK_H
#define SL_SPEC_CHECK_H
#include <stdio.h>

static int failures, cases, failed_cases;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

#define RUN(test) do { int before_ = failures; cases++; test(); \
  if (failures > before_) { failed_cases++; fprintf(stderr, "FAILED %s\n", #test); } } while (0)

static inline int check_report(const char *name) {
  printf("%s: %d cases, %d failed\n", name, cases, failed_cases);
  return failures ? 1 : 0;
}
#endif
