/* Redis Cluster routing (redis_cluster.h) over hiredis 0.14, which has no
 * cluster support and Debian no hiredis-cluster: the slot map comes from
 * CLUSTER SLOTS asked of any node (the seeds of `url` first), each command
 * goes to the master owning its first key's slot on that node's own client
 * (redis.c: reconnects, AUTH, reply_timeout), and the cluster's redirections
 * are followed: MOVED updates the map and sends again (and asks for the
 * whole map soon after), ASK sends ASKING and the command to the named node
 * once and leaves the map alone, TRYAGAIN and CLUSTERDOWN send again after
 * a pause. Each command keeps a copy of its arguments for that; a bounded
 * number of tries later the last answer is the caller's. Keys of a
 * multi-key command in different slots get Redis's own CROSSSLOT error:
 * the node of the first key refuses it. A node lost, or a connection lost
 * under a command, makes the map asked again. */
#include "redis_cluster.h"
#include "redis_slot.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TRIES = 16, PAUSE_MS = 20, PAUSE_MAX_MS = 1000, REFRESH_MS = 100 };

typedef struct node {
  struct sl_rcluster *cl;
  char *addr;                /* host:port as the cluster names it */
  sl_redis_t *conn;
  int up;
  int owns;                  /* slots it has in the current map */
} node_t;

typedef struct ccmd {
  struct ccmd *next, *prev;  /* in cl->flying or cl->parked */
  struct sl_rcluster *cl;
  sl_redis_cb cb;
  void *arg;
  int argc;
  const char **argv;         /* into the same allocation */
  size_t *lens;
  int slot;                  /* -1: no key, any node */
  int ask;                   /* the node an ASK named, for the next send only; -1: none */
  int tries;
  uint64_t due;              /* parked: loop time of the next try */
} ccmd_t;

struct sl_rcluster {
  sl_redis_t *self;
  uv_loop_t *loop;
  sl_redis_opts_t o;         /* the caller's options; url and state callback are not the nodes' */
  char *seed;                /* the first url: every node's credentials */
  char *addrs;               /* the url list, for messages */
  node_t **nodes;
  int nnodes;
  int16_t slot[SL_REDIS_SLOTS];   /* owner of each slot (index in nodes), -1: unknown */
  int mapped;                /* slots with a master */
  char *map_why;             /* why the last CLUSTER SLOTS gave no map (a Redis without cluster support), or NULL */
  int asking;                /* a CLUSTER SLOTS is out */
  int probe;                 /* the node asked last */
  int sub_node;              /* the node in subscriber mode, or -1 */
  uv_timer_t refresh, retry;
  int handles;
  ccmd_t flying, parked;     /* list heads */
  int up, reported;
  char *why;
  sl_redis_cb sub_cb;
  void *sub_arg;
  int built;                 /* sl_rcluster_new returned: states are reported */
  int freed;
};

static void unlink_cmd(ccmd_t *c) {
  c->prev->next = c->next;
  c->next->prev = c->prev;
}

static void link_cmd(ccmd_t *head, ccmd_t *c) {
  c->next = head->next;
  c->prev = head;
  head->next->prev = c;
  head->next = c;
}

/* ---- state ---- */

static void report(sl_rcluster_t *cl) {
  if (!cl->built || cl->freed) return;
  const char *why = NULL;
  char buf[512];
  for (int i = 0; i < cl->nnodes && !why; i++)
    if ((cl->nodes[i]->owns || !cl->mapped) && !cl->nodes[i]->up && sl_redis_why(cl->nodes[i]->conn))
      why = sl_redis_why(cl->nodes[i]->conn);
  if (!why && !cl->mapped) {
    if (cl->map_why) snprintf(buf, sizeof buf, "redis cluster %s: %s", cl->addrs, cl->map_why);
    else snprintf(buf, sizeof buf, "redis cluster %s: connecting (asking for the slot map)", cl->addrs);
    why = buf;
  } else if (!why && cl->mapped && cl->mapped < SL_REDIS_SLOTS) {
    snprintf(buf, sizeof buf, "redis cluster %s: %d of %d slots served", cl->addrs, cl->mapped, SL_REDIS_SLOTS);
    why = buf;
  }
  int up = !why;
  if (cl->reported && cl->up == up && (up || (cl->why && !strcmp(cl->why, why)))) return;
  char *w = up ? NULL : sl_xstrdup(why);
  free(cl->why);
  cl->why = w;
  if (up && !cl->up)
    sl_logf(SL_LOG_INFO, cl->o.log_stream, cl->o.log_component, "redis cluster %s: every slot served", cl->addrs);
  cl->up = up;
  cl->reported = 1;
  if (cl->o.on_state) cl->o.on_state(cl->self, up, cl->why, cl->o.state_arg);
}

