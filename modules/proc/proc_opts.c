/* proc_opts.c: spawn options, the group sweeper and mkdirs for moonbox.proc.
 *
 * Options are validated strictly (unknown names, wrong types, NUL bytes raise); the argv and
 * envp pointer arrays are userdata on the stack pointing at Lua strings that stay there too, so
 * nothing is malloc'd while Lua may raise. The sweeper is a userdata anchored in the registry
 * ("moonbox.proc.sweeper") holding the process groups of finished commands for a few seconds:
 * each pass reaps their orphans (we are a child subreaper) and SIGKILLs what is left, until the
 * group is empty. Fail codes: none (mkdirs returns errno values). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "proc.h"

extern char **environ;

static const char *check_clean_string(lua_State *L, int idx, size_t *len, const char *what)
{
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (s == NULL) luaL_error(L, "spawn: %s must be a string", what);
  if (memchr(s, '\0', n)) luaL_error(L, "spawn: %s contains a NUL byte", what);
  if (len) *len = n;
  return s;
}

static char **build_argv(lua_State *L, int idx)
{
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  if (n < 1 || n > 100000) luaL_error(L, "spawn: argv must be a non-empty list of strings");
  char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 1);
  lua_pushvalue(L, idx); /* the strings stay alive through the argv table */
  lua_setiuservalue(L, -2, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_geti(L, idx, i) != LUA_TSTRING)
      luaL_error(L, "spawn: argv[%d] must be a string", (int)i);
    argv[i - 1] = (char *)check_clean_string(L, -1, NULL, "argv");
    lua_pop(L, 1);
  }
  argv[n] = NULL;
  return argv;
}

/* env: {NAME = value | false}; clean: start empty instead of from environ. */
static char **build_envp(lua_State *L, int env_idx, int clean)
{
  lua_newtable(L); /* "K=V" strings we create, kept alive here */
  int keep = lua_gettop(L);
  int nkeep = 0;
  if (env_idx) {
    lua_pushnil(L);
    while (lua_next(L, env_idx)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "spawn: env names must be strings");
      size_t kn;
      const char *k = check_clean_string(L, -2, &kn, "env name");
      if (kn == 0 || strchr(k, '=')) luaL_error(L, "spawn: bad env name '%s'", k);
      if (lua_type(L, -1) == LUA_TSTRING) {
        const char *v = check_clean_string(L, -1, NULL, "env value");
        lua_pushfstring(L, "%s=%s", k, v);
        lua_rawseti(L, keep, ++nkeep);
      } else if (!(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        luaL_error(L, "spawn: env.%s must be a string or false (to unset it)", k);
      }
      lua_pop(L, 1);
    }
  }
  size_t nenv = 0;
  if (!clean)
    for (char **e = environ; *e; e++) nenv++;
  char **envp = lua_newuserdatauv(L, (nenv + (size_t)nkeep + 1) * sizeof *envp, 1);
  lua_pushvalue(L, keep);
  lua_setiuservalue(L, -2, 1);
  size_t n = 0;
  for (size_t i = 0; i < nenv; i++) {
    const char *e = environ[i];
    const char *eq = strchr(e, '=');
    if (eq == NULL) continue;
    if (env_idx) { /* overridden or unset by env? */
      lua_pushlstring(L, e, (size_t)(eq - e));
      int t = lua_rawget(L, env_idx);
      lua_pop(L, 1);
      if (t != LUA_TNIL) continue;
    }
    envp[n++] = (char *)e;
  }
  for (int i = 1; i <= nkeep; i++) {
    lua_rawgeti(L, keep, i);
    envp[n++] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  envp[n] = NULL;
  return envp;
}

static double opt_seconds(lua_State *L, int idx, const char *name, double dflt)
{
  int t = lua_getfield(L, idx, name);
  double v = dflt;
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER) luaL_error(L, "spawn: %s must be a number of seconds", name);
    v = lua_tonumber(L, -1);
    if (!(v >= 0)) luaL_error(L, "spawn: %s must be >= 0", name);
    if (isinf(v)) v = -1;
  }
  lua_pop(L, 1);
  return v;
}

