#include "seglog.h"
#include "crc32c.h"
#include "core/xalloc.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct idx_ent { uint32_t rel, pos; } idx_ent_t;
typedef struct tidx_ent { int64_t ts; uint32_t rel; } tidx_ent_t;
enum { IDX_SIZE = 8, TIDX_SIZE = 12 };

typedef struct segment {
  uint64_t base, next;       /* offsets [base, next) */
  int fd;
  int64_t size;
  int64_t first_ts, last_ts; /* last_ts: newest timestamp seen */
  idx_ent_t *idx; size_t nidx, capidx;
  tidx_ent_t *tidx; size_t ntidx, captidx;
  int64_t since_idx;         /* log bytes since the last index entry */
  int idx_fd, tidx_fd;       /* the active segment's, else -1 */
} segment_t;

struct sl_seglog {
  char *dir;
  sl_seglog_opts_t o;
  segment_t *segs;
  size_t nsegs, cap;
  int64_t bytes;
  unsigned char *rbuf;
  size_t rcap;
  char *stopped;             /* why appends are refused, or NULL */
  int err_no;                /* errno of the last failed append */
  int power_loss;            /* the SLUICE_TEST_POWER_LOSS hook is on */
  uint64_t synced_base;      /* ... and what it last journaled */
  int64_t synced_size;
};

/* ---------- encoding ---------- */

static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static size_t record_size(const sl_record_t *r) {
  return SL_RECORD_HEADER + (size_t)r->key_len + r->event_len + r->headers_len + r->value_len;
}

/* Layout (little-endian): size u32 (bytes after it), crc32c u32 (of the
 * bytes after it), offset u64, timestamp i64, key/event/headers/value
 * lengths u32 each, then the four byte strings. */
static void encode(unsigned char *p, const sl_record_t *r) {
  size_t n = record_size(r);
  put32(p, (uint32_t)(n - 4));
  put64(p + 8, r->offset);
  put64(p + 16, (uint64_t)r->ts_ms);
  put32(p + 24, r->key_len);
  put32(p + 28, r->event_len);
  put32(p + 32, r->headers_len);
  put32(p + 36, r->value_len);
  unsigned char *q = p + SL_RECORD_HEADER;
  /* memcpy with a NULL source is undefined even for 0 bytes */
  if (r->key_len) memcpy(q, r->key, r->key_len);
  q += r->key_len;
  if (r->event_len) memcpy(q, r->event, r->event_len);
  q += r->event_len;
  if (r->headers_len) memcpy(q, r->headers, r->headers_len);
  q += r->headers_len;
  if (r->value_len) memcpy(q, r->value, r->value_len);
  put32(p + 4, sl_crc32c(0, p + 8, n - 8));
}

int64_t sl_record_decode(const unsigned char *p, size_t n, sl_record_t *r) {
  if (n < 4) return 0;
  uint64_t size = get32(p);
  if (size < SL_RECORD_HEADER - 4) return -1;
  if (n < 4 + size) return 0;
  if (get32(p + 4) != sl_crc32c(0, p + 8, (size_t)size - 4)) return -1;
  uint64_t k = get32(p + 24), e = get32(p + 28), h = get32(p + 32), v = get32(p + 36);
  if (SL_RECORD_HEADER + k + e + h + v != 4 + size) return -1;
  const char *q = (const char *)p + SL_RECORD_HEADER;
  *r = (sl_record_t){get64(p + 8), (int64_t)get64(p + 16), q, (uint32_t)k, q + k, (uint32_t)e,
                     q + k + e, (uint32_t)h, q + k + e + h, (uint32_t)v};
  return (int64_t)(4 + size);
}

/* ---------- files ---------- */

