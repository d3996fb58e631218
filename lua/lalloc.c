#include "lalloc.h"
#include <stdlib.h>
#include <string.h>

#define MAX_SMALL (SL_LALLOC_CLASSES * 16)

/* 1..16 for sizes 1..256; a block of class c was malloc'ed with c * 16 bytes. */
static size_t class_of(size_t size) { return (size + 15) >> 4; }

static void *get(sl_lalloc_t *a, size_t c) {
  void *p = a->free[c - 1];
  if (!p) return malloc(c << 4);
  memcpy(&a->free[c - 1], p, sizeof(void *));
  a->kept -= c << 4;
  return p;
}

static void put(sl_lalloc_t *a, void *p, size_t c) {
  if (a->kept + (c << 4) > SL_LALLOC_KEEP) {
    free(p);
    return;
  }
  memcpy(p, &a->free[c - 1], sizeof(void *));
  a->free[c - 1] = p;
  a->kept += c << 4;
}

void *sl_lalloc_any(sl_lalloc_t *a, void *ptr, size_t osize, size_t nsize) {
  if (!ptr) osize = 0;
  int osmall = ptr && osize <= MAX_SMALL, nsmall = nsize && nsize <= MAX_SMALL;
  if (nsize == 0) {
    if (osmall) put(a, ptr, class_of(osize));
    else free(ptr);
    return NULL;
  }
  if (!osmall && !nsmall) return realloc(ptr, nsize);
  if (osmall && nsmall && class_of(osize) == class_of(nsize)) return ptr;
  void *p = nsmall ? get(a, class_of(nsize)) : malloc(nsize);
  if (!p) return NULL;
  if (ptr) {
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    if (osmall) put(a, ptr, class_of(osize));
    else free(ptr);
  }
  return p;
}

void sl_lalloc_drain(sl_lalloc_t *a) {
  for (size_t c = 1; c <= SL_LALLOC_CLASSES; c++)
    while (a->free[c - 1]) free(get(a, c));
}
