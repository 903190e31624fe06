/* loop.h: the event loop every waiting native builds on.
 *
 * One loop per lua_State (created on first use, freed when the state closes): epoll for fds,
 * a binary heap of timers, child exits through pidfds, deferred callbacks (what the scheduler
 * uses to resume tasks), and a small pool of worker threads for CPU-heavy native work whose
 * completions come back to the loop thread through an eventfd.
 *
 * Ownership: every handle (mb_io, mb_timer, mb_child, mb_defer) is memory the caller owns and
 * embeds in its own object (usually a userdata); the loop only links it while it is started. Stop
 * a handle before freeing its memory (a __gc must stop its handles). Callbacks run on the loop
 * thread, from mb_loop_run_once; they are plain C: they must not call Lua (no longjmp may cross
 * the loop), they record a result and wake a waiter (see scheduler.h: mb_wait_done).
 *
 * Work items (mb_work) are the exception to "the caller owns": a submitted item belongs to the
 * pool until its done callback runs on the loop thread; the done callback frees it. */
#ifndef MOONBOX_LOOP_H
#define MOONBOX_LOOP_H

#include <stdint.h>
#include <sys/types.h>

#include "moonbox.h"

typedef struct mb_loop mb_loop;

/* The loop of L's main state, created on first use. Never NULL (raises on ENOMEM/EMFILE). */
mb_loop *mb_loop_get(lua_State *L);

/* Monotonic seconds. */
double mb_now(void);

/* ---- fd watches ---------------------------------------------------------------------------- */
#define MB_READABLE 1u
#define MB_WRITABLE 2u

typedef struct mb_io mb_io;
/* events: MB_READABLE / MB_WRITABLE; hang-up and errors are reported as both, so a reader sees
 * EOF or the error from read(). */
typedef void (*mb_io_cb)(mb_loop *loop, mb_io *io, unsigned events);
struct mb_io {
  int fd;
  unsigned events;
  mb_io_cb cb;
  void *data; /* the owner's, untouched by the loop */
  int active;
};

/* Starts watching fd (level-triggered). Returns 0 or an errno value. */
int mb_io_start(mb_loop *loop, mb_io *io, int fd, unsigned events, mb_io_cb cb, void *data);
/* Changes the events of a started watch. Returns 0 or an errno value. */
int mb_io_update(mb_loop *loop, mb_io *io, unsigned events);
/* Stops the watch (idempotent; does not close the fd). */
void mb_io_stop(mb_loop *loop, mb_io *io);

/* ---- timers -------------------------------------------------------------------------------- */
typedef struct mb_timer mb_timer;
typedef void (*mb_timer_cb)(mb_loop *loop, mb_timer *t);
struct mb_timer {
  double due;   /* mb_now() seconds */
  size_t index; /* heap slot + 1 while started, 0 when stopped */
  uint64_t seq; /* tie-break: timers due at the same time fire in start order */
  mb_timer_cb cb;
  void *data;
};

/* Fires once, `delay` seconds from now (restarting a started timer re-arms it). 0 or errno. */
int mb_timer_start(mb_loop *loop, mb_timer *t, double delay, mb_timer_cb cb, void *data);
void mb_timer_stop(mb_loop *loop, mb_timer *t);

/* ---- child processes ----------------------------------------------------------------------- */
typedef struct mb_child mb_child;
/* Called once when the child has exited and been reaped: status as from waitpid(). */
typedef void (*mb_child_cb)(mb_loop *loop, mb_child *c, int status);
struct mb_child {
  mb_io io; /* on the pidfd */
  pid_t pid;
  int pidfd;
  mb_child_cb cb;
  void *data;
  /* Called after the child exited but before it is reaped, while its pid still names it: the
   * place to signal its process group safely. May be NULL. */
  void (*before_reap)(mb_loop *loop, mb_child *c);
};

/* Watches a child of this process (not yet reaped). Returns 0 or an errno value. */
int mb_child_start(mb_loop *loop, mb_child *c, pid_t pid, mb_child_cb cb, void *data);
/* Stops watching; the child is not reaped (use mb_child_reap). */
void mb_child_stop(mb_loop *loop, mb_child *c);
/* Checks now (without waiting) whether the child exited; if so, does what the loop would do
 * (before_reap, reap, callback) and returns 1; else 0. For callers that want fresh state
 * without running the loop. */
