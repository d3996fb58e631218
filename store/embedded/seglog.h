/* One partition of a durable stream: an append-only log of segment files in
 * a directory, each named by its base offset (`00000000000000000042.log`),
 * with a sparse offset index (`.index`) and a time index (`.timeindex`).
 * Records carry length, CRC-32C, offset, timestamp, key, event name,
 * headers and value. Opening verifies the last segment: a torn tail (bad
 * bytes with no valid record after them: the end of an interrupted write)
 * is copied to `<segment>.log.<byte>.corrupt` and cut; damage followed by
 * valid records, or in a closed segment, stops the log there: it is served
 * up to the damage, takes no appends, and nothing is cut
 * (sl_seglog_stopped says where). An append is all or nothing.
 * Ownership: the caller owns the log (sl_seglog_close); record pointers
 * handed to a read callback are valid only during that call. Everything is
 * synchronous; fsync is the caller's to schedule (sl_seglog_sync_point). */
#ifndef SL_SEGLOG_H
#define SL_SEGLOG_H
#include "store/streams.h"
#include <stddef.h>
#include <stdint.h>

typedef struct sl_seglog_opts {
  int64_t segment_bytes;     /* roll when the active segment would exceed it */
  int64_t segment_age_ms;    /* roll when its first record is older (0: never) */
  int64_t index_interval;    /* bytes of log between index entries */
} sl_seglog_opts_t;

typedef struct sl_seglog sl_seglog_t;

/* Opens or creates the log in dir. NULL with *err (caller frees). *repaired
 * (may be NULL) receives a description of a torn tail cut (and where it was
 * copied), or NULL. A damaged log opens stopped. */
sl_seglog_t *sl_seglog_open(const char *dir, const sl_seglog_opts_t *o, char **err, char **repaired);
void sl_seglog_close(sl_seglog_t *l);

/* Appends n records (their offsets are assigned: the log's next offsets).
 * Returns the first offset, or -1 with *err (and sl_seglog_errno) on an I/O
 * error or a stopped log; then nothing of the n records is kept. */
int64_t sl_seglog_append(sl_seglog_t *l, sl_record_t *recs, size_t n, char **err);
int sl_seglog_errno(const sl_seglog_t *l);   /* of the last failed append (ENOSPC, ...) */

/* Where the log ends, to undo appends made since (several logs' appends
 * that must succeed together): sl_seglog_rollback cuts back to the mark,
 * also across segment rolls. -1 with *err when the cut fails: the log is
 * stopped then. */
typedef struct sl_seglog_mark {
  size_t nsegs;
  uint64_t next;
  int64_t size, since_idx, first_ts, last_ts, bytes;
  size_t nidx, ntidx;
} sl_seglog_mark_t;
void sl_seglog_mark(const sl_seglog_t *l, sl_seglog_mark_t *m);
int sl_seglog_rollback(sl_seglog_t *l, const sl_seglog_mark_t *m, char **err);

/* Why the log takes no appends (damage found at open, a failed write that
 * could not be undone, sl_seglog_stop), or NULL. Reads still serve what
 * comes before the damage. */
const char *sl_seglog_stopped(const sl_seglog_t *l);
void sl_seglog_stop(sl_seglog_t *l, const char *why);

/* Calls cb for records from offset `from` on, until it returns nonzero or
 * max_records / max_bytes (of values) is reached; a record is always given
 * when there is one. Returns records given, or -1 on an I/O or integrity
 * error (*err). `from` below the start or at the end gives 0. */
int64_t sl_seglog_read(sl_seglog_t *l, uint64_t from, size_t max_records, size_t max_bytes,
                       int (*cb)(const sl_record_t *r, void *arg), void *arg, char **err);

/* The first offset whose timestamp is >= ts_ms (or the end). */
uint64_t sl_seglog_offset_for_time(sl_seglog_t *l, int64_t ts_ms);

uint64_t sl_seglog_start(const sl_seglog_t *l);   /* earliest offset kept */
uint64_t sl_seglog_end(const sl_seglog_t *l);     /* next offset to be written */
int64_t sl_seglog_bytes(const sl_seglog_t *l);
int sl_seglog_segments(const sl_seglog_t *l);

/* What an fsync of the active segment covers, for fsync on another thread:
 * its descriptor (open until the log is closed; a roll syncs the closed
 * segment itself) and how far it reaches now. Tell the log once that fsync
 * succeeded (sl_seglog_synced): the SLUICE_TEST_POWER_LOSS hook journals it
 * (docs/durability.md). */
typedef struct sl_seglog_sync { int fd; uint64_t base; int64_t size; } sl_seglog_sync_t;
sl_seglog_sync_t sl_seglog_sync_point(const sl_seglog_t *l);
void sl_seglog_synced(sl_seglog_t *l, const sl_seglog_sync_t *at);

/* Deletes closed segments older than max_age_ms (by their newest record;
 * 0: no limit) and, oldest first, while the log exceeds max_bytes (0: no
 * limit). Returns segments removed. */
int sl_seglog_retain(sl_seglog_t *l, int64_t max_age_ms, int64_t max_bytes, int64_t now_ms);

/* Decodes one record at p (n bytes available). Returns its size, 0 when the
 * bytes end before it does (a torn tail), -1 when it is corrupt. */
int64_t sl_record_decode(const unsigned char *p, size_t n, sl_record_t *r);
enum { SL_RECORD_HEADER = 40 };

#endif
