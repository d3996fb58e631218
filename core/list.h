/* An intrusive doubly-linked list: each member embeds an sl_dnode_t, the
 * list holds its first; members go in at the head and out from anywhere in
 * O(1). The list owns nothing (members belong to whoever made them) and is
 * not thread-safe (one thread touches a list). A removed member's next
 * stays as it was, so that a walk may remove the member it stands on. */
#ifndef SL_LIST_H
#define SL_LIST_H
#include <stddef.h>

typedef struct sl_dnode {
  struct sl_dnode *prev, *next;
} sl_dnode_t;

typedef struct sl_dlist {
  sl_dnode_t *first;
} sl_dlist_t;

static inline void sl_dlist_push(sl_dlist_t *l, sl_dnode_t *n) {
  n->prev = NULL;
  if ((n->next = l->first)) l->first->prev = n;
  l->first = n;
}

/* A node that is in no list (never pushed: both links NULL, and not l's
 * first) is left alone. */
static inline void sl_dlist_remove(sl_dlist_t *l, sl_dnode_t *n) {
  if (n->prev) n->prev->next = n->next;
  else if (l->first == n) l->first = n->next;
  else return;
  if (n->next) n->next->prev = n->prev;
}

/* The member of type holding node at field (NULL for NULL). */
#define SL_DLIST_ENTRY(node, type, field) \
  ((node) ? (type *)(void *)((char *)(node) - offsetof(type, field)) : (type *)NULL)
#define SL_DLIST_FIRST(l, type, field) SL_DLIST_ENTRY((l)->first, type, field)
#define SL_DLIST_NEXT(var, type, field) SL_DLIST_ENTRY((var)->field.next, type, field)

/* Each member as `type *var`, its next read after the body (which may
 * remove var, not free it). */
#define SL_DLIST_EACH(l, type, field, var) \
  for (type *var = SL_DLIST_FIRST(l, type, field); var; var = SL_DLIST_NEXT(var, type, field))

#endif
