/* proc.c: moonbox.proc — commands in their own process group, on the loop.
 *
 *   spawn(argv, opts) -> Process | nil, msg, CODE     start argv (a list of strings)
 *   run(argv, opts)   -> result | nil, msg, CODE       spawn + wait + close (what execute uses)
 *   mkdirs(path [, mode]) -> true | nil, msg, CODE      mkdir -p
 *   realpath(path) -> path | nil, msg, CODE             the canonical absolute path
 *   opts: cwd, env = {NAME = value | false}, clean_env (start from an empty environment),
 *         stdin (string; true: a socket left open for Process:send; else /dev/null), timeout
 *         (seconds; nil = none), grace (seconds from SIGTERM to SIGKILL, default 2),
 *         max_output (bytes kept per stream, default 100000)
 *   Process:wait() -> {output, stdout, stderr, exit_code, truncated, timed_out, duration,
 *                     signal}; yields inside a task, blocks elsewhere
 *   Process:read() -> {output, stdout, stderr, running, exit_code, truncated}: only what arrived
 *                     since the last read (bounded like wait's)
 *   Process:kill([signal]) -> boolean    signal the whole group (default SIGKILL, then reaped);
 *                     false if it had already finished
 *   Process:pid(), Process:running(), Process:exit_code() (nil while running),
 *   Process:close() (also __gc and __close)
 *   Process:send(data [, close]) -> boolean    queue bytes for the stdin of a process spawned
 *                     with stdin = true; close: end its stdin once they are written; false if
 *                     its stdin is already closed
 *   Process:arm([timeout]) -> Process    its command starts now: duration counts from here,
 *                     and the timeout (seconds), if given, too (a process prepared ahead of it)
 *
 * Semantics: `output` interleaves stdout and stderr in the order the loop read them. When the
 * shell (the group leader) exits, what is left of its group is killed: nothing outlives its
 * command (background work belongs in spawn(), which keeps the group while the leader runs).
 * On timeout the group gets SIGTERM, SIGKILL `grace` seconds later; exit_code is 124 and
 * timed_out true, with the output read so far. A signalled command exits 128 + signal.
 *
 * Ownership: the Process userdata owns the pipes, the three captures, the stdin copy and its
 * loop handles; close/__gc kill the group (SIGKILL), reap the leader and release everything.
 * Every unfinished group is registered with mb_groups_add (loop.h): the host's signal handlers
 * and an atexit handler kill them, so neither a signal nor os.exit orphans anything. The first
 * spawn makes this process a child subreaper, and finished groups are swept (killed again, their
 * orphans reaped) for a few seconds, so no grandchild survives or lingers as a zombie. Fail codes:
 * ENOENT/EACCES (program or cwd), INVALID (cwd not a directory), EIO, ENOMEM. */
#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROC_MT "moonbox.proc.Process"

/* ---- state changes (loop callbacks: plain C) ----------------------------------------------- */

static void close_fd(mb_loop *loop, mb_io *io, int *fd)
{
  mb_io_stop(loop, io);
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void finish_if_done(proc *p)
{
  if (p->finished || !p->exited || p->out_fd >= 0 || p->err_fd >= 0) return;
  p->finished = 1;
  mb_timer_stop(p->loop, &p->drain);
  close_fd(p->loop, &p->in_io, &p->in_fd);
  mb_groups_remove(p->pgid);
  mb_proc_sweep_add(p->loop, p->pgid);
  mb_wait_done(p->loop, &p->wait);
}

/* Reads what is there (at most 1 MiB per call, so one noisy command cannot starve the loop). */
static void drain_pipe(proc *p, int is_err)
{
  int *fd = is_err ? &p->err_fd : &p->out_fd;
  mb_io *io = is_err ? &p->err_io : &p->out_io;
  char buf[65536];
  for (int i = 0; i < 16 && *fd >= 0; i++) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0) {
      mb_capture_add(&p->output, buf, (size_t)n);
      mb_capture_add(is_err ? &p->err : &p->out, buf, (size_t)n);
      if ((size_t)n < sizeof buf) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close_fd(p->loop, io, fd); /* EOF or a read error: this stream is over */
  }
}

