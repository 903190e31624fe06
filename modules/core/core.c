/* core.c: moonbox.core — version and the data paths the host resolved.
 *
 * Small facts every script may want, with no resources owned and no fail codes. */
#include <time.h>
#include <unistd.h>

#include "moonbox.h"

static int core_monotonic(lua_State *L)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* isatty(fd) -> boolean: whether fd (0 stdin, 1 stdout, 2 stderr) is a terminal. */
static int core_isatty(lua_State *L)
{
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_pushboolean(L, fd >= 0 && fd <= 0x7fffffff && isatty((int)fd));
  return 1;
}

static const luaL_Reg core_funcs[] = {
    {"monotonic", core_monotonic}, {"isatty", core_isatty}, {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_core(lua_State *L);
MB_EXPORT int luaopen_moonbox_core(lua_State *L)
{
  luaL_newlib(L, core_funcs);
  lua_pushstring(L, MB_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