int mb_child_poll(mb_loop *loop, mb_child *c);
/* Blocking reap of a child that is known to be dying (after SIGKILL). Stops the watch and
 * returns the wait status, or -1 if it was already reaped. */
int mb_child_reap(mb_loop *loop, mb_child *c);

/* ---- process groups that must not outlive this process ----------------------------------- */
/* Every process group a native starts is registered here until it is gone. mb_groups_kill_all
 * SIGKILLs them all and is async-signal-safe: the host calls it from its SIGINT/SIGTERM/SIGHUP
 * handlers, and an atexit handler calls it too, so neither a signal nor os.exit orphans them.
 * At most MB_GROUPS_MAX are tracked at once (beyond that only __gc and stop() cover them). */
#define MB_GROUPS_MAX 4096
void mb_groups_add(pid_t pgid);
void mb_groups_remove(pid_t pgid);
void mb_groups_kill_all(void);

/* ---- deferred callbacks -------------------------------------------------------------------- */
typedef struct mb_defer mb_defer;
typedef void (*mb_defer_cb)(mb_loop *loop, mb_defer *d);
struct mb_defer {
  mb_defer *next;
  mb_defer_cb cb;
  void *data;
  int queued;
};

/* Runs cb on the next loop iteration, before polling (FIFO). Queuing a queued item is a no-op. */
void mb_defer_queue(mb_loop *loop, mb_defer *d, mb_defer_cb cb, void *data);
void mb_defer_cancel(mb_loop *loop, mb_defer *d);

/* ---- worker threads ------------------------------------------------------------------------ */
typedef struct mb_work mb_work;
struct mb_work {
  /* Runs on a worker thread: no Lua, no loop calls; touches only what the item owns. */
  void (*work)(mb_work *w);
  /* Runs on the loop thread after work (or instead of it when cancelled before it started).
   * It owns the item from then on and frees it. */
  void (*done)(mb_loop *loop, mb_work *w, int cancelled);
  void *data;
  mb_work *next;
  int state; /* the pool's */
  int cancelled;
};

/* Queues w for a worker thread (the pool starts on first use). 0 or an errno value. */
int mb_work_submit(mb_loop *loop, mb_work *w);
/* Asks for w not to run: if it has not started, done(cancelled = 1) runs on the next iteration;
 * if it is running, done(cancelled = 1) runs after it finishes. The owner must not touch w
 * after this call except from done. */
void mb_work_cancel(mb_loop *loop, mb_work *w);

/* ---- running ------------------------------------------------------------------------------- */
/* One iteration: runs deferred callbacks, then waits up to `timeout` seconds (< 0: until
 * something happens; 0: poll) and dispatches what is ready. Returns 1 if anything is still
 * registered (fds, timers, children, work, deferred), 0 if the loop is empty. Re-entrant: a
 * callback's consequences may run the loop again (a blocking call outside a task does). */
int mb_loop_run_once(mb_loop *loop, double timeout);

/* Runs iterations until *flag becomes non-zero. Returns 0, or -1 if the loop became empty
 * before that (nothing could ever set the flag). */
int mb_loop_run_until(mb_loop *loop, const volatile int *flag);

/* Makes the next poll non-blocking (also the poll of the iteration running the deferred
 * callback that calls it): whoever runs the loop gets to look at what just changed. */
void mb_loop_wake(mb_loop *loop);

/* Number of live handles (fds, timers, children, queued work, deferred). */
size_t mb_loop_alive(mb_loop *loop);

/* The longest time (seconds) the loop ran callbacks and task steps without polling, since the
 * start or the last reset: how long the loop was blocked at worst, in wall-clock time (which
 * includes time the OS gave to other processes) and, in *cpu if not NULL, in this thread's CPU
 * time (the work the loop itself did between two polls). */
double mb_loop_max_busy(mb_loop *loop, int reset, double *cpu);

/* The lua_State whose loop this is (the main thread). */
lua_State *mb_loop_state(mb_loop *loop);

/* Opaque pointer slot for the scheduler (sched.c keeps its state here). */
void **mb_loop_sched_slot(mb_loop *loop);

#endif
