/* References to the request context inside config text: `${ctx.query.user}`
 * (with an optional `:default`), and Tyk's aliases
 * `$tyk_context.request_data_<k>`, `$tyk_context.headers_<H>` and
 * `$tyk_context.jwt_claims_<c>`. A stream that uses them outside its
 * processors is request-scoped (control/scoped.c).
 * Ownership: every returned string is the caller's to free. */
#ifndef SL_CTXREF_H
#define SL_CTXREF_H
#include "msg.h"
#include <stddef.h>

typedef struct sl_ctxref {
  size_t start, end;         /* the reference's bytes in the text: [start, end) */
  char *what;                /* normalised name: "query.user", "headers.x-region", "user", ... */
  char *def;                 /* the `:default`, or NULL */
} sl_ctxref_t;

/* Finds the first reference at or after `from`; 1 found (free with
 * sl_ctxref_clear), 0 none, -1 a malformed `${ctx...}` (ref->start set). */
int sl_ctxref_next(const char *s, size_t from, sl_ctxref_t *ref);
void sl_ctxref_clear(sl_ctxref_t *ref);
int sl_ctxref_has(const char *s);

/* The value ref names in c (its default when c lacks it). NULL when there is
 * neither; *why then says what the request must carry. Values are refused
 * the same way unless they are 1-256 letters, digits or -._~@+:=,| (they
 * land in config text: Lua code, file paths, topics), and not "." or "..". */
char *sl_ctxref_value(const sl_ctxref_t *ref, const sl_ctx_t *c, char **why);

/* s with every reference replaced by its value in c, or, with c NULL, by
 * its default or "x" (to validate a template). NULL with *why on a missing
 * value. */
char *sl_ctxref_subst(const char *s, const sl_ctx_t *c, char **why);

#endif