static char *seg_path(const sl_seglog_t *l, uint64_t base, const char *ext) {
  return sl_xasprintf("%s/%020" PRIu64 ".%s", l->dir, base, ext);
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* pwrite until done: a short write (the disk filled up mid-way) is followed
 * by one that fails with the real errno. */
static int pwrite_all(int fd, const void *p, size_t n, off_t pos) {
  const char *c = p;
  while (n) {
    ssize_t w = pwrite(fd, c, n, pos);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    c += w;
    n -= (size_t)w;
    pos += w;
  }
  return 0;
}

static int mkdirs(const char *dir) {
  char *p = sl_xstrdup(dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      if (mkdir(p, 0755) != 0 && errno != EEXIST) break;
      *s = '/';
    }
  int rc = mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
  free(p);
  return rc;
}

static void add_index(segment_t *s, uint64_t offset, int64_t pos, int64_t ts) {
  if (s->nidx == s->capidx) {
    s->capidx = s->capidx ? s->capidx * 2 : 16;
    s->idx = sl_xrealloc(s->idx, s->capidx * sizeof(*s->idx));
  }
  s->idx[s->nidx++] = (idx_ent_t){(uint32_t)(offset - s->base), (uint32_t)pos};
  if (s->ntidx == s->captidx) {
    s->captidx = s->captidx ? s->captidx * 2 : 16;
    s->tidx = sl_xrealloc(s->tidx, s->captidx * sizeof(*s->tidx));
  }
  s->tidx[s->ntidx++] = (tidx_ent_t){ts, (uint32_t)(offset - s->base)};
  s->since_idx = 0;
  if (s->idx_fd >= 0) {
    unsigned char b[IDX_SIZE + TIDX_SIZE];
    put32(b, (uint32_t)(offset - s->base));
    put32(b + 4, (uint32_t)pos);
    put64(b + 8, (uint64_t)ts);
    put32(b + 16, (uint32_t)(offset - s->base));
    /* An index is rebuilt from the log when it does not match: a failed
     * write here costs a scan at the next start, not data. */
    if (write_all(s->idx_fd, b, IDX_SIZE) != 0 || write_all(s->tidx_fd, b + IDX_SIZE, TIDX_SIZE) != 0) {
      close(s->idx_fd);
      close(s->tidx_fd);
      s->idx_fd = s->tidx_fd = -1;
    }
  }
}

/* Notes a record at pos in the segment's memory state. */
static void account(const sl_seglog_t *l, segment_t *s, const sl_record_t *r, int64_t pos, int64_t size) {
  if (s->next == s->base || s->since_idx >= l->o.index_interval) add_index(s, r->offset, pos, r->ts_ms > s->last_ts ? r->ts_ms : s->last_ts);
  if (s->next == s->base) s->first_ts = r->ts_ms;
  if (r->ts_ms > s->last_ts) s->last_ts = r->ts_ms;
  s->next = r->offset + 1;
  s->since_idx += size;
  s->size = pos + size;
}

static void grow_rbuf(sl_seglog_t *l, size_t n) {
  if (l->rcap >= n) return;
  l->rcap = n > 65536 ? n : 65536;
  free(l->rbuf);
  l->rbuf = sl_xmalloc(l->rcap);
}

/* Scans the segment from pos (a record boundary at offset `expect`),
 * rebuilding its memory index; stops at the end or at the first torn or
 * corrupt record, whose position it returns (the file's size when clean);
 * -1 on a read error (errno). */
static int64_t scan(sl_seglog_t *l, segment_t *s, int64_t pos, uint64_t expect, int64_t file_size) {
  grow_rbuf(l, 65536);
  while (pos < file_size) {
    size_t want = l->rcap;
    if ((int64_t)want > file_size - pos) want = (size_t)(file_size - pos);
    ssize_t got = pread(s->fd, l->rbuf, want, pos);
    if (got < 0) return -1;
    if (got == 0) return pos;
    size_t off = 0;
    for (;;) {
      sl_record_t r;
      int64_t n = sl_record_decode(l->rbuf + off, (size_t)got - off, &r);
      if (n <= 0) break;
      if (r.offset != expect) return pos + (int64_t)off;
      account(l, s, &r, pos + (int64_t)off, n);
      expect++;
      off += (size_t)n;
    }
    if (off == 0) {
      /* Nothing whole here: a torn tail, a corrupt record, or one record
       * larger than the buffer (then read again with room for it). */
      sl_record_t r;
      if (sl_record_decode(l->rbuf, (size_t)got, &r) < 0 || got == file_size - pos || got < 4) return pos;
      size_t need = (size_t)get32(l->rbuf) + 4;
      if (need <= l->rcap || (int64_t)need > file_size - pos) return pos;
      grow_rbuf(l, need);
      continue;
    }
    pos += (int64_t)off;
  }
  return pos;
}

/* Whether a whole record with a valid CRC starts at pos, or anywhere after
 * it with an offset that can follow `expect` (the damaged record's). Then
 * the damage at pos is not a torn tail (the end of the last write) but
 * corruption with records after it. 1, 0, or -1 on a read error. */
static int record_after(sl_seglog_t *l, const segment_t *s, int64_t pos, int64_t file_size, uint64_t expect) {
  uint64_t most = expect + (uint64_t)(file_size - pos) / SL_RECORD_HEADER;   /* offsets the tail can hold */
  unsigned char *rec = NULL;
  size_t rcap = 0;
  int found = 0;
  grow_rbuf(l, 65536);
  for (int64_t at = pos; at + SL_RECORD_HEADER <= file_size && !found;) {
    size_t want = l->rcap;
    if ((int64_t)want > file_size - at) want = (size_t)(file_size - at);
    ssize_t got = pread(s->fd, l->rbuf, want, at);
    if (got < 0) {
      free(rec);
      return -1;
    }
    if (got < SL_RECORD_HEADER) break;
    size_t i = 0;
    for (; i + SL_RECORD_HEADER <= (size_t)got && !found; i++) {
      const unsigned char *h = l->rbuf + i;
      uint64_t size = get32(h), off = get64(h + 8);
      uint64_t lens = (uint64_t)get32(h + 24) + get32(h + 28) + get32(h + 32) + get32(h + 36);
      /* Cheap checks first: most positions fail them. */
      if (size < SL_RECORD_HEADER - 4 || (int64_t)(4 + size) > file_size - (at + (int64_t)i) ||
          SL_RECORD_HEADER + lens != 4 + size || (at + (int64_t)i > pos && (off < expect || off > most)))
        continue;
      if (rcap < 4 + size) rec = sl_xrealloc(rec, rcap = 4 + size);
      if (pread(s->fd, rec, 4 + size, at + (int64_t)i) != (ssize_t)(4 + size)) continue;
      sl_record_t r;
      found = sl_record_decode(rec, 4 + size, &r) > 0;
    }
    at += (int64_t)i;
  }
  free(rec);
  return found;
}

/* Copies bytes [from, to) of the segment at path to path.<from>.corrupt,
 * durably, before they are cut. 0, or -1 with *err. */
static int copy_aside(const segment_t *s, const char *path, int64_t from, int64_t to, char **aside, char **err) {
  *aside = sl_xasprintf("%s.%lld.corrupt", path, (long long)from);
  int out = open(*aside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  char buf[65536];
  int ok = out >= 0;
  for (int64_t at = from; ok && at < to;) {
    size_t want = sizeof buf;
    if ((int64_t)want > to - at) want = (size_t)(to - at);
    ssize_t got = pread(s->fd, buf, want, at);
    ok = got > 0 && write_all(out, buf, (size_t)got) == 0;
    at += got;
  }
  ok = ok && fdatasync(out) == 0;
  if (!ok) *err = sl_xasprintf("%s: cannot copy what follows byte %lld aside before cutting it: %s", path,
                               (long long)from, strerror(errno));
  if (out >= 0) close(out);
  char *dir = sl_xstrdup(path);
  *strrchr(dir, '/') = 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);   /* the new name is durable too */
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  free(dir);
  return ok ? 0 : -1;
}

static int load_index(sl_seglog_t *l, segment_t *s) {
  char *ip = seg_path(l, s->base, "index"), *tp = seg_path(l, s->base, "timeindex");
  int ok = 0;
  FILE *fi = fopen(ip, "rb"), *ft = fopen(tp, "rb");
  if (fi && ft) {
    unsigned char b[TIDX_SIZE];
    ok = 1;
    while (fread(b, 1, IDX_SIZE, fi) == IDX_SIZE) {
      idx_ent_t e = {get32(b), get32(b + 4)};
      if (e.pos >= s->size || (s->nidx && (e.rel <= s->idx[s->nidx - 1].rel || e.pos <= s->idx[s->nidx - 1].pos))) {
        ok = 0;
        break;
      }
      if (s->nidx == s->capidx) {
        s->capidx = s->capidx ? s->capidx * 2 : 16;
        s->idx = sl_xrealloc(s->idx, s->capidx * sizeof(*s->idx));
      }
      s->idx[s->nidx++] = e;
    }
    while (ok && fread(b, 1, TIDX_SIZE, ft) == TIDX_SIZE) {
      if (s->ntidx == s->captidx) {
        s->captidx = s->captidx ? s->captidx * 2 : 16;
        s->tidx = sl_xrealloc(s->tidx, s->captidx * sizeof(*s->tidx));
      }
      s->tidx[s->ntidx++] = (tidx_ent_t){(int64_t)get64(b), get32(b + 8)};
    }
    if (ok && (s->nidx == 0 || s->idx[0].rel != 0 || s->idx[0].pos != 0)) ok = 0;
  }
  if (fi) fclose(fi);
  if (ft) fclose(ft);
  free(ip);
  free(tp);
  if (!ok) {
    s->nidx = s->ntidx = 0;
  }
  return ok;
}

static int open_index_files(sl_seglog_t *l, segment_t *s, int rewrite) {
  char *ip = seg_path(l, s->base, "index"), *tp = seg_path(l, s->base, "timeindex");
  int flags = O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (rewrite ? O_TRUNC : 0);
  s->idx_fd = open(ip, flags, 0644);
  s->tidx_fd = open(tp, flags, 0644);
  free(ip);
  free(tp);
  if (s->idx_fd < 0 || s->tidx_fd < 0) return -1;
  if (rewrite) {
    size_t n = s->nidx * IDX_SIZE > s->ntidx * TIDX_SIZE ? s->nidx * IDX_SIZE : s->ntidx * TIDX_SIZE;
    unsigned char *b = sl_xmalloc(n ? n : 1);
    for (size_t i = 0; i < s->nidx; i++) {
      put32(b + i * IDX_SIZE, s->idx[i].rel);
      put32(b + i * IDX_SIZE + 4, s->idx[i].pos);
    }
    int rc = write_all(s->idx_fd, b, s->nidx * IDX_SIZE);
    for (size_t i = 0; i < s->ntidx; i++) {
      put64(b + i * TIDX_SIZE, (uint64_t)s->tidx[i].ts);
      put32(b + i * TIDX_SIZE + 8, s->tidx[i].rel);
    }
    if (rc == 0) rc = write_all(s->tidx_fd, b, s->ntidx * TIDX_SIZE);
    free(b);
    return rc;
  }
  return 0;
}

static void close_index_files(segment_t *s) {
  if (s->idx_fd >= 0) close(s->idx_fd);
  if (s->tidx_fd >= 0) close(s->tidx_fd);
  s->idx_fd = s->tidx_fd = -1;
}

static segment_t *push_segment(sl_seglog_t *l, uint64_t base) {
  if (l->nsegs == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->segs = sl_xrealloc(l->segs, l->cap * sizeof(*l->segs));
  }
  segment_t *s = &l->segs[l->nsegs++];
  *s = (segment_t){.base = base, .next = base, .fd = -1, .idx_fd = -1, .tidx_fd = -1};
  return s;
}

static void free_segment(segment_t *s) {
  if (s->fd >= 0) close(s->fd);
  close_index_files(s);
  free(s->idx);
  free(s->tidx);
}

static int new_active(sl_seglog_t *l, uint64_t base, char **err) {
  segment_t *s = push_segment(l, base);
  char *p = seg_path(l, base, "log");
  s->fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->fd < 0 || open_index_files(l, s, 1) != 0) {
    l->err_no = errno;
    *err = sl_xasprintf("%s: %s", p, strerror(l->err_no));
    free(p);
    free_segment(s);
    l->nsegs--;
    return -1;
  }
  free(p);
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* ---------- the power-loss test hook ----------
 * A process killed with -9 loses nothing the kernel holds, so a test of
 * `fsync: always` against `never` needs a loss of what was not fsynced.
 * With SLUICE_TEST_POWER_LOSS=1 in the environment, the log journals in
 * `.synced` how far its newest fsync reached (segment base and size; a
 * journal the page cache keeps, written before the publishes it covers are
 * answered), and an open first cuts every segment back to it, as a power
 * cut would. Never set outside tests. */

static void journal_synced(sl_seglog_t *l, uint64_t base, int64_t size) {
  if (!l->power_loss || base < l->synced_base || (base == l->synced_base && size <= l->synced_size)) return;
  l->synced_base = base;
  l->synced_size = size;
  char *p = sl_xasprintf("%s/.synced", l->dir), *tmp = sl_xasprintf("%s/.synced.tmp", l->dir);
  FILE *f = fopen(tmp, "w");
  if (f) {
    fprintf(f, "%" PRIu64 " %lld\n", base, (long long)size);
    if (fclose(f) == 0) rename(tmp, p);
  }
  free(p);
  free(tmp);
}

/* Cuts what the journal says was never synced: later segments go, the
 * journaled one is cut to its synced size. No journal: nothing to say. */
static void lose_unsynced(sl_seglog_t *l, const uint64_t *bases, size_t *nb) {
  char *p = sl_xasprintf("%s/.synced", l->dir);
  FILE *f = fopen(p, "r");
  free(p);
  unsigned long long base;
  long long size;
  int ok = f && fscanf(f, "%llu %lld", &base, &size) == 2;
  if (f) fclose(f);
  if (!ok) return;
  while (*nb && bases[*nb - 1] > base) {
    const char *exts[] = {"log", "index", "timeindex"};
    for (int i = 0; i < 3; i++) {
      char *sp = seg_path(l, bases[*nb - 1], exts[i]);
      unlink(sp);
      free(sp);
    }
    --*nb;
  }
  char *sp = seg_path(l, base, "log");
  struct stat st;
  if (*nb && bases[*nb - 1] == base && stat(sp, &st) == 0 && st.st_size > size && truncate(sp, size) != 0)
    fprintf(stderr, "%s: %s\n", sp, strerror(errno));
  free(sp);
}

/* ---------- opening ---------- */

static void stop(sl_seglog_t *l, char *why) {
  if (l->stopped) free(why);
  else l->stopped = why;
}

/* Opens segment `base` and verifies it (the active one whole, a closed one
 * past its index). 0: whole, or its torn tail was copied aside and cut
 * (*repaired says so); 1: damaged (l->stopped says where: nothing is served
 * past it, nothing cut); -1 with *err. */
static int open_segment(sl_seglog_t *l, uint64_t base, int last, char **err, char **repaired) {
  segment_t *s = push_segment(l, base);
  char *p = seg_path(l, base, "log");
  s->fd = open(p, O_RDWR | O_CLOEXEC);
  struct stat st;
  if (s->fd < 0 || fstat(s->fd, &st) != 0) {
    *err = sl_xasprintf("%s: %s", p, strerror(errno));
    free(p);
    return -1;
  }
  /* A closed segment trusts its index and scans only past its last entry;
   * the active one is verified whole. */
  int64_t from = 0;
  uint64_t expect = s->base;
  s->size = st.st_size;
  if (!last && load_index(l, s) && s->ntidx == s->nidx) {
    from = s->idx[s->nidx - 1].pos;
    expect = s->base + s->idx[s->nidx - 1].rel;
    s->next = expect;
    s->first_ts = s->tidx[0].ts;
    s->last_ts = s->tidx[s->ntidx - 1].ts;
  } else {
    s->nidx = s->ntidx = 0;
  }
  s->size = from;
  int64_t end = scan(l, s, from, expect, st.st_size);
  int after = end >= 0 && end < st.st_size ? record_after(l, s, end, st.st_size, s->next) : 0;
  if (end < 0 || after < 0) {
    *err = sl_xasprintf("%s: read: %s", p, strerror(errno));
    free(p);
    return -1;
  }
  int rc = 0;
  if (end < st.st_size && (!last || after)) {
    /* Records after the damage: not the end of an interrupted write. */
    stop(l, sl_xasprintf("%s: corrupt record at byte %lld (offset %" PRIu64 "), followed by %lld bytes %s; the "
                         "partition is served up to offset %" PRIu64 " and takes no writes until it is repaired "
                         "(docs/durability.md)",
                         p, (long long)end, s->next, (long long)(st.st_size - end),
                         last ? "holding valid records" : "and later segments", s->next));
    rc = 1;
  } else if (end < st.st_size) {
    char *aside = NULL;
    if (copy_aside(s, p, end, st.st_size, &aside, err) != 0 || ftruncate(s->fd, end) != 0) {
      if (!*err) *err = sl_xasprintf("%s: cannot cut a torn tail: %s", p, strerror(errno));
      free(aside);
      free(p);
      return -1;
    }
    if (repaired)
      *repaired = sl_xasprintf("%s: cut a torn tail of %lld bytes after offset %" PRIu64 " (the end of an interrupted "
                               "write, no valid record after it), copied to %s",
                               p, (long long)(st.st_size - end), s->next, aside);
    free(aside);
  }
  s->size = end;
  l->bytes += end;
  if (l->nsegs > 1 && l->segs[l->nsegs - 2].next != s->base && s->next > s->base) {
    /* Offsets must run on across segments: a segment is missing. */
    stop(l, sl_xasprintf("%s: starts at offset %" PRIu64 " but the previous segment ends at %" PRIu64 "; the partition "
                         "is served up to there and takes no writes until it is repaired (docs/durability.md)",
                         p, s->base, l->segs[l->nsegs - 2].next));
    l->bytes -= end;
    free_segment(s);
    l->nsegs--;
    rc = 1;
  }
  free(p);
  return rc;
}

sl_seglog_t *sl_seglog_open(const char *dir, const sl_seglog_opts_t *o, char **err, char **repaired) {
  if (repaired) *repaired = NULL;
  if (mkdirs(dir) != 0) {
    *err = sl_xasprintf("%s: %s", dir, strerror(errno));
    return NULL;
  }
  DIR *d = opendir(dir);
  if (!d) {
    *err = sl_xasprintf("%s: %s", dir, strerror(errno));
    return NULL;
  }
  sl_seglog_t *l = sl_xcalloc(1, sizeof(*l));
  l->dir = sl_xstrdup(dir);
  l->o = *o;
  if (l->o.index_interval <= 0) l->o.index_interval = 4096;
  const char *pl = getenv("SLUICE_TEST_POWER_LOSS");
  l->power_loss = pl && *pl && strcmp(pl, "0") != 0;
  l->synced_size = -1;   /* nothing journaled yet */
  uint64_t *bases = NULL;
  size_t nb = 0, cb = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n != 24 || strcmp(e->d_name + 20, ".log") != 0) continue;
    if (nb == cb) bases = sl_xrealloc(bases, (cb = cb ? cb * 2 : 8) * sizeof(*bases));
    bases[nb++] = strtoull(e->d_name, NULL, 10);
  }
  closedir(d);
  if (nb) qsort(bases, nb, sizeof(*bases), cmp_u64);
  if (l->power_loss) lose_unsynced(l, bases, &nb);
  int rc = 0;
  for (size_t i = 0; i < nb && rc == 0; i++) rc = open_segment(l, bases[i], i + 1 == nb, err, repaired);
  free(bases);
  if (rc == 0 && l->nsegs && open_index_files(l, &l->segs[l->nsegs - 1], 1) != 0) {
    *err = sl_xasprintf("%s: cannot write its index: %s", dir, strerror(errno));
    rc = -1;
  }
  if (rc == 0 && l->nsegs == 0) rc = new_active(l, 0, err);
  if (rc < 0) {
    sl_seglog_close(l);
    return NULL;
  }
  /* What an open finds is on disk from now on, as far as the hook goes. */
  if (l->power_loss) journal_synced(l, l->segs[l->nsegs - 1].base, l->segs[l->nsegs - 1].size);
  return l;
}

