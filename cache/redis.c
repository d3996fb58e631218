/* The `redis` cache backend (Benthos' `redis` cache): each operation is one
 * Redis command on a connection per worker (clients/redis.h), pipelined with
 * the others: get GET, set SET [PX], add SET NX [PX], delete DEL, incr a
 * small script (SET NX PX of 0, then INCRBY, atomically, so that a missing
 * key takes the TTL and an existing one keeps its own). Keys carry the
 * resource's prefix. Scripts' `redis.call` sends raw commands on the same
 * connection (redis_cache.h). Every command in flight is on its link's
 * list, so that a worker's end can answer them: the client drops their
 * callbacks uncalled, and the link answers each with an error instead.
 *
 * A link is the resource's connection on one worker's loop: the engine's
 * worker attaches when the section is applied; a pipeline.threads worker
 * makes its own link at its first command (sl_cache_loop), used only on its
 * thread. The resource's mutex guards what threads share: the settings (a
 * reload changes them on the engine's loop) and the list of links. */
#include "redis_cache.h"
#include "clients/redis_conf.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct link {
  struct link *next;
  uv_loop_t *loop;
  sl_redis_t *r;
  struct sl_rcache_cmd *cmds;    /* in flight */
  struct sl_rcache_cmd *held, **held_tail;   /* sent once the first connection is up */
  int nheld, settled;            /* settled: the first connection came up or failed */
} link_t;

typedef struct rcache {
  uv_mutex_t mu;
  char *url, *prefix;
  char *master;              /* kind: failover's Sentinel master name, or NULL; kept as url is */
  sl_tls_ctx_t *tls;         /* tls.enabled: the client context, or NULL; kept as url is */
  int cluster;               /* kind: cluster; kept as url is */
  size_t plen;
  int64_t default_ttl_ms, reply_timeout_ms;
  link_t *links;
} rcache_t;

struct sl_rcache_cmd {
  struct sl_rcache_cmd *next, **prev;
  link_t *l;
  sl_cache_op_t op;              /* SL_CACHE_NOPS: a script's command */
  sl_cache_cb cb;                /* an operation's */
  sl_redis_cb rcb;               /* a command's */
  void *arg;
  int cancelled;
  int argc;                      /* held: its own copy of the command */
  char **argv;
  size_t *lens;
};

/* Commands held while the first connection is being made (so that a
 * pipeline's first messages do not fail for being early), at most: */
#define MAX_HELD 10000

static const sl_field_t fields[] = {
  {"url", SL_F_STRING, NULL, SL_REQUIRED,
   "Redis server: `redis://[[user]:password@]host[:port][/db]` (AUTH with the password, and the user for an ACL "
   "user; SELECT of the database). `rediss://` is refused: Debian's hiredis has no TLS. Several, separated by "
   "commas: the nodes of `kind: cluster` or the Sentinels of `kind: failover`. Scripts' `redis.call` "
   "(`sluice doc lua`) uses the same connection.", NULL, NULL},
  SL_REDIS_SERVER_FIELDS,
  {"prefix", SL_F_STRING, "", 0,
   "Put before every key of the cache's operations (not before `redis.call`'s arguments).", NULL, NULL},
  {"default_ttl", SL_F_DURATION, "0s", 0,
   "How long a key lives when its operation gives no TTL (`0`: until Redis evicts it).", NULL, NULL},
  {"reply_timeout", SL_F_DURATION, "10s", SL_ADVANCED,
   "Commands waiting this long without any reply drop the connection, which fails them (each operation "
   "answers an error) and reconnects, so that a Redis that stopped answering does not hold messages for "
   "ever (sluice adds it). 0: never.", NULL, NULL},
  {0}};

static int rc_check(const sl_cnode_t *body, sl_diags_t *d) { return sl_redis_conf_check(body, NULL, d) ? 1 : 0; }

static void rc_update(void *self, const sl_cnode_t *body) {
  rcache_t *c = self;
  uv_mutex_lock(&c->mu);
  const char *url = sl_conf_str(body, "url", "");
  if (c->url && strcmp(c->url, url) != 0)
    sl_warn("cache redis: a new url applies at the next restart (this one keeps %s)", c->url);
  if (!c->url) {
    c->url = sl_xstrdup(url);
    if (sl_redis_conf_master(body)) c->master = sl_xstrdup(sl_redis_conf_master(body));
    c->cluster = sl_redis_conf_cluster(body);
    sl_diags_t d = {0};
    sl_redis_conf_tls(body, &c->tls, &d);   /* checked: it loads */
    sl_diags_free(&d);
  }
  free(c->prefix);
  c->prefix = sl_xstrdup(sl_conf_str(body, "prefix", ""));
  c->plen = strlen(c->prefix);
  c->default_ttl_ms = sl_conf_duration_ms(body, "default_ttl", 0);
  c->reply_timeout_ms = sl_conf_duration_ms(body, "reply_timeout", 10000);
  uv_mutex_unlock(&c->mu);
}

