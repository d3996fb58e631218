/* Random identifiers. Thread-safe (per-thread state); nothing allocated. */
#ifndef SL_RAND_H
#define SL_RAND_H

/* Writes a random (v4) UUID and a NUL into out[37]; returns 36. */
int sl_uuid_v4(char *out);

#endif