static void ask_map(sl_rcluster_t *cl);
static void on_refresh(uv_timer_t *t) { ask_map(t->data); }

/* The map is asked again soon, once for every cause that comes together. */
static void refresh_soon(sl_rcluster_t *cl) {
  if (!uv_is_active((uv_handle_t *)&cl->refresh)) uv_timer_start(&cl->refresh, on_refresh, REFRESH_MS, 0);
}

static void on_node_state(sl_redis_t *r, int up, const char *why, void *arg) {
  (void)why;
  node_t *n = arg;
  n->conn = r;   /* the first call comes from sl_redis_new */
  n->up = up;
  if (!up && n->owns) refresh_soon(n->cl);
  if (up && !n->cl->up) ask_map(n->cl);   /* no map yet, or one with a master down */
  report(n->cl);
}

/* ---- nodes ---- */

/* url with host and port replaced: the seed's credentials and database. */
static char *node_url(const char *seed, const char *host, const char *port) {
  CURLU *u = curl_url();
  char *h = strchr(host, ':') ? sl_xasprintf("[%s]", host) : sl_xstrdup(host), *v = NULL, *out = NULL;
  if (curl_url_set(u, CURLUPART_URL, seed, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_HOST, h, 0) == CURLUE_OK && curl_url_set(u, CURLUPART_PORT, port, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_URL, &v, 0) == CURLUE_OK)
    out = sl_xstrdup(v);
  curl_free(v);
  free(h);
  curl_url_cleanup(u);
  return out;
}

/* The node at addr ("host:port", as MOVED and CLUSTER SLOTS name it),
 * connected when new; -1 when addr is no address. */
static int node_at(sl_rcluster_t *cl, const char *addr) {
  for (int i = 0; i < cl->nnodes; i++)
    if (!strcmp(cl->nodes[i]->addr, addr)) return i;
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr || !colon[1]) return -1;
  char *host = sl_xstrndup(addr, (size_t)(colon - addr));
  char *url = node_url(cl->seed, host, colon + 1), *err = NULL;
  free(host);
  if (!url) return -1;
  node_t *n = sl_xcalloc(1, sizeof(*n));
  n->cl = cl;
  n->addr = sl_xstrdup(addr);
  cl->nodes = sl_xrealloc(cl->nodes, (size_t)(cl->nnodes + 1) * sizeof(*cl->nodes));
  cl->nodes[cl->nnodes++] = n;
  sl_redis_opts_t o = cl->o;
  o.url = url;
  o.cluster = 0;
  o.sentinel_master = NULL;
  o.on_state = on_node_state;
  o.state_arg = n;
  n->conn = sl_redis_new(cl->loop, &o, &err);
  if (!n->conn) {   /* checked above: not expected */
    sl_logf(SL_LOG_WARN, cl->o.log_stream, cl->o.log_component, "redis cluster: node %s: %s", addr, err);
    free(err);
    free(url);
    cl->nnodes--;
    free(n->addr);
    free(n);
    return -1;
  }
  free(url);
  return cl->nnodes - 1;
}

/* ---- the slot map ---- */

static int num(const redisReply *rp) {
  return rp->type == REDIS_REPLY_INTEGER ? (int)rp->integer : rp->type == REDIS_REPLY_STRING ? atoi(rp->str) : -1;
}

