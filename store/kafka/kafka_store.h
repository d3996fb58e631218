/* `store.backend: kafka`: the streams API served from Kafka topics, shared
 * by the files of the backend: kafka_store_conf.c (fields, lint,
 * registration), kafka_store.c (setup, dispatch, topics,
 * publish), kafka_store_reader.c (consumers), kafka_store_read.c
 * (subscriber and group consumes, SSE/WebSocket) and kafka_store_groups.c
 * (describing groups).
 * Ownership: the backend (sl_ks_t) belongs to its worker (SL_SLOT_KSTORE);
 * readers and jobs to the backend, which waits for them when it is freed.
 * Every callback runs on the worker's loop unless it says "in the pool". */
#ifndef SL_KAFKA_STORE_H
#define SL_KAFKA_STORE_H
#include "core/component.h"
#include "core/list.h"
#include "store/store_api.h"
#include <librdkafka/rdkafka.h>

/* Kafka group ids of subscribers: "sluice-sub:<stream>:<subscriber>" (':'
 * is in no stream or subscriber name, so the id names one pair). */
#define SL_KS_SUB_PREFIX "sluice-sub:"
/* The group id of the store's admin consumer (no ':' after the prefix: no
 * subscriber's); it never joins its group, so no broker lists it. */
#define SL_KS_ADMIN_GROUP SL_KS_SUB_PREFIX "admin"

typedef struct sl_kreader sl_kreader_t;
typedef struct sl_ks_topic { char *name; int partitions; } sl_ks_topic_t;

/* Settings of a consumer group given by POST .../group/{group}: this
 * node's, since Kafka keeps no such thing. */
typedef struct sl_ks_gconf {
  struct sl_ks_gconf *next;
  char *stream, *group;
  int auto_commit;
  int64_t session_ms;
} sl_ks_gconf_t;

typedef struct sl_ks {
  sl_worker_t *w;
  rd_kafka_conf_t *consumer_conf;   /* template of every reader (rd_kafka_conf_dup) */
  sl_cnode_t *kconf;                /* store.kafka (a copy): pipelines' `stream` inputs build on it */
  rd_kafka_t *rk;                   /* the producer; most admin requests go through it too */
  rd_kafka_t *grk;                  /* consumer of SL_KS_ADMIN_GROUP: the others (sl_ks_admin); NULL till needed */
  rd_kafka_queue_t *q, *gq;         /* their main queues (logs, errors, delivery reports) */
  struct sl_kafka_wake *wake, *gwake;
  int64_t session_ms, timeout_ms;
  int default_partitions;
  sl_ks_topic_t *topics;            /* from the last metadata */
  int ntopics;
  uint64_t fetched_at;              /* loop ms of that metadata; 0 none */
  int fetching;
  struct ks_wait *waiters;          /* requests waiting for that metadata */
  sl_kreader_t *readers;            /* kept between requests: group members, subscribers */
  struct klive *lives;              /* SSE / WebSocket readers */
  sl_ks_gconf_t *gconfs;
  sl_dlist_t works;                 /* jobs in the pool: the worker's end waits for them */
  int late;                         /* requests answered 503 on their deadline whose work has not ended */
} sl_ks_t;

/* A request held across asynchronous work: a client that leaves is
 * answered 499, and one still waiting after the store's request_timeout
 * while a call to the brokers has waited that long (sl_ks_calling) is
 * answered 503 (expired set: whatever the work does later must change
 * nothing, since the client was told it failed); r turns NULL either way.
 * librdkafka's blocking calls may outlive their own timeouts (a broker
 * frozen with its connections open), so the answer cannot wait for them. */
typedef struct sl_ks_hold {
  sl_http_req_t *r;
  sl_ks_t *ks;               /* NULL: no deadline */
  struct hold_timer *timer;
  int expired, late;         /* late: counted in ks->late until unheld */
} sl_ks_hold_t;
/* ks NULL: no deadline (a publish: its delivery reports answer it). */
void sl_ks_hold(sl_ks_hold_t *h, sl_http_req_t *r, sl_ks_t *ks);
/* The request, no longer watched (NULL when the client left or it expired). */
sl_http_req_t *sl_ks_unhold(sl_ks_hold_t *h);

