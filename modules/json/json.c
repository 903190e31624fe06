/* json.c: moonbox.json — JSON for protocol messages (LLM APIs, MCP, tool schemas).
 *
 *   encode(value) -> string | raises on values JSON cannot hold (functions, cycles, NaN, depth)
 *   decode(text)  -> value | nil, msg, "INVALID"       (lua-cjson's decoder; integers come back
 *                                                        as integers where they fit)
 *   array([t]) -> t        marks t (default: a new table) as a JSON array, so an empty one
 *                          encodes as [] instead of {}
 *   object([t]) -> t       marks t as an object even when it looks like a sequence
 *   null                   the JSON null (lua-cjson's, so both libraries agree)
 *
 * Why not cjson.encode: lua-cjson 2.1 has no way to write an empty array (a tool schema's
 * `"required": []`, MCP's `"content": []`) and prints integers above 2^53 as floats. A table is
 * an array when marked so, or when it is a non-empty sequence (keys 1..n, nothing else); else
 * an object with string keys (integer keys are written as strings; other keys raise).
 * Owns nothing; fail codes: INVALID (decode). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonbox.h"

#define ARRAY_MT "moonbox.json.array"
#define OBJECT_MT "moonbox.json.object"
#define MAX_DEPTH 200

/* The output buffer: malloc'd memory owned by one userdata per module instance (an upvalue of
 * encode; its __gc frees it), reused by every encode so an encode creates no object with a
 * finalizer (each one costs the collector's non-incremental atomic step a walk and a
 * resurrection). An error anywhere leaks nothing: the next encode starts over. Encoding runs no
 * Lua code and allocates no Lua object until the result is pushed; `busy` is set around that
 * push, where a collector step may run a finalizer that encodes: that one gets a buffer of its
 * own (as does every encode after a push that failed for lack of memory). Capacity above
 * JBUF_KEEP is handed to a temporary buffer before the push, so it is not kept. */
typedef struct jbuf {
  lua_State *L;
  char *p;
  size_t len, cap;
  int busy;
} jbuf;

#define JBUF_KEEP (256u << 10)

static int jbuf_gc(lua_State *L)
{
  jbuf *b = lua_touserdata(L, 1);
  free(b->p);
  b->p = NULL;
  return 0;
}

static void jbuf_add(jbuf *b, const char *s, size_t n)
{
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) luaL_error(b->L, "json: not enough memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void jb_char(jbuf *b, char c)
{
  jbuf_add(b, &c, 1);
}

static void jb_str(jbuf *b, const char *s)
{
  jbuf_add(b, s, strlen(s));
}

static void enc_value(lua_State *L, jbuf *b, int idx, int depth);

static void enc_string(jbuf *b, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  jb_char(b, '"');
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
    jbuf_add(b, s + start, i - start);
    start = i + 1;
    switch (c) {
      case '"':
        jb_str(b, "\\\"");
        break;
      case '\\':
        jb_str(b, "\\\\");
        break;
      case '\n':
        jb_str(b, "\\n");
        break;
      case '\r':
        jb_str(b, "\\r");
        break;
      case '\t':
        jb_str(b, "\\t");
        break;
      case '\b':
        jb_str(b, "\\b");
        break;
      case '\f':
        jb_str(b, "\\f");
        break;
      default: {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        jbuf_add(b, u, 6);
      }
    }
  }
  jbuf_add(b, s + start, len - start);
  jb_char(b, '"');
}

static void enc_number(lua_State *L, jbuf *b, int idx)
{
  char tmp[64];
  int n;
  if (lua_isinteger(L, idx)) {
    n = snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
  } else {
    double d = lua_tonumber(L, idx);
    if (!isfinite(d)) luaL_error(L, "json: cannot encode %s", isnan(d) ? "NaN" : "infinity");
    if (d == floor(d) && fabs(d) < 1e15)
      n = snprintf(tmp, sizeof tmp, "%.0f", d);
    else
      n = snprintf(tmp, sizeof tmp, "%.17g", d);
  }
  jbuf_add(b, tmp, (size_t)n);
}

/* 1 array, 0 object; for unmarked tables: a non-empty sequence with no other keys. */
static int is_array(lua_State *L, int idx, lua_Integer *len)
{
  *len = (lua_Integer)lua_rawlen(L, idx);
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, ARRAY_MT);
    int arr = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    luaL_getmetatable(L, OBJECT_MT);
    int obj = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (arr) return 1;
    if (obj) return 0;
  }
  if (*len == 0) return 0;
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count == *len;
}

