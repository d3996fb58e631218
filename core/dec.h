/* Integers in decimal, without snprintf (whose formatting was a tenth of
 * a Kafka consumer's time and most of encoding a number to JSON).
 * Ownership: the caller's buffer, SL_DEC_MAX bytes at least; nothing is
 * kept; no NUL is written. Any thread. */
#ifndef SL_DEC_H
#define SL_DEC_H
#include <stddef.h>
#include <stdint.h>

#define SL_DEC_MAX 20   /* "-9223372036854775808", "18446744073709551615" */

/* The digits of v into buf; returns their count. */
size_t sl_dec_u64(char *buf, uint64_t v);

/* The same with a '-' before a negative v. */
size_t sl_dec(char *buf, int64_t v);

#endif
