#include "scan_tar.h"
#include "core/xalloc.h"
#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes handed to libarchive per step: what it reads from is a copy. */
enum { STEP = 64 * 1024 };

typedef enum { W_NEED, W_ENTRY, W_DONE } wstate_t;

struct sl_tar {
  size_t max;
  pthread_t th;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int worker_turn;           /* who runs: the worker (1) or the scanner (0) */
  int stop;                  /* the scanner is being freed: the worker ends */
  wstate_t state;
  /* scanner -> worker: the next bytes (in_eof: none will follow) */
  char *in;
  size_t inl;
  int in_eof;
  /* worker -> scanner: an entry (truncated or flagged with err) */
  char *body, *name;
  size_t len;
  char err[256];
};

/* Hands the turn to the other side and waits for it back. */
static void pass(sl_tar_t *t, int to_worker) {
  pthread_mutex_lock(&t->mu);
  t->worker_turn = to_worker;
  pthread_cond_broadcast(&t->cv);
  while (t->worker_turn == to_worker) pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
}

static ssize_t on_read(struct archive *a, void *arg, const void **buf) {
  (void)a;
  sl_tar_t *t = arg;
  if (t->stop) return -1;
  t->state = W_NEED;
  pass(t, 0);
  if (t->stop) return -1;
  *buf = t->in;
  return (ssize_t)t->inl;   /* 0 at the end */
}

/* Gives the scanner an entry and waits until it was emitted. */
static int hand_over(sl_tar_t *t) {
  if (t->stop) return -1;
  t->state = W_ENTRY;
  pass(t, 0);
  free(t->name);
  t->name = NULL;
  t->len = 0;
  t->err[0] = 0;
  return t->stop ? -1 : 0;
}

static void fail(sl_tar_t *t, struct archive *a, const char *what) {
  snprintf(t->err, sizeof t->err, "tar: %s%s (the rest of the input is skipped)", what,
           archive_error_string(a) ? archive_error_string(a) : "not a tar archive");
}

static void *worker(void *arg) {
  sl_tar_t *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->worker_turn) pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
  struct archive *a = archive_read_new();
  archive_read_support_format_tar(a);     /* ustar, pax and GNU tar, as Go's archive/tar */
  archive_read_support_format_empty(a);   /* no bytes: no entries */
  if (archive_read_open(a, t, NULL, on_read, NULL) != ARCHIVE_OK) {
    fail(t, a, "");
    hand_over(t);
  } else {
    for (int more = 1; more;) {
      struct archive_entry *e;
      int rc = archive_read_next_header(a, &e);
      if (rc == ARCHIVE_EOF || t->stop) break;
      if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {   /* RETRY too: Go's reader stops at a bad header */
        fail(t, a, "");
        hand_over(t);
        break;
      }
      const char *name = archive_entry_pathname(e);
      t->name = sl_xstrdup(name ? name : "");
      for (;;) {
        size_t room = t->max - t->len;
        char probe;   /* one byte past max says the entry is longer */
        ssize_t k = archive_read_data(a, room ? t->body + t->len : &probe, room ? room : 1);
        if (k < 0) {
          fail(t, a, "entry: ");
          more = 0;
          break;
        }
        if (k == 0) break;
        if (!room) {   /* the rest is read past, not kept */
          snprintf(t->err, sizeof t->err, "tar: entry %.120s longer than max_buffer (%zu bytes): truncated", t->name,
                   t->max);
          if (archive_read_data_skip(a) != ARCHIVE_OK) more = 0;
          break;
        }
        t->len += (size_t)k;
      }
      if (hand_over(t)) break;
    }
  }
  archive_read_free(a);
  pthread_mutex_lock(&t->mu);
  t->state = W_DONE;
  t->worker_turn = 0;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

sl_tar_t *sl_tar_new(size_t max) {
  sl_tar_t *t = sl_xcalloc(1, sizeof(*t));
  t->max = max;
  t->body = sl_xmalloc(max ? max : 1);
  t->in = sl_xmalloc(STEP);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  return t;
}

size_t sl_tar_scan(sl_tar_t *t, const char *p, size_t n, int eof, sl_scan_out_t *o) {
  if (!t->started) {
    t->started = 1;
    if (pthread_create(&t->th, NULL, worker, t)) {
      t->started = 0;
      o->emit(o, "", 0, "tar: cannot start the archive reader's thread");
      t->state = W_DONE;
      return n;
    }
    pass(t, 1);
  }
  size_t used = 0;
  for (;;) {
    if (t->state == W_DONE) return n;   /* what follows the archive's end is left aside */
    if (t->state == W_ENTRY) {
      if (o->room <= 0) return used;
      o->tar_name = t->name;
      o->emit(o, t->body, t->len, t->err[0] ? t->err : NULL);
      o->tar_name = NULL;
      pass(t, 1);
      continue;
    }
    if (used == n && !eof) return used;
    t->inl = n - used < STEP ? n - used : STEP;
    memcpy(t->in, p + used, t->inl);
    used += t->inl;
    t->in_eof = eof && used == n;
    pass(t, 1);
  }
}

void sl_tar_free(sl_tar_t *t) {
  if (!t) return;
  if (t->started) {
    if (t->state != W_DONE) {
      t->stop = 1;
      pass(t, 1);
    }
    pthread_join(t->th, NULL);
  }
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t->body);
  free(t->name);
  free(t->in);
  free(t);
}
