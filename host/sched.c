/* sched.c: tasks, the only place that calls lua_resume (see scheduler.h for the waiting protocol).
 *
 * A task is a userdata "moonbox.task.Task" whose user values are its coroutine and, once it
 * failed, its error value. Its metatable has no __gc: an object with a finalizer costs the
 * collector's non-incremental atomic step a walk, and a dead one is resurrected there with all it
 * references (here a whole coroutine). Only a task that failed is switched to a second metatable
 * (registry "moonbox.task.FailedTask", same methods and __name) whose __gc reports a failure
 * nobody joined and frees the traceback. While unfinished it is anchored in the registry (one
 * luaL_ref, released when it finishes), so a task nobody holds still runs to the end. A finished
 * task keeps its results on its dead coroutine's stack for join; a failed or cancelled one is
 * closed (lua_resetthread) so its <close> variables run. The scheduler state is a userdata anchored
 * in the registry ("moonbox.sched"), created after the loop so Lua finalizes it first.
 *
 * A task is resumed from a deferred loop callback (mb_defer), never from inside another task's
 * native call except when that call blocks (runs the loop nested). `running` is the task being
 * resumed; `from` is the thread whose C call is running the loop (for lua_resume's C-stack
 * count). Errors: join re-raises the task's error value; join of a cancelled task raises
 * "task cancelled"; misuse (joining itself, running the loop inside a task) raises. */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASK_MT "moonbox.task.Task"
#define FAILED_MT "moonbox.task.FailedTask"

enum { T_READY, T_RUNNING, T_WAITING, T_DONE, T_FAILED, T_CANCELLED };

typedef struct join join;

struct mb_task {
  lua_State *co;
  mb_loop *loop;
  int state;
  int started;
  int nres;
  int cancel_requested;
  int report;
  int observed; /* a join has seen the outcome */
  int anchor;
  mb_wait *pending;
  mb_defer wake;
  join *joiners;
  char *traceback;
};

struct join {
  mb_wait w;
  join *next;
  mb_task *target;
};

typedef struct sched {
  size_t live;
  mb_task *running;
  lua_State *from;
  lua_State *aux; /* a thread of our own for tracebacks and registry work */
} sched;

static const char cancelled_msg[] = "task cancelled";

static sched *sched_get(lua_State *L, mb_loop *loop)
{
  void **slot = mb_loop_sched_slot(loop);
  if (*slot) return *slot;
  sched *s = lua_newuserdatauv(L, sizeof *s, 1);
  memset(s, 0, sizeof *s);
  s->aux = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  s->from = mb_loop_state(loop);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonbox.sched");
  *slot = s;
  return s;
}

void mb_wait_init(mb_wait *w, mb_cancel_fn cancel, void *data)
{
  w->cancel = cancel;
  w->data = data;
  w->task = NULL;
  w->done = 0;
  w->cancelled = 0;
}

static void task_resume(mb_loop *loop, mb_defer *d);

void mb_wait_done(mb_loop *loop, mb_wait *w)
{
  if (w->done) return;
  w->done = 1;
  mb_loop_wake(loop);
  if (w->task) mb_defer_queue(loop, &w->task->wake, task_resume, w->task);
}

mb_task *mb_task_current(lua_State *L)
{
  mb_loop *loop = mb_loop_get(L);
  sched *s = *mb_loop_sched_slot(loop);
  if (s == NULL || s->running == NULL || s->running->co != L) return NULL;
  return s->running;
}

/* ---- finishing ----------------------------------------------------------------------------- */

static void print_failure(mb_task *t)
{
  fprintf(stderr, "moonbox: task failed: %s\n", t->traceback ? t->traceback : "(no message)");
  fflush(stderr);
}

