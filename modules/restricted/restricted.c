/* restricted.c: moonbox.restricted — run untrusted Lua (tenant policies) in a separate lua_State.
 *
 *   local st = restricted.new{ memory = 8 << 20, timeout = 0.05, max_depth = 32,
 *                              max_items = 100000, max_bytes = 16 << 20 }
 *   st:set(name, value [, readonly])  copy plain data into a global (readonly: deep proxies)
 *   st:run(source [, chunkname])      --> the chunk's first result, copied out
 *   st:call(name, ...)                --> true, the results of exported function `name`
 *   st:has(name) ; st:log() ; st:memory() ; st:close()
 *
 * The state R opens only base, string, table, math and utf8, then keeps an allow-list of their
 * names; unknown globals raise instead of reading nil. Chunks load as text only. R's allocator
 * refuses to grow past `memory`. Each run/call arms a POSIX timer that signals this thread at the
 * deadline; the handler (async-signal-safe: two stores and lua_sethook, as lua.c's SIGINT) sets
 * `expired` and installs a count hook that raises on every instruction, so Lua code stops and a
 * pcall inside the policy cannot swallow it; the pattern matcher (rs_match.c) polls `expired`.
 * Functions a run returns in its result table (e.g. `decide`) are kept in R as exports.
 *
 * Ownership: the userdata State owns R and its timer (released by close/__gc, idempotent); a
 * Buffer userdata owns the malloc'd bytes of each copy, so a raise never leaks them.
 * Fail codes (nil, msg, CODE): INVALID (syntax, bytecode, runtime error, bad result, unknown
 * export), TIMEOUT (deadline), ENOMEM (memory cap), EIO (no timer could be armed).
 * Misuse raises: bad option, non-plain value given to set/call, use after close. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rs.h"

#define STATE_T "moonbox.restricted.State"
#define BUF_T "moonbox.restricted.Buffer"
#define EXPORTS "moonbox.restricted.exports"
#define MAX_RESULTS 64
#define LOG "moonbox.restricted.log"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

struct rs *rs_of(lua_State *R)
{
  return *(struct rs **)lua_getextraspace(R);
}

void rs_check_deadline(lua_State *R)
{
  struct rs *r = rs_of(R);
  if (r->expired) luaL_error(R, "deadline exceeded");
}

/* ---- memory cap ---- */

static void *rs_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  struct rs *r = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    r->used -= old;
    return NULL;
  }
  if (nsize > old && nsize - old > r->limit - (r->used < r->limit ? r->used : r->limit)) {
    r->refused = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p == NULL) {
    r->refused = 1;
    return NULL;
  }
  r->used = r->used - old + nsize;
  return p;
}

/* ---- deadline ---- */

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static int signal_ok;

static int deadline_signal(void)
{
  return SIGRTMAX - 3;
}

static void deadline_hook(lua_State *R, lua_Debug *ar)
{
  (void)ar;
  luaL_error(R, "deadline exceeded");
}