/* "host:port" of a node named by the cluster; an empty host (the endpoint
 * of `cluster-preferred-endpoint-type unknown-endpoint`, nodes behind an
 * address Redis does not know) is the host of the node that answered. */
static void named_addr(char *buf, size_t size, const sl_redis_t *answered, const char *host, size_t hlen, long port) {
  if (!hlen) {
    host = sl_redis_addr(answered);
    hlen = (size_t)(strrchr(host, ':') - host);
  }
  snprintf(buf, size, "%.*s:%ld", (int)hlen, host, port);
}

/* The value of key in a node's networking metadata (CLUSTER SLOTS' fourth
 * member, key/value pairs), or NULL. */
static const redisReply *node_meta(const redisReply *m, const char *key) {
  if (m->elements < 4 || m->element[3]->type != REDIS_REPLY_ARRAY) return NULL;
  const redisReply *kv = m->element[3];
  for (size_t i = 0; i + 1 < kv->elements; i += 2)
    if (kv->element[i]->type == REDIS_REPLY_STRING && !strcmp(kv->element[i]->str, key) &&
        kv->element[i + 1]->type == REDIS_REPLY_STRING)
      return kv->element[i + 1];
  return NULL;
}

/* CLUSTER SLOTS: [[first, last, [endpoint, port, id, metadata], replicas...],
 * ...]. The endpoint is an ip or a host name (`cluster-preferred-endpoint-type`);
 * NULL or empty: the answering node's host; "?": a host name that node
 * was not given, so its ip from the metadata. */
static void on_slots(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  sl_rcluster_t *cl = arg;
  cl->asking = 0;
  if (!rp || rp->type != REDIS_REPLY_ARRAY) {   /* asked again: at once when the connection went, else in a second */
    const char *why = rp ? sl_redis_str(rp) ? sl_redis_str(rp) : "unexpected reply" : err;
    sl_logf(SL_LOG_DEBUG, cl->o.log_stream, cl->o.log_component, "redis cluster %s: CLUSTER SLOTS: %s",
            sl_redis_addr(r), why);
    free(cl->map_why);
    cl->map_why = rp ? sl_xasprintf("CLUSTER SLOTS at %s: %s", sl_redis_addr(r), why) : NULL;
    report(cl);
    if (!rp) refresh_soon(cl);
    else if (!uv_is_active((uv_handle_t *)&cl->refresh)) uv_timer_start(&cl->refresh, on_refresh, 1000, 0);
    return;
  }
  free(cl->map_why);
  cl->map_why = NULL;
  int16_t *map = sl_xmalloc(sizeof(cl->slot));
  for (int i = 0; i < SL_REDIS_SLOTS; i++) map[i] = -1;
  for (size_t i = 0; i < rp->elements; i++) {
    const redisReply *e = rp->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[2]->type != REDIS_REPLY_ARRAY ||
        e->element[2]->elements < 2)
      continue;
    int first = num(e->element[0]), last = num(e->element[1]);
    const redisReply *m = e->element[2], *ep = m->element[0];
    if (ep->type == REDIS_REPLY_STRING && ep->len == 1 && *ep->str == '?') ep = node_meta(m, "ip");
    if (!ep || (ep->type != REDIS_REPLY_STRING && ep->type != REDIS_REPLY_NIL)) continue;
    char addr[300];
    named_addr(addr, sizeof addr, r, ep->type == REDIS_REPLY_STRING ? ep->str : "",
               ep->type == REDIS_REPLY_STRING ? ep->len : 0, num(m->element[1]));
    int n = node_at(cl, addr);
    for (int s = first < 0 ? 0 : first; n >= 0 && s <= last && s < SL_REDIS_SLOTS; s++) map[s] = (int16_t)n;
  }
  memcpy(cl->slot, map, sizeof(cl->slot));
  free(map);
  for (int i = 0; i < cl->nnodes; i++) cl->nodes[i]->owns = 0;
  cl->mapped = 0;
  for (int s = 0; s < SL_REDIS_SLOTS; s++)
    if (cl->slot[s] >= 0) {
      cl->nodes[cl->slot[s]]->owns++;
      cl->mapped++;
    }
  report(cl);
  /* a master down, or slots nobody serves: ask until a failover or its return shows */
  if (!cl->up && !uv_is_active((uv_handle_t *)&cl->refresh)) uv_timer_start(&cl->refresh, on_refresh, 1000, 0);
}