void mb_proc_read_opts(lua_State *L, int argv_idx, int opts_idx, mb_spawn_opts *o)
{
  memset(o, 0, sizeof *o);
  o->timeout = -1;
  o->grace = 2;
  o->max_output = 100000;
  int has_opts = !lua_isnoneornil(L, opts_idx);
  if (has_opts) {
    luaL_checktype(L, opts_idx, LUA_TTABLE);
    static const char *const known[] = {"cwd",     "env",   "clean_env",  "stdin",
                                        "timeout", "grace", "max_output", NULL};
    lua_pushnil(L);
    while (lua_next(L, opts_idx)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: option names are strings");
      luaL_checkoption(L, -1, NULL, known);
    }
  }
  o->argv = build_argv(L, argv_idx);
  if (!has_opts) return;
  if (lua_getfield(L, opts_idx, "cwd") != LUA_TNIL) o->cwd = check_clean_string(L, -1, NULL, "cwd");
  lua_pop(L, 1); /* the string stays alive in the options table */
  if (lua_getfield(L, opts_idx, "stdin") != LUA_TNIL) {
    if (lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
      o->hold_stdin = 1; /* a socket left open for Process:send */
    } else {
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: stdin must be a string or true");
      o->stdin_data = lua_tolstring(L, -1, &o->stdin_len);
    }
    o->has_stdin = 1;
  }
  lua_pop(L, 1);
  o->timeout = opt_seconds(L, opts_idx, "timeout", -1);
  o->grace = opt_seconds(L, opts_idx, "grace", 2);
  if (o->grace < 0) o->grace = 0;
  if (lua_getfield(L, opts_idx, "max_output") != LUA_TNIL) {
    lua_Integer m = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
    if (m < 2 || m > (1 << 30))
      luaL_error(L, "spawn: max_output must be an integer from 2 to 2^30");
    o->max_output = (size_t)m;
  }
  lua_pop(L, 1);
  int clean = 0;
  if (lua_getfield(L, opts_idx, "clean_env") != LUA_TNIL) {
    luaL_checktype(L, -1, LUA_TBOOLEAN);
    clean = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  int t = lua_getfield(L, opts_idx, "env");
  if (t != LUA_TNIL && t != LUA_TTABLE) luaL_error(L, "spawn: env must be a table");
  int env_idx = t == LUA_TTABLE ? lua_gettop(L) : 0;
  if (env_idx || clean) o->envp = build_envp(L, env_idx, clean);
}

/* ---- the sweeper --------------------------------------------------------------------------- */

typedef struct sweep_entry {
  pid_t pgid;
  double until;
} sweep_entry;

typedef struct sweeper {
  mb_loop *loop;
  mb_timer timer;
  sweep_entry *v;
  size_t n, cap;
} sweeper;

static sweeper *the_sweeper;

/* Reaps the group's zombies that are our children, kills the rest; 1 when the group is gone. */
static int sweep_one(pid_t pgid)
{
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PGID, (id_t)pgid, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0) break;
  }
  return kill(-pgid, SIGKILL) != 0 && errno == ESRCH;
}

static void sweep_tick(mb_loop *loop, mb_timer *t)
{
  sweeper *s = t->data;
  double now = mb_now();
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    if (!sweep_one(s->v[i].pgid) && now < s->v[i].until) s->v[k++] = s->v[i];
  s->n = k;
  if (s->n > 0) mb_timer_start(loop, &s->timer, 0.02, sweep_tick, s);
}

void mb_proc_sweep_add(mb_loop *loop, pid_t pgid)
{
  if (pgid <= 0 || sweep_one(pgid)) return;
  sweeper *s = the_sweeper;
  if (s == NULL || s->loop != loop) return;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    sweep_entry *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) return; /* the group was killed once already; only the reaping is lost */
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n].pgid = pgid;
  s->v[s->n].until = mb_now() + 5.0;
  s->n++;
  if (s->timer.index == 0) mb_timer_start(loop, &s->timer, 0.005, sweep_tick, s);
}

static int sweeper_gc(lua_State *L)
{
  sweeper *s = lua_touserdata(L, 1);
  if (s->loop) mb_timer_stop(s->loop, &s->timer);
  for (size_t i = 0; i < s->n; i++) sweep_one(s->v[i].pgid);
  free(s->v);
  s->v = NULL;
  s->n = 0;
  s->loop = NULL;
  if (the_sweeper == s) the_sweeper = NULL;
  return 0;
}

void mb_proc_sweeper(lua_State *L, mb_loop *loop)
{
  if (lua_getfield(L, LUA_REGISTRYINDEX, "moonbox.proc.sweeper") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  sweeper *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->loop = loop;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sweeper_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonbox.proc.sweeper");
  the_sweeper = s;
}

/* ---- mkdir -p ------------------------------------------------------------------------------ */

int mb_proc_mkdirs(const char *path, mode_t mode)
{
  size_t n = strlen(path);
  if (n == 0 || n >= 4096) return EINVAL;
  char buf[4096];
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return errno;
    buf[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}