const char *sl_seglog_stopped(const sl_seglog_t *l) { return l->stopped; }

void sl_seglog_stop(sl_seglog_t *l, const char *why) { stop(l, sl_xstrdup(why)); }

void sl_seglog_close(sl_seglog_t *l) {
  if (!l) return;
  for (size_t i = 0; i < l->nsegs; i++) free_segment(&l->segs[i]);
  free(l->segs);
  free(l->rbuf);
  free(l->dir);
  free(l->stopped);
  free(l);
}

/* ---------- writing ---------- */

static int roll(sl_seglog_t *l, char **err) {
  segment_t *s = &l->segs[l->nsegs - 1];
  /* The closed segment is made durable now: only the active one is left to
   * the caller's fsync policy. */
  if (fdatasync(s->fd) != 0 || (s->idx_fd >= 0 && fdatasync(s->idx_fd) != 0) ||
      (s->tidx_fd >= 0 && fdatasync(s->tidx_fd) != 0)) {
    l->err_no = errno;
    *err = sl_xasprintf("%s: fsync: %s", l->dir, strerror(l->err_no));
    return -1;
  }
  journal_synced(l, s->base, s->size);
  close_index_files(s);
  return new_active(l, s->next, err);
}

void sl_seglog_mark(const sl_seglog_t *l, sl_seglog_mark_t *m) {
  const segment_t *s = &l->segs[l->nsegs - 1];
  *m = (sl_seglog_mark_t){l->nsegs, s->next, s->size, s->since_idx, s->first_ts, s->last_ts, l->bytes, s->nidx, s->ntidx};
}