static void on_deadline(int sig, siginfo_t *si, void *ctx)
{
  (void)sig;
  (void)ctx;
  struct rs *r = si->si_value.sival_ptr;
  if (si->si_code != SI_TIMER || r == NULL || !r->running) return;
  r->expired = 1;
  lua_sethook(r->R, deadline_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void install_signal(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_deadline;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  signal_ok = sigaction(deadline_signal(), &sa, NULL) == 0;
}

/* Arms the deadline for this thread; 0 or an errno. */
static int arm(struct rs *r)
{
  pthread_once(&signal_once, install_signal);
  if (!signal_ok) return ENOTSUP;
  pid_t tid = gettid();
  if (r->timer_tid != tid) {
    if (r->timer_tid) timer_delete(r->timer);
    r->timer_tid = 0;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = deadline_signal();
    ev.sigev_value.sival_ptr = r;
    ev.sigev_notify_thread_id = tid;
    if (timer_create(CLOCK_MONOTONIC, &ev, &r->timer) != 0) return errno;
    r->timer_tid = tid;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, deadline_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  r->expired = 0;
  r->refused = 0;
  r->running = 1;
  struct itimerspec it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_sec = (time_t)r->timeout;
  it.it_value.tv_nsec = (long)((r->timeout - (double)it.it_value.tv_sec) * 1e9);
  if (it.it_value.tv_sec == 0 && it.it_value.tv_nsec == 0) it.it_value.tv_nsec = 1;
  if (timer_settime(r->timer, 0, &it, NULL) != 0) {
    r->running = 0;
    return errno;
  }
  return 0;
}

/* After this returns no deadline signal is pending: one raised before the disarm was delivered
 * on the way back from timer_settime (the signal is unblocked), so the hook is cleared after. */
static void disarm(struct rs *r)
{
  struct itimerspec it;
  memset(&it, 0, sizeof it);
  timer_settime(r->timer, 0, &it, NULL);
  r->running = 0;
  lua_sethook(r->R, NULL, 0, 0);
}

/* ---- objects ---- */

static struct rs *check_state(lua_State *L)
{
  struct rs *r = luaL_checkudata(L, 1, STATE_T);
  if (r->R == NULL) luaL_error(L, "attempt to use a closed moonbox.restricted.State");
  return r;
}

static void release(struct rs *r)
{
  if (r->R == NULL) return;
  if (r->timer_tid) timer_delete(r->timer);
  r->timer_tid = 0;
  lua_close(r->R);
  r->R = NULL;
}

static int state_close(lua_State *L)
{
  release(luaL_checkudata(L, 1, STATE_T));
  return 0;
}

static int buf_gc(lua_State *L)
{
  rs_buf_free(luaL_checkudata(L, 1, BUF_T));
  return 0;
}

static struct rs_buf *new_buf(lua_State *L)
{
  struct rs_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, BUF_T);
  return b;
}

/* ---- work done inside R (always under lua_pcall on R) ---- */

struct job {
  struct rs *r;
  const char *src, *name; /* run: source text; call/set: the name */
  size_t len;
  struct rs_buf *in, *out;
  int readonly;
};

/* Moves function fields of the result table into the exports table. */
static void take_exports(lua_State *R, int idx)
{
  idx = lua_absindex(R, idx);
  if (!lua_istable(R, idx) || lua_getmetatable(R, idx)) {
    if (lua_istable(R, idx)) lua_pop(R, 1);
    return;
  }
  lua_getfield(R, LUA_REGISTRYINDEX, EXPORTS);
  int ex = lua_gettop(R);
  lua_pushnil(R);
  while (lua_next(R, idx)) {
    if (lua_type(R, -2) == LUA_TSTRING && lua_isfunction(R, -1)) {
      lua_pushvalue(R, -2);
      lua_insert(R, -2);
      lua_rawset(R, ex); /* exports[k] = f */
      lua_pushvalue(R, -1);
      lua_pushnil(R);
      lua_rawset(R, idx); /* clearing a visited field is allowed during next */
    } else {
      lua_pop(R, 1);
    }
  }
  lua_pop(R, 1);
}

static int run_body(lua_State *R)
{
  struct job *j = lua_touserdata(R, 1);
  if (luaL_loadbufferx(R, j->src, j->len, j->name, "t") != LUA_OK) return lua_error(R);
  lua_call(R, 0, 1);
  take_exports(R, -1);
  rs_encode(R, -1, j->out, j->r, "the policy's result");
  return 0;
}

static int push_export(lua_State *R, const char *name)
{
  lua_getfield(R, LUA_REGISTRYINDEX, EXPORTS);
  if (lua_getfield(R, -1, name) != LUA_TFUNCTION) {
    lua_pop(R, 1);
    lua_rawgeti(R, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(R, name);
    lua_rawget(R, -2); /* a global function also counts (raw: no strict __index) */
    lua_remove(R, -2);
  }
  lua_remove(R, -2);
  return lua_isfunction(R, -1);
}

static int call_body(lua_State *R)
{
  struct job *j = lua_touserdata(R, 1);
  lua_settop(R, 0);
  if (!push_export(R, j->name)) return luaL_error(R, "the policy has no function '%s'", j->name);
  while (j->in->pos < j->in->n) rs_decode(R, j->in, 0);
  lua_call(R, lua_gettop(R) - 1, LUA_MULTRET);
  int n = lua_gettop(R);
  if (n > MAX_RESULTS)
    return luaL_error(R, "returned %d values; at most %d can leave a policy", n, MAX_RESULTS);
  for (int i = 1; i <= n; i++) rs_encode(R, i, j->out, j->r, "a returned value");
  return 0;
}

static int set_body(lua_State *R)
{
  struct job *j = lua_touserdata(R, 1);
  lua_rawgeti(R, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  rs_decode(R, j->in, j->readonly);
  lua_setfield(R, -2, j->name);
  return 0;
}

static int has_body(lua_State *R)
{
  struct job *j = lua_touserdata(R, 1);
  j->readonly = push_export(R, j->name); /* the answer */
  return 0;
}

static int log_body(lua_State *R)
{
  struct job *j = lua_touserdata(R, 1);
  lua_getfield(R, LUA_REGISTRYINDEX, LOG);
  rs_encode(R, -1, j->out, j->r, "the log");
  return 0;
}

/* Runs fn(job) protected in R, under the deadline when `timed`. Returns the lua status. */
static int in_state(lua_State *L, struct rs *r, lua_CFunction fn, struct job *j, int timed)
{
  lua_State *R = r->R;
  lua_settop(R, 0);
  if (!lua_checkstack(R, 2)) return LUA_ERRMEM;
  lua_pushcfunction(R, fn);
  lua_pushlightuserdata(R, j);
  if (timed) {
    int err = arm(r);
    if (err) {
      lua_settop(R, 0);
      mb_fail_errno(L, err, "cannot arm the policy deadline");
      return -1;
    }
  }
  int status = lua_pcall(R, 1, 0, 0);
  if (timed) disarm(r);
  return status;
}

/* Pushes nil, message, CODE for a failed step in R and clears R's stack. */
static int fail_from(lua_State *L, struct rs *r, int status, const char *name)
{
  lua_State *R = r->R;
  char msg[640];
  const char *code = "INVALID";
  if (status == -1) return 3; /* in_state pushed it */
  if (r->expired) {
    code = "TIMEOUT";
    snprintf(msg, sizeof msg, "ran past its deadline of %g ms", r->timeout * 1000);
  } else if (status == LUA_ERRMEM || r->refused) {
    code = "ENOMEM";
    snprintf(msg, sizeof msg, "ran out of its memory limit of %zu KiB", r->limit / 1024);
  } else if (lua_type(R, -1) == LUA_TSTRING) {
    snprintf(msg, sizeof msg, "%.600s", lua_tostring(R, -1));
  } else {
    snprintf(msg, sizeof msg, "raised a %s value", luaL_typename(R, -1));
  }
  lua_settop(R, 0);
  r->expired = 0;
  r->refused = 0;
  if (strncmp(msg, name, strlen(name)) == 0) return mb_fail(L, code, "%s", msg);
  return mb_fail(L, code, "%s: %s", name, msg);
}

static int push_results(lua_State *L, struct rs_buf *b)
{
  int n = 0;
  b->pos = 0;
  while (b->pos < b->n) {
    rs_decode(L, b, 0);
    n++;
  }
  rs_buf_free(b);
  return n;
}

static int state_run(lua_State *L)
{
  struct rs *r = check_state(L);
  size_t len;
  const char *src = luaL_checklstring(L, 2, &len);
  const char *chunk = luaL_optstring(L, 3, "=policy");
  const char *name = (chunk[0] == '=' || chunk[0] == '@') ? chunk + 1 : chunk;
  if (len > 0 && src[0] == LUA_SIGNATURE[0])
    return mb_fail(L, "INVALID",
                   "%s: is precompiled bytecode, which is refused; load a policy as source text",
                   name);
  struct job j = {.r = r, .src = src, .len = len, .name = chunk, .out = new_buf(L)};
  int status = in_state(L, r, run_body, &j, 1);
  if (status != LUA_OK) return fail_from(L, r, status, name);
  int n = push_results(L, j.out);
  return n ? n : 1;
}

static int state_call(lua_State *L)
{
  struct rs *r = check_state(L);
  const char *name = luaL_checkstring(L, 2);
  int top = lua_gettop(L);
  struct job j = {.r = r, .name = name, .in = new_buf(L), .out = new_buf(L)};
  for (int i = 3; i <= top; i++) rs_encode(L, i, j.in, r, "an argument");
  int status = in_state(L, r, call_body, &j, 1);
  rs_buf_free(j.in);
  if (status != LUA_OK) return fail_from(L, r, status, name);
  lua_pushboolean(L, 1);
  return push_results(L, j.out) + 1;
}

static int state_set(lua_State *L)
{
  struct rs *r = check_state(L);
  const char *name = luaL_checkstring(L, 2);
  luaL_checkany(L, 3);
  struct job j = {.r = r, .name = name, .in = new_buf(L), .readonly = lua_toboolean(L, 4)};
  rs_encode(L, 3, j.in, r, name);
  int status = in_state(L, r, set_body, &j, 0);
  rs_buf_free(j.in);
  if (status != LUA_OK) return fail_from(L, r, status, name);
  lua_pushboolean(L, 1);
  return 1;
}

static int state_has(lua_State *L)
{
  struct rs *r = check_state(L);
  struct job j = {.r = r, .name = luaL_checkstring(L, 2)};
  int status = in_state(L, r, has_body, &j, 0);
  lua_settop(r->R, 0);
  if (status != LUA_OK) return fail_from(L, r, status, j.name);
  lua_pushboolean(L, j.readonly);
  return 1;
}

static int state_log(lua_State *L)
{
  struct rs *r = check_state(L);
  struct job j = {.r = r, .out = new_buf(L)};
  int status = in_state(L, r, log_body, &j, 0);
  if (status != LUA_OK) return fail_from(L, r, status, "log");
  return push_results(L, j.out);
}

static int state_memory(lua_State *L)
{
  struct rs *r = check_state(L);
  lua_pushinteger(L, (lua_Integer)r->used);
  lua_pushinteger(L, (lua_Integer)r->limit);
  return 2;
}

static int state_tostring(lua_State *L)
{
  struct rs *r = luaL_checkudata(L, 1, STATE_T);
  lua_pushfstring(L, "moonbox.restricted.State (%s)", r->R ? "open" : "closed");
  return 1;
}

/* ---- construction ---- */

static lua_Integer opt_int(lua_State *L, const char *key, lua_Integer dflt, lua_Integer min)
{
  lua_Integer v = dflt;
  if (lua_getfield(L, 1, key) != LUA_TNIL) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < min)
      luaL_error(L, "restricted.new: option '%s' must be an integer >= %d", key, (int)min);
  }
  lua_pop(L, 1);
  return v;
}

static void check_options(lua_State *L)
{
  static const char *const known[] = {"memory",    "timeout",   "max_depth",
                                      "max_items", "max_bytes", NULL};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int found = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = known; *k && !found; k++)
        found = strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!found)
      luaL_error(L,
                 "restricted.new: unknown option '%s' (known: memory, timeout, max_depth, "
                 "max_items, max_bytes)",
                 luaL_tolstring(L, -1, NULL));
  }
}

