/* loop.c: the event loop (see loop.h for the API and who owns what).
 *
 * epoll (level-triggered) for fd watches and child pidfds; timers in a binary min-heap whose top
 * sets the epoll timeout; deferred callbacks in a FIFO run before each poll; a worker pool of
 * MB_WORKERS threads started on first use, whose finished items are queued under a mutex and
 * announced through an eventfd the loop watches.
 *
 * The loop lives in a userdata anchored in the registry ("moonbox.loop"): its __gc (at
 * lua_close) joins the workers and closes the epoll, eventfd and pidfds. Objects that hold
 * handles are created after the loop, so Lua finalizes them first (reverse order of marking).
 *
 * Re-entrancy: a blocking call outside a task runs the loop from inside a callback's
 * consequences. Each active mb_loop_run_once keeps its batch of epoll events on a small stack;
 * stopping a watch erases it from every pending batch so no callback sees a freed handle.
 * Fail codes: none here; functions return errno values and callers choose the CODE. */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MB_WORKERS 2
#define MB_BATCH 64
#define MB_MAX_DEPTH 32

enum { WORK_QUEUED = 1, WORK_RUNNING, WORK_FINISHED };

struct mb_loop {
  lua_State *L;
  int epfd;
  size_t nio; /* started fd watches (children included) */
  /* timers */
  mb_timer **heap;
  size_t nheap, capheap;
  uint64_t seq;
  /* deferred */
  mb_defer *dhead, *dtail;
  size_t ndefer;
  /* pending epoll batches of the active (nested) run_once calls */
  struct epoll_event *batches[MB_MAX_DEPTH];
  int nbatch[MB_MAX_DEPTH];
  int depth;
  /* worker pool */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t threads[MB_WORKERS];
  int nthreads;
  int quit;
  mb_work *qhead, *qtail; /* waiting for a worker */
  mb_work *fhead, *ftail; /* finished, waiting for done() on the loop thread */
  size_t nwork;           /* submitted and not yet done() */
  int efd;
  mb_io eio;
  int kick;
  void *sched;
  /* how long the loop went without polling (a callback or a task step that did not yield) */
  double last_poll;     /* mb_now() when the last poll returned; 0 before the first */
  double last_poll_cpu; /* this thread's CPU time then */
  double max_busy, max_busy_cpu;
};

double mb_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- fd watches ---------------------------------------------------------------------------- */

static uint32_t to_epoll(unsigned events)
{
  uint32_t e = 0;
  if (events & MB_READABLE) e |= EPOLLIN;
  if (events & MB_WRITABLE) e |= EPOLLOUT;
  return e;
}

int mb_io_start(mb_loop *loop, mb_io *io, int fd, unsigned events, mb_io_cb cb, void *data)
{
  if (io->active) mb_io_stop(loop, io);
  struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return errno;
  io->fd = fd;
  io->events = events;
  io->cb = cb;
  io->data = data;
  io->active = 1;
  loop->nio++;
  return 0;
}

int mb_io_update(mb_loop *loop, mb_io *io, unsigned events)
{
  if (!io->active) return EINVAL;
  if (events == io->events) return 0;
  struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0) return errno;
  io->events = events;
  return 0;
}

void mb_io_stop(mb_loop *loop, mb_io *io)
{
  if (!io->active) return;
  epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
  io->active = 0;
  loop->nio--;
  for (int d = 0; d < loop->depth; d++)
    for (int i = 0; i < loop->nbatch[d]; i++)
      if (loop->batches[d][i].data.ptr == io) loop->batches[d][i].data.ptr = NULL;
}

/* ---- timers: a binary min-heap on (due, seq) ----------------------------------------------- */

static int timer_less(const mb_timer *a, const mb_timer *b)
{
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(mb_loop *loop, size_t i, mb_timer *t)
{
  loop->heap[i] = t;
  t->index = i + 1;
}

static void heap_up(mb_loop *loop, size_t i)
{
  mb_timer *t = loop->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!timer_less(t, loop->heap[p])) break;
    heap_set(loop, i, loop->heap[p]);
    i = p;
  }
  heap_set(loop, i, t);
}

