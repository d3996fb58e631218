/* Structured logging to stderr (stdout belongs to the stdout output).
 * Format logfmt or json; fields stream= and component= come from the caller,
 * then the logger's static fields, then the line's own. Process-wide: one
 * stderr, one level for all workers; the setters run before the loop does. */
#ifndef SL_LOG_H
#define SL_LOG_H
#include <stddef.h>

typedef enum { SL_LOG_TRACE, SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR, SL_LOG_OFF } sl_log_level_t;

void sl_log_set_level(sl_log_level_t l);
int sl_log_parse_level(const char *s, sl_log_level_t *out);   /* 0 ok */
void sl_log_set_json(int json);
int sl_log_enabled(sl_log_level_t l);
/* Fields on every line: key, value, ..., NULL (copied; NULL clears). */
void sl_log_set_static(const char *const *kv);

/* Lines of one pool batch (core/pool.c), kept to be written in the
 * stream's order instead of the clock's; filled on the one worker that runs
 * the batch. Once turn says every earlier batch's lines are out, what it
 * holds and every later line are written at once (a stuck batch's lines
 * show while it is stuck). */
typedef struct sl_log_hold {
  char *buf;
  size_t len, cap;
  int (*turn)(const struct sl_log_hold *h);
} sl_log_hold_t;

/* The component whose code runs now: processor chains set it around each
 * call, so that lines logged from Lua name their stream and component.
 * Strings are borrowed from the component for the duration of the call.
 * hold: where lines go instead of stderr while a pool worker runs a batch
 * (NULL: written at once); a script's call that waits keeps its scope. */
typedef struct sl_log_scope {
  const char *stream, *component;
  sl_log_hold_t *hold;
} sl_log_scope_t;
extern _Thread_local sl_log_scope_t sl_log_scope;   /* per thread: pool workers log their own */
/* stream and component may be NULL. extra: NULL-terminated key, value pairs. */
void sl_logf(sl_log_level_t l, const char *stream, const char *component, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
void sl_log_fields(sl_log_level_t l, const char *stream, const char *component, const char *msg,
                   const char *const *kv /* key, value, ..., NULL */);

/* Writes lines (whole lines, as a hold keeps them) to stderr. */
void sl_log_write(const char *lines, size_t len);

#define sl_error(...) sl_logf(SL_LOG_ERROR, NULL, NULL, __VA_ARGS__)
#define sl_warn(...)  sl_logf(SL_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define sl_info(...)  sl_logf(SL_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define sl_debug(...) sl_logf(SL_LOG_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