/* In the pool, just before a blocking call to the brokers: the call that
 * the store's deadlines watch (the job's previous one has returned). */
void sl_ks_calling(void);
/* Work in the libuv pool for calls that block (metadata, watermarks, admin
 * requests waited on): run(arg) in the pool, then done(arg) on the loop. */
void sl_ks_work(sl_ks_t *ks, void (*run)(void *arg), void (*done)(void *arg), void *arg);
/* In the pool: the result of admin request op, waited on for the request
 * timeout (NULL on timeout or error, with *err set). ask(rk, o, q, arg)
 * sends the request with options o (the store's timeout) to q. */
typedef void (*sl_ks_ask_fn)(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg);
rd_kafka_event_t *sl_ks_admin(sl_ks_t *ks, rd_kafka_admin_op_t op, sl_ks_ask_fn ask, void *arg, char **err);

/* The backend's apply (sl_store_backend_t): sets it up on w from the
 * `store:` node and routes the API when api is set; w NULL: lint only. */
int sl_ks_apply(sl_worker_t *w, const sl_cnode_t *node, int api, sl_diags_t *d);

/* Produces n records to topic (murmur2 of the key, `event` and the JSON
 * headers as Kafka headers: as a REST publish) and calls cb from the
 * delivery reports: status 0, or the HTTP status of the first failure. */
void sl_ks_publish(sl_ks_t *ks, const char *topic, const sl_pub_t *recs, size_t n, sl_pub_cb cb, void *arg);
/* Creates topic name (P partitions, 0: store.partitions; retention_hours <
 * 0: the broker's) in the pool and calls cb on the loop: status 0 created or
 * there with P partitions, 409 there with another count, else the error. */
void sl_ks_create_topic(sl_ks_t *ks, const char *name, int P, double retention_hours,
                        void (*cb)(void *arg, int status, const char *err), void *arg);
/* Calls found(ks, r, topic, arg) with the stream's topic, from metadata at
 * most a few seconds old (fetched when needed), or answers r 404 / 503.
 * name NULL: answers r with the list of streams. */
typedef void (*sl_ks_found_cb)(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, char *const *seg);
/* seg: up to 3 path segments handed to found (copied while waiting; unset
 * ones are NULL). */
void sl_ks_topic(sl_ks_t *ks, sl_http_req_t *r, const char *name, sl_ks_found_cb found, char *const *seg, int n);

/* Errors of a cluster still settling (leaders being elected, a group
 * coordinator loading): worth asking again shortly. */
int sl_ks_settling(rd_kafka_resp_err_t e);
/* In the pool: a partition's low and high watermarks, waiting out a leader
 * election (a topic just created) for up to the request timeout. */
rd_kafka_resp_err_t sl_ks_watermarks(sl_ks_t *ks, const char *topic, int p, int64_t *lo, int64_t *hi);
/* In the pool: the ids of every consumer group (caller frees each and the
 * array), or NULL with *err ("ListConsumerGroups: …", also when one broker
 * failed to answer: the list would be partial). */
char **sl_ks_group_ids(sl_ks_t *ks, size_t *n, char **err);
/* In the pool: topic's retention.ms in hours and retention.bytes (0: none),
 * or -1 with *err ("DescribeConfigs of topic: …", the request's error or
 * the topic's own in the answer). */
int sl_ks_retention(sl_ks_t *ks, const char *topic, double *hours, int64_t *bytes, char **err);
/* On the loop: makes the store's admin consumer (sl_ks_admin) unless made;
 * -1 with *err when librdkafka refuses. */
int sl_ks_admin_consumer(sl_ks_t *ks, char **err);
/* In the pool, once the admin consumer is made: committed[p] of group on
 * topic's P partitions (-1: none); 1 when it has any, 0 none, -1 with *err
 * (the brokers' error: a coordinator not ready says so). */
int sl_ks_group_offsets(sl_ks_t *ks, const char *group, const char *topic, int P, int64_t *committed, char **err);

/* A message as the store's record (pointers into m). */
sl_record_t sl_ks_record(const rd_kafka_message_t *m);
/* {"offset","partition","event","data","timestamp","key"[,"headers"]}. */
json_t *sl_ks_event(const rd_kafka_message_t *m);
/* 503 for what the brokers' absence explains, else 500. */
int sl_ks_status(rd_kafka_resp_err_t e);

