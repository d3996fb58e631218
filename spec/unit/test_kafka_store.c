/* Units of the Kafka store (store/kafka/) against librdkafka's mock cluster
 * (one in-process broker): a group's offsets request that the coordinator
 * answers NOT_COORDINATOR, made through the store's own handles (sl_ks_apply,
 * sl_ks_admin_consumer), fails with that error instead of crashing
 * librdkafka 2.0 (its issue 5040: the answer's handler re-queries the
 * coordinator through the handle's own consumer group, NULL on a producer). */
#include "core/conf.h"
#include "core/worker.h"
#include "core/xalloc.h"
#include "store/kafka/kafka_common.h"
#include "store/kafka/kafka_store.h"
#include <librdkafka/rdkafka_mock.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

enum { OFFSET_FETCH = 9 };   /* Kafka's ApiKey (librdkafka's RD_KAFKAP_OffsetFetch is internal) */

/* A store on a fresh mock cluster; the coordinator answers the first
 * OffsetFetch NOT_COORDINATOR (a broker just started, a coordinator
 * moving), the next one as it should. */
static void offsets_not_coordinator(void) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "4", err, sizeof err);   /* the mock's host connects nowhere: quiet about it */
  rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!host) rd_kafka_conf_destroy(c);
  rd_kafka_mock_cluster_t *mc = host ? rd_kafka_mock_cluster_new(host, 1) : NULL;
  CHECK(mc, "mock cluster: %s", err);
  if (!mc) return;
  CHECK(rd_kafka_mock_topic_create(mc, "t", 2, 1) == RD_KAFKA_RESP_ERR_NO_ERROR, "topic");
  char *yaml = sl_xasprintf("backend: kafka\nkafka: {addresses: [%s], request_timeout: 5s}\n",
                            rd_kafka_mock_cluster_bootstraps(mc));
  sl_diags_t d = {0};
  sl_cnode_t *node = sl_conf_parse(yaml, strlen(yaml), "store.yaml", &d);
  sl_worker_t *w = sl_worker_new(0);
  CHECK(node && sl_ks_apply(w, node, 0, &d) == 0, "the store is set up");
  sl_ks_t *ks = w->slot[SL_SLOT_KSTORE];
  char *why = NULL;
  CHECK(!ks || sl_ks_admin_consumer(ks, &why) == 0, "admin consumer: %s", why ? why : "");
  if (ks && !why) {
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NOT_COORDINATOR;
    rd_kafka_mock_push_request_errors_array(mc, OFFSET_FETCH, 1, &e);
    int64_t committed[2];
    int any = sl_ks_group_offsets(ks, "g", "t", 2, committed, &why);
    CHECK(any == -1 && why && strstr(why, "group g: ") && strstr(why, "Not coordinator (try again)"),
          "NOT_COORDINATOR: %d %s", any, why ? why : "(no error)");
    free(why);
    why = NULL;
    any = sl_ks_group_offsets(ks, "g", "t", 2, committed, &why);
    CHECK(any == 0 && !why && committed[0] == -1 && committed[1] == -1, "then answered: %d %s", any,
          why ? why : "");
  }
  free(why);
  sl_worker_free(w);
  sl_kafka_exit();   /* the admin consumer's destroy */
  sl_cnode_free(node);
  sl_diags_free(&d);
  free(yaml);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(host);
}

/* A crash is this case's failure, not the unit's: the case runs in a child,
 * which starts its own librdkafka threads (a fork keeps only the caller's). */
static void in_child(void (*test)(void), const char *name) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    test();
    exit(failures ? 1 : 0);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork");
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s %d", name, WIFSIGNALED(st) ? "killed by signal" : "exit",
        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void test_offsets_not_coordinator(void) {
  in_child(offsets_not_coordinator, "a group's offsets answered NOT_COORDINATOR");
}

int main(void) {
  RUN(test_offsets_not_coordinator);
  return check_report("test_kafka_store");
}
