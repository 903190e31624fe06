/* rs_lib.c: string.rep and table.move for restricted states.
 *
 * Stock Lua bounds most library loops by the size of something the memory cap already limits,
 * but not these two: ("").rep("", math.maxinteger) copies nothing 2^63 times and
 * table.move(t, 1, 1e15, 2) moves a quadrillion nils, both in C where no hook reaches. Here rep
 * returns at once when there is nothing to copy and fills its buffer by doubling, and move polls
 * the deadline every 4096 elements. Same arguments, results and messages as Lua 5.4's. */
#include <limits.h>
#include <string.h>

#include "rs.h"

int rs_rep(lua_State *L)
{
  size_t l, lsep;
  const char *s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || (l == 0 && lsep == 0)) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (n == 1) {
    lua_pushvalue(L, 1);
    return 1;
  }
  if (l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n)
    return luaL_error(L, "resulting string too large");
  size_t unit = l + lsep, total = (size_t)n * unit - lsep; /* total >= unit when n >= 2 */
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, total);
  memcpy(p, s, l);
  memcpy(p + l, sep, lsep);
  size_t done = unit;
  while (done < total) { /* the pattern is periodic: copy what is there onto what follows */
    size_t c = done < total - done ? done : total - done;
    memcpy(p + done, p, c);
    done += c;
  }
  luaL_pushresultsize(&b, total);
  return 1;
}

int rs_move(lua_State *L)
{
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  lua_Integer t = luaL_checkinteger(L, 4);
  int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, tt, LUA_TTABLE);
  if (e >= f) {
    luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
    lua_Integer n = e - f + 1;
    luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
    if (t > e || t <= f || (tt != 1 && !lua_rawequal(L, 1, tt))) {
      for (lua_Integer i = 0; i < n; i++) {
        if ((i & 4095) == 4095) rs_check_deadline(L);
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    } else {
      for (lua_Integer i = n - 1; i >= 0; i--) {
        if ((i & 4095) == 4095) rs_check_deadline(L);
        lua_geti(L, 1, f + i);
        lua_seti(L, tt, t + i);
      }
    }
  }
  lua_pushvalue(L, tt);
  return 1;
}
