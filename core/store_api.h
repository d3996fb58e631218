/* The store's HTTP API (store_http.c), shared by its files: consumer groups
 * (store_group.c) and live SSE/WebSocket readers (store_live.c).
 * Ownership: handlers answer the request they are given, as in http.h;
 * json_t arguments passed to sl_api_json are taken. */
#ifndef SL_STORE_API_H
#define SL_STORE_API_H
#include "conf.h"
#include "http.h"
#include "store.h"
#include <jansson.h>

#define SL_STORE_API_PREFIX "/stream/"

/* Routes the API on w's server (the `store:` section with api: true). */
int sl_store_api_route(sl_worker_t *w, sl_diags_t *d, const sl_cnode_t *at);

void sl_api_json(sl_http_req_t *r, int status, json_t *j);
void sl_api_error(sl_http_req_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The request body as a JSON object, or NULL (answered 400). */
json_t *sl_api_body(sl_http_req_t *r);
/* {"offset","partition","event","data","timestamp","key"[,"headers"]}. */
json_t *sl_api_event(const sl_record_t *rec, int partition);
int sl_api_uint(sl_http_req_t *r, const char *name, uint64_t *out);
sl_sstream_t *sl_api_stream(sl_http_req_t *r, sl_store_t *st, const char *name);
int sl_api_position(sl_http_req_t *r, sl_sstream_t *s, int p, uint64_t from, const char *reset, uint64_t *pos);
#define sl_api_loop sl_store_loop

/* Answers r now when try(arg, wait_ms == 0) can, else waits up to wait_ms
 * for appends to s (woken by them, no polling) and asks again; try answers
 * r and returns 1, or returns 0 (with answer_empty set it must answer).
 * done(arg) runs once it is over, also when the client left or s was
 * deleted (answered 499 / 404 here). */
void sl_api_longpoll(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, uint64_t wait_ms,
                     int (*try)(void *arg, int answer_empty), void (*done)(void *arg), void *arg);

/* GET /stream/{name}/sse/{subscriber} and /ws/{subscriber}. */
void sl_store_live(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, const char *kind, const char *sub);
/* /stream/{name}/group/{group}[/consume|/commit] and /stream/{name}/groups;
 * seg[0] is "group" or "groups". */
void sl_store_group_api(sl_http_req_t *r, sl_store_t *st, sl_sstream_t *s, char **seg, int n);

#endif
