/* Runs of scripts over batches: jobs that yield to the loop between time
 * slices (lua/guard.h) or while messages wait for calls (lua/async.h), take
 * turns on an idle handle of their VM, and what a finished run leaves in its
 * batch (in the batch's order, whichever message finished first). */
#include "faillog.h"
#include "vm.h"
#include "core/log.h"
#include "core/xalloc.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Batches up to this many messages keep their drop flags in the job. */
#define SMALL_DROP 64

struct sl_ljob {
  sl_ljob_t *next;           /* in vm->jobs while queued; vm->spare_job's */
  sl_lua_t *vm;
  sl_batch_t *b;
  int module, script_id;
  int id;                    /* the runtime's id of the suspended run */
  int queued;                /* in vm->jobs: it has coroutines to resume */
  int looping;               /* messages not yet started */
  int sliced;                /* it yielded for a slice: carry used_ms */
  int64_t used_ms;           /* what the current call used before it yielded */
  sl_log_scope_t scope;      /* the owner's, for lines logged while the job runs */
  sl_ljob_opts_t o;
  sl_lwait_t *waits;         /* calls in flight (lua/async.c) */
  uint64_t seq_base;
  uint8_t *drop;             /* inline scripts: messages to drop (small, or malloc'd) */
  int may_slice;             /* it runs in a runner coroutine that may yield */
  sl_lrun_t r;
  uint8_t small[SMALL_DROP];
};

/* A run of one message (a request, say) allocates nothing here: the VM keeps
 * the last job that ended for the next. */
static sl_ljob_t *job_new(sl_lua_t *vm) {
  sl_ljob_t *j = vm->spare_job;
  vm->spare_job = NULL;
  return j ? j : sl_xmalloc(sizeof(*j));
}

static void job_free(sl_ljob_t *j) {
  sl_lua_t *vm = j->vm;
  if (vm->spare_job) free(j);
  else vm->spare_job = j;
}

int sl_ljob_group_new(void) {
  static int last;
  return ++last;
}
sl_lua_t *sl_ljob_vm(const sl_ljob_t *j) { return j->vm; }
sl_lwait_t **sl_ljob_waits(sl_ljob_t *j) { return &j->waits; }

static ptrdiff_t find_msg(sl_msg_t **v, uint32_t n, const sl_msg_t *m) {
  for (uint32_t i = 0; i < n; i++)
    if (v[i] == m) return i;
  return -1;
}

typedef struct kept { uint32_t from, at; sl_msg_t *m; } kept_t;

static int by_from(const void *a, const void *b) {
  const kept_t *x = a, *y = b;
  if (x->from != y->from) return x->from < y->from ? -1 : 1;
  return x->at < y->at ? -1 : x->at > y->at;
}

/* Messages that waited finished after later ones: what each kept goes back
 * to its place in the batch, in the order it was kept. */
static void reorder(sl_lrun_t *r) {
  kept_t *k = sl_xmalloc(r->nout * sizeof(*k));
  for (uint32_t i = 0; i < r->nout; i++) k[i] = (kept_t){r->from[i], i, r->out[i]};
  qsort(k, r->nout, sizeof(*k), by_from);
  for (uint32_t i = 0; i < r->nout; i++) r->out[i] = k[i].m;
  free(k);
}

/* Rebuilds b from what the script kept: kept input messages move over (a
 * message kept twice is cloned), the rest are freed, which acks a deletion. */
static void apply_run(sl_batch_t *b, sl_lrun_t *r) {
  if (r->unordered) reorder(r);
  sl_msg_t **out = sl_xmalloc((r->nout ? r->nout : 1) * sizeof(*out));
  uint32_t j = 0;
  for (uint32_t k = 0; k < r->nout; k++) {
    sl_msg_t *m = r->out[k];
    ptrdiff_t at;
    if (j < b->n && b->msgs[j] == m) {
      b->msgs[j++] = NULL;
    } else if ((at = find_msg(b->msgs, b->n, m)) >= 0) {
      b->msgs[at] = NULL;
    } else if ((at = find_msg(r->created, r->ncreated, m)) >= 0) {
      r->created[at] = NULL;
    } else {
      m = sl_msg_clone(m);
    }
    out[k] = m;
  }
  for (uint32_t i = 0; i < b->n; i++)
    if (b->msgs[i]) sl_msg_free(b->msgs[i]);
  for (uint32_t i = 0; i < r->ncreated; i++)
    if (r->created[i]) sl_msg_free(r->created[i]);
  r->ncreated = 0;
  free(b->msgs);
  b->msgs = out;
  b->n = b->cap = r->nout;
  if (!b->cap) {
    b->msgs = sl_xrealloc(b->msgs, sizeof(*b->msgs));
    b->cap = 1;
  }
}

