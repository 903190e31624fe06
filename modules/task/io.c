/* io.c: moonbox.task.io — waiting on file descriptors from Lua.
 *
 *   wait_readable(fd [, timeout]) -> true | nil, msg, "TIMEOUT"
 *       fd: an integer or a Lua file (io.stdin). Yields inside a task, blocks elsewhere.
 *   reader(fd [, max_line]) -> Reader      buffered reads that wait on the loop
 *   Reader:read_line() -> line (without "\n") | nil at end of input | nil, msg, CODE
 *       CODE: INVALID (a line longer than max_line, default 16 MiB), EIO (read failed)
 *   Reader:close()                          frees the buffer (does not close the fd)
 *
 * The fd is watched through a dup() so a descriptor already in the loop can be waited on too;
 * the reader never sets O_NONBLOCK (a shared stdin stays as it was): it reads once after the
 * loop reports the fd readable, which does not block. Owns: the dup and the timer of a wait
 * (in a userdata on the waiting stack), the reader's buffer (freed by close/__gc). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "task_io.h"

#define READER_MT "moonbox.task.Reader"
#define WAIT_MT "moonbox.task.FdWait"

static int check_fd(lua_State *L, int idx)
{
  if (lua_isinteger(L, idx)) {
    lua_Integer fd = lua_tointeger(L, idx);
    luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, idx, "not a file descriptor");
    return (int)fd;
  }
  luaL_Stream *s = luaL_testudata(L, idx, LUA_FILEHANDLE);
  luaL_argexpected(L, s != NULL, idx, "file descriptor or file");
  luaL_argcheck(L, s->closef != NULL && s->f != NULL, idx, "file is closed");
  return fileno(s->f);
}

/* ---- one wait for readability, optionally with a timeout ---------------------------------- */

typedef struct fd_wait {
  mb_wait wait;
  mb_io io;
  mb_timer timer;
  mb_loop *loop;
  int fd; /* the dup, -1 when released */
  int timed_out;
} fd_wait;

static void fd_wait_release(fd_wait *w)
{
  if (w->loop) {
    mb_io_stop(w->loop, &w->io);
    mb_timer_stop(w->loop, &w->timer);
  }
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
}

static void fd_ready(mb_loop *loop, mb_io *io, unsigned events)
{
  fd_wait *w = io->data;
  fd_wait_release(w);
  mb_wait_done(loop, &w->wait);
}

static void fd_timeout(mb_loop *loop, mb_timer *t)
{
  fd_wait *w = t->data;
  w->timed_out = 1;
  fd_wait_release(w);
  mb_wait_done(loop, &w->wait);
}

static void fd_cancel(mb_loop *loop, mb_wait *wait)
{
  fd_wait_release(wait->data);
}

static int fd_wait_gc(lua_State *L)
{
  fd_wait_release(lua_touserdata(L, 1));
  return 0;
}

