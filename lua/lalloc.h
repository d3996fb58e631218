/* Small blocks for a Lua VM's allocator: freed blocks of up to 256 bytes
 * are kept per 16-byte size class and handed out again, so that the
 * garbage collector's sweeps (thousands of frees at once) and the next
 * objects' allocations skip malloc's coalescing (a fifth of an
 * http.request's CPU went to malloc and free, most of it Lua's).
 * Ownership and threads: one per VM, used only on its thread; blocks kept
 * are freed by sl_lalloc_drain (at lua_close). At most SL_LALLOC_KEEP
 * bytes are kept (a collection cycle's garbage of a busy script); more go
 * back to malloc. */
#ifndef SL_LALLOC_H
#define SL_LALLOC_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SL_LALLOC_CLASSES 16
#define SL_LALLOC_KEEP (8u << 20)

typedef struct sl_lalloc {
  void *free[SL_LALLOC_CLASSES];   /* each block's first word links the next */
  size_t kept;                     /* bytes in the lists */
} sl_lalloc_t;

/* Any resize (lua_Alloc's contract without accounting): ptr of osize
 * bytes (NULL, 0 for a new block) becomes nsize bytes; NULL when nsize is
 * 0 (ptr freed) or when memory ran out (ptr untouched). osize must be the
 * size the block was last given (LuaJIT passes it exactly). */
void *sl_lalloc_any(sl_lalloc_t *a, void *ptr, size_t osize, size_t nsize);

/* sl_lalloc_any, with its two common cases here to be inlined into the
 * VM's allocator: a new block taken from its class's list and a block put
 * back on it (a VM allocates or frees ~37 times per enrichment call, and
 * the call into lalloc.c with its general checks was ~45 instructions of
 * each). Sizes 1..256 are classes 0..15 by (size - 1) >> 4; a 0 wraps and
 * takes the general path. */
static inline void *sl_lalloc(sl_lalloc_t *a, void *ptr, size_t osize, size_t nsize) {
  if (!ptr) {
    if (nsize - 1 < SL_LALLOC_CLASSES * 16) {
      void **list = &a->free[(nsize - 1) >> 4], *p = *list;
      if (p) {
        memcpy(list, p, sizeof p);
        a->kept -= ((nsize + 15) >> 4) << 4;
        return p;
      }
    }
  } else if (!nsize && osize - 1 < SL_LALLOC_CLASSES * 16) {
    size_t bytes = ((osize + 15) >> 4) << 4;
    if (a->kept + bytes <= SL_LALLOC_KEEP) {
      void **list = &a->free[(osize - 1) >> 4];
      memcpy(ptr, list, sizeof ptr);
      *list = ptr;
      a->kept += bytes;
      return NULL;
    }
  }
  return sl_lalloc_any(a, ptr, osize, nsize);
}

void sl_lalloc_drain(sl_lalloc_t *a);

#endif
