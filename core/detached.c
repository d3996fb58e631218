#include "detached.h"
#include "log.h"
#include "xalloc.h"
#include <stdlib.h>
#include <time.h>

enum { EXIT_WAIT_S = 5 };

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct timespec g_until;

static void set_deadline(void) {
  clock_gettime(CLOCK_REALTIME, &g_until);
  g_until.tv_sec += EXIT_WAIT_S;
}

typedef struct job {
  sl_detached_t *l;
  void (*fn)(void *arg);
  void *arg;
} job_t;

static void count(sl_detached_t *l, int d) {
  pthread_mutex_lock(&l->mu);
  l->n += d;
  if (d > 0) l->used = 1;
  else if (!l->n) pthread_cond_broadcast(&l->gone);
  pthread_mutex_unlock(&l->mu);
}

static void *run(void *arg) {
  job_t j = *(job_t *)arg;
  free(arg);
  j.fn(j.arg);
  count(j.l, -1);
  return NULL;
}

/* Counted before the thread exists: a wait that starts meanwhile waits for
 * it too. */
int sl_detached_spawn(sl_detached_t *l, void (*fn)(void *arg), void *arg) {
  job_t *j = sl_xmalloc(sizeof *j);
  *j = (job_t){l, fn, arg};
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  count(l, 1);
  pthread_t t;
  int rc = pthread_create(&t, &a, run, j);
  pthread_attr_destroy(&a);
  if (rc == 0) return 0;
  count(l, -1);
  free(j);
  return -1;
}

int sl_detached_wait(sl_detached_t *l) {
  pthread_once(&g_once, set_deadline);
  pthread_mutex_lock(&l->mu);
  while (l->n && pthread_cond_timedwait(&l->gone, &l->mu, &g_until) == 0) {}
  int left = l->used ? l->n : -1;
  pthread_mutex_unlock(&l->mu);
  if (left > 0)
    sl_logf(SL_LOG_WARN, NULL, NULL, "%s: %d connection thread(s) still closing after %d s at exit", l->what, left,
            EXIT_WAIT_S);
  return left;
}

int64_t sl_detached_ms_left(void) {
  pthread_once(&g_once, set_deadline);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ms = (int64_t)(g_until.tv_sec - now.tv_sec) * 1000 + (g_until.tv_nsec - now.tv_nsec) / 1000000;
  return ms > 0 ? ms : 1;
}
