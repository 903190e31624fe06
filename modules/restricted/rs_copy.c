/* rs_copy.c: plain data across the wall between the host state and a restricted state.
 *
 * A value is encoded from one state into a flat buffer (struct rs_buf) and decoded into the other,
 * so each step touches only one state and a raise (memory, limits) unwinds only that state. Only
 * nil, booleans, numbers, strings and tables cross; keys are strings, numbers or booleans. The
 * encoder enforces the nesting depth (which also stops cycles), a count of values and a byte
 * budget (which stops a table that repeats one big string a million times). Decoding with
 * `readonly` makes every table a proxy: an empty table whose metatable reads through to the real
 * one and refuses writes; since restricted code has neither setmetatable nor getmetatable nor
 * raw access, it cannot reach the real table. The encoder reads proxies through to their table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rs.h"

#define RO_MAP "moonbox.restricted.readonly"

struct enc {
  lua_State *S;
  struct rs_buf *b;
  const struct rs *lim;
  const char *what;
  int map; /* stack index of the proxy map, 0 if the state has none */
  int depth;
  long items;
  char path[256];
  size_t plen;
};

void rs_buf_free(struct rs_buf *b)
{
  free(b->p);
  b->p = NULL;
  b->n = b->cap = b->pos = 0;
}

static void enc_fail(struct enc *e, const char *detail)
{
  luaL_error(e->S, "%s%s: %s", e->what, e->path, detail);
}

static void put(struct enc *e, const void *p, size_t n)
{
  struct rs_buf *b = e->b;
  if (n > e->lim->max_bytes - b->n) {
    char msg[96];
    snprintf(msg, sizeof msg, "is larger than %zu bytes", e->lim->max_bytes);
    enc_fail(e, msg);
  }
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (q == NULL) enc_fail(e, "not enough memory to copy it");
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void put_tag(struct enc *e, char tag)
{
  put(e, &tag, 1);
}

/* Appends ".name" or "[key]" to the path shown in messages; returns the old length. */
static size_t path_push(struct enc *e, int kidx)
{
  size_t old = e->plen, room = sizeof e->path - old;
  int n = 0;
  if (lua_type(e->S, kidx) == LUA_TSTRING) {
    n = snprintf(e->path + old, room, ".%.40s", lua_tostring(e->S, kidx));
  } else if (lua_isinteger(e->S, kidx)) {
    n = snprintf(e->path + old, room, "[%lld]", (long long)lua_tointeger(e->S, kidx));
  } else if (lua_type(e->S, kidx) == LUA_TNUMBER) {
    n = snprintf(e->path + old, room, "[%g]", (double)lua_tonumber(e->S, kidx));
  } else {
    n = snprintf(e->path + old, room, "[%s]", lua_toboolean(e->S, kidx) ? "true" : "false");
  }
  e->plen = (n > 0 && (size_t)n < room) ? old + (size_t)n : old;
  e->path[e->plen] = '\0';
  return old;
}

static void enc_value(struct enc *e, int idx);

static void enc_table(struct enc *e, int idx)
{
  lua_State *S = e->S;
  char msg[96];
  if (e->depth >= e->lim->max_depth) {
    snprintf(msg, sizeof msg, "nests deeper than %d levels (or contains itself)",
             e->lim->max_depth);
    enc_fail(e, msg);
  }
  luaL_checkstack(S, 4, "copying a value");
  int pushed = 0;
  if (e->map) { /* a read-only proxy: copy the table it stands for */
    lua_pushvalue(S, idx);
    if (lua_rawget(S, e->map) == LUA_TTABLE) {
      idx = lua_gettop(S);
      pushed = 1;
    } else {
      lua_pop(S, 1);
    }
  }
  put_tag(e, '{');
  e->depth++;
  lua_pushnil(S);
  while (lua_next(S, idx)) {
    int kt = lua_type(S, -2);
    size_t old = path_push(e, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
      snprintf(msg, sizeof msg, "a %s cannot be a key here", lua_typename(S, kt));
      enc_fail(e, msg);
    }
    enc_value(e, lua_gettop(S) - 1);
    enc_value(e, lua_gettop(S));
    e->plen = old;
    e->path[old] = '\0';
    lua_pop(S, 1);
  }
  e->depth--;
  put_tag(e, '}');
  if (pushed) lua_pop(S, 1);
}

static void enc_value(struct enc *e, int idx)
{
  lua_State *S = e->S;
  if (++e->items > e->lim->max_items) {
    char msg[96];
    snprintf(msg, sizeof msg, "holds more than %ld values", e->lim->max_items);
    enc_fail(e, msg);
  }
  switch (lua_type(S, idx)) {
    case LUA_TNIL:
      put_tag(e, 'n');
      break;
    case LUA_TBOOLEAN:
      put_tag(e, lua_toboolean(S, idx) ? 't' : 'f');
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(S, idx)) {
        lua_Integer i = lua_tointeger(S, idx);
        put_tag(e, 'i');
        put(e, &i, sizeof i);
      } else {
        lua_Number d = lua_tonumber(S, idx);
        put_tag(e, 'd');
        put(e, &d, sizeof d);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(S, idx, &len);
      put_tag(e, 's');
      put(e, &len, sizeof len);
      put(e, s, len);
      break;
    }
    case LUA_TTABLE:
      enc_table(e, idx);
      break;
    default: {
      char msg[96];
      snprintf(msg, sizeof msg, "is a %s; only strings, numbers, booleans and tables can cross",
               luaL_typename(S, idx));
      enc_fail(e, msg);
    }
  }
}

