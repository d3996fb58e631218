/* What the streams API and every store backend share: a stream's settings,
 * records as read (sl_record_t) and as published (sl_pub_t), stream names,
 * record bytes as JSON (store_json.c), positions as SSE ids (streams.c).
 * Ownership: records point into memory their producer owns (valid during
 * the call they are handed to); strings returned are the caller's. */
#ifndef SL_STREAMS_H
#define SL_STREAMS_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SL_FSYNC_ALWAYS, SL_FSYNC_INTERVAL, SL_FSYNC_NEVER } sl_fsync_t;
extern const char *const sl_fsync_names[];   /* by sl_fsync_t, NULL-terminated */
int sl_fsync_parse(const char *name);         /* its sl_fsync_t, or -1 */

typedef struct sl_sconf {
  int partitions;
  double retention_hours;    /* 0: keep forever */
  int64_t retention_bytes;   /* per partition; 0: no limit */
  sl_fsync_t fsync;
  int64_t segment_bytes, segment_age_ms;
  char end_events[256];      /* comma list: SSE/WebSocket readers end after such an event */
} sl_sconf_t;

/* 1-200 letters, digits, '.', '_' or '-', not starting with '.'. */
int sl_store_valid_name(const char *name);

typedef struct sl_record {
  uint64_t offset;
  int64_t ts_ms;
  const char *key; uint32_t key_len;         /* key_len 0: no key */
  const char *event; uint32_t event_len;
  const char *headers; uint32_t headers_len; /* a JSON object, or empty */
  const char *value; uint32_t value_len;
} sl_record_t;

typedef struct sl_pub {
  const char *key; size_t key_len;           /* partition by murmur2(key) % N, as Kafka */
  const char *event; size_t event_len;
  const char *headers; size_t headers_len;   /* a JSON object or empty */
  const char *value; size_t value_len;
  int64_t ts_ms;                             /* 0: now */
} sl_pub_t;
/* status 0 with each record's partition and offset, or an HTTP status with
 * err: 507 (disk full) or 500 when a write failed, and then none of the
 * records is kept; 503 when a partition they go to is stopped
 * (sl_sstream_problem); after a failed fsync (`always`) the records were
 * written and may or may not survive a crash (err says so). */
typedef void (*sl_pub_cb)(void *arg, int status, const char *err, const int *partitions, const uint64_t *offsets,
                          size_t n);

/* ---- record bytes as JSON (store_json.c) ---- */
/* A JSON string of p when it is UTF-8, else of its base64 (RFC 4648, with
 * padding) and *base64 set. New reference. */
json_t *sl_json_bytes(const char *p, size_t n, int *base64);
/* A header (metadata) value: a string when UTF-8, else {"base64": "..."}. */
json_t *sl_json_header_value(const char *p, size_t n);
/* The bytes of such a value (or of any string) into *out (caller frees),
 * -1 when v is neither. */
int sl_json_header_bytes(const json_t *v, char **out, size_t *len);

/* ---- positions as SSE ids ---- */
/* "0:41,1:17": the last offset given per partition (next - 1), what SSE
 * readers send as `id:` and take back as Last-Event-ID (caller frees). */
char *sl_positions_id(const uint64_t *next, int n);
/* Reads such a list (or one bare offset, of partition 0) into next[p] =
 * offset + 1 for each listed p, setting given[p] (optional) for them; -1,
 * with next untouched, when it is not such a list for n partitions
 * (sl_positions_error says what is). */
int sl_positions_parse(const char *list, uint64_t *next, int *given, int n);
/* The 400 message for an id that is not such a list (caller frees); what
 * names where it came from ("Last-Event-ID"). n 0: the id of an output
 * that numbers its events (a decimal number) instead. */
char *sl_positions_error(const char *what, const char *id, int n);

#endif
