/* The embedded event store: named streams of N partitions (seglog.c
 * logs under `store.data_dir`), keyed or round-robin publishing with the
 * stream's fsync policy (group commit for `always`), retention, durable
 * subscriber and consumer-group offsets, and push wake-ups for readers.
 * Ownership: the store belongs to its worker (SL_SLOT_STORE), streams to the
 * store. Callbacks run on the worker's loop. */
#ifndef SL_STORE_H
#define SL_STORE_H
#include "seglog.h"
#include "core/worker.h"
#include "store/streams.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- publishing (records: store/streams.h) ---- */
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