int sl_seglog_rollback(sl_seglog_t *l, const sl_seglog_mark_t *m, char **err) {
  int rolled = l->nsegs > m->nsegs;   /* m's segment is active again: its index files were closed */
  while (l->nsegs > m->nsegs) {
    segment_t *s = &l->segs[l->nsegs - 1];
    const char *exts[] = {"log", "index", "timeindex"};
    for (int i = 0; i < 3; i++) {
      char *p = seg_path(l, s->base, exts[i]);
      unlink(p);
      free(p);
    }
    free_segment(s);
    l->nsegs--;
  }
  segment_t *s = &l->segs[l->nsegs - 1];
  if (ftruncate(s->fd, m->size) != 0) {
    /* What the failed write left can only be cut at the next start. */
    *err = sl_xasprintf("%s: a failed write could not be undone (%s): the partition takes no writes until a restart",
                        l->dir, strerror(errno));
    stop(l, sl_xstrdup(*err));
    return -1;
  }
  s->next = m->next;
  s->size = m->size;
  s->since_idx = m->since_idx;
  s->first_ts = m->first_ts;
  s->last_ts = m->last_ts;
  s->nidx = m->nidx;
  s->ntidx = m->ntidx;
  l->bytes = m->bytes;
  /* The index files follow the memory index; an index that cannot be
   * written costs a scan at the next start, not data. */
  if (rolled || s->idx_fd < 0) {
    close_index_files(s);
    if (open_index_files(l, s, 1) != 0) close_index_files(s);
  } else if (s->idx_fd >= 0 && (ftruncate(s->idx_fd, (off_t)(s->nidx * IDX_SIZE)) != 0 ||
                                ftruncate(s->tidx_fd, (off_t)(s->ntidx * TIDX_SIZE)) != 0)) {
    close_index_files(s);
  }
  return 0;
}

