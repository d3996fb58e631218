#include "health.h"
#include "xalloc.h"
#include <stdlib.h>

typedef struct check { sl_health_fn fn; void *arg; } check_t;
static check_t *checks;
static size_t nchecks;

void sl_health_check_add(sl_health_fn fn, void *arg) {
  checks = sl_xrealloc(checks, (nchecks + 1) * sizeof(*checks));
  checks[nchecks++] = (check_t){fn, arg};
}

void sl_health_check_remove(sl_health_fn fn, void *arg) {
  for (size_t i = 0; i < nchecks; i++)
    if (checks[i].fn == fn && checks[i].arg == arg) {
      checks[i] = checks[--nchecks];
      break;
    }
  if (!nchecks) {
    free(checks);
    checks = NULL;
  }
}

json_t *sl_health_problems(void) {
  json_t *o = json_object();
  for (size_t i = 0; i < nchecks; i++) checks[i].fn(checks[i].arg, o);
  if (json_object_size(o)) return o;
  json_decref(o);
  return NULL;
}

static char *(*streams_fn)(void *);
static void *streams_arg;

void sl_health_set_streams(char *(*fn)(void *arg), void *arg) {
  streams_fn = fn;
  streams_arg = arg;
}

char *sl_health_streams_not_ready(void) { return streams_fn ? streams_fn(streams_arg) : NULL; }

typedef struct member { const char *key; json_t *(*fn)(void *); void *arg; } member_t;
static member_t *members;
static unsigned nmembers;

static void members_free(void) { free(members); }

void sl_status_member_add(const char *key, json_t *(*fn)(void *arg), void *arg) {
  if (!members) atexit(members_free);
  members = sl_xrealloc(members, (nmembers + 1) * sizeof(*members));
  members[nmembers++] = (member_t){key, fn, arg};
}

void sl_status_members(json_t *body) {
  for (unsigned i = 0; i < nmembers; i++) json_object_set_new(body, members[i].key, members[i].fn(members[i].arg));
}
