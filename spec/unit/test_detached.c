/* Counted detached threads (core/detached.h): sl_detached_spawn counts a thread
 * until its function has returned, sl_detached_wait waits for it, bounded by the
 * process's exit deadline, and a thread that cannot start is neither
 * counted nor run. */
#include "core/detached.h"
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

typedef struct job {
  sem_t go;
  atomic_int done;
} job_t;

static int counted(sl_detached_t *l) {
  pthread_mutex_lock(&l->mu);
  int n = l->n;
  pthread_mutex_unlock(&l->mu);
  return n;
}

/* Finishes well after its go: a wait that did not wait would see it run. */
static void slow_job(void *arg) {
  job_t *j = arg;
  sem_wait(&j->go);
  nanosleep(&(struct timespec){0, 100 * 1000000}, NULL);
  atomic_store(&j->done, 1);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs first, in a child whose address space has no room for a thread's
 * stack (and no stack of an ended thread cached for reuse). */
static void test_no_thread(void) {
  pid_t pid = fork();
  if (pid == 0) {
    static sl_detached_t l = SL_DETACHED_INIT("test");
    job_t j = {.done = 0};
    free(malloc(4096));   /* the spawn's own record comes from the heap already there */
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lu", &pages) != 1) _exit(3);
    fclose(f);
    rlim_t room = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64 << 10);
    if (setrlimit(RLIMIT_AS, &(struct rlimit){room, room}) != 0) _exit(4);
    int rc = sl_detached_spawn(&l, slow_job, &j);
    _exit(rc == -1 && counted(&l) == 0 && !atomic_load(&j.done) ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "a thread that cannot start: -1, nothing counted, nothing run (child status %d)", st);
}

static void test_counted_and_waited_for(void) {
  static sl_detached_t l = SL_DETACHED_INIT("test");
  CHECK(sl_detached_wait(&l) == -1, "no thread ever counted: -1");
  job_t j = {.done = 0};
  sem_init(&j.go, 0, 0);
  CHECK(sl_detached_spawn(&l, slow_job, &j) == 0, "spawned");
  CHECK(counted(&l) == 1, "counted while it runs (%d)", counted(&l));
  sem_post(&j.go);
  int left = sl_detached_wait(&l);
  CHECK(left == 0, "none left (%d)", left);
  CHECK(atomic_load(&j.done), "the wait returned once the job had returned");
  sem_destroy(&j.go);
}

static void blocked_job(void *arg) { sem_wait(&((job_t *)arg)->go); }

/* After test_counted_and_waited_for: the deadline runs from its wait. */
static void test_wait_is_bounded(void) {
  static sl_detached_t l = SL_DETACHED_INIT("test");
  job_t j = {.done = 0};
  sem_init(&j.go, 0, 0);
  CHECK(sl_detached_spawn(&l, blocked_job, &j) == 0, "spawned");
  double t0 = now_s();
  int left = sl_detached_wait(&l);
  double took = now_s() - t0;
  CHECK(left == 1, "one left at the deadline (%d)", left);
  CHECK(took < 8, "the wait ended by the shared deadline (%.2f s)", took);
  CHECK(sl_detached_ms_left() == 1, "past the deadline: 1 ms left (%lld)", (long long)sl_detached_ms_left());
  sem_post(&j.go);
  pthread_mutex_lock(&l.mu);
  while (l.n) pthread_cond_wait(&l.gone, &l.mu);
  pthread_mutex_unlock(&l.mu);
  sem_destroy(&j.go);
}

int main(void) {
  RUN(test_no_thread);
  RUN(test_counted_and_waited_for);
  RUN(test_wait_is_bounded);
  return check_report("test_detached");
}
