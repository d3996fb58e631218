/* Units of the http_client input's parsers (connectors/http_client/sse.c):
 * the WHATWG event-stream rules (fields, comments, CR/LF/CRLF, multi-line
 * data, ids persisting, retry), feeds split at every byte, and the bounds. */
#include "connectors/http_client/sse.h"
#include <stdio.h>
#include <string.h>

#include "check.h"

static char log_[8192];

static void on_event(void *arg, const char *event, const char *id, const char *data, size_t len) {
  (void)arg;
  size_t n = strlen(log_);
  snprintf(log_ + n, sizeof log_ - n, "[%s|%s|%.*s]", event, id, (int)len, data);
}

static void on_line(void *arg, const char *line, size_t len) {
  (void)arg;
  size_t n = strlen(log_);
  snprintf(log_ + n, sizeof log_ - n, "<%.*s>", (int)len, line);
}

/* Feeds text whole, then one byte at a time: both must give want. */
#define sse_case(lit, want, retry) sse_case_n(lit, sizeof(lit) - 1, want, retry)
static void sse_case_n(const char *text, size_t n, const char *want, long long retry) {
  for (int split = 0; split < 2; split++) {
    sl_sse_t p;
    sl_sse_init(&p, 1024);
    log_[0] = 0;
    if (!split) CHECK(sl_sse_feed(&p, text, n, on_event, NULL) == 0, "feed");
    else
      for (size_t i = 0; i < n; i++) CHECK(sl_sse_feed(&p, text + i, 1, on_event, NULL) == 0, "feed byte %zu", i);
    CHECK(!strcmp(log_, want), "split %d: %s\n  got  %s\n  want %s", split, text, log_, want);
    CHECK(p.retry_ms == retry, "retry %lld, want %lld", p.retry_ms, retry);
    sl_sse_free(&p);
  }
}

static void test_sse_fields(void) {
  sse_case("data: a\n\n", "[message||a]", -1);
  sse_case("event: e\nid: 7\ndata: x\ndata: y\n\n", "[e|7|x\ny]", -1);
  sse_case("data:nospace\r\n\r\n", "[message||nospace]", -1);
  sse_case("data:  two\r\r", "[message|| two]", -1);               /* one space dropped, CR ends lines */
  sse_case(": comment\n\n", "", -1);                               /* no data: nothing dispatched */
  sse_case("data\n\n", "[message||]", -1);                         /* a field without a colon */
  sse_case("id: 1\ndata: a\n\ndata: b\n\n", "[message|1|a][message|1|b]", -1);   /* the id persists */
  sse_case("id: 1\x00x\ndata: a\n\n", "[message||a]", -1);         /* an id holding NUL is ignored */
  sse_case("retry: 1500\nretry: 1x\n", "", 1500);                  /* not digits: ignored */
  sse_case("bogus: 1\ndata: a\n", "", -1);                         /* no blank line: not dispatched */
  sse_case("event: x\n\ndata: y\n\n", "[message||y]", -1);         /* the event type resets */
}

static void test_sse_bounds(void) {
  sl_sse_t p;
  sl_sse_init(&p, 16);
  char big[64];
  memset(big, 'a', sizeof big);
  CHECK(sl_sse_feed(&p, big, sizeof big, on_event, NULL) == -1, "an endless line is refused");
  sl_sse_reset(&p);
  log_[0] = 0;
  CHECK(sl_sse_feed(&p, "data: 0123456\ndata: 0123456\ndata: 0123\n\n", 41, on_event, NULL) == -1,
        "data over the bound across lines is refused");
  CHECK(!strcmp(log_, ""), "nothing dispatched: %s", log_);
  CHECK(sl_sse_feed(&p, "data: ok\n\n", 10, on_event, NULL) == 0, "usable after");
  CHECK(!strcmp(log_, "[message||ok]"), "%s", log_);
  sl_sse_free(&p);
}

static void test_lines(void) {
  sl_lines_t l;
  sl_lines_init(&l, 8);
  log_[0] = 0;
  const char *parts[] = {"a\r", "\nbb", "b\n\ncc", "\rd"};
  for (int i = 0; i < 4; i++) CHECK(sl_lines_feed(&l, parts[i], strlen(parts[i]), on_line, NULL) == 0, "part %d", i);
  sl_lines_finish(&l, on_line, NULL);
  CHECK(!strcmp(log_, "<a><bbb><><cc><d>"), "%s", log_);
  CHECK(sl_lines_feed(&l, "123456789", 9, on_line, NULL) == -1, "a line over the bound");
  CHECK(sl_lines_feed(&l, "12345", 5, on_line, NULL) == 0 && sl_lines_feed(&l, "6789", 4, on_line, NULL) == -1,
        "over the bound across feeds");
  sl_lines_free(&l);
}

int main(void) {
  RUN(test_sse_fields);
  RUN(test_sse_bounds);
  RUN(test_lines);
  return check_report("sse");
}
