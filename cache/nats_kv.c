/* The `nats_kv` cache backend (Benthos' `nats_kv` cache): keys of a NATS
 * JetStream key-value bucket. cnats's KV calls are request/reply that wait
 * for the server, so they run on the link's pump threads (clients/nats_link.h),
 * `max_in_flight` side by side on one connection; the loop only queues
 * requests and takes the answers, woken through the link's queue. get is a
 * KV get, set a put, add a create (refused when the key is there), delete a
 * get then a delete (so that it can say whether the key was there), incr a
 * get then an update expecting that revision (a create for a missing key),
 * tried again when another writer came in between.
 *
 * A link per worker loop, as cache/redis.c has: the engine's worker attaches
 * when the section is applied; a pipeline.threads worker makes its own at
 * its first operation (sl_cache_loop) and answers there. The resource's
 * mutex guards the list of links.
 *
 * Ownership: a request belongs to the loop until queued, then to the shared
 * state (the link's setup_arg), which the link frees with what it still
 * holds once its threads and the loop are all done with it; callbacks run
 * on the loop that started the operation, or at the latest in detach. */
#include "cache.h"
#include "clients/nats_link.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xalloc.h"
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Operations queued at most (then refused), and tries of an incr that
 * another writer keeps beating. */
enum { MAX_WAITING = 10000, INCR_TRIES = 16, INCR_STRIPES = 64, MAX_KEY = 1024, END_WAIT_MS = 3000,
       MAX_BUSY = 64, LOOK_AHEAD = 64 };

typedef struct kvreq {
  struct kvreq *next;
  sl_cache_op_t op;
  char *key;                 /* NUL-terminated: checked to be a KV key */
  char *val;
  size_t vlen;
  int64_t by;
  sl_cache_cb cb;
  void *arg;
  sl_cache_status_t status;  /* the answer, made on the link's thread */
  char *rval, *err;
  size_t rlen;
  int64_t n;
} kvreq_t;

/* Between a loop and its link's pump threads (the link's setup_arg). */
typedef struct shared {
  uv_mutex_t mu;
  uv_cond_t more;
  kvreq_t *todo, **todo_tail, *done, **done_tail;
  int waiting;               /* todo and those being run */
  int closing;
  const char *busy[MAX_BUSY];   /* keys being run by a pump */
  int nbusy;
  /* the pump threads only */
  char *bucket, *urls;
  int64_t timeout_ms;
  natsConnection *nc;
  jsCtx *js;
  uv_mutex_t kvmu;           /* kv, looked up by the first pump that needs it */
  kvStore *kv;
} shared_t;

typedef struct kvcache kvcache_t;

/* The resource's connection on one worker's loop. */
typedef struct kvlink {
  struct kvlink *next;
  kvcache_t *c;
  uv_loop_t *loop;
  sl_nats_t *link;
  shared_t *sh;
  int up;                    /* the link's last word: connected, or why not */
  char why[512];
} kvlink_t;

struct kvcache {
  uv_mutex_t mu;             /* links */
  sl_nats_conf_t *conf;      /* each link connects with a copy */
  char *urls, *bucket;       /* as configured, to say that a reload's change waits for a restart */
  int64_t timeout_ms, in_flight;
  kvlink_t *links;
};

static const sl_field_t fields[] = {
  SL_NATS_COMMON_FIELDS,
  {"bucket", SL_F_STRING, NULL, SL_REQUIRED,
   "The key-value bucket (made beforehand, e.g. `nats kv add NAME`; its `max_age` is the keys' TTL).", NULL, NULL},
  {"timeout", SL_F_DURATION, "5s", SL_ADVANCED,
   "How long an operation waits for the server's answer before it fails (sluice adds it; cnats's JetStream "
   "request timeout).", NULL, NULL},
  {"max_in_flight", SL_F_INT, "8", SL_ADVANCED,
   "Operations waiting for the server at once, per worker (sluice adds it: cnats's KV calls each wait for "
   "their reply, so each runs on a thread of the worker's connection; more wait in order).",
   SL_BOUNDS("1", "64"), NULL},
  {0}};