/* ---- readers (kafka_store_reader.c): one consumer each ---- */
/* A reader of topic's P partitions under Kafka group id `group` (client.id
 * `client`): a member joins the group (partitions assigned by Kafka); any
 * other reads nothing until sl_kreader_seek / sl_kreader_resolve (and
 * commits as the group, which has no members). */
sl_kreader_t *sl_kreader_new(sl_ks_t *ks, const char *topic, int P, const char *group, const char *client, int member,
                             int64_t session_ms, char **err);
/* The next message (the caller destroys it), NULL when none is ready. */
rd_kafka_message_t *sl_kreader_next(sl_kreader_t *r);
/* Called on the loop when messages may be ready (one waiter at a time;
 * NULL: none). */
void sl_kreader_on_ready(sl_kreader_t *r, void (*cb)(void *arg), void *arg);
/* Every partition it reads has been read to its end. */
int sl_kreader_at_end(const sl_kreader_t *r);
/* Its partitions (assigned[p]) and the number of assignments it has seen. */
const char *sl_kreader_assigned(const sl_kreader_t *r, uint64_t *generation);
/* What went wrong last with the brokers, or NULL. */
const char *sl_kreader_error(const sl_kreader_t *r);
/* Next offset per partition as far as this reader knows (-1 unknown). */
int64_t *sl_kreader_positions(sl_kreader_t *r);
/* Assigns every partition p at start[p] (an offset, or
 * RD_KAFKA_OFFSET_STORED: the group's committed one); not for members. */
void sl_kreader_seek(sl_kreader_t *r, const int64_t *start);
/* Commits next[p] (those >= 0) as the group's offsets; done (NULL: failures
 * are logged) runs on the loop with the broker's answer. */
void sl_kreader_commit(sl_kreader_t *r, const int64_t *next, void (*done)(void *arg, const char *err), void *arg);
/* Turns the RD_KAFKA_OFFSET_STORED entries of start (kept by the caller
 * until done) into the group's committed offsets, or the earliest kept, in
 * the pool (cap >= 0: at most cap, and cap where nothing is committed);
 * then seeks r there (if_moved: only when they are not where r got to, i.e.
 * another node moved them) and calls done (err NULL) on the loop. A close
 * asked for meanwhile waits for it. */
void sl_kreader_resolve(sl_kreader_t *r, int64_t *start, int64_t cap, int if_moved,
                        void (*done)(void *arg, const char *err), void *arg);
/* Closes the consumer in the pool (leaves its group, 5 s at most) and frees r
 * (on a thread of its own: librdkafka may take long to let go); a waiter
 * (sl_kreader_on_ready) is called once more first, and must let go of r. */
void sl_kreader_close(sl_kreader_t *r);
int sl_kreader_closing(const sl_kreader_t *r);
/* Readers kept between requests: found by (topic, group, client); client
 * NULL: any. */
sl_kreader_t *sl_kreader_find(sl_ks_t *ks, const char *topic, const char *group, const char *client);
/* Keeps r (idle ones close after idle_ms without sl_kreader_touch). */
void sl_kreader_keep(sl_kreader_t *r, int64_t idle_ms);
void sl_kreader_touch(sl_kreader_t *r);
int sl_kreader_partitions(const sl_kreader_t *r);
/* Closes every reader now, blocking (the worker is going). */
void sl_kreader_close_all(sl_ks_t *ks);

/* ---- requests (kafka_store_read.c, kafka_store_groups.c) ---- */
void sl_ks_consume(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *sub);
void sl_ks_live(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *kind, const char *sub);
/* The topic was deleted through this node: its live readers end (1001). */
void sl_ks_live_deleted(sl_ks_t *ks, const char *topic);
void sl_ks_group_consume(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group);
void sl_ks_group_commit(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group);
void sl_ks_group_leave(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group, const char *consumer);
/* GET .../groups (group NULL) and GET/POST .../group/{group}. */
void sl_ks_groups(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group, int create);
sl_ks_gconf_t *sl_ks_gconf(sl_ks_t *ks, const char *stream, const char *group);

#endif