/* Pushes a started fd_wait userdata; raises on failure to dup or watch. */
static fd_wait *fd_wait_push(lua_State *L, int fd, double timeout)
{
  mb_loop *loop = mb_loop_get(L);
  fd_wait *w = lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->fd = -1;
  if (luaL_newmetatable(L, WAIT_MT)) {
    lua_pushcfunction(L, fd_wait_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  mb_wait_init(&w->wait, fd_cancel, w);
  w->loop = loop;
  w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (w->fd < 0) luaL_error(L, "wait_readable: fd %d: %s", fd, strerror(errno));
  int err = mb_io_start(loop, &w->io, w->fd, MB_READABLE, fd_ready, w);
  if (err == EPERM) { /* regular files are always readable: epoll refuses them */
    fd_wait_release(w);
    w->wait.done = 1;
    return w;
  }
  if (err) luaL_error(L, "wait_readable: fd %d: %s", fd, strerror(err));
  if (timeout >= 0) {
    err = mb_timer_start(loop, &w->timer, timeout, fd_timeout, w);
    if (err) luaL_error(L, "wait_readable: %s", strerror(err));
  }
  return w;
}

static int wait_readable_k(lua_State *L, int status, lua_KContext ctx)
{
  fd_wait *w = lua_touserdata(L, 3);
  if (w->timed_out)
    return mb_fail(L, "TIMEOUT", "wait_readable: fd %d not readable after %f s", (int)ctx,
                   lua_tonumber(L, 2));
  lua_pushboolean(L, 1);
  return 1;
}

static int io_wait_readable(lua_State *L)
{
  int fd = check_fd(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  luaL_argcheck(L, lua_isnoneornil(L, 2) || timeout >= 0, 2, "timeout must be >= 0");
  lua_settop(L, 2);
  fd_wait_push(L, fd, timeout);
  return mb_await(L, &((fd_wait *)lua_touserdata(L, 3))->wait, wait_readable_k, fd);
}

/* ---- buffered line reader ------------------------------------------------------------------ */

typedef struct reader {
  int fd;
  int eof;
  int busy;
  int err;
  char *buf;
  size_t start, len, cap, max_line;
} reader;

static reader *check_reader(lua_State *L)
{
  reader *r = luaL_checkudata(L, 1, READER_MT);
  if (r->fd < 0) luaL_error(L, "attempt to use a closed " READER_MT);
  return r;
}

static int reader_close(lua_State *L)
{
  reader *r = luaL_checkudata(L, 1, READER_MT);
  free(r->buf);
  r->buf = NULL;
  r->fd = -1;
  return 0;
}

/* Reads once (the fd is readable, so this does not block). */
static void reader_fill(reader *r)
{
  if (r->start > 0 && r->start == r->len) r->start = r->len = 0;
  if (r->cap - r->len < 65536) {
    if (r->start > 0) {
      memmove(r->buf, r->buf + r->start, r->len - r->start);
      r->len -= r->start;
      r->start = 0;
    }
    if (r->cap - r->len < 65536) {
      size_t cap = r->cap ? r->cap * 2 : 65536 * 2;
      char *b = realloc(r->buf, cap);
      if (b == NULL) {
        r->err = ENOMEM;
        return;
      }
      r->buf = b;
      r->cap = cap;
    }
  }
  ssize_t n;
  do n = read(r->fd, r->buf + r->len, r->cap - r->len);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN)
    r->err = errno;
  else if (n == 0)
    r->eof = 1;
  else if (n > 0)
    r->len += (size_t)n;
}

static int reader_step(lua_State *L, reader *r);

static int reader_k(lua_State *L, int status, lua_KContext ctx)
{
  reader *r = lua_touserdata(L, 1);
  lua_settop(L, 1);
  if (r->fd < 0) {
    r->busy = 0;
    return luaL_error(L, "attempt to use a closed " READER_MT);
  }
  reader_fill(r);
  return reader_step(L, r);
}

static int reader_step(lua_State *L, reader *r)
{
  char *nl = r->len > r->start ? memchr(r->buf + r->start, '\n', r->len - r->start) : NULL;
  size_t avail = r->len - r->start;
  if (nl || r->eof || r->err || avail > r->max_line) {
    r->busy = 0;
    if (nl) {
      size_t n = (size_t)(nl - (r->buf + r->start));
      if (n > r->max_line) goto too_long;
      lua_pushlstring(L, r->buf + r->start, n);
      r->start += n + 1;
      return 1;
    }
    if (avail > r->max_line) goto too_long;
    if (r->err) {
      int err = r->err;
      r->err = 0;
      return mb_fail_errno(L, err, "read_line");
    }
    if (avail == 0) {
      lua_pushnil(L);
      return 1;
    }
    lua_pushlstring(L, r->buf + r->start, avail);
    r->start = r->len = 0;
    return 1;
  too_long:
    r->start = r->len = 0;
    return mb_fail(L, "INVALID", "read_line: line longer than %d bytes", (int)r->max_line);
  }
  r->busy = 1;
  fd_wait *w = fd_wait_push(L, r->fd, -1);
  return mb_await(L, &w->wait, reader_k, 0);
}

static int reader_read_line(lua_State *L)
{
  reader *r = check_reader(L);
  if (r->busy) return luaL_error(L, "read_line: another task is reading this reader");
  lua_settop(L, 1);
  return reader_step(L, r);
}

static int io_reader(lua_State *L)
{
  int fd = check_fd(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 16 << 20);
  luaL_argcheck(L, max > 0 && max <= 0x7fffffff, 2, "max_line must be a positive size");
  reader *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->max_line = (size_t)max;
  luaL_setmetatable(L, READER_MT);
  return 1;
}

void mb_task_io_open(lua_State *L)
{
  static const luaL_Reg methods[] = {
      {"read_line", reader_read_line}, {"close", reader_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", reader_close}, {"__close", reader_close}, {NULL, NULL}};
  mb_newclass(L, READER_MT, methods, meta);
  static const luaL_Reg funcs[] = {
      {"wait_readable", io_wait_readable}, {"reader", io_reader}, {NULL, NULL}};
  luaL_newlib(L, funcs);
}