static int bucket_ok(const char *b) {
  if (!*b) return 0;
  for (const char *p = b; *p; p++)
    if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') && *p != '_' && *p != '-')
      return 0;
  return 1;
}

/* A build for the connection fields: relative files are the config file's. */
static sl_nats_conf_t *read_conf(const sl_cnode_t *body, sl_diags_t *d) {
  char *file = sl_xstrdup(body->file ? body->file : "."), *dir = dirname(file);
  sl_build_t b = {.diags = d, .path = "cache nats_kv", .config_dir = dir, .lint_only = 1};
  sl_nats_conf_t *c = sl_nats_conf(&b, body);
  free(file);
  return c;
}

static int kv_check(const sl_cnode_t *body, sl_diags_t *d) {
  uint32_t before = d->n;
  sl_nats_conf_free(read_conf(body, d));
  const sl_cnode_t *b = sl_cnode_get(body, "bucket");
  if (b && b->str && !bucket_ok(b->str))
    sl_diag_add(d, b, "bucket", "not a bucket name (letters, digits, `_` and `-`): \"%s\"", b->str);
  return (int)(d->n - before);
}

static char *join_urls(const sl_cnode_t *body) {
  const sl_cnode_t *u = sl_cnode_get(body, "urls");
  char *s = sl_xstrdup("");
  for (uint32_t i = 0; u && i < u->n; i++) {
    char *t = sl_xasprintf("%s%s%s", s, i ? "," : "", u->items[i]->str);
    free(s);
    s = t;
  }
  return s;
}

static void kv_update(void *self, const sl_cnode_t *body) {
  kvcache_t *c = self;
  char *urls = join_urls(body);
  const char *bucket = sl_conf_str(body, "bucket", "");
  if (c->urls && (strcmp(c->urls, urls) || strcmp(c->bucket, bucket)))
    sl_warn("cache nats_kv: new settings apply at the next restart (this one keeps bucket %s on %s)", c->bucket,
            c->urls);
  if (!c->urls) {
    c->urls = urls;
    c->bucket = sl_xstrdup(bucket);
    c->timeout_ms = sl_conf_duration_ms(body, "timeout", 5000);
    c->in_flight = sl_conf_int(body, "max_in_flight", 8);
  } else {
    free(urls);
  }
}

static void *kv_create(const sl_cnode_t *body) {
  kvcache_t *c = sl_xcalloc(1, sizeof(*c));
  uv_mutex_init(&c->mu);
  sl_diags_t d = {0};
  c->conf = read_conf(body, &d);   /* checked: no diagnostics */
  sl_diags_free(&d);
  kv_update(c, body);
  return c;
}

static void req_free(kvreq_t *r) {
  free(r->key);
  free(r->val);
  free(r->rval);
  free(r->err);
  free(r);
}

static void free_list(kvreq_t *r) {
  while (r) {
    kvreq_t *next = r->next;
    req_free(r);
    r = next;
  }
}

/* The link's end (any thread): what was never answered goes uncalled. */
static void shared_free(void *arg) {
  shared_t *s = arg;
  free_list(s->todo);
  free_list(s->done);
  if (s->kv) kvStore_Destroy(s->kv);
  free(s->bucket);
  free(s->urls);
  uv_mutex_destroy(&s->kvmu);
  uv_cond_destroy(&s->more);
  uv_mutex_destroy(&s->mu);
  free(s);
}

/* ---- the link's thread ---- */

static int kv_setup(sl_nats_t *l, natsConnection *nc, void *arg, char **err) {
  shared_t *s = arg;
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = s->timeout_ms;
  natsStatus st = natsConnection_JetStream(&s->js, nc, &o);
  if (st != NATS_OK) {
    *err = sl_nats_err(st);
    return -1;
  }
  s->nc = nc;
  sl_nats_keep(l, NULL, s->js);   /* the link destroys it at the end */
  /* a connection made again (the last one closed for good): the bucket
   * found through the last one's context is looked up again */
  uv_mutex_lock(&s->kvmu);
  if (s->kv) kvStore_Destroy(s->kv);
  s->kv = NULL;
  uv_mutex_unlock(&s->kvmu);
  return 0;
}

