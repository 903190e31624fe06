/* main.c: the moonbox command line.
 *
 *   moonbox run SCRIPT.lua [ARGS...]   run a script (global `arg` as lua.c builds it)
 *   moonbox mcp [...] / agent [...]     hand over to scripts/moonbox/cli.lua
 *   moonbox --version | --help
 *
 * Everything runs inside a protected main (pmain, as lua.c): an uncaught error prints its
 * traceback on stderr and the process exits 1. Nothing here calls exit() from Lua-callable code. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "moonbox.h"
#include "scheduler.h"

#include "lua-cjson.h"

/* Collector settings for the host's state (see main()): pause in percent, step multiplier,
 * log2 of the step size in bytes. */
#define MB_GC_PAUSE 200
#define MB_GC_STEPMUL 8
#define MB_GC_STEPSIZE 10

static const char usage[] =
    "usage: moonbox COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  run SCRIPT.lua [ARGS...]   run a Lua script inside the host (arg[1..] = ARGS)\n"
    "  mcp [--root DIR] [--preset NAME] [--policy FILE] [--sandbox KIND] [--edit-format F]\n"
    "                             serve the console toolset over MCP on stdin/stdout\n"
    "  agent [--model M] [--root DIR] [...] PROMPT\n"
    "                             run the built-in agent loop against an LLM API\n"
    "  --version                  print the version\n"
    "  --help                     print this help\n"
    "\n"
    "environment: MOONBOX_PATH  folder holding scripts/ and presets/ (default: beside the "
    "binary)\n";

static int msghandler(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int docall(lua_State *L, int nargs, int nres)
{
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  return status;
}

static void report(lua_State *L, int status)
{
  if (status != LUA_OK) {
    fprintf(stderr, "moonbox: %s\n", lua_tostring(L, -1));
    fflush(stderr);
    lua_pop(L, 1);
  }
}

/* arg[0] = script, arg[1..] = its arguments, negative indices for what came before (lua.c). */
static void createargtable(lua_State *L, char **argv, int argc, int script)
{
  lua_createtable(L, argc - script - 1, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Runs the function below its n arguments as the main task; the loop runs until it and every
 * task it spawned are done. If the main task fails, the others are cancelled and its traceback
 * is the error. */
static int run_task(lua_State *L, int n)
{
  mb_task *main_task = mb_task_spawn(L, n, 0);
  int stuck = mb_sched_run(L, main_task);
  const char *st = mb_task_status(main_task);
  if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
    mb_sched_cancel_all(L);
    if (!mb_task_push_traceback(L, main_task)) lua_pushliteral(L, "the main task was cancelled");
    return LUA_ERRRUN;
  }
  if (stuck > 0) {
    lua_pushfstring(L,
                    "%d task(s) are waiting for something that can never happen (a join "
                    "cycle?); they were cancelled",
                    stuck);
    mb_sched_cancel_all(L);
    return LUA_ERRRUN;
  }
  lua_pop(L, 1);
  return LUA_OK;
}

/* The script's main chunk runs as a task. */
static int run_script(lua_State *L, char **argv, int argc, int script)
{
  createargtable(L, argv, argc, script);
  int status = luaL_loadfile(L, argv[script]);
  if (status != LUA_OK) return status;
  int n = argc - script - 1;
  luaL_checkstack(L, n, "too many arguments to script");
  for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  return run_task(L, n);
}

/* mcp and agent are Lua: require("moonbox.cli").run(command, args...) runs as the main task and
 * leaves the exit status in the module's `exit_code`. */
static int run_cli(lua_State *L, char **argv, int argc, int cmd)
{
  createargtable(L, argv, argc, cmd);
  lua_getglobal(L, "require");
  lua_pushstring(L, "moonbox.cli");
  int status = docall(L, 1, 1);
  if (status != LUA_OK) return status;
  int cli = lua_gettop(L);
  lua_getfield(L, cli, "run");
  int n = argc - cmd;
  luaL_checkstack(L, n, "too many arguments");
  for (int i = cmd; i < argc; i++) lua_pushstring(L, argv[i]);
  status = run_task(L, n);
  if (status == LUA_OK) {
    lua_getfield(L, cli, "exit_code");
    int code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 2);
    lua_pushinteger(L, code);
    lua_setfield(L, LUA_REGISTRYINDEX, "moonbox.exit_code");
  }
  return status;
}

static int pmain(lua_State *L)
{
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pop(L, 1);
  mb_preload_natives(L);
  mb_setup_paths(L, "/proc/self/exe");

  const char *cmd = argc > 1 ? argv[1] : NULL;
  int status;
  if (cmd == NULL || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    fputs(usage, cmd ? stdout : stderr);
    lua_pushinteger(L, cmd ? 0 : 2);
    return 1;
  } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-v") == 0) {
    printf("moonbox %s (%s)\n", MB_VERSION, LUA_RELEASE);
    lua_pushinteger(L, 0);
    return 1;
  } else if (strcmp(cmd, "run") == 0) {
    if (argc < 3) {
      fputs("moonbox: 'run' needs a script: moonbox run SCRIPT.lua [ARGS...]\n", stderr);
      lua_pushinteger(L, 2);
      return 1;
    }
    status = run_script(L, argv, argc, 2);
  } else if (strcmp(cmd, "mcp") == 0 || strcmp(cmd, "agent") == 0) {
    /* An MCP client that dies closes our stdout: the next message must fail with EPIPE (the
     * server then cancels its calls and kills their commands), not kill the host with SIGPIPE
     * and orphan those commands. Commands get default signal dispositions (proc_spawn.c). */
    if (strcmp(cmd, "mcp") == 0) signal(SIGPIPE, SIG_IGN);
    status = run_cli(L, argv, argc, 1);
  } else {
    fprintf(stderr, "moonbox: unknown command '%s' (try 'moonbox --help')\n", cmd);
    lua_pushinteger(L, 2);
    return 1;
  }
  report(L, status);
  if (status != LUA_OK) {
    lua_pushinteger(L, 1);
  } else if (lua_getfield(L, LUA_REGISTRYINDEX, "moonbox.exit_code") != LUA_TNUMBER) {
    lua_pop(L, 1);
    lua_pushinteger(L, 0);
  }
  return 1;
}

