/* The streams API (REST, SSE, WebSocket under /stream/) and the interface
 * of the store's backends: the API's entry (access rules, then the
 * backend's handler), the helpers every backend answers with
 * (store_http.c), live SSE/WebSocket readers fed by a backend's source
 * (store_live.c), and the backends' vtable, chosen by `store.backend`
 * (store_conf.c). Backends: store/embedded/ and store/kafka/.
 * Ownership: handlers answer the request they are given, as in http.h;
 * json_t arguments passed to sl_api_json are taken. */
#ifndef SL_STORE_API_H
#define SL_STORE_API_H
#include "store_pub.h"
#include "streams.h"
#include "core/conf.h"
#include "core/embedded.h"
#include "core/spec.h"
#include "http/http.h"
#include <jansson.h>

#define SL_STORE_API_PREFIX "/stream/"

/* docs/openapi.json ("docs.openapi"), served at /openapi.json. */
extern const sl_embedded_t sl_embedded_store[];

/* Routes the API on w's server (a backend's apply, with the `store:`
 * section's api: true): every request under the prefix that the access
 * rules let through goes to handler(r, arg). */
int sl_store_api_route(sl_worker_t *w, sl_diags_t *d, const sl_cnode_t *at, void (*handler)(sl_http_req_t *r, void *arg),
                       void *arg);

