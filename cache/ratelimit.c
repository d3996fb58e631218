/* The `rate_limit_resources:` section and its `local` rate limits. A reload
 * applies it again: a kept label takes its new count and interval (its
 * current window stays), a new one is added, a dropped one stays until the
 * process restarts (a reload that fails later must leave running streams
 * what they use). */
#include "ratelimit.h"
#include "declared.h"
#include "core/section.h"
#include "core/xalloc.h"
#include <stdlib.h>
#include <string.h>

struct sl_ratelimit {
  char *label;
  int64_t count, interval_ms;
  uint64_t window;           /* start of the current window (ms) */
  int64_t used;              /* accesses in it */
  struct sl_ratelimit *next;
};

static sl_ratelimit_t *limits;

static const sl_field_t local_fields[] = {
  {"count", SL_F_INT, "1000", 0, "Accesses allowed per interval.", SL_BOUNDS("1", ""), NULL},
  {"interval", SL_F_DURATION, "1s", 0, "The length of a window.", SL_BOUNDS("1ms", ""), NULL},
  {0}};

static const sl_field_t item_fields[] = {
  {"label", SL_F_STRING, NULL, SL_REQUIRED, "The resource's name, which components' `rate_limit:` names.", NULL, NULL},
  {"local", SL_F_OBJECT, NULL, SL_REQUIRED, "A limit of this process: at most `count` accesses per `interval`.",
   NULL, local_fields},
  {0}};

sl_ratelimit_t *sl_ratelimit_find(const char *label) {
  for (sl_ratelimit_t *r = limits; r; r = r->next)
    if (!strcmp(r->label, label)) return r;
  return NULL;
}

int64_t sl_ratelimit_access(sl_ratelimit_t *r, uint64_t now_ms) {
  if (now_ms >= r->window + (uint64_t)r->interval_ms) {
    r->window = now_ms;
    r->used = 0;
  }
  if (r->used < r->count) {
    r->used++;
    return 0;
  }
  int64_t wait = (int64_t)(r->window + (uint64_t)r->interval_ms - now_ms);
  return wait > 0 ? wait : 1;
}

/* The labels the config validated last declares (lint of references). */
static sl_declared_t declared;

static int check(const sl_cnode_t *node, const sl_cnode_t *root, sl_diags_t *d) {
  (void)root;
  uint32_t n = sl_declared_begin(&declared, node), before = d->n;
  for (uint32_t i = 0; i < n; i++) {
    const sl_cnode_t *label = sl_cnode_get(node->items[i], "label");
    if (!label || !label->str) continue;
    char *path = sl_xasprintf("rate_limit_resources.%u.label", i);
    sl_declared_add(&declared, label, path, d);
    free(path);
  }
  return (int)(d->n - before);
}

static void free_all(void) {
  while (limits) {
    sl_ratelimit_t *r = limits;
    limits = r->next;
    free(r->label);
    free(r);
  }
}

static int apply(sl_worker_t *w, const sl_cnode_t *node, sl_diags_t *d) {
  (void)w;
  (void)d;
  static int hooked;
  if (!hooked++) atexit(free_all);
  for (uint32_t i = 0; node && node->type == SL_CN_SEQ && i < node->n; i++) {
    const sl_cnode_t *item = node->items[i], *local = sl_cnode_get(item, "local");
    const char *label = sl_conf_str(item, "label", "");
    sl_ratelimit_t *r = sl_ratelimit_find(label);
    if (!r) {
      r = sl_xcalloc(1, sizeof(*r));
      r->label = sl_xstrdup(label);
      r->next = limits;
      limits = r;
    }
    r->count = sl_conf_int(local, "count", 1000);
    r->interval_ms = sl_conf_duration_ms(local, "interval", 1000);
  }
  return 0;
}

int sl_ratelimit_check_ref(const sl_cnode_t *body, const char *field, int lint_only, sl_diags_t *d) {
  const sl_cnode_t *v = sl_cnode_get(body, field);
  const char *name = v && v->str ? v->str : "";
  if (!*name) return 0;
  if (lint_only ? sl_declared_has(&declared, name, strlen(name)) : sl_ratelimit_find(name) != NULL) return 0;
  sl_declared_missing(&declared, v, field, "rate limit resource", "rate_limit_resources", name, strlen(name), d);
  return -1;
}

int sl_ratelimit_bind(const sl_cnode_t *body, const sl_build_t *b, sl_ratelimit_t **r) {
  int lint = b->lint_only || !b->worker;
  *r = NULL;
  if (sl_ratelimit_check_ref(body, "rate_limit", lint, b->diags) != 0) return -1;
  const char *name = sl_conf_str(body, "rate_limit", "");
  if (*name && !lint) *r = sl_ratelimit_find(name);
  return 0;
}

static const sl_section_t section = {
  .name = "rate_limit_resources",
  .desc = "Named rate limits, a list as in Benthos: each item a `label` and `local: {count, interval}` (at most "
          "`count` accesses per `interval`, in fixed windows). The http processor and the http_client input "
          "and output name one in `rate_limit:` and wait for an access before each request (each poll); every component naming the "
          "same label shares its count. A reload gives a kept label its new settings, adds new ones and leaves "
          "a dropped one in place until the next restart.",
  .fields = item_fields,
  .list = 1,
  .reload = 1,
  .apply = apply,
  .check = check,
};
SL_REGISTER_SECTION(section)
