/* permglob.c: moonbox.permglob — compiled permission globs (see permglob_core.c for the syntax).
 *
 *   local g = require "moonbox.permglob"
 *   local p = g.compile("**\/.env")   --> Pattern; p:match("/a/.env") --> true
 *   local s = g.set{ "**\/.env", p }  --> Set;     s:first("/x/.env") --> 1 (or nil)
 *   g.match(pattern, subject)         --> boolean (compiles each time; prefer compile)
 *
 * A Pattern's compiled form lives inside its own userdata (no malloc, nothing to close); its
 * user value is the source string. A Set holds pointers to Patterns and keeps them alive in its
 * user value (a table), so the pointers stay valid as long as the Set does.
 * Nothing here fails with a code: a pattern longer than 4096 bytes or a non-string raises
 * (misuse); an unrenderable class compiles to an inert pattern that matches nothing. */
#include <string.h>

#include "moonbox.h"
#include "permglob_core.h"

#define PATTERN_T "moonbox.permglob.Pattern"
#define SET_T "moonbox.permglob.Set"

typedef struct set_ud {
  lua_Integer n;
  const pg_pattern *items[];
} set_ud;

/* Pushes the compiled Pattern for the string at stack index `idx`. */
static const pg_pattern *compile_at(lua_State *L, int idx)
{
  size_t len;
  const char *src = luaL_checklstring(L, idx, &len);
  if (len > PG_MAX_PATTERN)
    luaL_error(L, "permglob: pattern is %d bytes; the limit is %d", (int)len, PG_MAX_PATTERN);
  int src_idx = lua_absindex(L, idx);
  void *scratch = lua_newuserdatauv(L, pg_scratch_size(len), 0);
  pg_info info;
  pg_parse(src, len, scratch, &info);
  pg_pattern *p = lua_newuserdatauv(L, pg_compiled_size(&info), 1);
  pg_build(p, scratch, &info);
  lua_pushvalue(L, src_idx);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, PATTERN_T);
  lua_remove(L, -2); /* the scratch */
  return p;
}

static int permglob_compile(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TSTRING);
  compile_at(L, 1);
  return 1;
}

static int permglob_match(lua_State *L)
{
  size_t n;
  luaL_checktype(L, 1, LUA_TSTRING);
  const char *s = luaL_checklstring(L, 2, &n);
  const pg_pattern *p = compile_at(L, 1);
  lua_pushboolean(L, pg_match(p, s, n));
  return 1;
}

static int pattern_match(lua_State *L)
{
  size_t n;
  const pg_pattern *p = luaL_checkudata(L, 1, PATTERN_T);
  const char *s = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, pg_match(p, s, n));
  return 1;
}

static int pattern_source(lua_State *L)
{
  luaL_checkudata(L, 1, PATTERN_T);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int pattern_inert(lua_State *L)
{
  const pg_pattern *p = luaL_checkudata(L, 1, PATTERN_T);
  lua_pushboolean(L, pg_inert(p));
  return 1;
}

static int pattern_tostring(lua_State *L)
{
  luaL_checkudata(L, 1, PATTERN_T);
  lua_getiuservalue(L, 1, 1);
  lua_pushfstring(L, PATTERN_T ": %s", lua_tostring(L, -1));
  return 1;
}

/* permglob.set(list): list items are pattern strings or compiled Patterns. */
static int permglob_set(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n < 0 || (size_t)n > (((size_t)-1) - sizeof(set_ud)) / sizeof(void *))
    return luaL_error(L, "permglob.set: bad list length");
  lua_createtable(L, (int)n, 0); /* keeps the Patterns alive */
  int keep = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_geti(L, 1, i);
    if (t == LUA_TSTRING) {
      compile_at(L, -1);
      lua_remove(L, -2);
    } else if (!luaL_testudata(L, -1, PATTERN_T)) {
      return luaL_error(L, "permglob.set: item %d is a %s; expected a pattern string or Pattern",
                        (int)i, luaL_typename(L, -1));
    }
    lua_seti(L, keep, i);
  }
  set_ud *set = lua_newuserdatauv(L, sizeof(set_ud) + (size_t)n * sizeof(void *), 1);
  set->n = n;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, keep, i);
    set->items[i - 1] = lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, keep);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, SET_T);
  return 1;
}

/* set:first(s) --> index of the first matching pattern, or nil. */
static int set_first(lua_State *L)
{
  size_t n;
  const set_ud *set = luaL_checkudata(L, 1, SET_T);
  const char *s = luaL_checklstring(L, 2, &n);
  size_t base = pg_base(s, n);
  for (lua_Integer i = 0; i < set->n; i++) {
    if (pg_match_at(set->items[i], s, n, base)) {
      lua_pushinteger(L, i + 1);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

/* set:matches(s) --> { index, ... } of every matching pattern, in order. */
static int set_matches(lua_State *L)
{
  size_t n;
  const set_ud *set = luaL_checkudata(L, 1, SET_T);
  const char *s = luaL_checklstring(L, 2, &n);
  lua_newtable(L);
  lua_Integer k = 0;
  size_t base = pg_base(s, n);
  for (lua_Integer i = 0; i < set->n; i++) {
    if (pg_match_at(set->items[i], s, n, base)) {
      lua_pushinteger(L, i + 1);
      lua_seti(L, -2, ++k);
    }
  }
  return 1;
}

/* set:pattern(i) --> the i-th Pattern. */
static int set_pattern(lua_State *L)
{
  const set_ud *set = luaL_checkudata(L, 1, SET_T);
  lua_Integer i = luaL_checkinteger(L, 2);
  luaL_argcheck(L, i >= 1 && i <= set->n, 2, "index out of range");
  lua_getiuservalue(L, 1, 1);
  lua_geti(L, -1, i);
  return 1;
}

static int set_len(lua_State *L)
{
  const set_ud *set = luaL_checkudata(L, 1, SET_T);
  lua_pushinteger(L, set->n);
  return 1;
}

static const luaL_Reg pattern_methods[] = {
    {"match", pattern_match}, {"source", pattern_source}, {"inert", pattern_inert}, {NULL, NULL}};
static const luaL_Reg pattern_meta[] = {{"__tostring", pattern_tostring}, {NULL, NULL}};
static const luaL_Reg set_methods[] = {{"first", set_first},
                                       {"matches", set_matches},
                                       {"pattern", set_pattern},
                                       {"count", set_len},
                                       {NULL, NULL}};
static const luaL_Reg set_meta[] = {{"__len", set_len}, {NULL, NULL}};
static const luaL_Reg permglob_funcs[] = {
    {"compile", permglob_compile}, {"match", permglob_match}, {"set", permglob_set}, {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_permglob(lua_State *L);
MB_EXPORT int luaopen_moonbox_permglob(lua_State *L)
{
  mb_newclass(L, PATTERN_T, pattern_methods, pattern_meta);
  mb_newclass(L, SET_T, set_methods, set_meta);
  luaL_newlib(L, permglob_funcs);
  lua_pushinteger(L, PG_MAX_PATTERN);
  lua_setfield(L, -2, "max_pattern");
  return 1;
}