void rs_encode(lua_State *S, int idx, struct rs_buf *b, const struct rs *lim, const char *what)
{
  struct enc e = {.S = S, .b = b, .lim = lim, .what = what};
  idx = lua_absindex(S, idx);
  luaL_checkstack(S, 2, "copying a value");
  if (lua_getfield(S, LUA_REGISTRYINDEX, RO_MAP) == LUA_TTABLE)
    e.map = lua_gettop(S);
  else
    lua_pop(S, 1);
  enc_value(&e, idx);
  if (e.map) lua_remove(S, e.map);
}

static int ro_newindex(lua_State *L)
{
  return luaL_error(L, "attempt to change a read-only table (copy it with clone() first)");
}

static int ro_len(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
  return 1;
}

static int ro_next(lua_State *L)
{
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 2); /* table, key */
  if (lua_next(L, 2)) return 2;
  lua_pushnil(L);
  return 1;
}

/* pairs(proxy) walks the real table without ever handing it out. */
static int ro_pairs(lua_State *L)
{
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, ro_next, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* Replaces the table on top of D with a read-only proxy for it. */
static void make_proxy(lua_State *D)
{
  int inner = lua_gettop(D);
  luaL_checkstack(D, 6, "copying a value");
  lua_newtable(D);
  lua_createtable(D, 0, 5);
  lua_pushvalue(D, inner);
  lua_setfield(D, -2, "__index");
  lua_pushcfunction(D, ro_newindex);
  lua_setfield(D, -2, "__newindex");
  lua_pushvalue(D, inner);
  lua_pushcclosure(D, ro_len, 1);
  lua_setfield(D, -2, "__len");
  lua_pushvalue(D, inner);
  lua_pushcclosure(D, ro_pairs, 1);
  lua_setfield(D, -2, "__pairs");
  lua_pushliteral(D, "read-only");
  lua_setfield(D, -2, "__metatable");
  lua_setmetatable(D, -2);
  if (lua_getfield(D, LUA_REGISTRYINDEX, RO_MAP) != LUA_TTABLE) {
    lua_pop(D, 1);
    lua_newtable(D);
    lua_createtable(D, 0, 1);
    lua_pushliteral(D, "k");
    lua_setfield(D, -2, "__mode");
    lua_setmetatable(D, -2);
    lua_pushvalue(D, -1);
    lua_setfield(D, LUA_REGISTRYINDEX, RO_MAP);
  }
  lua_pushvalue(D, inner + 1);
  lua_pushvalue(D, inner);
  lua_rawset(D, -3);
  lua_pop(D, 1);
  lua_replace(D, inner);
}

static void dec_bytes(struct rs_buf *b, void *out, size_t n)
{
  memcpy(out, b->p + b->pos, n);
  b->pos += n;
}

void rs_decode(lua_State *D, struct rs_buf *b, int readonly)
{
  luaL_checkstack(D, 3, "copying a value");
  char tag = b->p[b->pos++];
  switch (tag) {
    case 'n':
      lua_pushnil(D);
      break;
    case 't':
      lua_pushboolean(D, 1);
      break;
    case 'f':
      lua_pushboolean(D, 0);
      break;
    case 'i': {
      lua_Integer i;
      dec_bytes(b, &i, sizeof i);
      lua_pushinteger(D, i);
      break;
    }
    case 'd': {
      lua_Number d;
      dec_bytes(b, &d, sizeof d);
      lua_pushnumber(D, d);
      break;
    }
    case 's': {
      size_t len;
      dec_bytes(b, &len, sizeof len);
      lua_pushlstring(D, b->p + b->pos, len);
      b->pos += len;
      break;
    }
    default: /* '{' */
      lua_newtable(D);
      while (b->p[b->pos] != '}') {
        rs_decode(D, b, readonly);
        rs_decode(D, b, readonly);
        lua_rawset(D, -3);
      }
      b->pos++;
      if (readonly) make_proxy(D);
  }
}
