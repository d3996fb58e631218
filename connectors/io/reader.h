/* Byte-stream reader shared by the stdin and file inputs: reads one fd without
 * blocking the loop (uv_read for pipes/ttys/sockets, uv_fs_read for files),
 * cuts it with a scanner and emits batches only while the input is ready.
 * Ownership: the input that opens a reader closes it; sl_reader_close may
 * free it later (when a read in flight returns), never calling back after. */
#ifndef SL_CONN_READER_H
#define SL_CONN_READER_H
#include "scanner.h"

typedef struct sl_reader sl_reader_t;

typedef struct sl_reader_opts {
  sl_input_t *in;
  const sl_scanconf_t *scan;  /* how the bytes become messages (outlives the reader) */
  int own_fd;                 /* close the fd when the reader is closed */
  const char *path;           /* set as metadata `path` on each message when non-NULL */
  uint64_t *seq;              /* running message counter of the input (msg->seq) */
  /* Runs once, after the last batch was emitted; status < 0 on a read error. */
  void (*on_end)(sl_reader_t *r, int status, void *arg);
  void *arg;
} sl_reader_opts_t;

/* Starts reading fd. Returns NULL and logs when the fd cannot be used. */
sl_reader_t *sl_reader_open(uv_loop_t *loop, int fd, const sl_reader_opts_t *opts);
/* The input may emit again (its vt->resume was called). */
void sl_reader_resume(sl_reader_t *r);
void sl_reader_close(sl_reader_t *r);

#endif