static void enc_table(lua_State *L, jbuf *b, int idx, int depth)
{
  if (depth > MAX_DEPTH) luaL_error(L, "json: nesting deeper than %d (a cycle?)", MAX_DEPTH);
  luaL_checkstack(L, 6, "json: too deep");
  lua_Integer len;
  if (is_array(L, idx, &len)) {
    jb_char(b, '[');
    for (lua_Integer i = 1; i <= len; i++) {
      if (i > 1) jb_char(b, ',');
      lua_rawgeti(L, idx, i);
      enc_value(L, b, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    jb_char(b, ']');
    return;
  }
  jb_char(b, '{');
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int v = lua_gettop(L), k = v - 1;
    if (!first) jb_char(b, ',');
    first = 0;
    if (lua_type(L, k) == LUA_TSTRING) {
      size_t kl;
      const char *ks = lua_tolstring(L, k, &kl);
      enc_string(b, ks, kl);
    } else if (lua_isinteger(L, k)) {
      char tmp[32];
      int n =
          snprintf(tmp, sizeof tmp, "\"" LUA_INTEGER_FMT "\"", (LUAI_UACINT)lua_tointeger(L, k));
      jbuf_add(b, tmp, (size_t)n);
    } else {
      luaL_error(L, "json: cannot encode a table key of type %s", luaL_typename(L, k));
    }
    jb_char(b, ':');
    enc_value(L, b, v, depth + 1);
    lua_pop(L, 1);
  }
  jb_char(b, '}');
}

static void enc_value(lua_State *L, jbuf *b, int idx, int depth)
{
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      enc_string(b, s, len);
      break;
    }
    case LUA_TNUMBER:
      enc_number(L, b, idx);
      break;
    case LUA_TBOOLEAN:
      jb_str(b, lua_toboolean(L, idx) ? "true" : "false");
      break;
    case LUA_TNIL:
      jb_str(b, "null");
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { /* cjson.null */
        jb_str(b, "null");
        break;
      }
      /* fall through */
    case LUA_TTABLE:
      if (lua_type(L, idx) == LUA_TTABLE) {
        enc_table(L, b, idx, depth);
        break;
      }
      /* fall through */
    default:
      luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
  }
}

static jbuf *jbuf_new(lua_State *L)
{
  jbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, "moonbox.json.Buffer")) {
    lua_pushcfunction(L, jbuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

static int json_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  jbuf *b = lua_touserdata(L, lua_upvalueindex(1));
  if (b->busy) b = jbuf_new(L); /* re-entered from a finalizer during the push below */
  b->L = L;
  b->len = 0;
  enc_value(L, b, 1, 0);
  b->busy = 1; /* from here on a finalizer's encode must not touch b */
  if (b->cap > JBUF_KEEP) {
    jbuf *tmp = jbuf_new(L); /* owns the big buffer from now on: the push may raise */
    *tmp = *b;
    b->p = NULL;
    b->len = b->cap = 0;
    b->busy = 0;
    b = tmp;
  }
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  b->busy = 0;
  return 1;
}

static void mark(lua_State *L, const char *mt)
{
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_getmetatable(L, mt);
  lua_setmetatable(L, 1);
}

static int json_array(lua_State *L)
{
  mark(L, ARRAY_MT);
  return 1;
}

static int json_object(lua_State *L)
{
  mark(L, OBJECT_MT);
  return 1;
}

/* Integers come back as integers: lua-cjson decodes every number as a float. */
static void fix_integers(lua_State *L, int idx, int depth)
{
  if (depth > MAX_DEPTH) return;
  luaL_checkstack(L, 4, "json: too deep");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int t = lua_type(L, -1);
    if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      double d = lua_tonumber(L, -1);
      lua_Integer i;
      if (d == floor(d) && fabs(d) < 9007199254740992.0 && lua_numbertointeger(d, &i)) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, i);
        lua_rawset(L, idx);
      }
    } else if (t == LUA_TTABLE) {
      fix_integers(L, lua_gettop(L), depth + 1);
    }
    lua_pop(L, 1);
  }
}

static int json_decode(lua_State *L)
{
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    return mb_fail(L, "INVALID", "json: %s", msg ? msg : "invalid JSON");
  }
  if (lua_istable(L, -1))
    fix_integers(L, lua_gettop(L), 0);
  else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    double d = lua_tonumber(L, -1);
    lua_Integer i;
    if (d == floor(d) && fabs(d) < 9007199254740992.0 && lua_numbertointeger(d, &i)) {
      lua_pop(L, 1);
      lua_pushinteger(L, i);
    }
  }
  return 1;
}

MB_EXPORT int luaopen_moonbox_json(lua_State *L);
MB_EXPORT int luaopen_moonbox_json(lua_State *L)
{
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  luaL_newmetatable(L, OBJECT_MT);
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  int cjson = lua_gettop(L);
  static const luaL_Reg funcs[] = {{"array", json_array}, {"object", json_object}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  jbuf_new(L);
  lua_pushcclosure(L, json_encode, 1);
  lua_setfield(L, -2, "encode");
  lua_getfield(L, cjson, "decode");
  lua_pushcclosure(L, json_decode, 1);
  lua_setfield(L, -2, "decode");
  lua_getfield(L, cjson, "null");
  lua_setfield(L, -2, "null");
  return 1;
}