static void *rc_create(const sl_cnode_t *body) {
  rcache_t *c = sl_xcalloc(1, sizeof(*c));
  uv_mutex_init(&c->mu);
  rc_update(c, body);
  return c;
}

static void on_state(sl_redis_t *r, int up, const char *why, void *arg);

/* The link on loop, made when there is none; under c->mu. */
static link_t *link_on(rcache_t *c, uv_loop_t *loop) {
  link_t *l = c->links;
  while (l && l->loop != loop) l = l->next;
  if (l || !loop) return l;
  l = sl_xcalloc(1, sizeof(*l));
  l->loop = loop;
  l->held_tail = &l->held;
  l->next = c->links;
  c->links = l;
  sl_redis_opts_t o = {.url = c->url, .sentinel_master = c->master, .cluster = c->cluster, .tls = c->tls, .log_component = "cache redis",
                       .reply_timeout_ms = c->reply_timeout_ms, .on_state = on_state, .state_arg = l};
  char *err = NULL;
  if (!(l->r = sl_redis_new(loop, &o, &err))) {   /* the URL was checked */
    sl_error("cache redis: %s", err);
    free(err);
  }
  return l;
}

static void rc_attach(void *self, uv_loop_t *loop) {
  rcache_t *c = self;
  uv_mutex_lock(&c->mu);
  link_on(c, loop);
  uv_mutex_unlock(&c->mu);
}

/* The link of this thread's worker (made at its first use), or NULL. */
static link_t *my_link(rcache_t *c) {
  uv_mutex_lock(&c->mu);
  link_t *l = link_on(c, sl_cache_loop());
  uv_mutex_unlock(&c->mu);
  return l;
}

static void unlink_cmd(sl_rcache_cmd_t *k) {
  if ((*k->prev = k->next)) k->next->prev = k->prev;
}

static void free_copy(sl_rcache_cmd_t *k) {
  for (int i = 0; i < k->argc; i++) free(k->argv[i]);
  free(k->argv);
  free(k->lens);
  k->argc = 0;
  k->argv = NULL;
  k->lens = NULL;
}

static void free_held(sl_rcache_cmd_t *k) {
  free_copy(k);
  free(k);
}

static void end_cmd(sl_rcache_cmd_t *k, const char *why);

/* The worker let go of the link: what it still waits for is answered with
 * an error (cache.h: every operation is answered once, and the registry's
 * record of it goes with the answer); a script's command whose script went
 * first (cancelled) is only freed. */
static void link_free(link_t *l) {
  static const char why[] = "link closed (its worker ended)";
  for (sl_rcache_cmd_t *k; (k = l->cmds);) {
    unlink_cmd(k);
    end_cmd(k, why);
    free(k);
  }
  while (l->held) {
    sl_rcache_cmd_t *k = l->held;
    l->held = k->next;
    end_cmd(k, why);
    free_held(k);
  }
  sl_redis_free(l->r);
  free(l);
}

static void rc_detach(void *self, uv_loop_t *loop) {
  rcache_t *c = self;
  uv_mutex_lock(&c->mu);
  link_t **at = &c->links;
  while (*at && (*at)->loop != loop) at = &(*at)->next;
  link_t *l = *at;
  if (l) *at = l->next;
  uv_mutex_unlock(&c->mu);
  if (l) link_free(l);
}

static void rc_destroy(void *self) {
  rcache_t *c = self;
  while (c->links) {
    link_t *l = c->links;
    c->links = l->next;
    link_free(l);
  }
  uv_mutex_destroy(&c->mu);
  free(c->url);
  free(c->master);
  sl_tls_ctx_free(c->tls);
  free(c->prefix);
  free(c);
}

