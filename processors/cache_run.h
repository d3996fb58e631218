/* One cache operation per message of a batch, for the processors that use
 * cache resources (cache, dedupe, cached): the batch is handed on, in its
 * order, once every answer came (at once on the memory backend, later on a
 * network one). Owned by the processor that starts it; a run frees itself
 * after done. The processor must outlive its runs, which it does: it is
 * destroyed only once every transaction has completed. */
#ifndef SL_PROC_CACHE_RUN_H
#define SL_PROC_CACHE_RUN_H
#include "cache/cache.h"
#include "core/component.h"
#include "lua/lhost.h"

typedef struct sl_cache_run_vt {
  /* Fills rq for message i and returns 0; or returns 1 to leave the message
   * alone, or -1 having flagged it. What rq points to may be put in keep[]
   * (malloc'd; freed once the operation started). */
  int (*prep)(sl_processor_t *p, sl_msg_t *m, uint32_t i, sl_cache_req_t *rq, char *keep[2]);
  /* The answer for m: returns 1 to drop m (freed, so acked), 0 to keep it. */
  int (*result)(sl_processor_t *p, sl_msg_t *m, const sl_cache_res_t *r);
  /* Every answer came: b without the dropped messages (b may be empty). */
  void (*done)(sl_processor_t *p, sl_batch_t *b);
} sl_cache_run_vt;

void sl_cache_run(sl_processor_t *p, sl_cache_t *c, const sl_cache_run_vt *vt, sl_batch_t *b);

/* Evaluates an interpolated field for m: malloc'd text, or NULL having
 * flagged m with "<proc>: <field>: <error>". */
char *sl_cache_run_eval(sl_interp_t *ip, sl_msg_t *m, uint32_t i, size_t *len, const char *what);

/* Evaluates an interpolated TTL for m into *ttl_ms (a duration; empty: the
 * resource's default_ttl): 0, or -1 having flagged m. */
int sl_cache_run_ttl(sl_interp_t *ip, sl_msg_t *m, uint32_t i, const char *what, int64_t *ttl_ms);

/* The resource a component's field names: 0 (*out is NULL when only
 * linting), or -1 with a diagnostic at the field. */
int sl_cache_run_resource(sl_build_t *b, const sl_cnode_t *conf, const char *field, sl_cache_t **out);

#endif
