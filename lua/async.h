/* Non-blocking calls from scripts: a binding (`http.request`, and the Redis
 * and cache clients to come) starts an operation on the worker's loop, the
 * calling message's coroutine waits without holding the loop, and the script
 * resumes with the operation's results; meanwhile the run goes on with the
 * batch's next messages, up to the `lua` processor's max_concurrency calls in
 * flight. The step budget does not count the wait; the message's deadline
 * (the processor's `timeout`, from its first call) does: when it passes, the
 * operation is cancelled and the message fails.
 *
 * Writing a binding:
 *
 *   static int start(lua_State *L) {                  // L: the VM, not a script's coroutine
 *     sl_lwait_t *w = lua_touserdata(L, 1);           // the script's arguments follow
 *     const char *key = luaL_checkstring(L, 2);       // a Lua error here is the script's call's error
 *     op_t *op = my_client_get(client, key, on_reply, w);
 *     sl_lwait_on_cancel(w, my_op_cancel, op);        // before returning
 *     return 0;
 *   }
 *   static int push_reply(lua_State *L, void *arg) {  // what the script's call returns
 *     lua_pushstring(L, ((reply_t *)arg)->text);
 *     return 1;
 *   }
 *   static void on_reply(reply_t *r, void *w) { sl_lwait_done(w, push_reply, r); }
 *   SL_LASYNC_BINDING("cache.get", start)             // scripts call cache.get(key)
 *
 * A script's call raises "cache.get cannot be called here" where it may not
 * wait (a check, an interpolation, generate's mapping, lint, a C function's
 * callback such as a gsub replacement); start is then not called.
 *
 * Ownership: the host owns w. After start returns without raising, the client
 * holds w until it calls sl_lwait_done exactly once (from start itself or later
 * on the loop), or until the cancel callback runs (the message's deadline
 * passed, its processor went away or the VM closes): the client must then not
 * touch w, and cancel must not call sl_lwait_done. A binding that sets no
 * cancel keeps w until its done, which the host then ignores. A start that
 * raises must not have started anything. Everything runs on the loop thread;
 * push runs inside a protected call (a Lua error there, say memory, fails
 * that message with the error). */
#ifndef SL_LUA_ASYNC_H
#define SL_LUA_ASYNC_H
#include <lua.h>
#include <stdint.h>

typedef struct sl_lwait sl_lwait_t;
typedef int (*sl_lwait_push_cb)(lua_State *L, void *arg);   /* pushes the results, returns how many */
typedef void (*sl_lwait_cancel_cb)(void *op);

/* Ends the call: the script resumes (on a later loop turn) with what push
 * pushes; push may be NULL (no results). arg is only read during this call. */
void sl_lwait_done(sl_lwait_t *w, sl_lwait_push_cb push, void *arg);
void sl_lwait_on_cancel(sl_lwait_t *w, sl_lwait_cancel_cb cancel, void *op);
/* Time left before the message's deadline (ms), or -1 for none: a client with
 * its own timeout takes the smaller, so that its error says which it was. */
int64_t sl_lwait_left_ms(const sl_lwait_t *w);
/* The worker's loop (for clients made per worker). */
struct uv_loop_s *sl_lwait_loop(const sl_lwait_t *w);
/* Per-VM state of a client (one per worker): *slot starts NULL; free runs when
 * the VM closes, after every job has been cancelled. */
void **sl_lwait_client(const sl_lwait_t *w, int id, void (*free_fn)(void *));

/* Pushes the key that marks the runtime's lazy proxies: a table whose field
 * under this key is false until it is made, as `this` is (lua/runtime.lua).
 * pairs, next, json.encode... make such a table through its metatable's
 * __index (called with a key it lacks), which must then set the field to the
 * table that holds its contents. For results made only when read. */
void sl_lasync_push_raw(lua_State *L);

/* A binding: "lib.name" and its start function. From a constructor. */
void sl_lasync_register(const char *name, lua_CFunction start);
#define SL_LASYNC_BINDING(name, start)                                                          \
  __attribute__((constructor)) static void sl_lasync_reg_##start(void) { sl_lasync_register(name, start); }

/* Client slots of sl_lwait_client. */
enum { SL_LCLIENT_HTTP, SL_LCLIENT_MAX = 8 };

#endif
