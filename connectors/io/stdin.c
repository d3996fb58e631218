/* `stdin` input: reads standard input (pipe, terminal, socket or a redirected
 * file) without blocking the loop, one message per line or the whole input. */
#include "reader.h"
#include "core/xalloc.h"
#include "core/batching.h"
#include <stdlib.h>
#include <string.h>

static const char *const codecs[] = {"lines", "all", NULL};

static const sl_field_t fields[] = {
  {"codec", SL_F_ENUM, "lines", 0,
   "How the input is cut into messages. `lines`: one message per line; the line ending "
   "(`\\n` or `\\r\\n`) is removed and empty lines are skipped. `all`: the whole input, "
   "up to end of file, is one message.", codecs, NULL},
  {"max_buffer", SL_F_SIZE, "1MiB", 0,
   "Longest line (codec `lines`) or input (codec `all`) kept in memory. Anything longer is "
   "logged and emitted truncated to this size, flagged as failed (so `catch` or "
   "`reject_errored` can route it); the rest of that line is discarded.", NULL, NULL},
  SL_SCANNER_FIELD,
  SL_BATCHING_FIELD,
  {0},
};

typedef struct stdin_in {
  sl_input_t base;
  sl_scanconf_t *scan;
  uint64_t seq;
  sl_reader_t *reader;
} stdin_in_t;

static void on_end(sl_reader_t *r, int status, void *arg) {
  (void)status;
  stdin_in_t *s = arg;
  sl_reader_close(r);
  s->reader = NULL;
  sl_input_eof(&s->base);
}

static int stdin_start(sl_input_t *in) {
  stdin_in_t *s = (stdin_in_t *)in;
  sl_reader_opts_t o = {.in = in, .scan = s->scan, .seq = &s->seq,
                        .on_end = on_end, .arg = s};
  s->reader = sl_reader_open(in->worker->loop, 0, &o);
  return s->reader ? 0 : -1;
}

static void stdin_resume(sl_input_t *in) { sl_reader_resume(((stdin_in_t *)in)->reader); }

static void stdin_stop(sl_input_t *in) {
  stdin_in_t *s = (stdin_in_t *)in;
  sl_reader_close(s->reader);
  s->reader = NULL;
}

static void stdin_destroy(sl_input_t *in) {
  stdin_stop(in);
  sl_scanconf_free(((stdin_in_t *)in)->scan);
  free(in);
}

static const sl_input_vt vt = {stdin_start, stdin_resume, stdin_stop, stdin_destroy, NULL, NULL};
static const sl_spec_t spec;

static void *stdin_create(sl_build_t *b, const sl_cnode_t *conf) {
  stdin_in_t *s = sl_xcalloc(1, sizeof(*s));
  sl_component_init_input(&s->base, &vt, &spec, b);
  if (!(s->scan = sl_scanconf_input(conf, b->diags))) {
    free(s);
    return NULL;
  }
  return s;
}

static const sl_spec_t spec = {
  .name = "stdin",
  .kind = SL_KIND_INPUT,
  .summary = "Reads messages from standard input.",
  .desc =
    "Reads standard input without blocking the event loop, whether it is a pipe, a terminal, a "
    "socket or a regular file redirected with `<`. Reading stops while the stream has "
    "`max_in_flight` transactions open (backpressure) and resumes when they complete.\n\n"
    "Lines that arrive in the same read are emitted together as one batch (one transaction) "
    "of at most 1024 messages; every line is still its own message. At end of input the "
    "last line is emitted even without a trailing newline, and the input finishes: a run "
    "whose inputs are all finished exits once everything is delivered.\n\n"
    "Messages carry no metadata; `msg.seq` counts them from 1.",
  .fields = fields,
  .example =
    "input:\n"
    "  stdin:\n"
    "    codec: lines\n"
    "    max_buffer: 4MiB\n",
  .create = stdin_create,
};
SL_REGISTER(spec)
