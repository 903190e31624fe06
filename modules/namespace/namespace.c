/* namespace.c: moonbox.namespace — the host side of the namespace sandbox.
 *
 *   helper()                      path of moonbox-nsexec (MOONBOX_NSEXEC, else beside this
 *                                 binary or moonbox.so, else the install bindir)
 *   hold(helper, args)            starts `helper --hold args...` and waits until it has built
 *                                 the sandbox's template (a user namespace and a mount namespace
 *                                 with the sandbox's file system, which every command's helper
 *                                 copies into namespaces of its own): a Holder, or
 *                                 nil, reason, "UNSUPPORTED" (the helper's own words)
 *   Holder:token()                "pid:starttime", what `--join` takes
 *   Holder:alive()                false once the holder has exited
 *   Holder:close()                kills and reaps the holder (also __gc and __close)
 *   cgroup_create{memory=, pids=} a per-sandbox cgroup under the caller's own, v1 (one directory
 *                                 per controller) or v2: { dirs = {...}, memory = bool,
 *                                 pids = bool, version = 1|2, why = "..." } — a controller that
 *                                 cannot be used is false, with the reason in `why`
 *   euid()                        the caller's effective uid (0: the sandbox user is root outside,
 *                                 which RLIMIT_NPROC does not bind)
 *   cgroup_remove(dirs)           kills what is left in them and removes them: true, or
 *                                 nil, msg, "EBUSY"/errno code
 *
 * A Holder owns its child process and the write end of the child's stdin (the holder lives
 * until that closes); nothing else. Fail codes: UNSUPPORTED, ENOENT, EBUSY, errno codes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moonbox.h"

#ifndef MB_INSTALL_BINDIR
#define MB_INSTALL_BINDIR "/usr/local/bin"
#endif
#define HOLDER_T "moonbox.namespace.Holder"
#define CGROUP_SUPER_MAGIC 0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270
#define HOLD_TIMEOUT_MS 10000

static int executable_in(const char *dir, char *out)
{
  int n = snprintf(out, PATH_MAX, "%s/moonbox-nsexec", dir);
  return n > 0 && n < PATH_MAX && access(out, X_OK) == 0;
}

static int dir_of(const char *file, char *out)
{
  if (!file || !realpath(file, out)) return 0;
  char *slash = strrchr(out, '/');
  if (!slash) return 0;
  *slash = '\0';
  return 1;
}

static int ns_helper(lua_State *L)
{
  char dir[PATH_MAX], path[PATH_MAX];
  const char *env = getenv("MOONBOX_NSEXEC");
  if (env && *env) {
    if (access(env, X_OK) == 0) {
      lua_pushstring(L, env);
      return 1;
    }
    return mb_fail(L, "ENOENT", "MOONBOX_NSEXEC=%s: not an executable file", env);
  }
  Dl_info info;
  if (dladdr((void *)ns_helper, &info) && dir_of(info.dli_fname, dir) && executable_in(dir, path)) {
    lua_pushstring(L, path);
    return 1;
  }
  if (dir_of("/proc/self/exe", dir) && executable_in(dir, path)) {
    lua_pushstring(L, path);
    return 1;
  }
  if (executable_in(MB_INSTALL_BINDIR, path)) {
    lua_pushstring(L, path);
    return 1;
  }
  return mb_fail(L, "ENOENT",
                 "namespace sandbox: moonbox-nsexec not found beside moonbox, nor in %s; "
                 "build it (cmake --build) or set MOONBOX_NSEXEC",
                 MB_INSTALL_BINDIR);
}

typedef struct {
  pid_t pid;   /* 0 once reaped */
  int stdin_w; /* -1 once closed */
  long long start;
} Holder;

static void holder_release(Holder *h)
{
  if (h->stdin_w >= 0) {
    close(h->stdin_w);
    h->stdin_w = -1;
  }
  if (h->pid > 0) {
    kill(h->pid, SIGKILL);
    while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    h->pid = 0;
  }
}