static void pipe_ready(mb_loop *loop, mb_io *io, unsigned events)
{
  proc *p = io->data;
  drain_pipe(p, io == &p->err_io);
  finish_if_done(p);
}

static void stdin_ready(mb_loop *loop, mb_io *io, unsigned events);

/* Writes what the socket takes now; watches for the rest; closes stdin when done (unless held). */
static void stdin_write(proc *p)
{
  mb_loop *loop = p->loop;
  while (p->in_off < p->in_len) {
    ssize_t n = send(p->in_fd, p->in_buf + p->in_off, p->in_len - p->in_off, MSG_NOSIGNAL);
    if (n > 0) {
      p->in_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!p->in_io.active) mb_io_start(loop, &p->in_io, p->in_fd, MB_WRITABLE, stdin_ready, p);
      return;
    }
    p->in_hold = 0; /* EPIPE: the command stopped reading */
    break;
  }
  if (p->in_hold) { /* all written; more may come through Process:send */
    mb_io_stop(loop, &p->in_io);
    p->in_off = p->in_len = 0;
    return;
  }
  close_fd(loop, &p->in_io, &p->in_fd);
  free(p->in_buf);
  p->in_buf = NULL;
}

static void stdin_ready(mb_loop *loop, mb_io *io, unsigned events)
{
  stdin_write(io->data);
}

/* Only while the leader is unreaped: its pid then names this group and no other. */
static void group_signal(proc *p, int sig)
{
  if (p->pgid > 0 && !p->exited) kill(-p->pgid, sig);
}

static void before_reap(mb_loop *loop, mb_child *c)
{
  proc *p = c->data;
  kill(-p->pgid, SIGKILL); /* the leader is a zombie, so the pgid is still ours */
}

static void drain_timeout(mb_loop *loop, mb_timer *t)
{
  proc *p = t->data;
  /* Something outside the group (it called setsid) still holds the pipes: stop listening. */
  drain_pipe(p, 0);
  drain_pipe(p, 1);
  close_fd(loop, &p->out_io, &p->out_fd);
  close_fd(loop, &p->err_io, &p->err_fd);
  finish_if_done(p);
}

static void child_exited(mb_loop *loop, mb_child *c, int status)
{
  proc *p = c->data;
  p->exited = 1;
  p->status = status;
  p->ended = mb_now();
  mb_timer_stop(loop, &p->deadline);
  mb_timer_stop(loop, &p->killer);
  if (p->out_fd >= 0 || p->err_fd >= 0) mb_timer_start(loop, &p->drain, 1.0, drain_timeout, p);
  finish_if_done(p);
}

static void kill_now(mb_loop *loop, mb_timer *t)
{
  group_signal(t->data, SIGKILL);
}

static void deadline_hit(mb_loop *loop, mb_timer *t)
{
  proc *p = t->data;
  p->timed_out = 1;
  group_signal(p, SIGTERM);
  mb_timer_start(loop, &p->killer, p->grace, kill_now, p);
}

/* Kills the group, reaps the leader, reads what is left and finishes. Blocking but short. */
static void terminate(proc *p)
{
  if (p->finished) return;
  if (!p->exited) {
    group_signal(p, SIGKILL);
    p->status = mb_child_reap(p->loop, &p->child);
    p->exited = 1;
    p->ended = mb_now();
  }
  mb_timer_stop(p->loop, &p->deadline);
  mb_timer_stop(p->loop, &p->killer);
  drain_pipe(p, 0);
  drain_pipe(p, 1);
  close_fd(p->loop, &p->out_io, &p->out_fd);
  close_fd(p->loop, &p->err_io, &p->err_fd);
  finish_if_done(p);
}

static void wait_cancel(mb_loop *loop, mb_wait *w)
{
  terminate(w->data);
}

/* ---- Lua bindings -------------------------------------------------------------------------- */