/* Asks one node that is up (the next after the one asked last). */
static void ask_map(sl_rcluster_t *cl) {
  if (cl->asking) return;
  for (int k = 1; k <= cl->nnodes; k++) {
    int i = (cl->probe + k) % cl->nnodes;
    node_t *n = cl->nodes[i];
    if (!n->up || i == cl->sub_node) continue;
    const char *argv[2] = {"CLUSTER", "SLOTS"};
    if (sl_redis_command(n->conn, on_slots, cl, 2, argv, NULL) == 0) {
      cl->asking = 1;
      cl->probe = i;
      return;
    }
  }
  /* none is up: the first that comes up asks */
}

/* ---- commands ---- */

static int owner(const sl_rcluster_t *cl, int slot) {
  if (slot >= 0) return cl->slot[slot];
  for (int i = 0; i < cl->nnodes; i++)   /* no key: a master that is up */
    if (cl->nodes[i]->owns && cl->nodes[i]->up && i != cl->sub_node) return i;
  return -1;
}

static void on_reply(sl_redis_t *r, redisReply *rp, const char *err, void *arg);

static void on_asked(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  (void)r, (void)rp, (void)err, (void)arg;   /* OK, or the command after it says what went wrong */
}

static int send_cmd(sl_rcluster_t *cl, ccmd_t *c) {
  int n = c->ask >= 0 ? c->ask : owner(cl, c->slot);
  if (n < 0 || n == cl->sub_node) return -1;
  sl_redis_t *conn = cl->nodes[n]->conn;
  if (c->ask >= 0) {
    const char *asking = "ASKING";
    if (sl_redis_command(conn, on_asked, NULL, 1, &asking, NULL)) return -1;
  }
  if (sl_redis_command(conn, on_reply, c, c->argc, c->argv, c->lens)) return -1;
  c->ask = -1;
  link_cmd(&cl->flying, c);
  return 0;
}

static void on_retry(uv_timer_t *t);

static void park(sl_rcluster_t *cl, ccmd_t *c, int ms) {
  c->due = uv_now(cl->loop) + (uint64_t)ms;
  link_cmd(&cl->parked, c);
  if (!uv_is_active((uv_handle_t *)&cl->retry)) uv_timer_start(&cl->retry, on_retry, PAUSE_MS, PAUSE_MS);
}

static int pause_ms(int tries) {
  int ms = PAUSE_MS << (tries < 6 ? tries : 6);
  return ms < PAUSE_MAX_MS ? ms : PAUSE_MAX_MS;
}

static void finish(ccmd_t *c, sl_redis_t *r, redisReply *rp, const char *err) {
  if (c->cb) c->cb(r, rp, err, c->arg);
  free(c);
}

/* An answer that sends the command elsewhere or again: the pause before
 * the next try (0: now), or -1: the answer is the caller's. */
