/* Redis Cluster's key slots: which of the 16384 slots a key belongs to
 * (CRC16 of the key, or of its first non-empty `{hash tag}`), and which
 * argument of a command is its first key, for routing a command to the
 * node that owns it (redis_cluster.c) and for checking at lint that keys
 * a component uses together share a slot.
 * Ownership: pure functions on borrowed arguments. */
#ifndef SL_REDIS_SLOT_H
#define SL_REDIS_SLOT_H
#include <stddef.h>

#define SL_REDIS_SLOTS 16384

/* The slot of key (len bytes, binary-safe). */
int sl_redis_key_slot(const char *key, size_t len);

/* The index in argv of the command's first key, or -1 for a command without
 * one (PING, INFO, an EVAL with no keys). argv[0] is the command name. */
int sl_redis_key_arg(int argc, const char *const *argv, const size_t *lens);

#endif