static proc *check_proc(lua_State *L, int idx)
{
  proc *p = luaL_checkudata(L, idx, PROC_MT);
  if (p->closed) luaL_error(L, "attempt to use a closed " PROC_MT);
  return p;
}

/* Idempotent: kills and reaps what still runs, then frees everything the Process owns. */
static void release(proc *p)
{
  if (p->closed) return;
  if (p->loop && p->pgid > 0) {
    terminate(p);
    mb_child_stop(p->loop, &p->child);
    mb_timer_stop(p->loop, &p->drain);
  }
  if (p->pgid > 0 && !p->finished) mb_groups_remove(p->pgid);
  mb_capture_free(&p->output);
  mb_capture_free(&p->out);
  mb_capture_free(&p->err);
  free(p->in_buf);
  p->in_buf = NULL;
  p->closed = 1;
}

static int proc_close(lua_State *L)
{
  release(luaL_checkudata(L, 1, PROC_MT));
  return 0;
}

static int exit_code(const proc *p)
{
  if (p->timed_out) return 124;
  if (p->status < 0) return 1;
  if (WIFEXITED(p->status)) return WEXITSTATUS(p->status);
  if (WIFSIGNALED(p->status)) return 128 + WTERMSIG(p->status);
  return 1;
}

/* Sets t[name] = the capture's new bytes; returns whether bytes were dropped. */
static int take_field(lua_State *L, mb_capture *c, const char *name)
{
  char *buf;
  size_t len;
  int truncated = 0;
  if (mb_capture_take(c, &buf, &len, &truncated) != 0) luaL_error(L, "not enough memory");
  lua_pushlstring(L, buf, len); /* may raise ENOMEM: buf leaks only then, as lauxlib does */
  free(buf);
  lua_setfield(L, -2, name);
  return truncated;
}

static void push_outputs(lua_State *L, proc *p)
{
  int t = take_field(L, &p->output, "output");
  t |= take_field(L, &p->out, "stdout");
  t |= take_field(L, &p->err, "stderr");
  lua_pushboolean(L, t);
  lua_setfield(L, -2, "truncated");
}

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
  proc *p = lua_touserdata(L, 1);
  lua_createtable(L, 0, 8);
  push_outputs(L, p);
  lua_pushinteger(L, exit_code(p));
  lua_setfield(L, -2, "exit_code");
  lua_pushboolean(L, p->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushnumber(L, p->ended - p->started);
  lua_setfield(L, -2, "duration");
  if (p->status >= 0 && WIFSIGNALED(p->status) && !p->timed_out) {
    lua_pushinteger(L, WTERMSIG(p->status));
    lua_setfield(L, -2, "signal");
  }
  return 1;
}

static int proc_wait(lua_State *L)
{
  proc *p = check_proc(L, 1);
  lua_settop(L, 1);
  if (p->finished) return wait_k(L, LUA_OK, 0);
  if (p->wait.task != NULL) return luaL_error(L, "wait: another task is waiting for this process");
  mb_wait_init(&p->wait, wait_cancel, p);
  return mb_await(L, &p->wait, wait_k, 0);
}

static int proc_read(lua_State *L)
{
  proc *p = check_proc(L, 1);
  if (!p->finished) {
    drain_pipe(p, 0);
    drain_pipe(p, 1);
    mb_child_poll(p->loop, &p->child);
    finish_if_done(p);
  }
  lua_createtable(L, 0, 6);
  push_outputs(L, p);
  lua_pushboolean(L, !p->finished);
  lua_setfield(L, -2, "running");
  if (p->finished) {
    lua_pushinteger(L, exit_code(p));
    lua_setfield(L, -2, "exit_code");
  }
  return 1;
}

