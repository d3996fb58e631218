/* Access rules of the streams API, shaped after what Kafka ACLs and Redis
 * ACLs give their users: operations (read, write) granted per principal,
 * and resources (streams, consumer names) by literal or pattern, with the
 * user's own name usable in a pattern so that one rule gives every tenant
 * its own prefix. Admins (http.auth.admin, as Kafka's super.users) pass
 * every rule. JWTs may carry scopes and stream patterns in claims (OAuth's
 * `scope` via http.auth.scope_claim, Centrifugo's `channels`). Denials are
 * decided from the path alone, before any lookup: a 403 says nothing about
 * what exists. */
#include "store_access.h"
#include "store_api.h"
#include "core/globs.h"
#include "core/xalloc.h"
#include "http/http_auth.h"
#include <fnmatch.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define USER_REF "${ctx.user}"

const sl_field_t sl_store_access_fields[] = {
  {"read", SL_F_STRLIST, "['*']", 0,
   "Users (`ctx.user`, as `http.auth` names them; patterns allowed, `*`: every authenticated user) who may read: "
   "list, info, stats, consume, SSE, WebSocket and consumer groups. A token may also hold `stream:read` in "
   "`http.auth.scope_claim`; admins (`http.auth.admin`) may do everything.", NULL, NULL},
  {"write", SL_F_STRLIST, "['*']", 0, "Users who may publish (or tokens holding `stream:write`).", NULL, NULL},
  {"admin", SL_F_ANY, NULL, SL_MOVED,
   "moved to http.auth.admin: admins are the whole server's (they create and delete streams, and use /admin/* "
   "and /streams too)", NULL, NULL},
  {"streams", SL_F_STRLIST, "['*']", 0,
   "Streams that users who are not admins may use, by name or pattern; `${ctx.user}` stands for the user, so "
   "`${ctx.user}.*` gives alice `alice.orders` and never `bob.orders`. Other streams answer 403 and are left out "
   "of `/stream/list`. A user whose name has characters other than letters, digits, `_` and `-` matches no "
   "`${ctx.user}` pattern (a name with a `.` could reach into another tenant's prefix).", NULL, NULL},
  {"groups", SL_F_STRLIST, "['*']", 0,
   "Consumer group and subscriber names (both hold positions in a stream) that users who are not admins may "
   "use and see, by name or pattern with `${ctx.user}` (`${ctx.user}-*`).", NULL, NULL},
  {"scope_claim", SL_F_ANY, NULL, SL_MOVED,
   "moved to http.auth.scope_claim, the claim that holds every scope of a token (`stream:read`, `stream:write`, "
   "and `admin` where `stream:admin` was)", NULL, NULL},
  {"streams_claim", SL_F_STRING, "", 0,
   "JWT claim listing more stream names or patterns the token may use (a string or a list), as Centrifugo's "
   "`channels` claim. Empty: off.", NULL, NULL},
  {0}};

struct sl_store_access {
  sl_globs_t read, write;          /* users */
  sl_globs_t streams, groups;      /* names, may hold USER_REF */
  char *streams_claim;
};

enum { S_READ = 1, S_WRITE = 2, S_ADMIN = 4 };

sl_store_access_t *sl_store_access_new(const sl_cnode_t *node) {
  sl_store_access_t *a = sl_xcalloc(1, sizeof(*a));
  sl_cnode_t star = {.type = SL_CN_SCALAR, .str = (char *)"*", .len = 1};
  sl_cnode_t *items[] = {&star};
  sl_cnode_t every = {.type = SL_CN_SEQ, .items = items, .n = 1};
  const sl_cnode_t *v;
  /* An absent node (no `access:`) means the fields' defaults. */
  sl_globs_init(&a->read, (v = sl_cnode_get(node, "read")) ? v : &every);
  sl_globs_init(&a->write, (v = sl_cnode_get(node, "write")) ? v : &every);
  sl_globs_init(&a->streams, (v = sl_cnode_get(node, "streams")) ? v : &every);
  sl_globs_init(&a->groups, (v = sl_cnode_get(node, "groups")) ? v : &every);
  a->streams_claim = sl_xstrdup(sl_conf_str(node, "streams_claim", ""));
  return a;
}

void sl_store_access_free(sl_store_access_t *a) {
  if (!a) return;
  sl_globs_free(&a->read);
  sl_globs_free(&a->write);
  sl_globs_free(&a->streams);
  sl_globs_free(&a->groups);
  free(a->streams_claim);
  free(a);
}