static void heap_down(mb_loop *loop, size_t i)
{
  mb_timer *t = loop->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= loop->nheap) break;
    if (c + 1 < loop->nheap && timer_less(loop->heap[c + 1], loop->heap[c])) c++;
    if (!timer_less(loop->heap[c], t)) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, t);
}

void mb_timer_stop(mb_loop *loop, mb_timer *t)
{
  if (t->index == 0) return;
  size_t i = t->index - 1;
  t->index = 0;
  loop->nheap--;
  if (i == loop->nheap) return;
  mb_timer *last = loop->heap[loop->nheap];
  heap_set(loop, i, last);
  heap_down(loop, i);
  heap_up(loop, last->index - 1);
}

int mb_timer_start(mb_loop *loop, mb_timer *t, double delay, mb_timer_cb cb, void *data)
{
  mb_timer_stop(loop, t);
  if (loop->nheap == loop->capheap) {
    size_t cap = loop->capheap ? loop->capheap * 2 : 16;
    mb_timer **h = realloc(loop->heap, cap * sizeof *h);
    if (h == NULL) return ENOMEM;
    loop->heap = h;
    loop->capheap = cap;
  }
  if (!(delay > 0)) delay = 0; /* NaN and negatives fire at once */
  t->due = mb_now() + delay;
  t->seq = ++loop->seq;
  t->cb = cb;
  t->data = data;
  loop->heap[loop->nheap] = t;
  t->index = ++loop->nheap;
  heap_up(loop, loop->nheap - 1);
  return 0;
}

static void run_timers(mb_loop *loop)
{
  double now = mb_now();
  /* Timers started by these callbacks get seq > limit and wait for the next iteration. */
  uint64_t limit = loop->seq;
  while (loop->nheap > 0 && loop->heap[0]->due <= now && loop->heap[0]->seq <= limit) {
    mb_timer *t = loop->heap[0];
    mb_timer_stop(loop, t);
    t->cb(loop, t);
  }
}

/* ---- children ------------------------------------------------------------------------------ */

static void child_ready(mb_loop *loop, mb_io *io, unsigned events)
{
  mb_child *c = io->data;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  /* Peek first (WNOWAIT) so before_reap can signal the group while the pid is still ours. */
  int r = waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT);
  if (r != 0 && errno == ECHILD) { /* someone else reaped it: report an unknown status */
    mb_child_stop(loop, c);
    c->pid = 0;
    c->cb(loop, c, -1);
    return;
  }
  if (r != 0 || si.si_pid == 0) return; /* not exited yet */
  if (c->before_reap) c->before_reap(loop, c);
  int status = 0;
  pid_t w;
  do w = waitpid(c->pid, &status, 0);
  while (w < 0 && errno == EINTR);
  mb_child_stop(loop, c);
  c->pid = 0;
  c->cb(loop, c, w < 0 ? -1 : status);
}

int mb_child_start(mb_loop *loop, mb_child *c, pid_t pid, mb_child_cb cb, void *data)
{
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return errno;
  c->pid = pid;
  c->pidfd = fd;
  c->cb = cb;
  c->data = data;
  int err = mb_io_start(loop, &c->io, fd, MB_READABLE, child_ready, c);
  if (err) {
    close(fd);
    c->pidfd = -1;
  }
  return err;
}

void mb_child_stop(mb_loop *loop, mb_child *c)
{
  mb_io_stop(loop, &c->io);
  if (c->pidfd >= 0) close(c->pidfd);
  c->pidfd = -1;
}

int mb_child_poll(mb_loop *loop, mb_child *c)
{
  if (!c->io.active) return 0;
  child_ready(loop, &c->io, MB_READABLE);
  return !c->io.active;
}

int mb_child_reap(mb_loop *loop, mb_child *c)
{
  mb_child_stop(loop, c);
  if (c->pid <= 0) return -1;
  int status = 0;
  pid_t r;
  do r = waitpid(c->pid, &status, 0);
  while (r < 0 && errno == EINTR);
  c->pid = 0;
  return r < 0 ? -1 : status;
}