static int proc_kill(lua_State *L)
{
  proc *p = check_proc(L, 1);
  int sig = (int)luaL_optinteger(L, 2, SIGKILL);
  luaL_argcheck(L, sig > 0 && sig < NSIG, 2, "not a signal number");
  if (!p->finished) mb_child_poll(p->loop, &p->child);
  if (p->finished || p->exited) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (sig == SIGKILL)
    terminate(p);
  else
    group_signal(p, sig);
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_send(lua_State *L)
{
  proc *p = check_proc(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int close_after = lua_toboolean(L, 3);
  if (p->in_fd < 0 || !p->in_hold) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (len > 0) {
    size_t pending = p->in_len - p->in_off;
    char *buf = malloc(pending + len);
    if (buf == NULL) return luaL_error(L, "send: not enough memory");
    if (pending) memcpy(buf, p->in_buf + p->in_off, pending);
    memcpy(buf + pending, data, len);
    free(p->in_buf);
    p->in_buf = buf;
    p->in_off = 0;
    p->in_len = pending + len;
  }
  if (close_after) p->in_hold = 0;
  stdin_write(p);
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_arm(lua_State *L)
{
  proc *p = check_proc(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  if (!lua_isnoneornil(L, 2)) luaL_argcheck(L, timeout >= 0, 2, "timeout must be >= 0");
  p->started = mb_now();
  if (!p->exited && !lua_isnoneornil(L, 2) && timeout < HUGE_VAL) {
    int err = mb_timer_start(p->loop, &p->deadline, timeout, deadline_hit, p);
    if (err) return mb_fail_errno(L, err, "arm: loop");
  }
  lua_settop(L, 1);
  return 1;
}

static int proc_pid(lua_State *L)
{
  proc *p = check_proc(L, 1);
  lua_pushinteger(L, p->pgid);
  return 1;
}

static int proc_running(lua_State *L)
{
  proc *p = check_proc(L, 1);
  if (!p->finished) mb_child_poll(p->loop, &p->child);
  lua_pushboolean(L, !p->exited);
  return 1;
}

static int proc_exit_code(lua_State *L)
{
  proc *p = check_proc(L, 1);
  if (!p->finished) mb_child_poll(p->loop, &p->child);
  if (!p->exited) return 0;
  lua_pushinteger(L, exit_code(p));
  return 1;
}

static int proc_tostring(lua_State *L)
{
  proc *p = luaL_checkudata(L, 1, PROC_MT);
  lua_pushfstring(L, PROC_MT ": pid %d (%s)", (int)p->pgid,
                  p->closed     ? "closed"
                  : p->finished ? "finished"
                                : "running");
  return 1;
}

/* proc.spawn(argv, opts): pushes the Process or the fail triple; returns the count. */
static int spawn_push(lua_State *L)
{
  mb_spawn_opts o;
  mb_proc_read_opts(L, 1, 2, &o); /* argv, env arrays and opts live on the stack from here */
  mb_loop *loop = mb_loop_get(L);
  mb_proc_sweeper(L, loop); /* created before any Process, so finalized after them */
  static int setup;
  if (!setup) {
    setup = 1;
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  if (o.cwd) {
    struct stat st;
    if (stat(o.cwd, &st) != 0) return mb_fail_errno(L, errno, lua_pushfstring(L, "cwd %s", o.cwd));
    if (!S_ISDIR(st.st_mode)) return mb_fail(L, "INVALID", "cwd %s: not a directory", o.cwd);
  }
  proc *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->out_fd = p->err_fd = p->in_fd = -1;
  p->closed = 1; /* until it owns something */
  luaL_setmetatable(L, PROC_MT);
  if (o.stdin_len > 0) {
    p->in_buf = malloc(o.stdin_len);
    if (p->in_buf == NULL) return mb_fail(L, "ENOMEM", "spawn: not enough memory for stdin");
    memcpy(p->in_buf, o.stdin_data, o.stdin_len);
    p->in_len = o.stdin_len;
  }
  p->closed = 0;
  mb_capture_init(&p->output, o.max_output);
  mb_capture_init(&p->out, o.max_output);
  mb_capture_init(&p->err, o.max_output);
  p->loop = loop;
  p->grace = o.grace;
  mb_wait_init(&p->wait, wait_cancel, p);
  mb_spawn_req req = {o.argv, o.envp, o.cwd, o.has_stdin};
  mb_spawned sp;
  p->started = mb_now();
  /* A fatal signal between the spawn and the registration would orphan the group: hold the
   * signals the host's handlers take until the group is registered. */
  sigset_t fatal, old;
  sigemptyset(&fatal);
  sigaddset(&fatal, SIGINT);
  sigaddset(&fatal, SIGTERM);
  sigaddset(&fatal, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &fatal, &old);
  int err = mb_spawn(&req, &sp);
  if (!err) mb_groups_add(sp.pid);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) {
    release(p);
    return mb_fail_errno(L, err, lua_pushfstring(L, "spawn %s", o.argv[0]));
  }
  p->pgid = sp.pid;
  p->out_fd = sp.out_fd;
  p->err_fd = sp.err_fd;
  p->in_fd = sp.in_fd;
  p->child.before_reap = before_reap;
  p->child.pidfd = -1;
  err = mb_child_start(loop, &p->child, sp.pid, child_exited, p);
  if (!err) err = mb_io_start(loop, &p->out_io, p->out_fd, MB_READABLE, pipe_ready, p);
  if (!err) err = mb_io_start(loop, &p->err_io, p->err_fd, MB_READABLE, pipe_ready, p);
  p->in_hold = o.hold_stdin;
  if (!err && p->in_fd >= 0 && !p->in_hold)
    err = mb_io_start(loop, &p->in_io, p->in_fd, MB_WRITABLE, stdin_ready, p);
  if (!err && o.timeout >= 0) err = mb_timer_start(loop, &p->deadline, o.timeout, deadline_hit, p);
  if (err) {
    release(p);
    return mb_fail_errno(L, err, "spawn: loop");
  }
  return 1;
}

static int proc_spawn(lua_State *L)
{
  return spawn_push(L);
}

static int run_k(lua_State *L, int status, lua_KContext ctx)
{
  wait_k(L, status, ctx);
  release(lua_touserdata(L, 1));
  return 1;
}

static int proc_run(lua_State *L)
{
  int n = spawn_push(L);
  if (n != 1) return n;
  /* The Process is on top: make it index 1 for wait_k, as proc_wait sees it. */
  lua_replace(L, 1);
  lua_settop(L, 1);
  proc *p = lua_touserdata(L, 1);
  return mb_await(L, &p->wait, run_k, 1);
}

static int proc_mkdirs(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
  int err = mb_proc_mkdirs(path, mode);
  if (err) return mb_fail_errno(L, err, lua_pushfstring(L, "mkdirs %s", path));
  lua_pushboolean(L, 1);
  return 1;
}

static int proc_realpath(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  char *real = realpath(path, NULL);
  if (real == NULL) return mb_fail_errno(L, errno, lua_pushfstring(L, "realpath %s", path));
  lua_pushstring(L, real); /* may raise ENOMEM: real leaks only then */
  free(real);
  return 1;
}

static const luaL_Reg proc_methods[] = {{"wait", proc_wait},       {"read", proc_read},
                                        {"kill", proc_kill},       {"pid", proc_pid},
                                        {"running", proc_running}, {"exit_code", proc_exit_code},
                                        {"close", proc_close},     {"send", proc_send},
                                        {"arm", proc_arm},         {NULL, NULL}};
static const luaL_Reg proc_meta[] = {
    {"__gc", proc_close}, {"__close", proc_close}, {"__tostring", proc_tostring}, {NULL, NULL}};
static const luaL_Reg proc_funcs[] = {{"spawn", proc_spawn},
                                      {"run", proc_run},
                                      {"mkdirs", proc_mkdirs},
                                      {"realpath", proc_realpath},
                                      {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_proc(lua_State *L);
MB_EXPORT int luaopen_moonbox_proc(lua_State *L)
{
  mb_newclass(L, PROC_MT, proc_methods, proc_meta);
  luaL_newlib(L, proc_funcs);
  return 1;
}