static int redirect(sl_rcluster_t *cl, ccmd_t *c, const sl_redis_t *r, const redisReply *rp) {
  if (!rp || rp->type != REDIS_REPLY_ERROR || c->tries >= MAX_TRIES) return -1;
  int ask = !strncmp(rp->str, "ASK ", 4);
  if (ask || !strncmp(rp->str, "MOVED ", 6)) {
    /* "MOVED slot host:port"; ":port" with an unknown endpoint, "?:port"
     * for a host name the node was not given: the one known node of that
     * port (the map names nodes by their ip then), else the map is asked
     * again (an ASK then fails after MAX_TRIES: the host is not known) */
    char *end, addr[300];
    long slot = strtol(rp->str + (ask ? 4 : 6), &end, 10);
    const char *colon = *end == ' ' ? strrchr(end + 1, ':') : NULL;
    if (!colon || !colon[1] || slot < 0 || slot >= SL_REDIS_SLOTS) return -1;   /* no port: a broken answer */
    int n = -1;
    if (colon - end - 1 == 1 && end[1] == '?') {
      int same = 0;
      for (int i = 0; i < cl->nnodes; i++)
        if (!strcmp(strrchr(cl->nodes[i]->addr, ':'), colon)) n = i, same++;
      if (same != 1) {
        refresh_soon(cl);
        return pause_ms(c->tries);
      }
    } else {
      named_addr(addr, sizeof addr, r, end + 1, (size_t)(colon - end - 1), atol(colon + 1));
      n = node_at(cl, addr);
    }
    if (n < 0) return -1;
    if (ask) c->ask = n;
    else if (cl->slot[slot] != n) {
      if (cl->slot[slot] >= 0) cl->nodes[cl->slot[slot]]->owns--;
      else cl->mapped++;
      cl->nodes[n]->owns++;
      cl->slot[slot] = (int16_t)n;
      refresh_soon(cl);   /* a slot moved: others may have too */
    }
    return 0;
  }
  if (!strncmp(rp->str, "TRYAGAIN", 8) || !strncmp(rp->str, "CLUSTERDOWN", 11)) return pause_ms(c->tries);
  return -1;
}

static void on_reply(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  ccmd_t *c = arg;
  sl_rcluster_t *cl = c->cl;
  unlink_cmd(c);
  if (!rp) refresh_soon(cl);   /* the connection went: the map may have changed with it */
  int wait = redirect(cl, c, r, rp);
  if (wait < 0) {
    finish(c, r, rp, err);
    return;
  }
  c->tries++;
  if (wait == 0 && send_cmd(cl, c) == 0) return;
  park(cl, c, wait ? wait : PAUSE_MS);
}

static void on_retry(uv_timer_t *t) {
  sl_rcluster_t *cl = t->data;
  uint64_t now = uv_now(cl->loop);
  ccmd_t due = {.next = &due, .prev = &due};
  for (ccmd_t *c = cl->parked.next, *next; c != &cl->parked; c = next) {
    next = c->next;
    if (c->due > now) continue;
    unlink_cmd(c);
    link_cmd(&due, c);
  }
  while (due.next != &due) {
    ccmd_t *c = due.next;
    unlink_cmd(c);
    if (cl->freed) {   /* a callback below freed the client: the rest go uncalled */
      free(c);
      continue;
    }
    if (send_cmd(cl, c) == 0) continue;
    if (++c->tries < MAX_TRIES) {
      park(cl, c, pause_ms(c->tries));
      continue;
    }
    char *why = sl_xasprintf("redis cluster %s: no node took the command: %s", cl->addrs, cl->why ? cl->why : "gave up");
    finish(c, cl->self, NULL, why);
    free(why);
  }
  if (!cl->freed && cl->parked.next == &cl->parked) uv_timer_stop(&cl->retry);
}

int sl_rcluster_command(sl_rcluster_t *cl, sl_redis_cb cb, void *arg, int argc, const char **argv, const size_t *lens) {
  if (argc < 1) return -1;
  size_t bytes = 0;
  for (int i = 0; i < argc; i++) bytes += lens ? lens[i] : strlen(argv[i]);
  ccmd_t *c = sl_xmalloc(sizeof(*c) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + bytes);
  *c = (ccmd_t){.cl = cl, .cb = cb, .arg = arg, .argc = argc, .ask = -1};
  c->argv = (const char **)(c + 1);
  c->lens = (size_t *)(c->argv + argc);
  char *p = (char *)(c->lens + argc);
  for (int i = 0; i < argc; i++) {
    c->lens[i] = lens ? lens[i] : strlen(argv[i]);
    memcpy(p, argv[i], c->lens[i]);
    c->argv[i] = p;
    p += c->lens[i];
  }
  int k = sl_redis_key_arg(argc, argv, lens);
  c->slot = k < 0 ? -1 : sl_redis_key_slot(argv[k], c->lens[k]);
  if (send_cmd(cl, c) == 0) return 0;
  free(c);
  return -1;
}