/* ---- process groups ------------------------------------------------------------------------ */

/* Plain stores of whole pid_t values: a signal handler reading mid-update sees a slot either
 * before or after, never torn; the high-water mark bounds every scan. */
static volatile pid_t groups[MB_GROUPS_MAX];
static volatile int groups_hw;
static int groups_atexit;

static void groups_at_exit(void)
{
  mb_groups_kill_all();
}

void mb_groups_add(pid_t pgid)
{
  if (!groups_atexit) {
    groups_atexit = 1;
    atexit(groups_at_exit);
  }
  for (int i = 0; i < MB_GROUPS_MAX; i++)
    if (groups[i] == 0) {
      groups[i] = pgid;
      if (i >= groups_hw) groups_hw = i + 1;
      return;
    }
}

void mb_groups_remove(pid_t pgid)
{
  for (int i = 0; i < groups_hw; i++)
    if (groups[i] == pgid) {
      groups[i] = 0;
      break;
    }
  while (groups_hw > 0 && groups[groups_hw - 1] == 0) groups_hw--;
}

void mb_groups_kill_all(void)
{
  int saved = errno;
  for (int i = 0; i < groups_hw; i++) {
    pid_t g = groups[i];
    if (g > 0) kill(-g, SIGKILL);
  }
  errno = saved;
}

/* ---- deferred ------------------------------------------------------------------------------ */

void mb_defer_queue(mb_loop *loop, mb_defer *d, mb_defer_cb cb, void *data)
{
  if (d->queued) return;
  d->cb = cb;
  d->data = data;
  d->next = NULL;
  d->queued = 1;
  if (loop->dtail)
    loop->dtail->next = d;
  else
    loop->dhead = d;
  loop->dtail = d;
  loop->ndefer++;
}

void mb_defer_cancel(mb_loop *loop, mb_defer *d)
{
  if (!d->queued) return;
  mb_defer **pp = &loop->dhead, *prev = NULL;
  while (*pp && *pp != d) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp == d) {
    *pp = d->next;
    if (loop->dtail == d) loop->dtail = prev;
    loop->ndefer--;
  }
  d->queued = 0;
  d->next = NULL;
}

/* CPU seconds this thread has used: the loop's busy time without the time the machine gave to
 * other processes. */
static double thread_cpu(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* At most this long on deferred callbacks (task resumptions) before the loop polls again, so
 * timers and I/O are seen while many tasks are ready; the rest run on the next iteration. The
 * check falls between resumptions, so a stretch without polling is this plus the callbacks of
 * one poll plus the last resumption (with whatever collector step it triggered): 1 ms rather
 * than 2 ms took about a millisecond off the longest stretch in bench/agents.lua. */
#define MB_DEFER_SLICE 0.001

static void run_deferred(mb_loop *loop)
{
  /* Only what is queued now: items queued by these callbacks run next iteration. */
  size_t n = loop->ndefer;
  double until = mb_now() + MB_DEFER_SLICE;
  while (n-- > 0 && loop->dhead) {
    if (mb_now() > until) break;
    mb_defer *d = loop->dhead;
    loop->dhead = d->next;
    if (loop->dhead == NULL) loop->dtail = NULL;
    loop->ndefer--;
    d->queued = 0;
    d->next = NULL;
    d->cb(loop, d);
  }
}

/* ---- worker pool --------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
  mb_loop *loop = arg;
  pthread_mutex_lock(&loop->mu);
  for (;;) {
    while (!loop->quit && loop->qhead == NULL) pthread_cond_wait(&loop->cv, &loop->mu);
    if (loop->quit) break;
    mb_work *w = loop->qhead;
    loop->qhead = w->next;
    if (loop->qhead == NULL) loop->qtail = NULL;
    w->state = WORK_RUNNING;
    pthread_mutex_unlock(&loop->mu);
    w->work(w);
    pthread_mutex_lock(&loop->mu);
    w->state = WORK_FINISHED;
    w->next = NULL;
    if (loop->ftail)
      loop->ftail->next = w;
    else
      loop->fhead = w;
    loop->ftail = w;
    uint64_t one = 1;
    ssize_t wr = write(loop->efd, &one, sizeof one);
    (void)wr; /* the counter cannot overflow at our rates; a failed write only delays done() */
  }
  pthread_mutex_unlock(&loop->mu);
  return NULL;
}

