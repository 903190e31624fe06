/* backend_lua.c: Lua-side helpers for native backends (see backend_lua.h).
 *
 * Owns nothing itself: a box userdata ("moonbox.backend.Box") owns one malloc'd object and frees
 * it from __gc or __close, so C code never holds memory across a call that may raise.
 * No fail codes of its own: mb_lfail passes the core's codes through. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend_lua.h"

#define BOX_TYPE "moonbox.backend.Box"

typedef struct {
  void *ptr;
  void (*free_fn)(void *);
} box;

static int box_release(lua_State *L)
{
  box *b = luaL_checkudata(L, 1, BOX_TYPE);
  if (b->ptr && b->free_fn) b->free_fn(b->ptr);
  b->ptr = NULL;
  return 0;
}

void **mb_lbox(lua_State *L, void (*free_fn)(void *))
{
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->ptr = NULL;
  b->free_fn = free_fn;
  if (luaL_newmetatable(L, BOX_TYPE)) {
    lua_pushcfunction(L, box_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, box_release);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  return &b->ptr;
}

static void buf_free(void *p)
{
  mb_buf_free(p);
  free(p);
}

mb_buf *mb_lbuf(lua_State *L)
{
  void **slot = mb_lbox(L, buf_free);
  mb_buf *b = calloc(1, sizeof *b);
  if (!b) luaL_error(L, "not enough memory");
  *slot = b;
  return b;
}

int mb_lfail(lua_State *L, mb_code code, const mb_buf *err)
{
  lua_pushnil(L);
  if (err && err->len)
    lua_pushlstring(L, err->data, err->len);
  else
    lua_pushstring(L, code);
  lua_pushstring(L, code);
  return 3;
}

void mb_lpushbuf(lua_State *L, const mb_buf *b)
{
  lua_pushlstring(L, b->data ? b->data : "", b->len);
}

mb_code mb_lcheckpath(lua_State *L, int arg, mb_buf *out, mb_buf *err)
{
  size_t len;
  const char *p = luaL_checklstring(L, arg, &len);
  return mb_path_normalize(p, len, out, err);
}

lua_Integer mb_loptint(lua_State *L, int arg, lua_Integer def)
{
  return luaL_opt(L, luaL_checkinteger, arg, def);
}

static const char *const grep_keys[] = {"path", "glob", "ignore_hidden", "ignore_case", "fixed",
                                        "max",  NULL};

static bool opt_bool(lua_State *L, int arg, const char *key, bool def)
{
  int t = lua_getfield(L, arg, key);
  bool v = def;
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL)
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be a boolean", key));
  lua_pop(L, 1);
  return v;
}

static const char *opt_string(lua_State *L, int arg, const char *key, size_t *len)
{
  int t = lua_getfield(L, arg, key);
  const char *v = NULL;
  if (t == LUA_TSTRING)
    v = lua_tolstring(L, -1, len); /* stays alive: the table holds it */
  else if (t != LUA_TNIL)
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be a string", key));
  lua_pop(L, 1);
  return v;
}

void mb_lcheck_grep_opts(lua_State *L, int arg, mb_grep_opts *o)
{
  memset(o, 0, sizeof *o);
  o->ignore_hidden = true;
  if (lua_isnoneornil(L, arg)) return;
  luaL_checktype(L, arg, LUA_TTABLE);
  arg = lua_absindex(L, arg);
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    lua_pop(L, 1);
    bool known = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = grep_keys; *k && !known; k++)
        known = strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!known)
      luaL_argerror(L, arg,
                    lua_pushfstring(L,
                                    "unknown option '%s' (known: path, glob, ignore_hidden, "
                                    "ignore_case, fixed, max)",
                                    luaL_tolstring(L, -1, NULL)));
  }
  o->path = opt_string(L, arg, "path", &o->path_len);
  o->glob = opt_string(L, arg, "glob", &o->glob_len);
  o->ignore_hidden = opt_bool(L, arg, "ignore_hidden", true);
  o->ignore_case = opt_bool(L, arg, "ignore_case", false);
  o->fixed = opt_bool(L, arg, "fixed", false);
  int t = lua_getfield(L, arg, "max");
  if (t != LUA_TNIL) {
    int isint;
    o->max = lua_tointegerx(L, -1, &isint);
    if (!isint || o->max < 0) luaL_argerror(L, arg, "option 'max' must be a non-negative integer");
  }
  lua_pop(L, 1);
}

void mb_lpush_fileinfo(lua_State *L, const char *name, size_t name_len, const char *path,
                       size_t path_len, bool is_dir, int64_t size, int64_t mtime_sec,
                       long mtime_nsec)
{
  lua_createtable(L, 0, 5);
  lua_pushlstring(L, name, name_len);
  lua_setfield(L, -2, "name");
  lua_pushlstring(L, path, path_len);
  lua_setfield(L, -2, "path");
  lua_pushboolean(L, is_dir);
  lua_setfield(L, -2, "is_dir");
  if (size >= 0) {
    lua_pushinteger(L, (lua_Integer)size);
    lua_setfield(L, -2, "size");
  }
  if (mtime_sec >= 0) {
    char iso[MB_ISO8601_SIZE];
    size_t n = mb_iso8601(mtime_sec, mtime_nsec, iso);
    lua_pushlstring(L, iso, n);
    lua_setfield(L, -2, "modified_at");
  }
}

void mb_lpush_match(lua_State *L, const char *path, size_t path_len, size_t line_no,
                    const char *line, size_t len)
{
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, path, path_len);
  lua_setfield(L, -2, "path");
  lua_pushinteger(L, (lua_Integer)line_no);
  lua_setfield(L, -2, "line_number");
  if (len && line[len - 1] == '\r') len--;
  if (len <= MB_LINE_MAX_CHARS) {
    lua_pushlstring(L, line, len);
  } else {
    mb_buf *b = mb_lbuf(L);
    if (!mb_buf_add_line(b, line, len)) luaL_error(L, "not enough memory");
    mb_lpushbuf(L, b);
    lua_remove(L, -2);
  }
  lua_setfield(L, -2, "line");
}
