/* Describing the consumer groups of a Kafka-backed stream: the Kafka groups
 * with committed offsets on its topic or members assigned its partitions
 * (subscribers' groups left out), their members (client.id: the `consumer`
 * name), committed offsets and lag from the high watermarks. Admin requests
 * and watermarks are waited on in the pool. */
#include "kafka_store.h"
#include "core/xalloc.h"
#include "store/store_access.h"
#include <stdlib.h>
#include <string.h>

typedef struct gjob {
  sl_ks_t *ks;
  sl_ks_hold_t h;
  char *topic, *group;       /* group NULL: every group of the topic */
  int P, create, unknown;    /* create: a POST's; unknown: Kafka knows nothing of the named group */
  int auto_commit;           /* the POST's settings: -1 when not given */
  int64_t session_ms;
  json_t *out;
  char *err;
} gjob_t;

static void ask_offsets(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *group) {
  rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
  rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
}

static void ask_describe(rd_kafka_t *rk, const rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *group) {
  const char *g = group;
  rd_kafka_DescribeConsumerGroups(rk, &g, 1, o, q);
}

int sl_ks_group_offsets(sl_ks_t *ks, const char *group, const char *topic, int P, int64_t *committed, char **err) {
  char *why = NULL;
  rd_kafka_event_t *ev = sl_ks_admin(ks, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, ask_offsets, (void *)group, &why);
  if (!ev) {
    *err = sl_xasprintf("group %s: %s", group, why);
    free(why);
    return -1;
  }
  size_t n;
  const rd_kafka_group_result_t **gs =
    rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
  int any = 0;
  for (int p = 0; p < P; p++) committed[p] = -1;
  const rd_kafka_topic_partition_list_t *l = n ? rd_kafka_group_result_partitions(gs[0]) : NULL;
  for (int i = 0; l && i < l->cnt; i++)
    if (!strcmp(l->elems[i].topic, topic) && l->elems[i].partition < P && l->elems[i].offset >= 0) {
      committed[l->elems[i].partition] = l->elems[i].offset;
      any = 1;
    }
  rd_kafka_event_destroy(ev);
  return any;
}

/* In the pool: the group's members on the topic, and its state; NULL (and
 * j->err) while its coordinator cannot answer (a broker just started, a
 * coordinator moving in a rolling restart): a description without one
 * would show the group as Unknown, with no members. */
static json_t *group_members(gjob_t *j, const char *group, const char **state) {
  rd_kafka_event_t *ev =
    sl_ks_admin(j->ks, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, ask_describe, (void *)group, &j->err);
  if (!ev) return NULL;
  size_t n;
  const rd_kafka_ConsumerGroupDescription_t **ds =
    rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
  const rd_kafka_error_t *e = n ? rd_kafka_ConsumerGroupDescription_error(ds[0]) : NULL;
  rd_kafka_resp_err_t code = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
  if (code == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || code == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
      code == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS) {
    j->err = sl_xasprintf("group %s: %s (try again)", group, rd_kafka_error_string(e));
    rd_kafka_event_destroy(ev);
    return NULL;
  }
  json_t *members = json_array();
  *state = "Unknown";
  if (n && !e) {
    *state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(ds[0]));
    for (size_t i = 0; i < rd_kafka_ConsumerGroupDescription_member_count(ds[0]); i++) {
      const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(ds[0], i);
      const rd_kafka_topic_partition_list_t *l =
        rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
      json_t *parts = json_array();
      for (int k = 0; l && k < l->cnt; k++)
        if (!strcmp(l->elems[k].topic, j->topic)) json_array_append_new(parts, json_integer(l->elems[k].partition));
      json_array_append_new(members, json_pack("{s:s, s:o}", "consumer", rd_kafka_MemberDescription_client_id(m),
                                               "partitions", parts));
    }
  }
  rd_kafka_event_destroy(ev);
  return members;
}

/* In the pool: one group as the embedded store shows it, or NULL when it
 * has nothing on the topic (and was not asked for by name). */
static json_t *describe(gjob_t *j, const char *group, const int64_t *hi, int named) {
  int64_t *committed = sl_xcalloc((size_t)j->P, sizeof(int64_t));
  const char *state = NULL;
  json_t *members = group_members(j, group, &state), *out = NULL;
  int any = members ? sl_ks_group_offsets(j->ks, group, j->topic, j->P, committed, &j->err) : -1;
  if (any < 0) {
    json_decref(members);
    members = NULL;
  }
  if (members && (any || json_array_size(members) || named)) {
    int on_topic = any;
    json_t *c = json_array(), *lag = json_array(), *m;
    size_t i;
    json_array_foreach(members, i, m) on_topic |= json_array_size(json_object_get(m, "partitions")) > 0;
    for (int p = 0; p < j->P; p++) {
      json_array_append_new(c, json_integer(committed[p] < 0 ? 0 : committed[p]));
      json_array_append_new(lag, json_integer(hi[p] - (committed[p] < 0 ? 0 : committed[p])));
    }
    j->unknown = named && !any && !json_array_size(members) && !strcmp(state, "Dead");
    if (on_topic || named)
      out = json_pack("{s:s, s:O, s:o, s:o, s:s}", "group", group, "members", members, "committed", c, "lag", lag,
                      "state", state);
    else
      json_decref(c), json_decref(lag);
  }
  json_decref(members);
  free(committed);
  return out;
}