static void work_finished(mb_loop *loop, mb_io *io, unsigned events)
{
  uint64_t n;
  ssize_t rd = read(loop->efd, &n, sizeof n);
  (void)rd;
  pthread_mutex_lock(&loop->mu);
  mb_work *list = loop->fhead;
  loop->fhead = loop->ftail = NULL;
  pthread_mutex_unlock(&loop->mu);
  while (list) {
    mb_work *w = list;
    list = w->next;
    loop->nwork--;
    if (loop->nwork == 0) mb_io_stop(loop, &loop->eio);
    w->done(loop, w, w->cancelled);
  }
}

static int pool_start(mb_loop *loop)
{
  if (loop->nthreads > 0) return 0;
  /* Workers never handle signals: block them all while the threads inherit the mask. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = 0;
  for (int i = 0; i < MB_WORKERS; i++) {
    err = pthread_create(&loop->threads[i], NULL, worker_main, loop);
    if (err) break;
    loop->nthreads++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return loop->nthreads > 0 ? 0 : err;
}

int mb_work_submit(mb_loop *loop, mb_work *w)
{
  int err = pool_start(loop);
  if (err) return err;
  if (!loop->eio.active) {
    err = mb_io_start(loop, &loop->eio, loop->efd, MB_READABLE, work_finished, loop);
    if (err) return err;
  }
  w->cancelled = 0;
  w->next = NULL;
  pthread_mutex_lock(&loop->mu);
  w->state = WORK_QUEUED;
  if (loop->qtail)
    loop->qtail->next = w;
  else
    loop->qhead = w;
  loop->qtail = w;
  loop->nwork++;
  pthread_cond_signal(&loop->cv);
  pthread_mutex_unlock(&loop->mu);
  return 0;
}

void mb_work_cancel(mb_loop *loop, mb_work *w)
{
  pthread_mutex_lock(&loop->mu);
  w->cancelled = 1;
  if (w->state == WORK_QUEUED) {
    /* Not started: move it to the finished list so done(cancelled) runs from the loop. */
    mb_work **pp = &loop->qhead, *prev = NULL;
    while (*pp && *pp != w) {
      prev = *pp;
      pp = &(*pp)->next;
    }
    if (*pp == w) {
      *pp = w->next;
      if (loop->qtail == w) loop->qtail = prev;
    }
    w->state = WORK_FINISHED;
    w->next = NULL;
    if (loop->ftail)
      loop->ftail->next = w;
    else
      loop->fhead = w;
    loop->ftail = w;
    uint64_t one = 1;
    ssize_t wr = write(loop->efd, &one, sizeof one);
    (void)wr;
  }
  pthread_mutex_unlock(&loop->mu);
}

/* ---- running ------------------------------------------------------------------------------- */

size_t mb_loop_alive(mb_loop *loop)
{
  /* The pool's eventfd watch is counted through nwork, not as an fd. */
  return loop->nio - (loop->eio.active ? 1 : 0) + loop->nheap + loop->ndefer + loop->nwork;
}