int sl_seglog_errno(const sl_seglog_t *l) { return l->err_no; }

/* Fails the append begun at m (l->err_no is set): undoes what it wrote. */
static int64_t append_failed(sl_seglog_t *l, const sl_seglog_mark_t *m, char **err) {
  char *undo = NULL;
  if (sl_seglog_rollback(l, m, &undo) != 0) {
    char *both = sl_xasprintf("%s; %s", *err, undo);
    free(*err);
    free(undo);
    *err = both;
  }
  return -1;
}

int64_t sl_seglog_append(sl_seglog_t *l, sl_record_t *recs, size_t n, char **err) {
  if (l->stopped) {
    l->err_no = EIO;
    *err = sl_xstrdup(l->stopped);
    return -1;
  }
  sl_seglog_mark_t m;
  sl_seglog_mark(l, &m);
  segment_t *s = &l->segs[l->nsegs - 1];
  uint64_t first = s->next;
  size_t i = 0;
  while (i < n) {
    /* One write per run of records that fits the active segment. */
    s = &l->segs[l->nsegs - 1];
    int64_t room = l->o.segment_bytes - s->size;
    int aged = l->o.segment_age_ms > 0 && s->next > s->base && recs[i].ts_ms - s->first_ts >= l->o.segment_age_ms;
    if (s->size > 0 && (aged || (int64_t)record_size(&recs[i]) > room)) {
      if (roll(l, err) != 0) return append_failed(l, &m, err);
      continue;
    }
    size_t j = i, bytes = 0;
    do {
      bytes += record_size(&recs[j]);
      j++;
    } while (j < n && s->size + (int64_t)(bytes + record_size(&recs[j])) <= l->o.segment_bytes);
    unsigned char *buf = sl_xmalloc(bytes);
    size_t at = 0;
    for (size_t k = i; k < j; k++) {
      recs[k].offset = s->next + (k - i);
      encode(buf + at, &recs[k]);
      at += record_size(&recs[k]);
    }
    int64_t pos = s->size;
    if (pwrite_all(s->fd, buf, bytes, pos) != 0) {
      l->err_no = errno;
      *err = sl_xasprintf("%s: write: %s", l->dir, strerror(l->err_no));
      free(buf);
      return append_failed(l, &m, err);
    }
    free(buf);
    for (size_t k = i; k < j; k++) {
      int64_t sz = (int64_t)record_size(&recs[k]);
      account(l, s, &recs[k], pos, sz);
      pos += sz;
    }
    l->bytes += (int64_t)bytes;
    i = j;
  }
  return (int64_t)first;
}

