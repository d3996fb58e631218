/* The embedded event store: named streams of N partitions (core/seglog.c
 * logs under `store.data_dir`), keyed or round-robin publishing with the
 * stream's fsync policy (group commit for `always`), retention, durable
 * subscriber and consumer-group offsets, and push wake-ups for readers.
 * Ownership: the store belongs to its worker (SL_SLOT_STORE), streams to the
 * store. Callbacks run on the worker's loop. */
#ifndef SL_STORE_H
#define SL_STORE_H
#include "seglog.h"
#include "core/worker.h"
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

typedef struct sl_store sl_store_t;
typedef struct sl_sstream sl_sstream_t;

/* The worker's store, opened on first use from the `store:` section (every
 * stream found in data_dir is opened). NULL (logged) when data_dir is unusable. */
sl_store_t *sl_store_of(sl_worker_t *w);
/* Settings from the `store:` section (before first use). */
void sl_store_configure(sl_worker_t *w, const char *data_dir, const sl_sconf_t *defaults, int64_t sync_interval_ms,
                        int64_t retention_check_ms);
/* Defaults of new streams (the `store:` section). */
sl_sconf_t sl_store_defaults(const sl_store_t *st);
uv_loop_t *sl_store_loop(sl_store_t *st);
sl_worker_t *sl_store_worker(sl_store_t *st);
int sl_store_valid_name(const char *name);

sl_sstream_t *sl_store_find(sl_store_t *st, const char *name);
/* Why the stream directory `name` could not be opened (its stream.json is
 * missing or invalid, ...), or NULL. Such a stream is reported by /ready and
 * /admin/status, is not created again over its files (409), and DELETE
 * removes it. */
const char *sl_store_broken(const sl_store_t *st, const char *name);
/* Creates a stream, or finds it when it exists with the same settings.
 * Returns 201 (created), 200 (same settings), 409 (other settings) or 400 /
 * 500 with *err (caller frees). */
int sl_store_create(sl_store_t *st, const char *name, const sl_sconf_t *c, sl_sstream_t **out, char **err);
/* Removes the stream and its files; its readers are woken and see it gone. */
int sl_store_delete(sl_store_t *st, const char *name);
/* Stream names in creation order (caller frees the array, not the names). */
const char **sl_store_names(sl_store_t *st, int *n);

const char *sl_sstream_name(const sl_sstream_t *s);
const sl_sconf_t *sl_sstream_conf(const sl_sstream_t *s);
int sl_sstream_deleted(const sl_sstream_t *s);
uint64_t sl_sstream_id(const sl_sstream_t *s);   /* unique per opened stream in the process */
uint64_t sl_sstream_start(sl_sstream_t *s, int p);
uint64_t sl_sstream_end(sl_sstream_t *s, int p);
int64_t sl_sstream_bytes(sl_sstream_t *s, int p);

/* ---- publishing ---- */
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
/* Appends n records and calls cb once they are as durable as the stream's
 * fsync policy promises (`always`: after an fsync; otherwise at once, before
 * this returns). */
void sl_sstream_publish(sl_sstream_t *s, const sl_pub_t *recs, size_t n, sl_pub_cb cb, void *arg);
/* The partition a key goes to (Kafka's murmur2 partitioner). */
int sl_store_partition_of(const char *key, size_t len, int partitions);

/* ---- reading ---- */
int64_t sl_sstream_read(sl_sstream_t *s, int p, uint64_t from, size_t max_records, size_t max_bytes,
                        int (*cb)(const sl_record_t *r, void *arg), void *arg, char **err);

/* A reader waiting for records: wake runs on every append to the stream
 * (and once when it is deleted). Ownership: the watcher's owner; unwatch
 * before freeing it. */
typedef struct sl_swatch {
  struct sl_swatch *prev, *next;
  void (*wake)(struct sl_swatch *w);
} sl_swatch_t;
void sl_sstream_watch(sl_sstream_t *s, sl_swatch_t *w);
void sl_sstream_unwatch(sl_sstream_t *s, sl_swatch_t *w);

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

/* ---- offsets: subscribers and consumer groups ---- */
/* Next offset per partition for a named cursor (group or subscriber);
 * NULL when it has none; valid until the next call. Writes are durable
 * (fsync + rename) on return, and refused for a cursor with a problem. */
/* Why a cursor cannot be used (offsets.json unreadable, or its entry), or
 * NULL: serve nothing for it then rather than start it over. name NULL:
 * the file's problem only. */
const char *sl_sstream_cursor_problem(sl_sstream_t *s, const char *kind, const char *name);
const uint64_t *sl_sstream_cursor(sl_sstream_t *s, const char *kind, const char *name);
int sl_sstream_set_cursor(sl_sstream_t *s, const char *kind, const char *name, const uint64_t *next, char **err);
/* Names of cursors of a kind ("subscriber" or "group"). */
const char **sl_sstream_cursors(sl_sstream_t *s, const char *kind, int *n);

#endif