static void fail(kvreq_t *r, natsStatus st, const char *what) {
  char *e = sl_nats_err(st);
  r->status = SL_CACHE_ERROR;
  r->err = sl_xasprintf("nats_kv %s: %s", what, e);
  free(e);
}

/* The bucket, looked up at the first operation and again after a failure,
 * so that a bucket made later is found; the pumps wait for one lookup. */
static int bucket(shared_t *s, kvreq_t *r) {
  uv_mutex_lock(&s->kvmu);
  natsStatus st = s->kv ? NATS_OK : js_KeyValue(&s->kv, s->js, s->bucket);
  if (st != NATS_OK) s->kv = NULL;
  uv_mutex_unlock(&s->kvmu);
  if (st == NATS_OK) return 0;
  r->status = SL_CACHE_ERROR;
  if (st == NATS_NOT_FOUND) {
    r->err = sl_xasprintf("nats_kv: bucket \"%s\" not found", s->bucket);
  } else {
    char *what = sl_xasprintf("bucket %s", s->bucket);
    fail(r, st, what);
    free(what);
  }
  return -1;
}

/* The key's value and revision (0: absent). */
static natsStatus get(shared_t *s, const char *key, kvEntry **e, uint64_t *rev) {
  *e = NULL;
  *rev = 0;
  natsStatus st = kvStore_Get(e, s->kv, key);
  if (st == NATS_OK) *rev = kvEntry_Revision(*e);
  return st == NATS_NOT_FOUND ? NATS_OK : st;
}

/* After a write expecting revision rev (0: no key) failed: whether the key
 * has another now, i.e. another writer came first (cnats's error for that
 * is a server text, and its last-error slot may be overwritten by the
 * lookups its kvStore_Create makes). */
static int changed(shared_t *s, const char *key, uint64_t rev) {
  kvEntry *e;
  uint64_t now;
  if (get(s, key, &e, &now) != NATS_OK) return 0;
  kvEntry_Destroy(e);
  return now != rev;
}

/* A process's incrs of one key run one at a time (striped by the key's
 * hash, every resource and worker): its pumps side by side would otherwise
 * beat each other's revision checks until one ran out of tries. Other
 * processes are what the retries are for. */
static pthread_mutex_t incr_mu[INCR_STRIPES];

static void incr_mu_init(void) {
  for (int i = 0; i < INCR_STRIPES; i++) pthread_mutex_init(&incr_mu[i], NULL);
}

static void incr_locked(shared_t *s, kvreq_t *r);

