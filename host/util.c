/* util.c: the fail triple, errno codes and class registration shared by all modules. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "moonbox.h"

int mb_fail(lua_State *L, const char *code, const char *fmt, ...)
{
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushstring(L, code);
  return 3;
}

const char *mb_errno_code(int err)
{
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EACCES";
    case ELOOP: return "EACCES";
    case EXDEV: return "EACCES";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EEXIST: return "EEXIST";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENAMETOOLONG: return "INVALID";
    case EINVAL: return "INVALID";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ETIMEDOUT: return "TIMEOUT";
    case ENOMEM: return "ENOMEM";
    default: return "EIO";
  }
}

int mb_fail_errno(lua_State *L, int err, const char *context)
{
  return mb_fail(L, mb_errno_code(err), "%s: %s", context, strerror(err));
}

void mb_newclass(lua_State *L, const char *tname, const luaL_Reg *methods, const luaL_Reg *meta)
{
  luaL_newmetatable(L, tname);
  if (meta) luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  if (methods) luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, tname);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}
