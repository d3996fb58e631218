/* Key slots and key positions (clients/redis_slot.h): slots as Redis 7's
 * CLUSTER KEYSLOT answers them (hash tags included), and the first key of
 * the commands whose key is not their first argument. */
#include "clients/redis_slot.h"
#include <string.h>

#include "check.h"

static void test_slots(void) {
  static const struct { const char *key; int slot; } v[] = {
    {"foo", 12182}, {"bar", 5061}, {"somekey", 11058}, {"foo{hash_tag}", 2515}, {"{user1000}.following", 3443},
    {"user1000", 3443}, {"foo{}{bar}", 8363}, {"{}foo", 9500}, {"foo{{bar}}zap", 4015}, {"{bar", 4015}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    int s = sl_redis_key_slot(v[i].key, strlen(v[i].key));
    CHECK(s == v[i].slot, "%s: slot %d, Redis says %d", v[i].key, s, v[i].slot);
  }
  CHECK(sl_redis_key_slot("a\0b", 3) != sl_redis_key_slot("a", 1), "a key with a NUL is hashed whole");
}

#define KEY(want, ...) do { const char *argv_[] = {__VA_ARGS__}; int n_ = sizeof argv_ / sizeof argv_[0]; \
  int k_ = sl_redis_key_arg(n_, argv_, NULL); CHECK(k_ == (want), "%s: key at %d, not %d", argv_[0], k_, want); } while (0)

static void test_key_args(void) {
  KEY(1, "SET", "k", "v");
  KEY(1, "xadd", "s", "*", "f", "v");
  KEY(-1, "PING");
  KEY(3, "EVAL", "return 1", "1", "k", "a");
  KEY(-1, "EVALSHA", "abc", "0", "a");
  KEY(3, "FCALL", "f", "2", "k1", "k2");
  KEY(6, "XREADGROUP", "GROUP", "g", "c", "COUNT", "STREAMS", "s1", "s2", ">", ">");
  KEY(4, "XREAD", "BLOCK", "0", "STREAMS", "s", "$");
  KEY(2, "XGROUP", "CREATE", "s", "g", "0");
  KEY(2, "OBJECT", "ENCODING", "k");
  KEY(2, "ZUNION", "2", "a", "b");
  KEY(3, "BLMPOP", "1", "1", "l", "LEFT");
  KEY(2, "BITOP", "AND", "dest", "a", "b");
  KEY(3, "MIGRATE", "h", "1", "k", "0", "10");
  KEY(-1, "MIGRATE", "h", "1", "", "0", "10", "KEYS", "a");
}

int main(void) {
  RUN(test_slots);
  RUN(test_key_args);
  return check_report("redis_slot");
}