/* An operation's answer from the reply of its command. */
static void answer(sl_rcache_cmd_t *k, const redisReply *rp, const char *err) {
  char text[256];
  sl_cache_res_t res = {.status = SL_CACHE_ERROR};
  if (!rp) {
    snprintf(text, sizeof text, "redis %s: %s", k->l->r ? sl_redis_addr(k->l->r) : "", err);
    res.err = text;
  } else if (rp->type == REDIS_REPLY_ERROR) {
    snprintf(text, sizeof text, "redis: %s", rp->str);
    res.err = text;
  } else if (k->op == SL_CACHE_GET && rp->type == REDIS_REPLY_STRING) {
    res = (sl_cache_res_t){.status = SL_CACHE_OK, .val = rp->str, .len = rp->len};
  } else if ((k->op == SL_CACHE_GET || k->op == SL_CACHE_ADD) && rp->type == REDIS_REPLY_NIL) {
    res.status = k->op == SL_CACHE_GET ? SL_CACHE_MISS : SL_CACHE_EXISTS;
  } else if ((k->op == SL_CACHE_SET || k->op == SL_CACHE_ADD) && rp->type == REDIS_REPLY_STATUS) {
    res.status = SL_CACHE_OK;
  } else if (k->op == SL_CACHE_DELETE && rp->type == REDIS_REPLY_INTEGER) {
    res.status = rp->integer ? SL_CACHE_OK : SL_CACHE_MISS;
  } else if (k->op == SL_CACHE_INCR && rp->type == REDIS_REPLY_INTEGER) {
    res = (sl_cache_res_t){.status = SL_CACHE_OK, .n = rp->integer};
  } else {
    res.err = "redis: an unexpected reply";
  }
  k->cb(k->arg, &res);
}

static void on_reply(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  sl_rcache_cmd_t *k = arg;
  if (!k->cancelled) {
    if (k->op == SL_CACHE_NOPS) k->rcb(r, rp, err, k->arg);
    else answer(k, rp, err);
  }
  unlink_cmd(k);
  free(k);
}

static void in_flight(link_t *l, sl_rcache_cmd_t *k) {
  k->l = l;
  if ((k->next = l->cmds)) k->next->prev = &k->next;
  l->cmds = k;
  k->prev = &l->cmds;
}

/* Sends k on this thread's link, or holds it while the link's first
 * connection is being made; NULL with *err (k freed) when neither can be. */
static sl_rcache_cmd_t *enqueue(link_t *l, sl_rcache_cmd_t *k, int argc, const char **argv, const size_t *lens,
                                const char **err) {
  if (l && l->r && sl_redis_command(l->r, on_reply, k, argc, argv, lens) == 0) {
    in_flight(l, k);
    return k;
  }
  if (l && l->r && !l->settled && l->nheld < MAX_HELD) {
    k->l = l;
    k->argc = argc;
    k->argv = sl_xmalloc((size_t)argc * sizeof(*k->argv));
    k->lens = sl_xmalloc((size_t)argc * sizeof(*k->lens));
    for (int i = 0; i < argc; i++) {
      k->argv[i] = sl_xmalloc(lens[i] + 1);
      memcpy(k->argv[i], argv[i], lens[i]);
      k->lens[i] = lens[i];
    }
    k->next = NULL;
    *l->held_tail = k;
    l->held_tail = &k->next;
    l->nheld++;
    return k;
  }
  *err = !l || !l->r ? "redis: no connection (the cache is not attached to this worker)"
         : l->nheld >= MAX_HELD ? "redis: too many commands waiting for the first connection"
         : sl_redis_why(l->r) ? sl_redis_why(l->r) : "redis: the command could not be sent";
  free(k);
  return NULL;
}

/* A command's end without a reply: its callback says why (the callbacks
 * put the server's address before it). */
static void end_cmd(sl_rcache_cmd_t *k, const char *why) {
  if (k->cancelled) return;
  if (k->op == SL_CACHE_NOPS) k->rcb(k->l->r, NULL, why, k->arg);
  else answer(k, NULL, why);
}

/* The first connection came up (the held commands go out, in order) or
 * failed (they fail with its reason). */
static void on_state(sl_redis_t *r, int up, const char *why, void *arg) {
  link_t *l = arg;
  if (l->settled || (!up && why && strstr(why, ": connecting"))) return;
  l->settled = 1;
  l->r = r;   /* the first call comes from sl_redis_new */
  sl_rcache_cmd_t *k;
  while ((k = l->held)) {
    l->held = k->next;
    l->nheld--;
    if (k->cancelled) {
      free_held(k);
      continue;
    }
    if (up && sl_redis_command(r, on_reply, k, k->argc, (const char **)k->argv, k->lens) == 0) {
      free_copy(k);
      in_flight(l, k);
      continue;
    }
    /* why: "redis <addr>: <reason>"; the callbacks add the address */
    const char *reason = why && strstr(why, ": ") ? strstr(why, ": ") + 2 : "the command could not be sent";
    end_cmd(k, reason);
    free_held(k);
  }
  l->held_tail = &l->held;
}