/* Inline scripts only drop messages: remove the flagged ones, keeping order. */
static void apply_drops(sl_batch_t *b, const uint8_t *drop) {
  uint32_t j = 0;
  for (uint32_t i = 0; i < b->n; i++) {
    if (drop[i]) sl_msg_free(b->msgs[i]);
    else b->msgs[j++] = b->msgs[i];
  }
  b->n = j;
}

static void free_parts(sl_ljob_t *j) {
  for (uint32_t i = 0; i < j->r.ncreated; i++) sl_msg_free(j->r.created[i]);
  free(j->r.out);
  free(j->r.from);
  free(j->r.created);
  if (j->drop != j->small) free(j->drop);
}

/* The run is over: b gets what it did (or, when the run itself failed, as
 * out of memory between messages, every message stays, flagged, and nothing
 * the script made survives), then the owner hears of it. */
static void unqueue(sl_ljob_t *j);

static void complete(sl_ljob_t *j, char *err) {
  sl_batch_t *b = j->b;
  /* a call that ended inside its start queued the job, which may then have
   * finished in the same call into the run */
  unqueue(j);
  sl_lwaits_cancel(&j->waits);
  if (j->looping && j->o.looped) j->o.looped(b, j->o.arg);
  if (err) {
    for (uint32_t i = 0; i < b->n; i++) sl_msg_set_error(b->msgs[i], err);
    if (j->o.log) sl_lfaillog_note(j->o.log, err, b->n);
  } else if (j->module) {
    apply_run(b, &j->r);
  } else {
    apply_drops(b, j->drop);
  }
  free(err);
  free_parts(j);
  sl_ljob_done_cb done = j->o.done;
  void *arg = j->o.arg;
  job_free(j);
  done(b, arg);
}

static void on_idle(uv_idle_t *h);

/* Through FFI: the job has coroutines to resume (a call it waited for ended,
 * or one got a slot): it takes its turn on the VM's idle handle. */
void sl_ljob_ready(sl_ljob_t *j) {
  if (j->queued) return;
  sl_lua_t *vm = j->vm;
  j->queued = 1;
  j->next = NULL;
  *vm->jobs_tail = j;
  vm->jobs_tail = &j->next;
  if (!vm->idle) {
    vm->idle = sl_xmalloc(sizeof(*vm->idle));
    uv_idle_init(vm->loop, vm->idle);
    vm->idle->data = vm;
  }
  uv_idle_start(vm->idle, on_idle);
}

/* After a call into the run: complete it, or keep it (queued when it has
 * coroutines to resume; told to its owner when its loop is through). The
 * runtime's code: 0 done, else id * 8 + 4 sliced + 2 looping + 1 ready. */
static sl_ljob_t *settle(sl_ljob_t *j, int rc, lua_Integer code, char *err) {
  sl_lua_t *vm = j->vm;
  if (rc != 0 || code <= 0) {
    complete(j, rc != 0 ? err : NULL);
    return NULL;
  }
  j->id = (int)(code >> 3);
  j->sliced = (code & 4) != 0;
  if (j->sliced) j->used_ms = sl_lguard_used_ms(&vm->guard);
  if (code & 1) sl_ljob_ready(j);
  if (j->looping && !(code & 2)) {
    j->looping = 0;
    if (j->o.looped) j->o.looped(j->b, j->o.arg);
  }
  return j;
}

static void unqueue(sl_ljob_t *j) {
  sl_lua_t *vm = j->vm;
  if (!j->queued) return;
  j->queued = 0;
  sl_ljob_t **p = &vm->jobs;
  while (*p && *p != j) p = &(*p)->next;
  if (!*p) return;
  *p = j->next;
  if (vm->jobs_tail == &j->next) vm->jobs_tail = p;
  if (!vm->jobs && vm->idle) uv_idle_stop(vm->idle);
}