static void on_message(sl_redis_t *r, redisReply *rp, const char *err, void *arg) {
  sl_rcluster_t *cl = arg;
  if (cl->sub_cb) cl->sub_cb(r, rp, err, cl->sub_arg);
}

/* Published messages reach every node of a cluster: one node listens. */
int sl_rcluster_subscribe(sl_rcluster_t *cl, sl_redis_cb cb, void *arg, int argc, const char **argv,
                          const size_t *lens) {
  int n = cl->sub_node >= 0 ? cl->sub_node : owner(cl, -1);
  if (n < 0 || sl_redis_subscribe(cl->nodes[n]->conn, on_message, cl, argc, argv, lens)) return -1;
  cl->sub_node = n;
  cl->sub_cb = cb;
  cl->sub_arg = arg;
  return 0;
}

int sl_rcluster_up(const sl_rcluster_t *cl) { return cl->up; }
const char *sl_rcluster_why(const sl_rcluster_t *cl) { return cl->why; }
const char *sl_rcluster_addr(const sl_rcluster_t *cl) { return cl->addrs; }

/* ---- life ---- */

sl_rcluster_t *sl_rcluster_new(sl_redis_t *self, uv_loop_t *loop, const sl_redis_opts_t *o, char **err) {
  char **urls = NULL;
  int n = sl_redis_urls(o->url, &urls, err);
  if (n < 0) return NULL;
  sl_rcluster_t *cl = sl_xcalloc(1, sizeof(*cl));
  cl->self = self;
  cl->loop = loop;
  cl->o = *o;
  cl->seed = sl_xstrdup(urls[0]);
  cl->sub_node = -1;
  cl->flying.next = cl->flying.prev = &cl->flying;
  cl->parked.next = cl->parked.prev = &cl->parked;
  for (int i = 0; i < SL_REDIS_SLOTS; i++) cl->slot[i] = -1;
  uv_timer_init(loop, &cl->refresh);
  uv_timer_init(loop, &cl->retry);
  cl->refresh.data = cl->retry.data = cl;
  uv_unref((uv_handle_t *)&cl->refresh);
  uv_unref((uv_handle_t *)&cl->retry);
  cl->handles = 2;
  size_t len = 0;
  for (int i = 0; i < n; i++) len += strlen(urls[i]) + 1;
  cl->addrs = sl_xcalloc(1, len + 1);
  for (int i = 0; i < n; i++) {
    char *host = NULL, *port = NULL;
    sl_redis_url_addr(urls[i], &host, &port);
    char *addr = sl_xasprintf("%s:%s", host, port);
    strcat(strcat(cl->addrs, i ? "," : ""), addr);
    node_at(cl, addr);
    free(addr);
    free(host);
    free(port);
    free(urls[i]);
  }
  free(urls);
  cl->built = 1;
  report(cl);
  return cl;
}

static void on_closed(uv_handle_t *h) {
  sl_rcluster_t *cl = h->data;
  if (--cl->handles) return;
  free(cl->seed);
  free(cl->addrs);
  free(cl->why);
  free(cl->map_why);
  free(cl);
}

void sl_rcluster_free(sl_rcluster_t *cl) {
  cl->freed = 1;
  for (int i = 0; i < cl->nnodes; i++) {   /* their commands are dropped uncalled */
    sl_redis_free(cl->nodes[i]->conn);
    free(cl->nodes[i]->addr);
    free(cl->nodes[i]);
  }
  free(cl->nodes);
  cl->nodes = NULL;
  cl->nnodes = 0;
  for (ccmd_t *heads[2] = {&cl->flying, &cl->parked}, **h = heads; h < heads + 2; h++)
    while ((*h)->next != *h) {
      ccmd_t *c = (*h)->next;
      unlink_cmd(c);
      free(c);
    }
  uv_close((uv_handle_t *)&cl->refresh, on_closed);
  uv_close((uv_handle_t *)&cl->retry, on_closed);
}
