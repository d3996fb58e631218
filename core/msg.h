/* Messages, batches and request contexts.
 * Ownership: a message is owned by whoever holds its pointer (one owner);
 * sl_msg_free releases its bytes, metadata, context and transaction refs.
 * Bytes are refcounted and immutable, so sl_msg_clone is cheap. */
#ifndef SL_MSG_H
#define SL_MSG_H
#include <stddef.h>
#include <stdint.h>

typedef struct sl_txn sl_txn_t;

/* Immutable refcounted byte buffer. */
typedef struct sl_bytes {
  int refs;
  size_t len;
  char data[];               /* NUL-terminated for convenience, len excludes it */
} sl_bytes_t;

sl_bytes_t *sl_bytes_new(const void *data, size_t len);    /* refs = 1; len 0: a shared empty buffer */
sl_bytes_t *sl_bytes_ref(sl_bytes_t *b);
void sl_bytes_unref(sl_bytes_t *b);

/* Ordered string list of key/value pairs; keys may repeat (headers).
 * sl_kv_copy into an empty list shares the entries (copy-on-write: the
 * first change to either list copies them), so cloning a message does not
 * copy its metadata. A list may also be deferred: its entries come from a
 * source the first time it is read or changed (an input's metadata most
 * pipelines never look at). Call sl_kv_load before reading n or v[]
 * directly; the sl_kv_* functions load by themselves. Change a list only
 * with sl_kv_*. */
typedef struct sl_kv { char *key; char *val; size_t vlen; } sl_kv_t;   /* val lives in key's allocation */
typedef struct sl_kv_src sl_kv_src_t;
typedef struct sl_kvlist { sl_kv_t *v; uint32_t n, cap; uint32_t *shared; int packed; sl_kv_src_t *src; } sl_kvlist_t;

/* Where a deferred list's entries come from. Refcounted: each list sharing
 * it (copies of a deferred list) holds a ref and loads its own entries;
 * load runs on the loop thread and fills the empty list it is given (with
 * sl_kv_pack or sl_kv_add); release runs when the last ref goes. */
struct sl_kv_src {
  int refs;
  void (*load)(sl_kv_src_t *s, sl_kvlist_t *into);
  void (*release)(sl_kv_src_t *s);
};
void sl_kv_defer(sl_kvlist_t *l, sl_kv_src_t *s);   /* clears l; takes the caller's ref to s */
void sl_kv_load(const sl_kvlist_t *l);               /* a deferred list gets its entries now */

const char *sl_kv_get(const sl_kvlist_t *l, const char *key);          /* first match or NULL */
const sl_kv_t *sl_kv_find(const sl_kvlist_t *l, const char *key);
void sl_kv_set(sl_kvlist_t *l, const char *key, const char *val, size_t vlen); /* replace or append; copies */
void sl_kv_add(sl_kvlist_t *l, const char *key, const char *val, size_t vlen); /* append; copies */
int  sl_kv_del(sl_kvlist_t *l, const char *key);                      /* 1 if removed */
void sl_kv_copy(sl_kvlist_t *dst, const sl_kvlist_t *src);
/* Replaces l with copies of src[0..n) in one allocation (for inputs that set
 * a message's metadata at once); the first change unpacks it. */
void sl_kv_pack(sl_kvlist_t *l, const sl_kv_t *src, uint32_t n);
void sl_kv_clear(sl_kvlist_t *l);

/* The answer to a request, filled by `sync_response` and sent by the input
 * that received the request once the transaction completes. Refcounted:
 * held by the request's context and by that input. */
typedef struct sl_reply {
  int refs;
  int set;                   /* a sync_response wrote it */
  int status;
  sl_bytes_t *body;          /* NULL until set */
  sl_kvlist_t headers;
  struct sl_msg *msg;        /* owned copy of the message that set it (without txn and ctx:
                                the input's sync_response interpolates on it), or NULL */
  int keep_msg;              /* set by the input before the request goes in: it wants msg
                                (a copy per request costs the others for nothing) */
} sl_reply_t;

sl_reply_t *sl_reply_new(void);              /* refs = 1 */
sl_reply_t *sl_reply_ref(sl_reply_t *r);
void sl_reply_unref(sl_reply_t *r);

/* Request context: who produced (or consumes) a message. Refcounted and
 * read-only once shared; inputs without a request leave msg->ctx NULL. */
typedef struct sl_ctx {
  int refs;
  char *method, *path, *remote_addr, *request_id, *user;
  char *strs;                /* non-NULL: the block method .. request_id live in (sl_ctx_set_strs) */
  sl_kvlist_t query, headers, params, cookies, jwt; /* jwt: claim -> JSON-encoded value */
  sl_reply_t *reply;         /* ref; set when the request can be answered */
} sl_ctx_t;

sl_ctx_t *sl_ctx_new(void);                  /* refs = 1, all fields empty */
sl_ctx_t *sl_ctx_ref(sl_ctx_t *c);
void sl_ctx_unref(sl_ctx_t *c);
/* Sets a new context's method, path, remote_addr and request_id as copies
 * in one allocation (an HTTP input makes one a request). */
void sl_ctx_set_strs(sl_ctx_t *c, const char *method, const char *path, const char *remote_addr,
                     const char *request_id);

typedef struct sl_msg {
  sl_bytes_t *content;       /* never NULL */
  sl_kvlist_t meta;
  sl_ctx_t *ctx;             /* ref, may be NULL */
  sl_txn_t *txn;             /* ref, may be NULL */
  char *error;               /* non-NULL: the message is flagged as failed */
  uint64_t seq;              /* input sequence number, for ids and ordering */
} sl_msg_t;

sl_msg_t *sl_msg_new(const void *data, size_t len);
sl_msg_t *sl_msg_new_bytes(sl_bytes_t *b);   /* takes the caller's ref */
sl_msg_t *sl_msg_clone(const sl_msg_t *m);   /* shares bytes, copies meta, refs ctx and txn */
void sl_msg_free(sl_msg_t *m);               /* releases the txn ref: counts as delivered/dropped */
void sl_msg_set_content(sl_msg_t *m, const void *data, size_t len);
void sl_msg_set_bytes(sl_msg_t *m, sl_bytes_t *b);   /* takes the caller's ref */
void sl_msg_set_error(sl_msg_t *m, const char *err); /* NULL clears the flag */
void sl_msg_set_txn(sl_msg_t *m, sl_txn_t *t);       /* refs t, drops the old one */
void sl_msg_set_ctx(sl_msg_t *m, sl_ctx_t *c);       /* refs c, drops the old one */
/* Before m moves to another thread (a pool worker and back): its bytes and
 * metadata stop being shared with any other message (copied if they are)
 * and deferred metadata is loaded here, on the thread that owns its source.
 * Its context is shared still: those refs are atomic. */
void sl_msg_isolate(sl_msg_t *m);

/* A batch is an owned vector of owned messages. */
typedef struct sl_batch {
  sl_msg_t **msgs;
  uint32_t n, cap;
} sl_batch_t;

sl_batch_t *sl_batch_new(uint32_t cap_hint);
void sl_batch_push(sl_batch_t *b, sl_msg_t *m);       /* takes ownership of m */
void sl_batch_free(sl_batch_t *b);                    /* frees every message */
void sl_batch_free_shell(sl_batch_t *b);              /* frees the vector only */
sl_batch_t *sl_batch_clone(const sl_batch_t *b);
void sl_batch_fail(sl_batch_t *b, const char *err);   /* fails every txn, then frees all */
size_t sl_batch_bytes(const sl_batch_t *b);

#endif