static int push_run(lua_State *L, void *arg) {
  sl_ljob_t *j = arg;
  /* The batch's array and drop flags go as numbers: ffi.cast of a number is
   * compiled, of a lightuserdata it is not (and the runtime's driver for a
   * one-message batch would then run interpreted, lua/runtime.lua M.run).
   * A user-space address is below 2^47, exact in a double. */
  lua_pushinteger(L, j->script_id);
  lua_pushnumber(L, (lua_Number)(uintptr_t)j->b->msgs);
  lua_pushinteger(L, j->b->n);
  lua_pushnumber(L, (lua_Number)j->seq_base);
  lua_pushlightuserdata(L, &j->r);
  lua_pushnumber(L, (lua_Number)j->vm->max_steps);
  lua_pushnumber(L, (lua_Number)(uintptr_t)j->drop);
  if (j->o.log) lua_pushlightuserdata(L, j->o.log);
  else lua_pushnil(L);
  lua_pushboolean(L, j->may_slice);
  lua_pushlightuserdata(L, j);
  lua_pushinteger(L, j->o.group);
  lua_pushinteger(L, j->o.max_concurrency);
  lua_pushnumber(L, (lua_Number)j->o.timeout_ms);
  return 13;
}

static int push_id(lua_State *L, void *arg) {
  lua_pushinteger(L, ((sl_ljob_t *)arg)->id);
  return 1;
}

static sl_ljob_t *begin(sl_lscript_t *s, sl_batch_t *b, uint64_t seq_base, const sl_ljob_opts_t *o, int may_slice) {
  sl_ljob_t *j = job_new(s->vm);
  *j = (sl_ljob_t){.vm = s->vm, .b = b, .module = s->module, .script_id = s->id, .scope = sl_log_scope, .o = *o,
                   .seq_base = seq_base, .r = {.in = b}, .may_slice = may_slice && s->vm->loop, .looping = 1};
  j->drop = b->n <= SMALL_DROP ? j->small : sl_xcalloc(b->n, 1);
  char *err = NULL;
  sl_lcall_t c = {.ref = s->vm->ref_run, .nres = 1, .push = push_run, .arg = j, .may_slice = j->may_slice};
  int rc = sl_lvm_pcall(s->vm, &c, &err);
  return settle(j, rc, c.i, err);
}

/* One more slice of a suspended job. */
static sl_ljob_t *resume(sl_ljob_t *j) {
  sl_lua_t *vm = j->vm;
  unqueue(j);
  sl_log_scope_t saved = sl_log_scope;
  sl_log_scope = j->scope;
  char *err = NULL;
  sl_lcall_t c = {.ref = vm->ref_resume, .nres = 1, .push = push_id, .arg = j, .may_slice = 1,
                  .carry_ms = j->sliced ? j->used_ms : 0};
  int rc = sl_lvm_pcall(vm, &c, &err);
  sl_log_scope = saved;
  return settle(j, rc, c.i, err);
}

static void on_idle(uv_idle_t *h) {
  sl_lua_t *vm = h->data;
  if (vm->jobs) resume(vm->jobs);
  else uv_idle_stop(h);
}

sl_ljob_t *sl_lscript_start(sl_lscript_t *s, sl_batch_t *b, const sl_ljob_opts_t *o) {
  if (!b->n) {
    if (o->looped) o->looped(b, o->arg);
    o->done(b, o->arg);
    return NULL;
  }
  return begin(s, b, 0, o, 1);
}

sl_batch_t *sl_ljob_cancel(sl_ljob_t *j) {
  unqueue(j);
  sl_lwaits_cancel(&j->waits);
  sl_lcall_t c = {.ref = j->vm->ref_cancel, .push = push_id, .arg = j};
  sl_lvm_pcall(j->vm, &c, NULL);
  sl_batch_t *b = j->b;
  free_parts(j);
  job_free(j);
  return b;
}

static void run_done(sl_batch_t *b, void *arg) {
  (void)b;
  (void)arg;
}

void sl_lscript_run(sl_lscript_t *s, sl_batch_t *b, uint64_t seq_base, sl_lfaillog_t *log) {
  /* Without slices the job ends before begin returns. */
  sl_ljob_opts_t o = {.log = log, .done = run_done};
  if (b->n) begin(s, b, seq_base, &o, 0);
}

static void idle_closed(uv_handle_t *h) { free(h); }

void sl_ljobs_free(sl_lua_t *vm) {
  while (vm->jobs) sl_batch_free(sl_ljob_cancel(vm->jobs));
  free(vm->spare_job);
  vm->spare_job = NULL;
  if (vm->idle) uv_close((uv_handle_t *)vm->idle, idle_closed);
  vm->idle = NULL;
}
