/* Small blocks (messages, their bytes) kept for reuse per thread, with a
 * shared depot between threads. With pipeline.threads a block is often
 * made on one thread and freed on another (the stream's loop creates a
 * message, a pool worker drops it; a worker sets new content, the output
 * frees it on the stream's loop): glibc's per-thread cache holds 7 blocks
 * a size, so the rest went back to the other thread's arena under its
 * lock, and the other thread made new ones from its bins (a fifth of a
 * one-field filter's CPU at two threads was malloc and free). Here a
 * thread that frees more than it makes hands whole magazines (runs of
 * blocks) to the depot, one lock for hundreds of blocks, and a thread that
 * makes more takes them from there.
 * Ownership: sl_blocks_get returns a block of at least size bytes that the
 * caller owns; it goes back with sl_blocks_put and the same size (or with
 * nothing else: never free() one). Any thread; a thread's cache goes to
 * the depot when the thread ends. Sanitized builds keep nothing (ASan sees
 * every use after free). */
#ifndef SL_BLOCKS_H
#define SL_BLOCKS_H
#include <stddef.h>

/* Larger blocks are plain malloc/free; 2048 keeps a 1 KiB payload's bytes. */
#define SL_BLOCKS_MAX 2048

void *sl_blocks_get(size_t size);
void *sl_blocks_zero(size_t size);   /* sl_blocks_get, zeroed (for what was calloc'd) */
void sl_blocks_put(void *p, size_t size);

#endif
