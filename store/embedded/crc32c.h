/* CRC-32C (Castagnoli), the checksum of store records (as in Kafka's record
 * batches and ext4). Debian packages no C library for it, so it is here:
 * the SSE4.2 instruction when the CPU has it, else a table. */
#ifndef SL_CRC32C_H
#define SL_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* crc of n bytes, continuing from crc (0 to start). */
uint32_t sl_crc32c(uint32_t crc, const void *data, size_t n);

#endif