/* A host killed by SIGINT/SIGTERM/SIGHUP takes the process groups of its commands with it (they
 * are in groups of their own, so a terminal's signal does not reach them), then dies of the
 * same signal. */
static void on_fatal_signal(int sig)
{
  mb_groups_kill_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void install_signal_handlers(void)
{
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    /* Leave alone a signal the parent chose to ignore (nohup). */
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sigs[i], &sa, NULL);
  }
}

int main(int argc, char **argv)
{
  install_signal_handlers();
  /* Lua churns through strings as large as the files it edits (a 500 KB file makes a new 500 KB
   * string per edit). glibc serves such blocks with mmap and trims freed heap back to the OS,
   * so every edit paid ~150 page faults; keeping them in the heap makes edits 2-3x faster. */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  /* No fastbins: a collector step frees thousands of small objects, and with fastbins the next
   * large malloc or a free of 64 KB or more runs malloc_consolidate over all of them at once
   * (10-20 ms at 1,000 agents, bench/agents.lua); without them each free coalesces as it goes. */
  mallopt(M_MXFAST, 0);
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fputs("moonbox: cannot create a Lua state: not enough memory\n", stderr);
    return 1;
  }
  /* The loop must not stall. Lua 5.4's incremental collector does (bytes allocated / 16 *
   * stepmul) units of work (a unit: a slot marked or an object swept) in the allocation that
   * triggers a step; at the default 100 a task allocating 50 KB in one resume paid 30-50 ms of
   * sweeping and marking (bench/agents.lua). At 8 it pays half a unit per byte: marking costs at
   * most a unit per 16 bytes and sweeping one per object, so a cycle still ends within about a
   * fifth of the live heap of new allocation (peak heap about 2.2x live instead of 2x with pause
   * 200), and 1 KB steps keep each slice short. 4 did no better for the agents and made 1,000
   * hashline edits of a 400 KB file (bench/toolset.lua) up to twice as slow. Scripts may call
   * collectgarbage("incremental", ...) to choose otherwise. */
  lua_gc(L, LUA_GCINC, MB_GC_PAUSE, MB_GC_STEPMUL, MB_GC_STEPSIZE);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int code = status == LUA_OK ? (int)lua_tointeger(L, -1) : 1;
  if (status != LUA_OK) report(L, status);
  lua_close(L);
  return code;
}
