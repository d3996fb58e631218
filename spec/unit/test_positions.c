/* Stream position ids (store/streams.c): what sl_positions_id writes,
 * sl_positions_parse takes back, and everything else it refuses. */
#include "store/streams.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Parses id for n partitions over a vector of 7s; 0 or -1, next and given filled. */
static int parse(const char *id, int n, uint64_t next[4], int given[4]) {
  for (int p = 0; p < 4; p++) next[p] = 7, given[p] = 0;
  return sl_positions_parse(id, next, given, n);
}

static void test_round_trip(void) {
  uint64_t pos[3] = {42, 0, 18}, next[4];
  int given[4];
  char *id = sl_positions_id(pos, 3);
  CHECK(strcmp(id, "0:41,1:-1,2:17") == 0, "id %s", id);
  CHECK(parse(id, 3, next, given) == 0, "%s refused", id);
  CHECK(next[0] == 42 && next[1] == 0 && next[2] == 18, "next %llu %llu %llu", (unsigned long long)next[0],
        (unsigned long long)next[1], (unsigned long long)next[2]);
  CHECK(given[0] && given[1] && given[2] && !given[3], "given");
  free(id);
}

static void test_accepted(void) {
  uint64_t next[4];
  int given[4];
  CHECK(parse("41", 1, next, given) == 0 && next[0] == 42 && given[0], "bare offset");
  CHECK(parse("5", 3, next, given) == 0 && next[0] == 6 && next[1] == 7 && !given[1], "bare offset is partition 0");
  CHECK(parse("1:3", 2, next, given) == 0 && next[1] == 4 && next[0] == 7 && !given[0], "one partition of two");
  CHECK(parse("-1", 1, next, given) == 0 && next[0] == 0, "-1: nothing seen");
  CHECK(parse("0:18446744073709551614", 1, next, given) != 0, "offset past INT64_MAX");
  CHECK(parse("0:9223372036854775806", 1, next, given) == 0 && next[0] == 9223372036854775807ULL, "largest offset");
}

static void test_refused(void) {
  static const char *const bad[] = {"", "xyz", "5abc", "2:1", "1700000000000-0", "0:1,0:2", "0:", ":1", "1,0:2",
                                    "0:1,5", "0:1x", "-2", "0:-2", "0:1,", ",0:1", " 0:1", "0:1 ", "0:1, 1:2", "+1",
                                    "0x10", "0:99999999999999999999", "-1:0", "1:2:3"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t next[4];
    int given[4];
    CHECK(parse(bad[i], bad[i][0] == '2' ? 1 : 2, next, given) != 0, "accepted \"%s\"", bad[i]);
    CHECK(next[0] == 7 && next[1] == 7 && !given[0] && !given[1], "\"%s\" changed the vector", bad[i]);
  }
}

static void test_error_text(void) {
  char *m = sl_positions_error("Last-Event-ID", "\xff\x01x", 2);
  CHECK(strstr(m, "\"??x\"") && strstr(m, "partitions 0 to 1") && strstr(m, "PARTITION:OFFSET"), "%s", m);
  free(m);
  char long_id[200];
  memset(long_id, '9', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = 0;
  m = sl_positions_error("last_event_id", long_id, 0);
  CHECK(strlen(m) < 300 && strstr(m, "decimal numbers"), "%s", m);
  free(m);
}

int main(void) {
  test_round_trip();
  test_accepted();
  test_refused();
  test_error_text();
  if (failures) { fprintf(stderr, "%d check(s) failed\n", failures); return 1; }
  printf("test_positions: ok\n");
  return 0;
}
