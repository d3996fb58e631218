#include "watchdog.h"
#include "log.h"
#include "xalloc.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct sl_watchdog {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct timespec deadline;  /* CLOCK_MONOTONIC */
  int stopped;
  char *why;
};

static void *run(void *arg) {
  sl_watchdog_t *w = arg;
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  while (!w->stopped && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&w->cv, &w->mu, &w->deadline);
  int fire = !w->stopped;
  pthread_mutex_unlock(&w->mu);
  if (fire) {
    sl_error("%s", w->why);
    fflush(NULL);
    _exit(1);
  }
  return NULL;
}

sl_watchdog_t *sl_watchdog_start(int64_t ms, const char *why) {
  sl_watchdog_t *w = sl_xcalloc(1, sizeof(*w));
  w->why = sl_xstrdup(why);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&w->mu, NULL);
  clock_gettime(CLOCK_MONOTONIC, &w->deadline);
  w->deadline.tv_sec += ms / 1000;
  w->deadline.tv_nsec += (ms % 1000) * 1000000;
  if (w->deadline.tv_nsec >= 1000000000) {
    w->deadline.tv_sec++;
    w->deadline.tv_nsec -= 1000000000;
  }
  if (pthread_create(&w->thread, NULL, run, w) != 0) {
    w->stopped = 1;
    sl_watchdog_stop(w);
    return NULL;
  }
  return w;
}

void sl_watchdog_stop(sl_watchdog_t *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  int running = !w->stopped;
  w->stopped = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (running) pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w->why);
  free(w);
}
