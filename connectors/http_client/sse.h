/* Incremental parsers for streamed HTTP bodies: lines (NDJSON, chunked
 * text) and Server-Sent Events (WHATWG HTML, "Parsing an event stream"),
 * both bounded: a line or an event's data longer than max is an error,
 * never a growing buffer. Pure: no I/O, unit-tested in spec/unit.
 * Ownership: the caller embeds the struct, sl_*_init / sl_*_free it; the
 * strings passed to callbacks are valid during the call only. */
#ifndef SL_HC_SSE_H
#define SL_HC_SSE_H
#include <stddef.h>

typedef void (*sl_line_cb)(void *arg, const char *line, size_t len);

/* Lines end at LF, CR or CRLF (a CRLF split across two feeds too). */
typedef struct sl_lines {
  char *buf;
  size_t len, cap, max;
  int after_cr;              /* the last byte fed was a CR: an LF next ends nothing */
} sl_lines_t;

void sl_lines_init(sl_lines_t *l, size_t max);
/* Calls cb per complete line. -1 when a line grows past max (the parser
 * is then reset). */
int sl_lines_feed(sl_lines_t *l, const char *data, size_t len, sl_line_cb cb, void *arg);
/* The unterminated last line, if any, as a line (end of a lines stream). */
void sl_lines_finish(sl_lines_t *l, sl_line_cb cb, void *arg);
void sl_lines_reset(sl_lines_t *l);
void sl_lines_free(sl_lines_t *l);

typedef void (*sl_sse_cb)(void *arg, const char *event, const char *id, const char *data, size_t len);

typedef struct sl_sse {
  sl_lines_t lines;
  char *data;                /* the event's data lines joined by LF */
  size_t dlen, dcap;
  int has_data;
  char *event;               /* NULL: "message" */
  char *last_id;             /* persists across events and reconnects ("" none) */
  long long retry_ms;        /* the last valid retry: field, -1 none */
  int too_big;
  sl_sse_cb cb;
  void *arg;
} sl_sse_t;

void sl_sse_init(sl_sse_t *p, size_t max);
/* Calls cb per dispatched event. -1 when a line or an event's data grows
 * past max. */
int sl_sse_feed(sl_sse_t *p, const char *data, size_t len, sl_sse_cb cb, void *arg);
/* A new connection: a half-read event is dropped (the spec's rule at end of
 * stream); last_id and retry_ms stay. */
void sl_sse_reset(sl_sse_t *p);
void sl_sse_free(sl_sse_t *p);

#endif
