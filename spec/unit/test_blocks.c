/* The per-thread block caches with their shared depot (core/blocks.h):
 * blocks made on one thread and freed on another (what pipeline.threads
 * does with messages) are handed out whole, to one owner at a time, across
 * every size class and beyond the largest; what a thread kept goes to the
 * depot when it ends, and another thread takes it from there. */
#include "core/blocks.h"
#include <pthread.h>
#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { ROUNDS = 200, PER_ROUND = 1500 };

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned char **q[2];      /* a round's blocks, handed from producer to consumer */
  size_t *sizes[2];
  int ready[2];
  int bad;
} pipe_t;

static size_t size_of(unsigned round, unsigned i) { return 1 + (round * 7919u + i * 104729u) % (SL_BLOCKS_MAX + 200); }

static void *consumer(void *arg) {
  pipe_t *p = arg;
  for (unsigned r = 0; r < ROUNDS; r++) {
    int s = r & 1;
    pthread_mutex_lock(&p->mu);
    while (!p->ready[s]) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < PER_ROUND; i++) {
      unsigned char *b = p->q[s][i];
      size_t n = p->sizes[s][i];
      for (size_t k = 0; k < n; k++)
        if (b[k] != (unsigned char)(r + i)) {
          p->bad++;
          break;
        }
      sl_blocks_put(b, n);
    }
    pthread_mutex_lock(&p->mu);
    p->ready[s] = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  return NULL;
}

/* The producer makes every block, the consumer frees every one: the
 * producer's cache only empties and the consumer's only fills, so blocks
 * go round through the depot. Each block is filled to its size and checked
 * by the other side: a block handed to two owners, or smaller than asked,
 * would show. */
static void across_threads(void) {
  pipe_t p = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  for (int s = 0; s < 2; s++) {
    p.q[s] = malloc(PER_ROUND * sizeof(*p.q[s]));
    p.sizes[s] = malloc(PER_ROUND * sizeof(*p.sizes[s]));
  }
  pthread_t t;
  pthread_create(&t, NULL, consumer, &p);
  for (unsigned r = 0; r < ROUNDS; r++) {
    int s = r & 1;
    pthread_mutex_lock(&p.mu);
    while (p.ready[s]) pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    for (unsigned i = 0; i < PER_ROUND; i++) {
      size_t n = size_of(r, i);
      unsigned char *b = sl_blocks_get(n);
      memset(b, (unsigned char)(r + i), n);
      p.q[s][i] = b;
      p.sizes[s][i] = n;
    }
    pthread_mutex_lock(&p.mu);
    p.ready[s] = 1;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
  }
  pthread_join(t, NULL);
  CHECK(p.bad == 0, "%d blocks were not as their maker left them", p.bad);
  for (int s = 0; s < 2; s++) {
    free(p.q[s]);
    free(p.sizes[s]);
  }
}

static void *keep_one(void *arg) {
  sl_blocks_put(arg, 100);
  return NULL;
}

/* A thread's kept blocks outlive it in the depot (before, a pool worker's
 * cached messages were lost with its thread at every reload). */
static void thread_end(void) {
  void *b = sl_blocks_get(100);
  pthread_t t;
  pthread_create(&t, NULL, keep_one, b);
  pthread_join(t, NULL);
  void *again = sl_blocks_get(100);
#ifndef SL_SANITIZED
  CHECK(again == b, "the ended thread's block went to the depot and back");
#endif
  sl_blocks_put(again, 100);
}

/* Sizes at the edges of the classes, and past the largest, round-trip on
 * one thread. */
static void edges(void) {
  static const size_t sizes[] = {0, 1, 63, 64, 65, 128, 511, 512, 513, 1024, 2047, 2048, 2049, 100000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    unsigned char *b = sl_blocks_get(sizes[i]);
    CHECK(b != NULL, "size %zu", sizes[i]);
    memset(b, 0x5a, sizes[i]);
    sl_blocks_put(b, sizes[i]);
  }
  sl_blocks_put(NULL, 10);
}

/* A 1 KiB message's bytes (1 KiB payloads: a NATS or Kafka publish bench)
 * come from the caches too: malloc and free of each one were a tenth of a
 * `generate → nats` run's user CPU (bench/RESULTS.md). A cached block is
 * made at its class's full size (64-byte steps), a plain malloc'ed one at
 * the size asked. */
static void kib_cached(void) {
  size_t n = 1024 + 32;
  void *b = sl_blocks_get(n);
#ifndef SL_SANITIZED
  CHECK(malloc_usable_size(b) >= 1088, "a 1 KiB block is a plain malloc (usable %zu)", malloc_usable_size(b));
#endif
  sl_blocks_put(b, n);
}

int main(void) {
  RUN(thread_end);   /* first: this thread's own cache is empty still */
  RUN(across_threads);
  RUN(edges);
  RUN(kib_cached);
  return check_report("blocks");
}