static Holder *check_holder(lua_State *L)
{
  Holder *h = luaL_checkudata(L, 1, HOLDER_T);
  if (h->pid == 0) luaL_error(L, "attempt to use a closed Holder");
  return h;
}

static long long start_time(pid_t pid)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  for (int field = 2; field < 22 && p; field++) p = strchr(p + 1, ' '); /* to field 22 */
  return p ? strtoll(p + 1, NULL, 10) : -1;
}

/* Reads from fd into buf (cap bytes, NUL-terminated) until `until` appears, EOF or the
 * deadline; returns the byte count. */
static size_t read_until(int fd, char *buf, size_t cap, const char *until, int timeout_ms)
{
  size_t len = 0;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  buf[0] = '\0';
  while (len + 1 < cap && !(until && strstr(buf, until))) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) break;
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    buf[len] = '\0';
  }
  return len;
}

/* hold(helper, {args...}) */
static int ns_hold(lua_State *L)
{
  const char *helper = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int nargs = (int)luaL_len(L, 2);
  if (nargs > 512) return luaL_argerror(L, 2, "too many arguments");
  /* argv strings stay alive on the Lua stack (the table) while the child starts */
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nargs + 3), 0);
  argv[0] = helper;
  argv[1] = "--hold";
  for (int i = 1; i <= nargs; i++) {
    if (lua_geti(L, 2, i) != LUA_TSTRING) return luaL_argerror(L, 2, "arguments must be strings");
    argv[i + 1] = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps the string */
  }
  argv[nargs + 2] = NULL;
  Holder *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->pid = 0;
  h->stdin_w = -1;
  luaL_setmetatable(L, HOLDER_T);

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (in[i] >= 0) close(in[i]);
      if (out[i] >= 0) close(out[i]);
      if (err[i] >= 0) close(err[i]);
    }
    return mb_fail_errno(L, e, "namespace sandbox: pipe");
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *envp[] = {NULL};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, helper, &fa, &attr, (char *const *)argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    return mb_fail(L, "UNSUPPORTED", "namespace sandbox: cannot start %s: %s", helper,
                   strerror(rc));
  }
  h->pid = pid;
  h->stdin_w = in[1];
  char msg[4096];
  read_until(out[0], msg, sizeof msg, "ready\n", HOLD_TIMEOUT_MS);
  close(out[0]);
  if (strstr(msg, "ready\n") && (h->start = start_time(pid)) >= 0) {
    close(err[0]);
    return 1;
  }
  size_t n = read_until(err[0], msg, sizeof msg, NULL, 1000);
  close(err[0]);
  holder_release(h);
  while (n > 0 && msg[n - 1] == '\n') msg[--n] = '\0';
  /* one line: the helper's several reasons joined */
  const char *why = n ? luaL_gsub(L, msg, "\nmoonbox-nsexec: ", "; ")
                      : "the helper exited without a reason (or took over 10 s)";
  return mb_fail(L, "UNSUPPORTED", "namespace sandbox unavailable: %s", why);
}

static int holder_token(lua_State *L)
{
  Holder *h = check_holder(L);
  lua_pushfstring(L, "%d:%I", (int)h->pid, (lua_Integer)h->start);
  return 1;
}

static int holder_alive(lua_State *L)
{
  Holder *h = luaL_checkudata(L, 1, HOLDER_T);
  if (h->pid > 0 && waitpid(h->pid, NULL, WNOHANG) == h->pid) {
    h->pid = 0; /* reaped: never signal that pid again, it may be someone else's by now */
    holder_release(h);
  }
  lua_pushboolean(L, h->pid > 0);
  return 1;
}

static int holder_close(lua_State *L)
{
  holder_release(luaL_checkudata(L, 1, HOLDER_T));
  return 0;
}