static void incr(shared_t *s, kvreq_t *r) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, incr_mu_init);
  uint32_t h = 2166136261u;   /* FNV-1a of bucket and key */
  for (const char *p = s->bucket; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
  for (const char *p = r->key; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
  pthread_mutex_lock(&incr_mu[h % INCR_STRIPES]);
  incr_locked(s, r);
  pthread_mutex_unlock(&incr_mu[h % INCR_STRIPES]);
}

/* The value read as a number into *cur (absent: 0); -1 and r failed if it
 * is not one. Takes e. */
static int incr_value(kvreq_t *r, kvEntry *e, long long *cur) {
  *cur = 0;
  if (!e) return 0;
  char buf[32] = "";
  int len = kvEntry_ValueLen(e);
  char *end = NULL;
  if (len > 0 && len < (int)sizeof buf) memcpy(buf, kvEntry_Value(e), (size_t)len);
  kvEntry_Destroy(e);
  errno = 0;
  if ((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-') *cur = strtoll(buf, &end, 10);
  if (end && !*end && !errno) return 0;
  r->status = SL_CACHE_ERROR;
  r->err = sl_xstrdup("nats_kv incr: the value is not an integer");
  return -1;
}

/* A lost race is seen by reading the key again, and that read is the next
 * try's: a loser that spent a round trip more than the winner per try
 * (checking, then reading) kept losing while the winner kept writing. After
 * a second loss in a row it steps back a random while (up to 2, 4 … 32 ms)
 * before reading, so that writers of one key in two processes take turns. */
static void incr_locked(shared_t *s, kvreq_t *r) {
  kvEntry *e;
  uint64_t rev;
  natsStatus st = get(s, r->key, &e, &rev);
  if (st != NATS_OK) return fail(r, st, "incr");
  for (int i = 0;; i++) {
    long long cur;
    if (incr_value(r, e, &cur) < 0) return;
    if ((r->by > 0 && cur > INT64_MAX - r->by) || (r->by < 0 && cur < INT64_MIN - r->by)) {
      r->status = SL_CACHE_ERROR;
      r->err = sl_xstrdup("nats_kv incr: the result is out of the 64-bit range");
      return;
    }
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", cur + (long long)r->by);
    uint64_t nrev, was = rev;
    st = rev ? kvStore_Update(&nrev, s->kv, r->key, text, n, rev) : kvStore_Create(&nrev, s->kv, r->key, text, n);
    if (st == NATS_OK) {
      r->status = SL_CACHE_OK;
      r->n = cur + r->by;
      return;
    }
    fail(r, st, "incr");
    if (get(s, r->key, &e, &rev) != NATS_OK) return;
    if (rev == was) {   /* nobody wrote: the write itself failed */
      kvEntry_Destroy(e);
      return;
    }
    if (i + 1 == INCR_TRIES) {
      kvEntry_Destroy(e);
      break;
    }
    free(r->err);
    r->err = NULL;
    if (i > 0) {   /* lost twice in a row: step back, then read again */
      kvEntry_Destroy(e);
      uv_sleep(1 + (unsigned)(sl_rand64() % (1u << (i < 5 ? i : 5))));
      if ((st = get(s, r->key, &e, &rev)) != NATS_OK) return fail(r, st, "incr");
    }
  }
  free(r->err);
  r->status = SL_CACHE_ERROR;
  r->err = sl_xasprintf("nats_kv incr: other writers changed the key %d times in a row", INCR_TRIES);
}

static void run(shared_t *s, kvreq_t *r) {
  if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
    r->status = SL_CACHE_ERROR;
    r->err = sl_xasprintf("nats_kv: not connected to %s (reconnecting)", s->urls);
    return;
  }
  if (bucket(s, r)) return;
  natsStatus st = NATS_OK;
  uint64_t rev;
  kvEntry *e = NULL;
  switch (r->op) {
  case SL_CACHE_GET:
    if ((st = get(s, r->key, &e, &rev)) != NATS_OK) return fail(r, st, "get");
    r->status = e ? SL_CACHE_OK : SL_CACHE_MISS;
    if (e) {
      r->rlen = (size_t)kvEntry_ValueLen(e);
      r->rval = sl_xmalloc(r->rlen + 1);
      memcpy(r->rval, kvEntry_Value(e), r->rlen);
      kvEntry_Destroy(e);
    }
    return;
  case SL_CACHE_SET:
    if ((st = kvStore_Put(&rev, s->kv, r->key, r->val, (int)r->vlen)) != NATS_OK) return fail(r, st, "set");
    r->status = SL_CACHE_OK;
    return;
  case SL_CACHE_ADD:
    if ((st = kvStore_Create(&rev, s->kv, r->key, r->val, (int)r->vlen)) == NATS_OK) {
      r->status = SL_CACHE_OK;
    } else {
      fail(r, st, "add");
      if (changed(s, r->key, 0)) {
        free(r->err);
        r->err = NULL;
        r->status = SL_CACHE_EXISTS;
      }
    }
    return;
  case SL_CACHE_DELETE:
    if ((st = get(s, r->key, &e, &rev)) != NATS_OK) return fail(r, st, "delete");
    kvEntry_Destroy(e);
    /* deleted even when absent: a writer may have come in between */
    if ((st = kvStore_Delete(s->kv, r->key)) != NATS_OK) return fail(r, st, "delete");
    r->status = rev ? SL_CACHE_OK : SL_CACHE_MISS;
    return;
  case SL_CACHE_INCR: return incr(s, r);
  default: r->status = SL_CACHE_ERROR; r->err = sl_xstrdup("nats_kv: unknown operation");
  }
}

/* Under s->mu: whether key is being run, or waits in todo before stop. */
static int key_taken(shared_t *s, const kvreq_t *stop) {
  for (int i = 0; i < s->nbusy; i++)
    if (!strcmp(s->busy[i], stop->key)) return 1;
  for (const kvreq_t *q = s->todo; q != stop; q = q->next)
    if (!strcmp(q->key, stop->key)) return 1;
  return 0;
}

/* Under s->mu: takes the first queued operation whose key no earlier one
 * holds (among the first LOOK_AHEAD), so that operations on one key run in
 * the order they came (a `cached` processor's set does not wait, and the
 * next message's get must see it) while other keys go side by side. */
static kvreq_t *take(shared_t *s) {
  kvreq_t **at = &s->todo;
  for (int i = 0; *at && i < LOOK_AHEAD && s->nbusy < MAX_BUSY; i++, at = &(*at)->next) {
    kvreq_t *r = *at;
    if (key_taken(s, r)) continue;
    if (!(*at = r->next)) s->todo_tail = at;
    s->busy[s->nbusy++] = r->key;
    return r;
  }
  return NULL;
}

/* Runs an operation queued (waiting a little for one) and hands its answer
 * to the loop; back within half a second plus one operation's timeout.
 * Each of the link's pumps does so side by side. */
static int kv_pump(sl_nats_t *l, void *arg) {
  shared_t *s = arg;
  uv_mutex_lock(&s->mu);
  kvreq_t *r = s->closing ? NULL : take(s);   /* left when closing: shared_free drops them */
  if (!r && !s->closing) {
    uv_cond_timedwait(&s->more, &s->mu, 500 * 1000000ull);
    r = s->closing ? NULL : take(s);
  }
  uv_mutex_unlock(&s->mu);
  if (!r) return 0;
  run(s, r);
  uv_mutex_lock(&s->mu);
  for (int i = 0; i < s->nbusy; i++)
    if (s->busy[i] == r->key) s->busy[i] = s->busy[--s->nbusy];
  r->next = NULL;
  *s->done_tail = r;
  s->done_tail = &r->next;
  uv_cond_broadcast(&s->more);   /* an operation on the same key may wait for this one */
  uv_mutex_unlock(&s->mu);
  sl_nats_push_ack(l, NULL);   /* a wake without a message */
  return 0;
}

/* ---- the loop ---- */

/* The answers the pumps made, to their callers. */
static void deliver(shared_t *s) {
  uv_mutex_lock(&s->mu);
  kvreq_t *r = s->done;
  s->done = NULL;
  s->done_tail = &s->done;
  for (kvreq_t *q = r; q; q = q->next) s->waiting--;
  uv_mutex_unlock(&s->mu);
  while (r) {
    kvreq_t *next = r->next;
    r->cb(r->arg, &(sl_cache_res_t){.status = r->status, .val = r->rval, .len = r->rlen, .n = r->n, .err = r->err});
    req_free(r);
    r = next;
  }
}

static void kv_wake(void *arg) {
  kvlink_t *k = arg;
  sl_nats_item_t it[16];
  int n;
  while ((n = sl_nats_take(k->link, it, 16)) > 0)
    for (int i = 0; i < n; i++) natsMsg_Destroy(it[i].m);
  deliver(k->sh);
}

/* Operations no pump took fail with why ("nats_kv: " before it), in order
 * with the answers already made; returns how many. */
static int fail_todo(shared_t *s, const char *why) {
  int n = 0;
  uv_mutex_lock(&s->mu);
  kvreq_t *r = s->todo;
  s->todo = NULL;
  s->todo_tail = &s->todo;
  for (kvreq_t *q = r; q; q = q->next, n++) {
    q->status = SL_CACHE_ERROR;
    q->err = sl_xasprintf("nats_kv: %s", why);
  }
  *s->done_tail = r;
  while (*s->done_tail) s->done_tail = &(*s->done_tail)->next;
  uv_mutex_unlock(&s->mu);
  deliver(s);
  return n;
}

static void kv_state(void *arg, int up, const char *why) {
  kvlink_t *k = arg;
  if (up && !k->up) sl_info("cache nats_kv: connected to %s", k->c->urls);
  else if (!up) sl_logf(strstr(why, "connecting") ? SL_LOG_INFO : SL_LOG_WARN, NULL, NULL, "cache %s", why);
  k->up = up;
  snprintf(k->why, sizeof k->why, "%s", why ? why : "");
  if (up || strstr(k->why, "connecting")) return;
  /* Operations queued while the link was connecting get its reason now: no
   * pump serves them while the link connects again (with backoff). */
  fail_todo(k->sh, k->why);
}

/* The link on loop, made when there is none (NULL when it cannot be);
 * under c->mu. */
static kvlink_t *link_on(kvcache_t *c, uv_loop_t *loop) {
  kvlink_t *k = c->links;
  while (k && k->loop != loop) k = k->next;
  if (k || !loop || !c->conf) return k;
  shared_t *s = sl_xcalloc(1, sizeof(*s));
  uv_mutex_init(&s->mu);
  uv_mutex_init(&s->kvmu);
  uv_cond_init(&s->more);
  s->todo_tail = &s->todo;
  s->done_tail = &s->done;
  s->bucket = sl_xstrdup(c->bucket);
  s->urls = sl_xstrdup(c->urls);
  s->timeout_ms = c->timeout_ms;
  sl_nats_cbs_t cbs = {.setup = kv_setup, .setup_free = shared_free, .pump = kv_pump, .pumps = (int)c->in_flight,
                       .wake = kv_wake, .state = kv_state, .label = "cache nats_kv"};
  k = sl_xcalloc(1, sizeof(*k));
  k->c = c;
  k->loop = loop;
  k->sh = s;
  snprintf(k->why, sizeof k->why, "nats: connecting");
  if (!(k->link = sl_nats_new(loop, sl_nats_conf_dup(c->conf), &cbs, k, s, 0))) {   /* s freed by the link's end */
    free(k);
    return NULL;
  }
  k->next = c->links;
  c->links = k;
  return k;
}

static void kv_attach(void *self, uv_loop_t *loop) {
  kvcache_t *c = self;
  uv_mutex_lock(&c->mu);
  link_on(c, loop);
  uv_mutex_unlock(&c->mu);
}

static void ended(void *who, void *arg) {
  (void)who;
  *(int *)arg = 1;
}

/* A worker ends: the connection is closed before the process may exit
 * under cnats's threads (as the NATS connectors do), waiting for it at
 * most END_WAIT_MS on the worker's loop. Operations still waiting are
 * answered (cache.h): those no pump took fail, those run get their answer;
 * one a pump still runs past the wait goes with the link uncalled (its
 * thread holds it, and the loop is ending). */
static void link_end(kvlink_t *k) {
  shared_t *s = k->sh;
  uv_mutex_lock(&s->mu);
  s->closing = 1;   /* no pump takes another */
  uv_cond_broadcast(&s->more);
  uv_mutex_unlock(&s->mu);
  int n = fail_todo(s, "link closed (its worker ended)");
  if (n) sl_info("cache nats_kv: %d operation(s) still queued at the worker's end: answered 'link closed'", n);
  int done = 0;
  sl_nats_end(k->link, ended, k, &done);
  for (int i = 0; i < END_WAIT_MS && !done; i++) {
    uv_run(k->loop, UV_RUN_NOWAIT);
    if (!done) uv_sleep(1);
  }
  deliver(s);   /* the pumps' last answers */
  sl_nats_close(k->link);
  free(k);
}

/* loop NULL: every link (the resource ends). */
static void kv_detach(void *self, uv_loop_t *loop) {
  kvcache_t *c = self;
  for (;;) {
    uv_mutex_lock(&c->mu);
    kvlink_t **at = &c->links;
    while (*at && loop && (*at)->loop != loop) at = &(*at)->next;
    kvlink_t *k = *at;
    if (k) *at = k->next;
    uv_mutex_unlock(&c->mu);
    if (!k) return;
    link_end(k);
  }
}

static void kv_destroy(void *self) {
  kvcache_t *c = self;
  kv_detach(c, NULL);
  sl_nats_conf_free(c->conf);
  uv_mutex_destroy(&c->mu);
  free(c->urls);
  free(c->bucket);
  free(c);
}

/* NATS KV's key rules (cnats refuses others, and reads bytes past 127 as
 * negative chars): letters, digits, `-/_=.`, no `.` first or last. A key
 * becomes part of the subject, whose line the server caps, hence MAX_KEY. */
static const char *key_problem(const char *k, size_t n, char *buf, size_t cap) {
  if (!n) return "an empty key";
  if (n > MAX_KEY) {
    snprintf(buf, cap, "a key of %zu bytes (at most %d)", n, MAX_KEY);
    return buf;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)k[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-/_=.", ch);
    if (!ch || !ok) {
      snprintf(buf, cap, "byte %zu of the key (0x%02x): a NATS KV key is letters, digits and - / _ = .", i, ch);
      return buf;
    }
  }
  if (k[0] == '.' || k[n - 1] == '.') return "a key that starts or ends with '.'";
  return NULL;
}

static void kv_exec(void *self, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg) {
  kvcache_t *c = self;
  char buf[160], *err = NULL;
  const char *bad = rq->op < SL_CACHE_NOPS ? key_problem(rq->key, rq->klen, buf, sizeof buf) : "an unknown operation";
  kvlink_t *k = NULL;
  if (!bad) {
    uv_mutex_lock(&c->mu);
    k = link_on(c, sl_cache_loop());
    uv_mutex_unlock(&c->mu);
  }
  natsConnection *nc = k ? sl_nats_conn(k->link) : NULL;
  int64_t max = nc ? natsConnection_GetMaxPayload(nc) : 0;
  if (bad) err = sl_xasprintf("nats_kv: %s", bad);
  else if (!k) err = sl_xstrdup("nats_kv: no connection (not called from a worker)");
  else if (!k->up && !strstr(k->why, "connecting")) err = sl_xasprintf("nats_kv: %s", k->why);
  else if ((rq->op == SL_CACHE_SET || rq->op == SL_CACHE_ADD) && (rq->vlen > INT32_MAX || (max > 0 && (int64_t)rq->vlen > max)))
    err = sl_xasprintf("nats_kv: a value of %zu bytes is over the server's max_payload (%lld bytes)", rq->vlen,
                       (long long)max);
  if (err) {
    cb(arg, &(sl_cache_res_t){.status = SL_CACHE_ERROR, .err = err});
    free(err);
    return;
  }
  shared_t *s = k->sh;
  kvreq_t *r = sl_xcalloc(1, sizeof(*r));
  *r = (kvreq_t){.op = rq->op, .by = rq->by, .cb = cb, .arg = arg};
  r->key = sl_xmalloc(rq->klen + 1);
  memcpy(r->key, rq->key, rq->klen);
  r->key[rq->klen] = 0;
  if (rq->op == SL_CACHE_SET || rq->op == SL_CACHE_ADD) {
    r->vlen = rq->vlen;
    r->val = sl_xmalloc(rq->vlen + 1);
    if (rq->vlen) memcpy(r->val, rq->val, rq->vlen);
  }
  uv_mutex_lock(&s->mu);
  int full = s->waiting >= MAX_WAITING;
  if (!full) {
    s->waiting++;
    *s->todo_tail = r;
    s->todo_tail = &r->next;
    uv_cond_signal(&s->more);
  }
  uv_mutex_unlock(&s->mu);
  if (full) {
    req_free(r);
    cb(arg, &(sl_cache_res_t){.status = SL_CACHE_ERROR, .err = "nats_kv: too many operations waiting for the server"});
  }
}

static const sl_cache_backend_t nats_kv_backend = {
  .name = "nats_kv",
  .desc = "Keys of a NATS JetStream key-value bucket (Benthos' `nats_kv` cache), shared with other processes and "
          "NATS clients. Operations run up to `max_in_flight` at once on a connection per worker (a pipeline.threads "
          "worker connects at its first operation); a per-operation TTL is not taken (the bucket's `max_age` is the keys' TTL, as in Benthos). docs/caches.md.",
  .fields = fields,
  .check = kv_check,
  .create = kv_create,
  .update = kv_update,
  .exec = kv_exec,
  .attach = kv_attach,
  .detach = kv_detach,
  .destroy = kv_destroy,
};
SL_REGISTER_CACHE_BACKEND(nats_kv_backend)