int mb_loop_run_once(mb_loop *loop, double timeout)
{
  run_deferred(loop);
  if (loop->ndefer > 0 || loop->kick) timeout = 0;
  loop->kick = 0;
  if (loop->nheap > 0) {
    double wait = loop->heap[0]->due - mb_now();
    if (wait < 0) wait = 0;
    if (timeout < 0 || wait < timeout) timeout = wait;
  }
  int ms = timeout < 0 ? -1 : (int)ceil(timeout * 1000.0);
  if (loop->depth >= MB_MAX_DEPTH) ms = 0; /* too deep to nest more batches: poll only */
  struct epoll_event events[MB_BATCH];
  int n = 0;
  if (loop->last_poll > 0) {
    double busy = mb_now() - loop->last_poll;
    if (busy > loop->max_busy) loop->max_busy = busy;
    double cpu = thread_cpu() - loop->last_poll_cpu;
    if (cpu > loop->max_busy_cpu) loop->max_busy_cpu = cpu;
  }
  if (loop->nio > 0) {
    n = epoll_wait(loop->epfd, events, MB_BATCH, ms);
    if (n < 0) n = 0; /* EINTR: just go round */
  } else if (ms > 0) {
    /* nothing to poll: sleep until the first timer */
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  loop->last_poll = mb_now();
  loop->last_poll_cpu = thread_cpu();
  if (n > 0 && loop->depth < MB_MAX_DEPTH) {
    int d = loop->depth++;
    loop->batches[d] = events;
    loop->nbatch[d] = n;
    for (int i = 0; i < n; i++) {
      mb_io *io = events[i].data.ptr;
      if (io == NULL) continue; /* stopped by an earlier callback */
      unsigned ev = 0;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ev |= MB_READABLE;
      if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ev |= MB_WRITABLE;
      io->cb(loop, io, ev & (io->events ? io->events : ev));
    }
    loop->depth--;
  }
  run_timers(loop);
  return mb_loop_alive(loop) > 0;
}

int mb_loop_run_until(mb_loop *loop, const volatile int *flag)
{
  while (!*flag) {
    if (mb_loop_alive(loop) == 0) return -1;
    mb_loop_run_once(loop, -1);
  }
  return 0;
}

void mb_loop_wake(mb_loop *loop)
{
  loop->kick = 1;
}

double mb_loop_max_busy(mb_loop *loop, int reset, double *cpu)
{
  double v = loop->max_busy;
  if (cpu) *cpu = loop->max_busy_cpu;
  if (reset) loop->max_busy = loop->max_busy_cpu = 0;
  return v;
}

lua_State *mb_loop_state(mb_loop *loop)
{
  return loop->L;
}

void **mb_loop_sched_slot(mb_loop *loop)
{
  return &loop->sched;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static int loop_gc(lua_State *L)
{
  mb_loop **box = lua_touserdata(L, 1);
  mb_loop *loop = *box;
  if (loop == NULL) return 0;
  *box = NULL;
  pthread_mutex_lock(&loop->mu);
  loop->quit = 1;
  pthread_cond_broadcast(&loop->cv);
  pthread_mutex_unlock(&loop->mu);
  for (int i = 0; i < loop->nthreads; i++) pthread_join(loop->threads[i], NULL);
  /* Items still queued or finished: their owners are gone with the state; let done() free. */
  mb_work *lists[2] = {loop->qhead, loop->fhead};
  for (int k = 0; k < 2; k++)
    for (mb_work *w = lists[k], *next; w; w = next) {
      next = w->next;
      w->done(loop, w, 1);
    }
  close(loop->efd);
  close(loop->epfd);
  free(loop->heap);
  pthread_mutex_destroy(&loop->mu);
  pthread_cond_destroy(&loop->cv);
  free(loop);
  return 0;
}

static mb_loop *loop_new(lua_State *L)
{
  mb_loop **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  mb_loop *loop = calloc(1, sizeof *loop);
  if (loop == NULL) luaL_error(L, "moonbox loop: not enough memory");
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  loop->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (loop->epfd < 0 || loop->efd < 0) {
    int err = errno;
    if (loop->epfd >= 0) close(loop->epfd);
    if (loop->efd >= 0) close(loop->efd);
    free(loop);
    luaL_error(L, "moonbox loop: %s", strerror(err));
  }
  pthread_mutex_init(&loop->mu, NULL);
  pthread_cond_init(&loop->cv, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  loop->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  *box = loop;
  return loop;
}

mb_loop *mb_loop_get(lua_State *L)
{
  if (lua_getfield(L, LUA_REGISTRYINDEX, "moonbox.loop") == LUA_TUSERDATA) {
    mb_loop *loop = *(mb_loop **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (loop) return loop;
    luaL_error(L, "moonbox loop: used while the state is closing");
  }
  lua_pop(L, 1);
  mb_loop *loop = loop_new(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonbox.loop");
  return loop;
}