static int restricted_new(lua_State *L)
{
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  check_options(L);
  lua_Integer memory = opt_int(L, "memory", 8 << 20, 64 << 10);
  lua_Integer depth = opt_int(L, "max_depth", 32, 1);
  lua_Integer items = opt_int(L, "max_items", 100000, 1);
  lua_Integer bytes = opt_int(L, "max_bytes", 16 << 20, 64);
  double timeout = 0.05;
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    int ok;
    timeout = lua_tonumberx(L, -1, &ok);
    if (!ok || !(timeout > 0 && timeout <= 3600))
      luaL_error(L, "restricted.new: option 'timeout' must be seconds in (0, 3600]");
  }
  lua_pop(L, 1);
  struct rs *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, STATE_T);
  r->limit = (size_t)memory;
  r->timeout = timeout;
  r->max_depth = depth > 200 ? 200 : (int)depth;
  r->max_items = (long)items;
  r->max_bytes = (size_t)bytes;
  r->R = lua_newstate(rs_alloc, r);
  if (r->R == NULL) return mb_fail(L, "ENOMEM", "restricted.new: cannot create a Lua state");
  *(struct rs **)lua_getextraspace(r->R) = r;
  lua_pushcfunction(r->R, rs_open_env);
  if (lua_pcall(r->R, 0, 0, 0) != LUA_OK) {
    release(r);
    return mb_fail(L, "ENOMEM",
                   "restricted.new: %lld bytes of memory are too few for the "
                   "restricted libraries",
                   (long long)memory);
  }
  lua_settop(r->R, 0);
  return 1;
}

static const luaL_Reg state_methods[] = {
    {"run", state_run}, {"call", state_call},     {"set", state_set},     {"has", state_has},
    {"log", state_log}, {"memory", state_memory}, {"close", state_close}, {NULL, NULL}};

static const luaL_Reg state_meta[] = {
    {"__gc", state_close}, {"__close", state_close}, {"__tostring", state_tostring}, {NULL, NULL}};

static const luaL_Reg buf_meta[] = {{"__gc", buf_gc}, {NULL, NULL}};

static const luaL_Reg restricted_funcs[] = {{"new", restricted_new}, {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_restricted(lua_State *L);
MB_EXPORT int luaopen_moonbox_restricted(lua_State *L)
{
  mb_newclass(L, STATE_T, state_methods, state_meta);
  mb_newclass(L, BUF_T, NULL, buf_meta);
  luaL_newlib(L, restricted_funcs);
  return 1;
}