/* incr: a missing key starts at 0 with the TTL (ARGV[2] ms, 0: none), then INCRBY, in one atomic step. */
static const char INCR_SCRIPT[] =
  "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], '0', 'NX', 'PX', ARGV[2]) end "
  "return redis.call('INCRBY', KEYS[1], ARGV[1])";

static void rc_exec(void *self, const sl_cache_req_t *rq, sl_cache_cb cb, void *arg) {
  rcache_t *c = self;
  link_t *l = my_link(c);
  uv_mutex_lock(&c->mu);
  int64_t ttl = rq->ttl_ms == SL_CACHE_TTL_DEFAULT ? c->default_ttl_ms : rq->ttl_ms;
  char *key = sl_xmalloc(c->plen + rq->klen + 1), px[24], by[24];
  memcpy(key, c->prefix, c->plen);
  memcpy(key + c->plen, rq->key, rq->klen);
  size_t klen = c->plen + rq->klen;
  uv_mutex_unlock(&c->mu);
  snprintf(px, sizeof px, "%lld", (long long)(ttl > 0 ? ttl : 0));
  snprintf(by, sizeof by, "%lld", (long long)rq->by);
  const char *argv[7];
  size_t lens[7];
  int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n++] = (l))
  switch (rq->op) {
  case SL_CACHE_GET: ARG("GET", 3); ARG(key, klen); break;
  case SL_CACHE_DELETE: ARG("DEL", 3); ARG(key, klen); break;
  case SL_CACHE_SET:
  case SL_CACHE_ADD:
    ARG("SET", 3);
    ARG(key, klen);
    ARG(rq->val ? rq->val : "", rq->vlen);
    if (rq->op == SL_CACHE_ADD) ARG("NX", 2);
    if (ttl > 0) {
      ARG("PX", 2);
      ARG(px, strlen(px));
    }
    break;
  case SL_CACHE_INCR:
    ARG("EVAL", 4);
    ARG(INCR_SCRIPT, sizeof INCR_SCRIPT - 1);
    ARG("1", 1);
    ARG(key, klen);
    ARG(by, strlen(by));
    ARG(px, strlen(px));
    break;
  default: break;
  }
#undef ARG
  const char *err = "unknown operation";
  sl_rcache_cmd_t *k = NULL;
  if (n) {
    k = sl_xcalloc(1, sizeof(*k));
    *k = (sl_rcache_cmd_t){.op = rq->op, .cb = cb, .arg = arg};
    k = enqueue(l, k, n, argv, lens, &err);
  }
  free(key);
  if (!k) cb(arg, &(sl_cache_res_t){.status = SL_CACHE_ERROR, .err = err});
}

sl_rcache_cmd_t *sl_rcache_command(sl_cache_t *cache, int argc, const char **argv, const size_t *lens, sl_redis_cb cb,
                                   void *arg, const char **err) {
  if (strcmp(sl_cache_backend_name(cache), "redis") != 0) {
    *err = "not a redis resource";
    return NULL;
  }
  sl_rcache_cmd_t *k = sl_xcalloc(1, sizeof(*k));
  *k = (sl_rcache_cmd_t){.op = SL_CACHE_NOPS, .rcb = cb, .arg = arg};
  return enqueue(my_link(sl_cache_self(cache)), k, argc, argv, lens, err);
}

void sl_rcache_cancel(sl_rcache_cmd_t *k) { k->cancelled = 1; }

static const sl_cache_backend_t redis_backend = {
  .name = "redis",
  .desc = "Keys in a Redis server (Benthos' `redis` cache), shared with other processes and kept across restarts; "
          "one pipelined connection per worker (a pipeline.threads worker connects at its first command), "
          "reconnected with backoff. Scripts reach the same server with "
          "`redis.call(label, ...)` (docs/caches.md).",
  .fields = fields,
  .check = rc_check,
  .create = rc_create,
  .update = rc_update,
  .exec = rc_exec,
  .attach = rc_attach,
  .detach = rc_detach,
  .destroy = rc_destroy,
};
SL_REGISTER_CACHE_BACKEND(redis_backend)