sl_seglog_sync_t sl_seglog_sync_point(const sl_seglog_t *l) {
  const segment_t *s = &l->segs[l->nsegs - 1];
  return (sl_seglog_sync_t){s->fd, s->base, s->size};
}

void sl_seglog_synced(sl_seglog_t *l, const sl_seglog_sync_t *at) { journal_synced(l, at->base, at->size); }

/* ---------- reading ---------- */

static segment_t *segment_for(const sl_seglog_t *l, uint64_t off) {
  size_t lo = 0, hi = l->nsegs;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (l->segs[mid].base <= off) lo = mid;
    else hi = mid;
  }
  return &l->segs[lo];
}

static int64_t index_pos(const segment_t *s, uint64_t off) {
  uint32_t rel = (uint32_t)(off - s->base);
  size_t lo = 0, hi = s->nidx;
  if (!hi) return 0;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (s->idx[mid].rel <= rel) lo = mid;
    else hi = mid;
  }
  return s->idx[lo].pos;
}

int64_t sl_seglog_read(sl_seglog_t *l, uint64_t from, size_t max_records, size_t max_bytes,
                       int (*cb)(const sl_record_t *r, void *arg), void *arg, char **err) {
  if (from < sl_seglog_start(l) || from >= sl_seglog_end(l)) return 0;
  int64_t given = 0;
  size_t bytes = 0;
  grow_rbuf(l, 65536);
  while (from < sl_seglog_end(l)) {
    segment_t *s = segment_for(l, from);
    int64_t pos = index_pos(s, from);
    while (pos < s->size) {
      size_t want = l->rcap;
      if ((int64_t)want > s->size - pos) want = (size_t)(s->size - pos);
      ssize_t got = pread(s->fd, l->rbuf, want, pos);
      if (got <= 0) {
        *err = sl_xasprintf("%s: read: %s", l->dir, got < 0 ? strerror(errno) : "unexpected end of segment");
        return -1;
      }
      size_t off = 0;
      for (;;) {
        sl_record_t r;
        int64_t n = sl_record_decode(l->rbuf + off, (size_t)got - off, &r);
        if (n < 0) {
          *err = sl_xasprintf("%s: corrupt record at byte %lld of segment %" PRIu64 " (offset %" PRIu64 " or later); the "
                              "partition takes no writes until it is repaired (docs/durability.md)",
                              l->dir, (long long)(pos + (int64_t)off), s->base, from);
          stop(l, sl_xstrdup(*err));
          return -1;
        }
        if (n == 0) {
          if (off == 0) {
            /* One record larger than the buffer, unless the segment ends first. */
            size_t need = (size_t)got >= 4 ? (size_t)get32(l->rbuf) + 4 : 0;
            if (need <= l->rcap || (int64_t)need > s->size - pos) {
              *err = sl_xasprintf("%s: truncated record at byte %lld of segment %" PRIu64, l->dir, (long long)pos, s->base);
              return -1;
            }
            grow_rbuf(l, need);
          }
          break;
        }
        off += (size_t)n;
        if (r.offset < from) continue;
        if (given && ((size_t)given >= max_records || bytes + r.value_len > max_bytes)) return given;
        given++;
        bytes += r.value_len;
        from = r.offset + 1;
        if (cb(&r, arg) || (size_t)given >= max_records) return given;
      }
      pos += (int64_t)off;
    }
    if (from < s->next) from = s->next;   /* defensive: never loop on one segment */
  }
  return given;
}

