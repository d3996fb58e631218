/* Why it looks like this: a thread keeps two magazines per size class (the
 * one it takes from and puts to, and the one before), as in Bonwick's
 * magazine allocator, so that a thread whose frees and allocations
 * alternate around a magazine's edge does not go to the depot each time. Blocks are
 * malloc'ed at their class's full size, so any block of a class serves any
 * size in it. The depot is bounded: beyond it, blocks go back to malloc. */
#include "blocks.h"
#include "xalloc.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The depot keeps up to 8 MiB per class up to 512 B (messages and small
 * payloads, which cross pool threads in bulk) and 1 MiB per larger class
 * (payload bytes, mostly reused on their own thread): 88 MiB at most, where
 * 8 MiB for each of the 32 classes would keep 256 MiB after a burst. */
enum { STEP = 64, CLASSES = SL_BLOCKS_MAX / STEP, MAG = 256 };
#define DEPOT_BYTES(c) ((c) < 512 / STEP ? 8u << 20 : 1u << 20)

/* A magazine: up to MAG free blocks, by pointer. Taking a block reads the
 * magazine, never the block: a block freed on another core is in that
 * core's cache, and a list linked through the blocks made every
 * allocation wait for one such miss (a tenth of a filter's CPU). */
typedef struct mag {
  struct mag *next;          /* in the depot */
  unsigned n;
  void *b[MAG];
} mag_t;

#ifndef SL_SANITIZED
typedef struct {
  mag_t *loaded, *prev;      /* either may be NULL */
} tclass_t;

static struct {
  pthread_mutex_t mu;
  mag_t *full, *empty;       /* full: n > 0 (a thread's last ones may be partial) */
  unsigned nfull, nempty;
} depot[CLASSES];

static _Thread_local tclass_t tc[CLASSES];
static _Thread_local int registered;
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void);

/* The thread keeps blocks from now on: they go to the depot when it ends. */
static void enter(void) {
  if (registered) return;
  pthread_once(&once, init);
  pthread_setspecific(key, &registered);
  registered = 1;
}

/* Hands m over to the depot: with blocks as a full one, else as an empty
 * one; beyond the depot's bound it is freed with its blocks. */
static void give(unsigned c, mag_t *m) {
  if (!m) return;
  pthread_mutex_lock(&depot[c].mu);
  if (m->n && depot[c].nfull < DEPOT_BYTES(c) / (MAG * STEP * (c + 1))) {
    m->next = depot[c].full;
    depot[c].full = m;
    depot[c].nfull++;
    m = NULL;
  } else if (!m->n && depot[c].nempty < 16) {
    m->next = depot[c].empty;
    depot[c].empty = m;
    depot[c].nempty++;
    m = NULL;
  }
  pthread_mutex_unlock(&depot[c].mu);
  if (!m) return;
  for (unsigned i = 0; i < m->n; i++) free(m->b[i]);
  free(m);
}

/* A full magazine, or an empty one (made if the depot has none). */
static mag_t *take(unsigned c, int full) {
  enter();
  pthread_mutex_lock(&depot[c].mu);
  mag_t **from = full ? &depot[c].full : &depot[c].empty;
  mag_t *m = *from;
  if (m) {
    *from = m->next;
    if (full) depot[c].nfull--;
    else depot[c].nempty--;
  }
  pthread_mutex_unlock(&depot[c].mu);
  if (!m && !full) m = sl_xcalloc(1, sizeof(*m));
  return m;
}

/* A thread ends: what it kept goes to the depot. */
static void thread_end(void *arg) {
  (void)arg;
  for (unsigned c = 0; c < CLASSES; c++) {
    give(c, tc[c].loaded);
    give(c, tc[c].prev);
    tc[c] = (tclass_t){0};
  }
}

static void init(void) {
  for (unsigned c = 0; c < CLASSES; c++) pthread_mutex_init(&depot[c].mu, NULL);
  pthread_key_create(&key, thread_end);
}

static void swap(tclass_t *t) {
  mag_t *m = t->loaded;
  t->loaded = t->prev;
  t->prev = m;
}

/* The slow halves of get and put, out of line: inlined, their registers
 * made every call save and restore four (32 instructions a call where the
 * magazine has room, 17 without: objdump, bench/RESULTS.md). */
__attribute__((noinline)) static void *get_slow(unsigned c) {
  tclass_t *t = &tc[c];
  if (t->prev && t->prev->n) {
    swap(t);
  } else {
    mag_t *f = take(c, 1);
    if (!f) return sl_xmalloc((size_t)(c + 1) * STEP);
    give(c, t->prev);   /* empty */
    t->prev = t->loaded;
    t->loaded = f;
  }
  return t->loaded->b[--t->loaded->n];
}

__attribute__((noinline)) static void put_slow(unsigned c, void *p) {
  tclass_t *t = &tc[c];
  if (t->prev && t->prev->n < MAG) {
    swap(t);
  } else {
    give(c, t->prev);   /* full */
    t->prev = t->loaded;
    t->loaded = take(c, 0);
  }
  t->loaded->b[t->loaded->n++] = p;
}

void *sl_blocks_get(size_t size) {
  if (size > SL_BLOCKS_MAX) return sl_xmalloc(size);
  unsigned c = size ? (unsigned)((size - 1) / STEP) : 0;
  mag_t *m = tc[c].loaded;
  if (m && m->n) return m->b[--m->n];
  return get_slow(c);
}

void sl_blocks_put(void *p, size_t size) {
  if (!p) return;
  if (size > SL_BLOCKS_MAX) {
    free(p);
    return;
  }
  unsigned c = size ? (unsigned)((size - 1) / STEP) : 0;
  mag_t *m = tc[c].loaded;
  if (m && m->n < MAG) {
    m->b[m->n++] = p;
    return;
  }
  put_slow(c, p);
}

#else

void *sl_blocks_get(size_t size) { return sl_xmalloc(size ? size : 1); }
void sl_blocks_put(void *p, size_t size) {
  (void)size;
  free(p);
}

#endif

void *sl_blocks_zero(size_t size) {
  void *p = sl_blocks_get(size);
  memset(p, 0, size);
  return p;
}
