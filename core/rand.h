/* Random identifiers. Thread-safe (per-thread state); nothing allocated. */
#ifndef SL_RAND_H
#define SL_RAND_H
#include <stdint.h>

/* Writes a random (v4) UUID and a NUL into out[37]; returns 36. */
int sl_uuid_v4(char *out);

/* 64 random bits (never 0: trace and span ids use 0 for "none"). */
uint64_t sl_rand64(void);

#endif