static void finish(sched *s, mb_task *t, int state)
{
  t->state = state;
  t->pending = NULL;
  mb_loop_wake(t->loop);
  mb_defer_cancel(t->loop, &t->wake);
  s->live--;
  luaL_unref(s->aux, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
  join *j = t->joiners;
  t->joiners = NULL;
  while (j) {
    join *next = j->next;
    j->next = NULL;
    j->target = NULL;
    mb_wait_done(t->loop, &j->w);
    j = next;
  }
}

/* Keeps "<message>\n<traceback of co>" as a C string; leaves the error value on co's top. */
static void record_error(sched *s, mb_task *t)
{
  lua_State *A = s->aux;
  int top = lua_gettop(A);
  lua_rawgeti(A, LUA_REGISTRYINDEX, t->anchor);
  luaL_setmetatable(A, FAILED_MT); /* from now on its __gc frees the traceback */
  lua_pop(A, 1);
  lua_pushvalue(t->co, -1);
  lua_xmove(t->co, A, 1);
  const char *msg = lua_type(A, -1) == LUA_TSTRING ? lua_tostring(A, -1) : NULL;
  if (msg == NULL && lua_type(A, -1) == LUA_TNUMBER)
    msg = lua_pushfstring(A, "%s", lua_tostring(A, -1));
  if (msg == NULL) msg = lua_pushfstring(A, "(error object is a %s value)", luaL_typename(A, -1));
  luaL_traceback(A, t->co, msg, 0);
  const char *tb = lua_tostring(A, -1);
  t->traceback = strdup(tb ? tb : msg);
  lua_settop(A, top);
}

/* Closes a suspended (or never started) task's coroutine: runs its cancel hook first. */
static void cancel_suspended(sched *s, mb_task *t)
{
  mb_wait *w = t->pending;
  t->pending = NULL;
  if (w) {
    w->task = NULL;
    if (!w->done) {
      w->cancelled = 1;
      w->done = 1;
      if (w->cancel) w->cancel(t->loop, w);
    }
  }
  mb_defer_cancel(t->loop, &t->wake);
  t->state = T_RUNNING; /* while its <close> handlers run; they block if they wait */
  mb_task *prev = s->running;
  s->running = NULL;
  int status = lua_resetthread(t->co);
  s->running = prev;
  if (status != LUA_OK && lua_type(t->co, -1) != LUA_TNIL) {
    const char *m = lua_tostring(t->co, -1);
    fprintf(stderr, "moonbox: error closing a cancelled task: %s\n", m ? m : "(not a string)");
  }
  lua_settop(t->co, 0);
  finish(s, t, T_CANCELLED);
}

/* A coroutine that stopped on an error keeps its to-be-closed variables open (the stack is
 * left for tracebacks): keep the error value in the task's second user value for join, then
 * close the coroutine so <close> handlers run, as they would after a pcall. */
static void close_after_error(sched *s, mb_task *t, int keep_error)
{
  lua_State *A = s->aux;
  int top = lua_gettop(A);
  if (keep_error) {
    lua_rawgeti(A, LUA_REGISTRYINDEX, t->anchor);
    lua_pushvalue(t->co, -1);
    lua_xmove(t->co, A, 1);
    lua_setiuservalue(A, -2, 2);
  }
  lua_settop(A, top);
  mb_task *prev = s->running;
  s->running = NULL; /* its handlers run outside any task: their waits block */
  lua_resetthread(t->co);
  s->running = prev;
  lua_settop(t->co, 0);
}

/* ---- resuming ------------------------------------------------------------------------------ */

static void task_resume(mb_loop *loop, mb_defer *d)
{
  mb_task *t = d->data;
  sched *s = *mb_loop_sched_slot(loop);
  if (t->state >= T_DONE || t->state == T_RUNNING) return;
  mb_wait *w = t->pending;
  if (w && !w->done) return; /* spurious */
  t->pending = NULL;
  if (w) w->task = NULL;
  if (t->cancel_requested) {
    cancel_suspended(s, t);
    return;
  }
  int nargs = 0;
  if (!t->started) {
    t->started = 1;
    nargs = lua_gettop(t->co) - 1;
  }
  mb_task *prev = s->running;
  s->running = t;
  t->state = T_RUNNING;
  int nres = 0;
  int status = lua_resume(t->co, s->from, nargs, &nres);
  s->running = prev;
  if (status == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (t->cancel_requested) {
      t->state = T_WAITING;
      cancel_suspended(s, t);
    } else if (t->pending) {
      t->state = T_WAITING;
    } else { /* a plain coroutine.yield(): let the others run, then go on */
      t->state = T_READY;
      mb_defer_queue(loop, &t->wake, task_resume, t);
    }
  } else if (status == LUA_OK) {
    t->nres = nres;
    finish(s, t, T_DONE);
  } else if (t->cancel_requested) {
    close_after_error(s, t, 0);
    finish(s, t, T_CANCELLED);
  } else {
    record_error(s, t);
    close_after_error(s, t, 1);
    finish(s, t, T_FAILED);
  }
}

/* ---- waiting ------------------------------------------------------------------------------- */

int mb_await(lua_State *L, mb_wait *w, lua_KFunction k, lua_KContext ctx)
{
  if (w->done) return k(L, LUA_OK, ctx);
  mb_loop *loop = mb_loop_get(L);
  sched *s = sched_get(L, loop);
  mb_task *t = (s->running && s->running->co == L) ? s->running : NULL;
  if (t && lua_isyieldable(L)) {
    t->pending = w;
    w->task = t;
    return lua_yieldk(L, 0, ctx, k);
  }
  /* Block: run the loop (other tasks included) until w is done. */
  if (t) t->pending = w;
  lua_State *prev_from = s->from;
  s->from = L;
  int r = mb_loop_run_until(loop, &w->done);
  s->from = prev_from;
  if (t) t->pending = NULL;
  if (w->cancelled) return luaL_error(L, cancelled_msg);
  if (r != 0)
    return luaL_error(L, "moonbox: waiting forever: nothing left that could finish the wait");
  return k(L, LUA_OK, ctx);
}

/* ---- work on the worker pool -------------------------------------------------------------- */

typedef struct job {
  mb_work work; /* first: the pool hands back this pointer */
  void (*fn)(void *arg);
  void *arg;
  int ref;       /* anchors the caller's `keep` value until done() */
  lua_State *L;  /* the main thread, for the unref */
  mb_wait *wait; /* NULL once the waiter is gone (cancelled or collected) */
} job;

typedef struct work_op {
  mb_wait wait;
  job *job;
} work_op;

static void job_run(mb_work *w)
{
  job *j = (job *)w;
  j->fn(j->arg);
}

static void job_done(mb_loop *loop, mb_work *w, int cancelled)
{
  job *j = (job *)w;
  if (j->wait) {
    ((work_op *)j->wait->data)->job = NULL;
    mb_wait_done(loop, j->wait);
  }
  luaL_unref(j->L, LUA_REGISTRYINDEX, j->ref); /* reuses an existing slot: cannot raise */
  free(j);
}

static void work_detach(work_op *op)
{
  if (op->job == NULL) return;
  op->job->wait = NULL;
  op->job = NULL;
}

static void work_cancel(mb_loop *loop, mb_wait *w)
{
  work_op *op = w->data;
  job *j = op->job;
  work_detach(op);
  if (j) mb_work_cancel(loop, &j->work);
}

static int work_op_gc(lua_State *L)
{
  work_detach(lua_touserdata(L, 1));
  return 0;
}

int mb_await_work(lua_State *L, void (*fn)(void *arg), void *arg, int keep, lua_KFunction k,
                  lua_KContext ctx)
{
  keep = lua_absindex(L, keep);
  if (mb_task_current(L) == NULL || !lua_isyieldable(L)) {
    fn(arg);
    return k(L, LUA_OK, ctx);
  }
  mb_loop *loop = mb_loop_get(L);
  work_op *op = lua_newuserdatauv(L, sizeof *op, 0);
  op->job = NULL;
  if (luaL_newmetatable(L, "moonbox.task.Work")) {
    lua_pushcfunction(L, work_op_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  mb_wait_init(&op->wait, work_cancel, op);
  lua_pushvalue(L, keep);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "not enough memory");
  }
  j->work.work = job_run;
  j->work.done = job_done;
  j->fn = fn;
  j->arg = arg;
  j->ref = ref;
  j->L = mb_loop_state(loop);
  j->wait = &op->wait;
  op->job = j;
  int err = mb_work_submit(loop, &j->work);
  if (err) {
    op->job = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    free(j);
    fn(arg); /* no threads to be had: do it here */
    return k(L, LUA_OK, ctx);
  }
  return mb_await(L, &op->wait, k, ctx);
}

/* ---- tasks --------------------------------------------------------------------------------- */

mb_task *mb_task_check(lua_State *L, int idx)
{
  mb_task *t = luaL_testudata(L, idx, TASK_MT);
  if (t == NULL) t = luaL_testudata(L, idx, FAILED_MT);
  if (t == NULL) luaL_typeerror(L, idx, TASK_MT);
  return t;
}

const char *mb_task_status(const mb_task *t)
{
  static const char *const names[] = {"ready", "running", "waiting", "done", "failed", "cancelled"};
  return names[t->state];
}

int mb_task_push_traceback(lua_State *L, mb_task *t)
{
  if (t->traceback == NULL) return 0;
  lua_pushstring(L, t->traceback);
  return 1;
}

static int task_gc(lua_State *L)
{
  mb_task *t = luaL_checkudata(L, 1, FAILED_MT);
  /* A failure nobody joined is reported when the task is dropped (at the latest at exit). */
  if (t->state == T_FAILED && t->report && !t->observed) print_failure(t);
  free(t->traceback);
  t->traceback = NULL;
  return 0;
}

static int task_tostring(lua_State *L)
{
  mb_task *t = mb_task_check(L, 1);
  lua_pushfstring(L, TASK_MT ": %p (%s)", (void *)t, mb_task_status(t));
  return 1;
}

static int task_status_l(lua_State *L)
{
  lua_pushstring(L, mb_task_status(mb_task_check(L, 1)));
  return 1;
}

static int task_traceback_l(lua_State *L)
{
  return mb_task_push_traceback(L, mb_task_check(L, 1));
}

static void ensure_class(lua_State *L)
{
  if (luaL_getmetatable(L, TASK_MT) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  static const luaL_Reg methods[] = {{"join", mb_task_join},
                                     {"cancel", mb_task_cancel},
                                     {"status", task_status_l},
                                     {"traceback", task_traceback_l},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", task_tostring}, {NULL, NULL}};
  mb_newclass(L, TASK_MT, methods, meta);
  static const luaL_Reg failed_meta[] = {
      {"__gc", task_gc}, {"__tostring", task_tostring}, {NULL, NULL}};
  mb_newclass(L, FAILED_MT, methods, failed_meta);
  luaL_getmetatable(L, FAILED_MT);
  lua_pushstring(L, TASK_MT); /* errors and tostring name both kinds the same */
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

mb_task *mb_task_spawn(lua_State *L, int nargs, int report)
{
  luaL_checktype(L, -(nargs + 1), LUA_TFUNCTION);
  mb_loop *loop = mb_loop_get(L);
  sched *s = sched_get(L, loop);
  ensure_class(L);
  mb_task *t = lua_newuserdatauv(L, sizeof *t, 2); /* 1: the coroutine, 2: its error */
  memset(t, 0, sizeof *t);
  t->anchor = LUA_NOREF;
  luaL_setmetatable(L, TASK_MT);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  lua_insert(L, -(nargs + 2)); /* task, fn, args... */
  lua_xmove(L, co, nargs + 1);
  t->co = co;
  t->loop = loop;
  t->report = report;
  t->state = T_READY;
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  s->live++;
  mb_defer_queue(loop, &t->wake, task_resume, t);
  return t;
}

static int join_results(lua_State *L, mb_task *t)
{
  t->observed = 1;
  if (t->state == T_DONE) {
    luaL_checkstack(L, t->nres, "too many results to join");
    int top = lua_gettop(t->co);
    for (int i = top - t->nres + 1; i <= top; i++) lua_pushvalue(t->co, i);
    lua_xmove(t->co, L, t->nres);
    return t->nres;
  }
  if (t->state == T_FAILED) {
    lua_getiuservalue(L, 1, 2);
    return lua_error(L);
  }
  return luaL_error(L, cancelled_msg);
}

static void join_cancel(mb_loop *loop, mb_wait *w)
{
  join *j = w->data;
  if (j->target == NULL) return;
  for (join **pp = &j->target->joiners; *pp; pp = &(*pp)->next)
    if (*pp == j) {
      *pp = j->next;
      break;
    }
  j->target = NULL;
}

static int join_k(lua_State *L, int status, lua_KContext ctx)
{
  (void)status;
  (void)ctx;
  return join_results(L, mb_task_check(L, 1));
}

int mb_task_join(lua_State *L)
{
  mb_task *t = mb_task_check(L, 1);
  lua_settop(L, 1);
  if (t->state >= T_DONE) return join_results(L, t);
  if (t->co == L) return luaL_error(L, "a task cannot join itself");
  join *j = lua_newuserdatauv(L, sizeof *j, 0);
  mb_wait_init(&j->w, join_cancel, j);
  j->target = t;
  j->next = t->joiners;
  t->joiners = j;
  return mb_await(L, &j->w, join_k, 0);
}

int mb_task_cancel(lua_State *L)
{
  mb_task *t = mb_task_check(L, 1);
  sched *s = sched_get(L, t->loop);
  if (t->state >= T_DONE) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (t->state == T_RUNNING) {
    /* On the C stack: itself, a task blocked in a nested loop, or one that resumed a plain
     * coroutine. Stop its blocking wait if any; it finishes as cancelled when it unwinds. */
    t->cancel_requested = 1;
    mb_wait *w = t->pending;
    if (w && !w->done) {
      w->cancelled = 1;
      w->done = 1;
      if (w->cancel) w->cancel(t->loop, w);
    }
    if (t->co == L) return luaL_error(L, cancelled_msg);
    lua_pushboolean(L, 1);
    return 1;
  }
  t->cancel_requested = 1;
  cancel_suspended(s, t);
  lua_pushboolean(L, 1);
  return 1;
}

int mb_sched_run(lua_State *L, mb_task *watch)
{
  mb_loop *loop = mb_loop_get(L);
  sched *s = sched_get(L, loop);
  if (s->running && s->running->co == L)
    return luaL_error(L, "moonbox.run: called inside a task (use task:join())");
  lua_State *prev = s->from;
  s->from = L;
  while (s->live > 0 && mb_loop_alive(loop) > 0) {
    if (watch && (watch->state == T_FAILED || watch->state == T_CANCELLED)) break;
    mb_loop_run_once(loop, -1);
  }
  s->from = prev;
  return (int)s->live;
}

size_t mb_sched_live(lua_State *L)
{
  sched *s = *mb_loop_sched_slot(mb_loop_get(L));
  return s ? s->live : 0;
}

void mb_sched_cancel_all(lua_State *L)
{
  mb_loop *loop = mb_loop_get(L);
  sched *s = sched_get(L, loop);
  /* Each unfinished task is anchored in the registry; walk them through a snapshot table. */
  lua_State *A = s->aux;
  int top = lua_gettop(A);
  lua_newtable(A);
  int list = lua_gettop(A);
  int n = 0;
  lua_pushnil(A);
  while (lua_next(A, LUA_REGISTRYINDEX)) {
    mb_task *t = luaL_testudata(A, -1, TASK_MT);
    if (t && t->state < T_DONE) {
      lua_pushvalue(A, -1);
      lua_rawseti(A, list, ++n);
    }
    lua_pop(A, 1);
  }
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(A, list, i);
    mb_task *t = lua_touserdata(A, -1);
    if (t->state < T_DONE && t->state != T_RUNNING) {
      t->cancel_requested = 1;
      cancel_suspended(s, t);
    }
    lua_pop(A, 1);
  }
  lua_settop(A, top);
}
