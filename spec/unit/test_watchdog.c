/* The shutdown watchdog: it ends a process whose loop thread is stuck, and
 * lets one that finished in time go on. */
#include "core/watchdog.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Runs body in a child; its exit status, or -1 if it is still running after
 * limit_s seconds (then it is killed). */
static int in_child(void (*body)(void), int limit_s) {
  pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  for (int i = 0; i < limit_s * 100; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static void stuck(void) {
  sl_watchdog_start(100, "test: stuck");
  sleep(30);   /* a loop thread that never comes back */
}

static void in_time(void) {
  sl_watchdog_t *w = sl_watchdog_start(300, "test: in time");
  sl_watchdog_stop(w);
  usleep(600000);   /* past the deadline: a stopped watchdog does nothing */
}

static void test_ends_a_stuck_process(void) {
  CHECK(in_child(stuck, 20) == 1, "a stuck process is ended with exit code 1");
}

static void test_stopped_in_time(void) {
  CHECK(in_child(in_time, 20) == 0, "a process that stopped the watchdog in time goes on");
}

int main(void) {
  RUN(test_ends_a_stuck_process);
  RUN(test_stopped_in_time);
  return check_report("test_watchdog");
}
