/* Units of the HTTP send queue (http/http_sendq.c): shared bytes are held
 * by reference until written, inline pieces in a row share one buffer,
 * partial writes resume mid-item, and a queue handed to a write request
 * keeps its buffers where they were. */
#include "http/http_int.h"
#include <string.h>

#include "check.h"

/* What the queue would write next, joined. */
static size_t pending(const sl_sendq_t *q, char *out) {
  uv_buf_t b[16];
  int n = sl_sendq_gather(q, b, 16);
  size_t len = 0;
  for (int i = 0; i < n; i++) {
    memcpy(out + len, b[i].base, b[i].len);
    len += b[i].len;
  }
  out[len] = 0;
  return len;
}

static void test_refs_and_inline(void) {
  sl_sendq_t q = {0};
  sl_bytes_t *ev = sl_bytes_new("data: x\n\n", 9);
  sl_sendq_push(&q, NULL, "9\r\n", 3);
  sl_sendq_push(&q, ev, NULL, ev->len);
  sl_sendq_push(&q, NULL, "\r\n", 2);
  sl_sendq_push(&q, NULL, "9\r\n", 3);   /* joins the trailer before it */
  sl_sendq_push(&q, ev, NULL, ev->len);
  sl_sendq_push(&q, NULL, "\r\n", 2);
  CHECK(ev->refs == 3, "refs %d", ev->refs);
  CHECK(q.n == 5, "items %u (the trailer and the next head share one)", q.n);
  CHECK(q.bytes == 28, "bytes %zu", q.bytes);
  char out[128];
  pending(&q, out);
  CHECK(!strcmp(out, "9\r\ndata: x\n\n\r\n9\r\ndata: x\n\n\r\n"), "got %s", out);
  sl_sendq_consume(&q, 5);   /* the head and 2 bytes into the event */
  pending(&q, out);
  CHECK(!strcmp(out, "ta: x\n\n\r\n9\r\ndata: x\n\n\r\n"), "after 5: %s", out);
  sl_sendq_consume(&q, 12);  /* the rest of the event and 5 into the joined piece */
  CHECK(ev->refs == 2, "the first event's ref is dropped once written: %d", ev->refs);
  pending(&q, out);
  CHECK(!strcmp(out, "data: x\n\n\r\n"), "after 17: %s", out);
  sl_sendq_consume(&q, 11);
  CHECK(q.bytes == 0 && q.head == 0 && q.n == 0, "empty: %zu %u %u", q.bytes, q.head, q.n);
  CHECK(ev->refs == 1, "refs back to the caller's: %d", ev->refs);
  sl_sendq_clear(&q);
  sl_bytes_unref(ev);
}

static void test_take_and_clear(void) {
  sl_sendq_t q = {0}, held;
  sl_bytes_t *ev = sl_bytes_new("frame", 5);
  for (int i = 0; i < 20; i++) sl_sendq_push(&q, ev, NULL, ev->len);   /* grows past its first 8 */
  sl_sendq_consume(&q, 7);
  sl_sendq_take(&q, &held);
  CHECK(q.bytes == 0 && q.v == NULL, "taken from");
  CHECK(held.bytes == 93, "held %zu", held.bytes);
  char out[128];
  pending(&held, out);   /* 16 buffers of what is held */
  CHECK(!strncmp(out, "ameframe", 8), "held starts mid-item: %.8s", out);
  CHECK(ev->refs == 20, "refs %d", ev->refs);
  sl_sendq_clear(&held);
  CHECK(ev->refs == 1, "cleared: %d", ev->refs);
  sl_bytes_unref(ev);
}

int main(void) {
  RUN(test_refs_and_inline);
  RUN(test_take_and_clear);
  return check_report("sendq");
}