static int holder_tostring(lua_State *L)
{
  Holder *h = luaL_checkudata(L, 1, HOLDER_T);
  if (h->pid)
    lua_pushfstring(L, "Holder (pid %d)", (int)h->pid);
  else
    lua_pushliteral(L, "Holder (closed)");
  return 1;
}

/* The caller's own cgroup for `controller` (v1) or the unified one (controller NULL). */
static int own_cgroup(const char *controller, char *out, size_t cap)
{
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f) return 0;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = '\0';
    const char *list = c1 + 1, *path = c2 + 1;
    if (!controller) {
      found = strcmp(line, "0") == 0 && *list == '\0';
    } else {
      char copy[256];
      snprintf(copy, sizeof copy, "%s", list);
      char *save = NULL;
      for (char *t = strtok_r(copy, ",", &save); t && !found; t = strtok_r(NULL, ",", &save))
        found = strcmp(t, controller) == 0;
    }
    if (found) {
      const char *sep = strcmp(path, "/") == 0 ? "" : path;
      snprintf(out, cap, "/sys/fs/cgroup%s%s%s", controller ? "/" : "",
               controller ? controller : "", sep);
    }
  }
  fclose(f);
  return found;
}

static int write_text(const char *dir, const char *file, long long value)
{
  char path[PATH_MAX + 64], text[32];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int n = snprintf(text, sizeof text, "%lld", value);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = write(fd, text, (size_t)n);
  int e = errno;
  close(fd);
  errno = e;
  return w == n ? 0 : -1;
}

static int exists_in(const char *dir, const char *file)
{
  char path[PATH_MAX + 64];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return 0;
  return access(path, F_OK) == 0;
}

/* Makes <base>/moonbox-<pid>-<n>; returns 0 and fills dir, or -1 with errno. */
static int make_child(const char *base, long magic, char *dir, size_t cap)
{
  static unsigned serial;
  struct statfs sf;
  if (statfs(base, &sf) < 0) return -1;
  if ((long)sf.f_type != magic) {
    errno = ENOTSUP;
    return -1;
  }
  snprintf(dir, cap, "%s/moonbox-%d-%u", base, (int)getpid(), ++serial);
  return mkdir(dir, 0755);
}

static void add_dir(lua_State *L, int dirs, const char *dir)
{
  lua_pushstring(L, dir);
  lua_rawseti(L, dirs, (lua_Integer)luaL_len(L, dirs) + 1);
}

static void add_why(luaL_Buffer *why, const char *what, const char *dir, int err)
{
  luaL_addstring(why, what);
  luaL_addstring(why, " (");
  luaL_addstring(why, dir);
  luaL_addstring(why, "): ");
  luaL_addstring(why, strerror(err));
  luaL_addstring(why, "; ");
}

/* v1: one directory per controller, under the caller's own cgroup of that hierarchy. */
static int create_v1(lua_State *L, int dirs, const char *ctrl, const char *file, long long limit,
                     luaL_Buffer *why)
{
  char base[PATH_MAX], dir[PATH_MAX];
  if (!own_cgroup(ctrl, base, sizeof base)) return 0;
  if (make_child(base, CGROUP_SUPER_MAGIC, dir, sizeof dir) < 0) {
    add_why(why, ctrl, base, errno);
    return 0;
  }
  if (write_text(dir, file, limit) < 0) {
    add_why(why, ctrl, dir, errno);
    rmdir(dir);
    return 0;
  }
  /* without swap accounting limited too, a memory cap only pushes pages out to swap */
  if (strcmp(ctrl, "memory") == 0 && exists_in(dir, "memory.memsw.limit_in_bytes"))
    write_text(dir, "memory.memsw.limit_in_bytes", limit);
  add_dir(L, dirs, dir);
  return 1;
}