static void groups_run(void *arg) {
  gjob_t *j = arg;
  int64_t *hi = sl_xcalloc((size_t)j->P, sizeof(int64_t));
  for (int p = 0; p < j->P; p++) {
    int64_t lo;
    rd_kafka_resp_err_t e = sl_ks_watermarks(j->ks, j->topic, p, &lo, &hi[p]);
    if (e) {
      j->err = sl_xasprintf("offsets of %s[%d]: %s", j->topic, p, rd_kafka_err2str(e));
      free(hi);
      return;
    }
  }
  if (j->group) {
    j->out = describe(j, j->group, hi, 1);
  } else {
    size_t n = 0;
    char **ids = sl_ks_group_ids(j->ks, &n, &j->err);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
      json_t *g = j->err || !strncmp(ids[i], SL_KS_SUB_PREFIX, strlen(SL_KS_SUB_PREFIX)) ? NULL
                                                                                      : describe(j, ids[i], hi, 0);
      if (g) json_array_append_new(a, g);
      free(ids[i]);
    }
    free(ids);
    j->out = json_pack("{s:o}", "groups", a);
  }
  free(hi);
}

/* A POST's settings, kept once the group was described: a create answered
 * 503 leaves nothing behind, so that the client's retry is the one told 201
 * (as a first try that went through is). 1 when they are new. */
static int keep_settings(gjob_t *j) {
  sl_ks_gconf_t *g = sl_ks_gconf(j->ks, j->topic, j->group);
  int created = !g;
  if (created) {
    g = sl_xcalloc(1, sizeof(*g));
    *g = (sl_ks_gconf_t){.next = j->ks->gconfs, .stream = sl_xstrdup(j->topic), .group = sl_xstrdup(j->group),
                         .auto_commit = 1, .session_ms = j->ks->session_ms};
    j->ks->gconfs = g;
  }
  if (j->auto_commit >= 0) g->auto_commit = j->auto_commit;
  if (j->session_ms >= 0) g->session_ms = j->session_ms;
  return created;
}

static void groups_done(void *arg) {
  gjob_t *j = arg;
  sl_http_req_t *r = sl_ks_unhold(&j->h);
  /* Also for a client that left meanwhile, not for one told 503. */
  int created = !j->err && j->create && !j->h.expired && keep_settings(j);
  if (r && j->err) {
    sl_api_error(r, 503, "%s", j->err);
  } else if (r && j->unknown && !sl_ks_gconf(j->ks, j->topic, j->group)) {
    sl_api_error(r, 404, "no group %s on stream %s", j->group, j->topic);
  } else if (r) {
    if (j->group) {
      /* This node's settings for the group (Kafka keeps none). */
      sl_ks_gconf_t *g = sl_ks_gconf(j->ks, j->topic, j->group);
      json_object_set_new(j->out, "auto_commit", json_boolean(g ? g->auto_commit : 1));
      json_object_set_new(j->out, "session_timeout_ms", json_integer(g ? g->session_ms : j->ks->session_ms));
    } else {
      sl_api_keep_consumers(r, json_object_get(j->out, "groups"), "group");
    }
    sl_api_json(r, created ? 201 : 200, j->out);
    j->out = NULL;
  }
  json_decref(j->out);
  free(j->err);
  free(j->topic);
  free(j->group);
  free(j);
}

void sl_ks_groups(sl_ks_t *ks, sl_http_req_t *r, const sl_ks_topic_t *t, const char *group, int create) {
  int ac = -1;
  int64_t to = -1;
  char *err = NULL;
  if (create && sl_api_group_settings(r, &ac, &to) != 0) return;
  if (sl_ks_admin_consumer(ks, &err) != 0) {
    sl_api_error(r, 500, "%s", err);
    free(err);
    return;
  }
  gjob_t *j = sl_xcalloc(1, sizeof(*j));
  *j = (gjob_t){.ks = ks, .topic = sl_xstrdup(t->name), .group = group ? sl_xstrdup(group) : NULL,
                .P = t->partitions, .create = create, .auto_commit = ac, .session_ms = to};
  sl_ks_hold(&j->h, r, ks);
  sl_ks_work(ks, groups_run, groups_done, j);
}
