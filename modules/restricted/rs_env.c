/* rs_env.c: the global environment of a restricted state.
 *
 * Only base, string, table, math and utf8 are opened, and only an allow-list of their names is
 * kept: no load/loadfile/dofile/require, io, os, debug, collectgarbage, string.dump, metatable
 * or raw* access. Reading a global that is not there raises (naming it), so a policy that
 * touches `os` fails loudly instead of reading nil. `print` appends to a bounded log the host
 * can read (never stdout: the MCP server speaks on stdout). `clone(t)` deep-copies a table (a
 * read-only preset included) into a plain table the policy may change. `xpcall` calls its
 * handler after unwinding, not during: Lua runs a message handler with hooks off when the error
 * came from a hook, so the stock xpcall would let a handler loop past the deadline. Owns nothing.
 */
#include <string.h>

#include "rs.h"

#define EXPORTS "moonbox.restricted.exports"
#define LOG "moonbox.restricted.log"
#define LOG_LINES 200
#define LOG_LINE_BYTES 1024

static const char *const allowed_base[] = {"assert", "error",    "ipairs",   "next",     "pairs",
                                           "pcall",  "select",   "tonumber", "tostring", "type",
                                           "xpcall", "_VERSION", NULL};

static const char *const forbidden[] = {
    "load",    "loadfile",       "dofile",       "require",      "io",     "os",     "debug",
    "package", "collectgarbage", "setmetatable", "getmetatable", "rawset", "rawget", "rawequal",
    "rawlen",  "coroutine",      "warn",         "loadstring",   "module", NULL};

static const char prelude[] =
    "local pairs, type, error = pairs, type, error\n"
    "local function copy(v, depth)\n"
    "  if type(v) ~= 'table' then return v end\n"
    "  if depth > 64 then\n"
    "    error('clone: the table nests deeper than 64 levels (or contains itself)', depth + 2)\n"
    "  end\n"
    "  local t = {}\n"
    "  for k, x in pairs(v) do t[k] = copy(x, depth + 1) end\n"
    "  return t\n"
    "end\n"
    "function clone(v) return copy(v, 1) end\n"
    "local pcall, pack, unpack = pcall, table.pack, table.unpack\n"
    "function xpcall(f, handler, ...)\n"
    "  if type(handler) ~= 'function' then\n"
    "    error(\"bad argument #2 to 'xpcall' (function expected)\", 2)\n"
    "  end\n"
    "  local r = pack(pcall(f, ...))\n"
    "  if r[1] then return unpack(r, 1, r.n) end\n"
    "  return false, handler(r[2])\n"
    "end\n";

static int strict_index(lua_State *R)
{
  const char *name = lua_tostring(R, 2);
  if (name == NULL) return 0;
  for (const char *const *f = forbidden; *f; f++) {
    if (strcmp(*f, name) == 0) {
      luaL_where(R, 2);
      return luaL_error(R,
                        "%s'%s' is not available to a policy (policies get only the base "
                        "functions, string, table, math and utf8: no load, require, io, os, "
                        "debug, metatables or raw access)",
                        lua_tostring(R, -1), name);
    }
  }
  luaL_where(R, 2);
  return luaL_error(R, "%sundefined global '%s'", lua_tostring(R, -1), name);
}

/* print(...): one tab-separated line, at most LOG_LINE_BYTES, into the log (LOG_LINES lines). */
static int rs_print(lua_State *R)
{
  int n = lua_gettop(R);
  char line[LOG_LINE_BYTES];
  size_t len = 0;
  for (int i = 1; i <= n && len < sizeof line; i++) {
    size_t l;
    const char *s = luaL_tolstring(R, i, &l);
    if (i > 1) line[len++] = '\t';
    if (l > sizeof line - len) l = sizeof line - len;
    memcpy(line + len, s, l);
    len += l;
    lua_pop(R, 1);
  }
  lua_getfield(R, LUA_REGISTRYINDEX, LOG);
  lua_Unsigned count = lua_rawlen(R, -1);
  if (count < LOG_LINES) {
    lua_pushlstring(R, line, len);
    lua_rawseti(R, -2, (lua_Integer)count + 1);
  }
  return 0;
}

int rs_open_env(lua_State *R)
{
  static const struct {
    const char *name;
    lua_CFunction open;
  } libs[] = {{LUA_STRLIBNAME, luaopen_string},
              {LUA_TABLIBNAME, luaopen_table},
              {LUA_MATHLIBNAME, luaopen_math},
              {LUA_UTF8LIBNAME, luaopen_utf8}};
  luaL_requiref(R, LUA_GNAME, luaopen_base, 0);
  int g = lua_gettop(R);
  lua_createtable(R, 0, 24);
  int env = g + 1;
  for (const char *const *a = allowed_base; *a; a++) {
    lua_getfield(R, g, *a);
    lua_setfield(R, env, *a);
  }
  for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
    luaL_requiref(R, libs[i].name, libs[i].open, 0);
    if (libs[i].open == luaopen_string) {
      lua_pushnil(R);
      lua_setfield(R, -2, "dump");
      rs_open_match(R);
      lua_pushcfunction(R, rs_rep);
      lua_setfield(R, -2, "rep");
    } else if (libs[i].open == luaopen_table) {
      lua_pushcfunction(R, rs_move);
      lua_setfield(R, -2, "move");
    }
    lua_setfield(R, env, libs[i].name);
  }
  lua_pushcfunction(R, rs_print);
  lua_setfield(R, env, "print");
  lua_pushvalue(R, env);
  lua_setfield(R, env, LUA_GNAME);
  lua_createtable(R, 0, 2);
  lua_pushcfunction(R, strict_index);
  lua_setfield(R, -2, "__index");
  lua_pushliteral(R, "locked");
  lua_setfield(R, -2, "__metatable");
  lua_setmetatable(R, env);
  lua_pushvalue(R, env);
  lua_rawseti(R, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_newtable(R);
  lua_setfield(R, LUA_REGISTRYINDEX, EXPORTS);
  lua_newtable(R);
  lua_setfield(R, LUA_REGISTRYINDEX, LOG);
  if (luaL_loadbufferx(R, prelude, sizeof prelude - 1, "=moonbox", "t") != LUA_OK)
    return lua_error(R);
  lua_call(R, 0, 0);
  return 0;
}
