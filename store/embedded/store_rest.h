/* The embedded store's side of the streams API, shared by its files:
 * store_rest.c (dispatch, streams, publish, subscriber consumes, live
 * readers), store_group.c (consumer groups) and embedded.c (the backend).
 * Ownership: handlers answer the request they are given (store/store_api.h). */
#ifndef SL_STORE_REST_H
#define SL_STORE_REST_H
#include "store.h"
#include "http/http.h"

/* Every request of the API for the store of worker arg (after the access
 * rules). */
void sl_store_rest(sl_http_req_t *r, void *arg);

/* The stream named in the path, or an answered 404 (503: it cannot be
 * opened). */
sl_sstream_t *sl_api_stream(sl_http_req_t *r, sl_store_t *st, const char *name);
/* Resolves where a reader of partition p starts when asked for `from`:
 * 0 with *pos, or an answered 416 naming the valid range. */
int sl_api_position(sl_http_req_t *r, sl_sstream_t *s, int p, uint64_t from, const char *reset, uint64_t *pos);

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
