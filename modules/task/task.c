/* task.c: moonbox.task — tasks, sleep, the monotonic clock, and fd waits (io.c).
 *
 *   spawn(fn, ...) -> task        run fn(...) as a task on the loop (it starts on the next
 *                                 iteration: when the caller yields, or blocks, or at run())
 *   task:join()                   fn's results; re-raises its error; raises if it was cancelled
 *   task:cancel() -> boolean      true if it was unfinished; runs the pending cancel hook and
 *                                 closes the coroutine (<close> variables run)
 *   task:status()                 "ready" | "running" | "waiting" | "done" | "failed" | "cancelled"
 *   task:traceback()              the error and traceback of a failed task, else nothing
 *   sleep(seconds)                yields inside a task, blocks (running the loop) elsewhere
 *   now() -> seconds              monotonic clock, float
 *   run() -> stuck                outside a task: run the loop until every task has finished;
 *                                 returns the number of tasks left waiting on nothing (deadlock)
 *   in_task() -> boolean          whether waits here yield (true) or block (false)
 *   stats([reset]) -> {tasks, handles, max_busy, max_busy_cpu}   unfinished tasks (the running
 *                                 main task included), live loop handles (fds, timers, children,
 *                                 work, deferred), and the longest time in seconds the loop went
 *                                 without polling, wall-clock and in its own CPU time (reset =
 *                                 true starts a new measurement)
 *   io.wait_readable(fd [, timeout]) / io.reader(fd)   see io.c
 *
 * Owns: each sleep holds a timer in a userdata on the waiting stack (released on wake, cancel
 * or __gc). Fail codes: none (misuse raises). */
#include "task_io.h"

static int task_spawn(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TFUNCTION);
  mb_task_spawn(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int task_now(lua_State *L)
{
  lua_pushnumber(L, mb_now());
  return 1;
}

typedef struct sleep_op {
  mb_wait wait;
  mb_timer timer;
  mb_loop *loop;
} sleep_op;

static void sleep_fire(mb_loop *loop, mb_timer *t)
{
  sleep_op *op = t->data;
  mb_wait_done(loop, &op->wait);
}

static void sleep_cancel(mb_loop *loop, mb_wait *w)
{
  sleep_op *op = w->data;
  mb_timer_stop(loop, &op->timer);
}

static int sleep_gc(lua_State *L)
{
  sleep_op *op = lua_touserdata(L, 1);
  if (op->loop) mb_timer_stop(op->loop, &op->timer);
  op->loop = NULL;
  return 0;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static int task_sleep(lua_State *L)
{
  lua_Number secs = luaL_checknumber(L, 1);
  luaL_argcheck(L, secs >= 0, 1, "seconds must be a number >= 0");
  mb_loop *loop = mb_loop_get(L);
  lua_settop(L, 1);
  sleep_op *op = lua_newuserdatauv(L, sizeof *op, 0);
  memset(op, 0, sizeof *op);
  if (luaL_newmetatable(L, "moonbox.task.Sleep")) {
    lua_pushcfunction(L, sleep_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  mb_wait_init(&op->wait, sleep_cancel, op);
  int err = mb_timer_start(loop, &op->timer, (double)secs, sleep_fire, op);
  if (err) return luaL_error(L, "moonbox.sleep: %s", strerror(err));
  op->loop = loop;
  return mb_await(L, &op->wait, sleep_k, 0);
}

static int task_run(lua_State *L)
{
  lua_pushinteger(L, mb_sched_run(L, NULL));
  return 1;
}

static int task_in_task(lua_State *L)
{
  lua_pushboolean(L, mb_task_current(L) != NULL && lua_isyieldable(L));
  return 1;
}

static int task_stats(lua_State *L)
{
  mb_loop *loop = mb_loop_get(L);
  int reset = lua_toboolean(L, 1);
  double cpu;
  double busy = mb_loop_max_busy(loop, reset, &cpu);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)mb_sched_live(L));
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, (lua_Integer)mb_loop_alive(loop));
  lua_setfield(L, -2, "handles");
  lua_pushnumber(L, busy);
  lua_setfield(L, -2, "max_busy");
  lua_pushnumber(L, cpu);
  lua_setfield(L, -2, "max_busy_cpu");
  return 1;
}

static const luaL_Reg task_funcs[] = {
    {"spawn", task_spawn},     {"now", task_now},     {"sleep", task_sleep}, {"run", task_run},
    {"in_task", task_in_task}, {"stats", task_stats}, {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_task(lua_State *L);
MB_EXPORT int luaopen_moonbox_task(lua_State *L)
{
  luaL_newlib(L, task_funcs);
  mb_task_io_open(L);
  lua_setfield(L, -2, "io");
  return 1;
}