void sl_api_json(sl_http_req_t *r, int status, json_t *j);
void sl_api_error(sl_http_req_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The request body as a JSON object, or NULL (answered 400). */
json_t *sl_api_body(sl_http_req_t *r);
/* Overrides c with a create body's settings (partitions, retention_hours,
 * retention_bytes, segment_bytes, end_events, fsync); -1 with *why (caller
 * frees) when one has the wrong type or range. */
int sl_api_sconf(json_t *body, sl_sconf_t *c, char **why);
/* The publish body ({"events":[…]} or one event), or -1 (answered 400). */
int sl_api_pubs(sl_http_req_t *r, sl_pubs_t *out);
/* The member a group consume is for: ?consumer=, or one the requests that
 * name none share (Synap's clients name none: each event of the group then
 * goes to one of them). Caller frees. */
#define SL_API_DEFAULT_CONSUMER "default"
char *sl_api_consumer(sl_http_req_t *r);
/* POST …/group/{group}'s settings: each -1 when not given; -1 (answered 400)
 * when the body is not JSON or a value is out of range. */
int sl_api_group_settings(sl_http_req_t *r, int *auto_commit, int64_t *session_ms);
/* GET …/info and …/stats (one answer, in the shape of Synap's stats):
 * info (taken: name and settings, partition_count) gets message_count,
 * bytes, min_offset, max_offset, subscribers (their number),
 * subscriber_names (subs, taken) and partitions: [{partition,
 * message_count, min_offset, max_offset, bytes}], from each partition's
 * first and next offsets; bytes NULL: not known (null). Returns info. */
json_t *sl_api_info(json_t *info, int P, const int64_t *lo, const int64_t *hi, const int64_t *bytes, json_t *subs);
/* Keeps in such an answer (info, or any other JSON: then nothing) only the
 * subscribers r may see (store.access), and counts those. */
void sl_api_info_visible(const sl_http_req_t *r, json_t *info);
/* {"offset","partition","event","data","timestamp","key"[,"headers"]}. */
json_t *sl_api_event(const sl_record_t *rec, int partition);
int sl_api_uint(sl_http_req_t *r, const char *name, uint64_t *out);
/* A subscriber consume's next_offset from its next offset per partition
 * (partition: the one asked for, -1 all): across several partitions the
 * highest. */
uint64_t sl_api_next_offset(const uint64_t *pos, int P, int partition);
/* Where a subscriber consume of every partition (partition -1) of several
 * starts partition p when asked for from_offset `from`: at most where it
 * got to (saved; UINT64_MAX: nowhere yet), so that from_offset=next_offset
 * goes on exactly where the last answer ended. */
uint64_t sl_api_from_offset(uint64_t from, uint64_t saved, int P, int partition);

/* Splits r's path under the prefix into at most 5 segments (*path, which
 * the caller frees, holds them); returns their count, 0 or 6 when there
 * are none or too many. */
int sl_api_split(sl_http_req_t *r, char **path, char *seg[6]);
/* Answers a publish: {"offset","partition"}, or {"offsets":[...]} in order
 * for the batch form; status >= 400 answers err instead. */
void sl_api_published(sl_http_req_t *r, int batch, int status, const char *err, const int *parts,
                      const uint64_t *offs, size_t n);

/* ---- live readers (SSE / WebSocket), whatever feeds them ---- */
typedef struct sl_live sl_live_t;
typedef struct sl_live_src {
  /* Sends what is ready through sl_live_send until it returns nonzero; 1:
   * more is ready (called again after other work), 0: wait for
   * sl_live_wake, -1: read error (ends the reader). */
  int (*pump)(void *arg, sl_live_t *l);
  /* The reader is over (client left or sl_live_stop): pos holds the next
   * offset per partition, NULL when the client was never answered. arg is
   * the source's to free. */
  void (*end)(void *arg, const uint64_t *pos, int P);
} sl_live_src_t;
/* Answers r with an SSE stream or a WebSocket (kind "sse" / "ws") fed by
 * src from pos (next offset per partition, taken). stream_ends is the
 * stream's default end_events; cache_id, unique per stream, lets readers
 * share each record's JSON (0: not shared). NULL when the client is
 * already gone (src->end has run). */
sl_live_t *sl_live_open(sl_http_req_t *r, sl_worker_t *w, const char *kind, int P, uint64_t *pos,
                        const char *stream_ends, uint64_t cache_id, const sl_live_src_t *src, void *arg);
/* Sends one record of partition p; nonzero: stop this turn. */
int sl_live_send(sl_live_t *l, const sl_record_t *rec, int p);
/* The next offset per partition, as far as the reader was sent. */
const uint64_t *sl_live_pos(const sl_live_t *l);
/* New records may be ready. */
void sl_live_wake(sl_live_t *l);
/* Ends the reader from the server side (WebSocket close code and reason). */
void sl_live_stop(sl_live_t *l, int code, const char *why);
/* Ends every reader so (a shutdown: 1001), on the engine's loop. */
void sl_live_stop_all(int code, const char *why);
/* Where a reader starts: Last-Event-ID / ?last_event_id= ("p:o,…", or one
 * offset for partition 0), else ?from_offset=, else saved (NULL: 0); given[p]
 * (optional) tells which partitions the request named. 0, or -1 answered
 * (400 for an id that is not such a list). */
int sl_live_start_positions(sl_http_req_t *r, const uint64_t *saved, uint64_t *pos, int P, int *given);

/* ---- backends (store/embedded/, store/kafka/), chosen by `store.backend` ---- */
typedef struct sl_store_backend {
  const char *name;
  /* Its own fields of the `store:` section, after the shared ones in the
   * section's table (terminated by {0}; NULL: none). */
  const sl_field_t *fields;
  /* Optional lint of a `store:` node that names this backend (root: the
   * whole config); returns the number of errors added. */
  int (*check)(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d);
  /* Sets the backend up on w from the `store:` section and routes the API
   * (sl_store_api_route) when api is set; w is NULL when only linting
   * (check node, start nothing). */
  int (*apply)(sl_worker_t *w, const sl_cnode_t *node, int api, sl_diags_t *d);
} sl_store_backend_t;
void sl_store_backend_register(const sl_store_backend_t *b);
const sl_store_backend_t *sl_store_backend_find(const char *name);
/* In name order; NULL past the end. */
const sl_store_backend_t *sl_store_backend_at(unsigned i);
#define SL_REGISTER_STORE_BACKEND(var) \
  static void __attribute__((constructor)) sl_register_backend_##var(void) { sl_store_backend_register(&var); }

#endif