/* Stream-name characters, glob characters, and USER_REF. */
static int valid_pattern(const char *p, int user_ref) {
  if (!*p) return 0;
  while (*p) {
    if (user_ref && !strncmp(p, USER_REF, strlen(USER_REF))) {
      p += strlen(USER_REF);
      continue;
    }
    if (!strchr("*?._-", *p) && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
      return 0;
    p++;
  }
  return 1;
}

int sl_store_access_lint(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  if (!node) return 0;
  uint32_t before = d->n;
  static const char *const lists[] = {"read", "write", "streams", "groups", NULL};
  for (int k = 0; lists[k]; k++) {
    const sl_cnode_t *l = sl_cnode_get(node, lists[k]);
    int names = k >= 2;
    for (uint32_t i = 0; l && l->type == SL_CN_SEQ && i < l->n; i++) {
      const sl_cnode_t *it = l->items[i];
      if (names && it->str && !valid_pattern(it->str, 1))
        sl_diag_add(d, it, "store.access", "%s: \"%s\" is not a name or pattern: use letters, digits, '.', '_', '-', "
                    "'*', '?' and " USER_REF, lists[k], it->str);
      else if (!names && it->str && strstr(it->str, "${"))
        sl_diag_add(d, it, "store.access", "%s lists users (or patterns of them), not " USER_REF, lists[k]);
    }
  }
  const sl_cnode_t *http = sl_cnode_get(root, "http");
  if (!sl_cnode_get(http, "auth"))
    sl_diag_add(d, node, "store.access",
                "access rules need http.auth to tell who is asking (without it the streams API is open to anyone)");
  return (int)(d->n - before);
}

/* ---------- deciding ---------- */

static int scopes(const sl_store_access_t *a, const sl_http_req_t *r) {
  const char *u = r->user ? r->user : "";
  return (sl_globs_match(&a->read, u, 0) || sl_http_has_scope(r, "stream:read") ? S_READ : 0) |
         (sl_globs_match(&a->write, u, 0) || sl_http_has_scope(r, "stream:write") ? S_WRITE : 0) |
         (sl_http_has_scope(r, SL_SCOPE_ADMIN) ? S_ADMIN : 0);
}

/* Users that may stand in a pattern: nothing a glob or a name separator
 * could make reach further. */
static int tenant_name(const char *u) {
  size_t n = u ? strlen(u) : 0;
  if (!n || n > 200) return 0;
  for (; *u; u++)
    if (!(*u >= 'a' && *u <= 'z') && !(*u >= 'A' && *u <= 'Z') && !(*u >= '0' && *u <= '9') && *u != '_' && *u != '-')
      return 0;
  return 1;
}

static int match_rules(const sl_globs_t *rules, const char *user, const char *name) {
  for (uint32_t i = 0; i < rules->n; i++) {
    const char *p = rules->v[i];
    if (!strstr(p, USER_REF)) {
      if (fnmatch(p, name, 0) == 0) return 1;
      continue;
    }
    if (!tenant_name(user)) continue;
    size_t ul = strlen(user), rl = strlen(USER_REF);
    char *exp = sl_xmalloc(strlen(p) / rl * ul + strlen(p) + 1), *o = exp;
    while (*p) {
      if (!strncmp(p, USER_REF, rl)) {
        memcpy(o, user, ul);
        o += ul;
        p += rl;
      } else {
        *o++ = *p++;
      }
    }
    *o = 0;
    int hit = fnmatch(exp, name, 0) == 0;
    free(exp);
    if (hit) return 1;
  }
  return 0;
}

static int claim_pattern(const char *w, void *arg) { return fnmatch(w, arg, 0) == 0; }

static int stream_ok(const sl_store_access_t *a, const sl_http_req_t *r, const char *name) {
  return match_rules(&a->streams, r->user, name) || sl_http_claim_words(r, a->streams_claim, claim_pattern, (void *)name);
}

/* Rules apply to requests that passed an auth; admins pass them all. */
static const sl_store_access_t *ruled(const sl_http_req_t *r) {
  const sl_store_access_t *a = r->policy;
  return a && r->authenticated && !sl_http_has_scope(r, SL_SCOPE_ADMIN) ? a : NULL;
}

int sl_api_may_see_stream(const sl_http_req_t *r, const char *stream) {
  const sl_store_access_t *a = ruled(r);
  return !a || stream_ok(a, r, stream);
}

int sl_api_may_see_consumer(const sl_http_req_t *r, const char *name) {
  const sl_store_access_t *a = ruled(r);
  return !a || match_rules(&a->groups, r->user, name);
}

void sl_api_keep_consumers(const sl_http_req_t *r, json_t *list, const char *key) {
  if (!json_is_array(list) || !ruled(r)) return;
  for (size_t i = json_array_size(list); i-- > 0;) {
    json_t *e = json_array_get(list, i), *name = key ? json_object_get(e, key) : e;
    if (json_is_string(name) && !sl_api_may_see_consumer(r, json_string_value(name))) json_array_remove(list, i);
  }
}

/* Answers 403: "user alice may not <what><name> (store.access.<rule>)". */
static int deny(sl_http_req_t *r, const char *rule, const char *what, const char *name) {
  char *msg = r->user ? sl_xasprintf("user %s may not %s%s (store.access.%s)", r->user, what, name, rule)
                      : sl_xasprintf("this token may not %s%s (store.access.%s)", what, name, rule);
  sl_http_error(r, 403, msg);
  free(msg);
  return -1;
}

int sl_store_access_check(const sl_store_access_t *a, sl_http_req_t *r, char **seg, int n) {
  r->policy = a;
  if (!r->authenticated || n < 1 || n > 5) return 0;
  int s = scopes(a, r);
  if (s & S_ADMIN) return 0;
  const char *m = r->method;
  if (n == 1 && !strcmp(seg[0], "list")) return s & S_READ ? 0 : deny(r, "read", "read streams", "");
  if (n == 1 && (!strcmp(m, "POST") || !strcmp(m, "DELETE"))) return sl_http_require_admin(r, "create or delete streams");
  int write = n == 2 && !strcmp(seg[1], "publish") && !strcmp(m, "POST");
  if (!(s & (write ? S_WRITE : S_READ))) return deny(r, write ? "write" : "read", write ? "publish" : "read streams", "");
  if (!stream_ok(a, r, seg[0])) return deny(r, "streams", "use stream ", seg[0]);
  int named = n >= 3 && (!strcmp(seg[1], "consume") || !strcmp(seg[1], "sse") || !strcmp(seg[1], "ws") ||
                         !strcmp(seg[1], "group"));
  if (named && !match_rules(&a->groups, r->user, seg[2])) return deny(r, "groups", "use the consumer name ", seg[2]);
  return 0;
}
