/* scheduler.h (not sched.h: that name would shadow the system <sched.h>): tasks (coroutines run by
 * the loop) and the one way natives wait.
 *
 * A native that must wait (a command, a timer, an fd, a transfer) does this:
 *
 *   1. Pushes a userdata holding its state, with an mb_wait inside and a __gc that releases
 *      what it holds; it stays on the caller's stack while the operation is pending, so the
 *      memory lives exactly as long as the wait.
 *   2. Starts loop handles (loop.h) whose C callbacks record the outcome and call
 *      mb_wait_done(loop, &op->wait) when the operation is over.
 *   3. Returns mb_await(L, &op->wait, k, ctx). The continuation k(L, status, ctx) builds the
 *      Lua results from the recorded outcome; the userdata is still at the same stack index.
 *
 * mb_await finishes at once when the wait is already done. Inside a task (L is the thread the
 * scheduler resumed and lua_isyieldable) it yields with lua_yieldk; the scheduler resumes the
 * task when mb_wait_done is called, and Lua runs k. Anywhere else (stock lua5.4, a plain
 * coroutine, a metamethod, a __close handler) it blocks: it runs the loop (so other tasks keep
 * going) until the wait is done, then calls k itself. Blocking waits nest on the C stack: one
 * returns only after every wait that blocked while it ran (last in, first out).
 *
 * Cancelling a task (task:cancel(), or the host shutting down after its main task failed) calls
 * the pending wait's cancel hook once, if the operation is not done yet: the hook must stop the
 * loop handles and release the OS resources (kill the process group, abort the transfer); after
 * it the coroutine is closed (lua_resetthread), so to-be-closed variables run and the op
 * userdata becomes garbage. A task blocked in a non-yieldable context is cancelled by making its
 * mb_await raise "task cancelled".
 *
 * The smallest complete example is moonbox.sleep (modules/task/task.c); Process:wait in
 * modules/proc/proc.c is a full one (cancel hook, __gc, results built in the continuation);
 * mb_await_work below runs CPU-heavy work on the worker pool. lua_resume is called only in sched.c.
 */
#ifndef MOONBOX_SCHEDULER_H
#define MOONBOX_SCHEDULER_H

#include "loop.h"

typedef struct mb_task mb_task;
typedef struct mb_wait mb_wait;

typedef void (*mb_cancel_fn)(mb_loop *loop, mb_wait *w);

struct mb_wait {
  mb_cancel_fn cancel; /* may be NULL when there is nothing to release */
  void *data;          /* the owner's */
  mb_task *task;       /* the task suspended on this wait (the scheduler's) */
  int done;
  int cancelled;
};

void mb_wait_init(mb_wait *w, mb_cancel_fn cancel, void *data);

/* The operation is over: marks the wait done and wakes its task. Safe from any loop callback;
 * calling it twice is harmless. */
void mb_wait_done(mb_loop *loop, mb_wait *w);

/* Waits for w, yielding inside a task and blocking elsewhere; then returns k(L, status, ctx).
 * Raises if the loop runs dry before w is done (nothing could ever finish it). */
int mb_await(lua_State *L, mb_wait *w, lua_KFunction k, lua_KContext ctx);

/* Runs fn(arg) on a worker thread and waits for it, then returns k(L, status, ctx). Inside a
 * task the task yields while the worker runs; elsewhere fn simply runs inline (a thread would
 * only add latency when nothing else can run). fn must not touch Lua. `keep` is a stack index
 * whose value keeps arg and everything fn reads alive (a userdata with the input in its user
 * values): it is anchored until the worker is done, even if the task is cancelled meanwhile
 * (then the result is dropped). */
int mb_await_work(lua_State *L, void (*fn)(void *arg), void *arg, int keep, lua_KFunction k,
                  lua_KContext ctx);

/* The task whose coroutine is L while the scheduler runs it, else NULL. */
mb_task *mb_task_current(lua_State *L);

/* Pops a function and its nargs arguments, pushes a new task (userdata "moonbox.task.Task")
 * that the loop starts on its next iteration. `report`: if the task fails and no join ever
 * sees the error, print its traceback on stderr when the task is garbage-collected (at the
 * latest when the state closes). */
mb_task *mb_task_spawn(lua_State *L, int nargs, int report);

/* The task at index idx (raises if it is not one). */
mb_task *mb_task_check(lua_State *L, int idx);

/* "ready", "running", "waiting", "done", "failed", "cancelled". */
const char *mb_task_status(const mb_task *t);

/* Pushes the task's traceback (failed tasks) or nothing; returns the number pushed. */
int mb_task_push_traceback(lua_State *L, mb_task *t);

/* task:join(), task:cancel(): lua_CFunctions with the task at index 1. */
int mb_task_join(lua_State *L);
int mb_task_cancel(lua_State *L);

/* Runs the loop until every task is finished, or until `watch` (may be NULL) fails or is
 * cancelled. Returns the number of tasks still unfinished: 0 normally; after a watch failure,
 * those still running; else the tasks nothing is left to wake (a deadlock). Raises inside a task.
 */
int mb_sched_run(lua_State *L, mb_task *watch);

/* Cancels every unfinished task (their cancel hooks and <close> variables run). */
void mb_sched_cancel_all(lua_State *L);

/* Number of unfinished tasks. */
size_t mb_sched_live(lua_State *L);

#endif
