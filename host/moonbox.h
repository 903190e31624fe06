/* moonbox.h: what every native module shares.
 *
 * The fail triple (nil, "<context>: <detail>", CODE) for expected failures, errno-to-CODE
 * mapping, and the export macro for luaopen_moonbox_<name> (everything else is hidden). */
#ifndef MOONBOX_H
#define MOONBOX_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>

#define MB_EXPORT __attribute__((visibility("default")))

#ifndef MB_VERSION
#define MB_VERSION "0.1.0"
#endif

/* Pushes nil, the formatted message and code; returns 3 so callers can `return mb_fail(...)`. */
int mb_fail(lua_State *L, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The stable CODE for an errno value: ENOENT, EACCES, EISDIR, ENOTDIR, EEXIST, ... else "EIO". */
const char *mb_errno_code(int err);

/* nil, "<context>: <strerror(err)>", mb_errno_code(err). */
int mb_fail_errno(lua_State *L, int err, const char *context);

/* Registers a userdata type: metatable `tname` with __index = methods (a separate table, so
 * metamethods never become methods) and the given metamethods. Leaves nothing on the stack. */
void mb_newclass(lua_State *L, const char *tname, const luaL_Reg *methods, const luaL_Reg *meta);

/* Adds `dir` to package.path (scripts) so `require "moonbox.x"` finds scripts/moonbox/x.lua,
 * and records the data directories in package.loaded["moonbox.paths"]. Called by the host and by
 * luaopen_moonbox in the aggregate module. `self` is a path of the running binary or .so. */
void mb_setup_paths(lua_State *L, const char *self);

/* Puts every native module into package.preload as "moonbox.<name>". */
void mb_preload_natives(lua_State *L);

#endif