typedef struct time_probe { int64_t ts; uint64_t found; int hit; } time_probe_t;

static int time_cb(const sl_record_t *r, void *arg) {
  time_probe_t *p = arg;
  if (r->ts_ms >= p->ts) {
    p->found = r->offset;
    p->hit = 1;
    return 1;
  }
  return 0;
}

uint64_t sl_seglog_offset_for_time(sl_seglog_t *l, int64_t ts_ms) {
  for (size_t i = 0; i < l->nsegs; i++) {
    segment_t *s = &l->segs[i];
    if (s->next == s->base || s->last_ts < ts_ms) continue;
    /* The last time-index entry below ts is a safe place to start. */
    uint64_t from = s->base;
    for (size_t k = 0; k < s->ntidx && s->tidx[k].ts < ts_ms; k++) from = s->base + s->tidx[k].rel;
    time_probe_t p = {ts_ms, 0, 0};
    char *err = NULL;
    while (!p.hit && from < s->next) {
      int64_t n = sl_seglog_read(l, from, 1024, SIZE_MAX, time_cb, &p, &err);
      if (n <= 0) break;
      from += (uint64_t)n;
    }
    free(err);
    if (p.hit) return p.found;
  }
  return sl_seglog_end(l);
}

uint64_t sl_seglog_start(const sl_seglog_t *l) { return l->segs[0].base; }
uint64_t sl_seglog_end(const sl_seglog_t *l) { return l->segs[l->nsegs - 1].next; }
int64_t sl_seglog_bytes(const sl_seglog_t *l) { return l->bytes; }
int sl_seglog_segments(const sl_seglog_t *l) { return (int)l->nsegs; }

/* ---------- retention ---------- */

static void drop_oldest(sl_seglog_t *l) {
  segment_t *s = &l->segs[0];
  const char *exts[] = {"log", "index", "timeindex"};
  for (int i = 0; i < 3; i++) {
    char *p = seg_path(l, s->base, exts[i]);
    unlink(p);
    free(p);
  }
  l->bytes -= s->size;
  free_segment(s);
  memmove(l->segs, l->segs + 1, (l->nsegs - 1) * sizeof(*l->segs));
  l->nsegs--;
}

int sl_seglog_retain(sl_seglog_t *l, int64_t max_age_ms, int64_t max_bytes, int64_t now_ms) {
  int removed = 0;
  if (l->stopped) return 0;   /* a damaged partition is left as it was found */
  while (l->nsegs > 1) {
    segment_t *s = &l->segs[0];
    int old = max_age_ms > 0 && now_ms - s->last_ts > max_age_ms;
    int big = max_bytes > 0 && l->bytes > max_bytes;
    if (!old && !big) break;
    drop_oldest(l);
    removed++;
  }
  return removed;
}