static int ns_cgroup_create(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "memory");
  lua_Integer memory = luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "pids");
  lua_Integer pids = luaL_optinteger(L, -1, 0);
  lua_pop(L, 2);
  lua_newtable(L);
  int result = lua_gettop(L);
  lua_newtable(L);
  int dirs = lua_gettop(L);
  luaL_Buffer why;
  luaL_buffinit(L, &why);
  int got_mem = 0, got_pids = 0, version = 0;
  char base[PATH_MAX], dir[PATH_MAX];
  struct statfs sf;
  if (statfs("/sys/fs/cgroup", &sf) == 0 && (long)sf.f_type == CGROUP2_SUPER_MAGIC) {
    version = 2;
    if (own_cgroup(NULL, base, sizeof base) &&
        make_child(base, CGROUP2_SUPER_MAGIC, dir, sizeof dir) == 0) {
      got_mem = memory > 0 && write_text(dir, "memory.max", memory) == 0;
      if (got_mem && exists_in(dir, "memory.swap.max")) write_text(dir, "memory.swap.max", 0);
      got_pids = pids > 0 && write_text(dir, "pids.max", pids) == 0;
      if (got_mem || got_pids)
        add_dir(L, dirs, dir);
      else
        rmdir(dir);
      if ((memory > 0 && !got_mem) || (pids > 0 && !got_pids))
        add_why(&why, "cgroup v2 controllers", dir, errno ? errno : ENOTSUP);
    } else {
      add_why(&why, "cgroup v2", base, errno);
    }
  } else {
    version = 1;
    if (memory > 0) got_mem = create_v1(L, dirs, "memory", "memory.limit_in_bytes", memory, &why);
    if (pids > 0) got_pids = create_v1(L, dirs, "pids", "pids.max", pids, &why);
  }
  luaL_pushresult(&why);
  lua_setfield(L, result, "why");
  lua_pushvalue(L, dirs);
  lua_setfield(L, result, "dirs");
  lua_pushboolean(L, got_mem);
  lua_setfield(L, result, "memory");
  lua_pushboolean(L, got_pids);
  lua_setfield(L, result, "pids");
  lua_pushinteger(L, version);
  lua_setfield(L, result, "version");
  lua_settop(L, result);
  return 1;
}

static void kill_members(const char *dir)
{
  char path[PATH_MAX + 64];
  if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) return;
  FILE *f = fopen(path, "re");
  if (!f) return;
  int pid;
  while (fscanf(f, "%d", &pid) == 1)
    if (pid > 0) kill(pid, SIGKILL);
  fclose(f);
}

static int ns_cgroup_remove(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    const char *dir = luaL_checkstring(L, -1);
    if (!strstr(dir, "/moonbox-")) return luaL_error(L, "not a moonbox cgroup: %s", dir);
    int tries = 0;
    while (rmdir(dir) < 0) {
      if (errno == ENOENT) break;
      if (errno != EBUSY || ++tries > 200)
        return mb_fail(L, errno == EBUSY ? "EBUSY" : mb_errno_code(errno),
                       "namespace sandbox: remove cgroup %s: %s", dir, strerror(errno));
      kill_members(dir);
      struct timespec ts = {0, 2000000};
      nanosleep(&ts, NULL);
    }
    lua_pop(L, 1);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int ns_euid(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)geteuid());
  return 1;
}

static const luaL_Reg holder_methods[] = {
    {"token", holder_token}, {"alive", holder_alive}, {"close", holder_close}, {NULL, NULL}};
static const luaL_Reg holder_meta[] = {{"__gc", holder_close},
                                       {"__close", holder_close},
                                       {"__tostring", holder_tostring},
                                       {NULL, NULL}};
static const luaL_Reg ns_funcs[] = {{"helper", ns_helper},
                                    {"hold", ns_hold},
                                    {"cgroup_create", ns_cgroup_create},
                                    {"cgroup_remove", ns_cgroup_remove},
                                    {"euid", ns_euid},
                                    {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_namespace(lua_State *L);
MB_EXPORT int luaopen_moonbox_namespace(lua_State *L)
{
  mb_newclass(L, HOLDER_T, holder_methods, holder_meta);
  luaL_newlib(L, ns_funcs);
  return 1;
}
