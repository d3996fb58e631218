/* Detached threads a library still runs, waited for at the process's end.
 * A library whose threads free OpenSSL objects (a connection's TLS session
 * and context) after nothing waits for them may still be doing so when the
 * process exits, while OpenSSL's exit cleanup frees what they use (a SEGV at
 * exit, issue 16). Each such library counts its threads in one static
 * sl_detached_t and waits for them, bounded, at the end. */
#ifndef SL_DETACHED_H
#define SL_DETACHED_H
#include <pthread.h>
#include <stdint.h>

typedef struct sl_detached {
  const char *what;   /* for the warning: "amqp" */
  pthread_mutex_t mu;
  pthread_cond_t gone;
  int n, used;
} sl_detached_t;

#define SL_DETACHED_INIT(what) {what, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0}

/* Any thread: runs fn(arg) on a detached thread counted in l until fn has
 * returned (fn's last act is then the library's last). 0, or -1 when no
 * thread could start: nothing counted, fn not run (the caller runs it
 * itself or gives up). */
int sl_detached_spawn(sl_detached_t *l, void (*fn)(void *arg), void *arg);
/* The main thread, at the end, once every user of the threads has let
 * them go: waits for them until the process's exit deadline (5 s after the
 * first sl_detached_wait of the process, shared by every library), warns
 * naming `what` if some are left. Returns -1 if no thread was ever
 * counted, else how many are still running. */
int sl_detached_wait(sl_detached_t *l);
/* Milliseconds left until the exit deadline (at least 1). */
int64_t sl_detached_ms_left(void);

#endif
