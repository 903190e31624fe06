/* state.c: what makes a lua_State a moonbox state, for the host and for the aggregate module.
 *
 * Native modules are registered in package.preload as "moonbox.<name>" (the list is generated
 * by CMake from the folders under modules/). The Lua half (scripts/, presets/) is found from
 * MOONBOX_PATH, else beside the binary (<bin>/../share/moonbox), else the source tree the binary
 * was built from; its scripts folder goes in front of package.path. luaopen_moonbox is the entry
 * stock lua5.4 uses: it does the same set-up and then runs scripts/moonbox/init.lua. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moonbox.h"

#define MB_MODULE(name) int luaopen_moonbox_##name(lua_State *L);
#include "mb_modules.h"
#undef MB_MODULE

static const luaL_Reg natives[] = {
#define MB_MODULE(name) {"moonbox." #name, luaopen_moonbox_##name},
#include "mb_modules.h"
#undef MB_MODULE
    {NULL, NULL}};

void mb_preload_natives(lua_State *L)
{
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *m = natives; m->name; m++) {
    lua_pushcfunction(L, m->func);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}

static int has_init(const char *root)
{
  char probe[PATH_MAX];
  int n = snprintf(probe, sizeof probe, "%s/scripts/moonbox/init.lua", root);
  return n > 0 && (size_t)n < sizeof probe && access(probe, R_OK) == 0;
}

/* Writes the data root into out (PATH_MAX bytes); returns 0 when none was found. */
static int find_root(const char *self, char *out)
{
  const char *env = getenv("MOONBOX_PATH");
  if (env && *env) {
    snprintf(out, PATH_MAX, "%s", env);
    return 1;
  }
  if (self) {
    char real[PATH_MAX];
    if (realpath(self, real)) {
      char *slash = strrchr(real, '/');
      if (slash) *slash = '\0';
      snprintf(out, PATH_MAX, "%.*s/../share/moonbox", PATH_MAX - 32, real);
      if (has_init(out)) return 1;
    }
  }
  snprintf(out, PATH_MAX, "%s", MB_SOURCE_DIR);
  return has_init(out);
}

void mb_setup_paths(lua_State *L, const char *self)
{
  char root[PATH_MAX];
  int found = find_root(self, root);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, root);
  lua_setfield(L, -2, "root");
  lua_pushfstring(L, "%s/scripts", root);
  lua_setfield(L, -2, "scripts");
  lua_pushfstring(L, "%s/presets", root);
  lua_setfield(L, -2, "presets");
  lua_pushboolean(L, found);
  lua_setfield(L, -2, "found");
  lua_pushstring(L, MB_VERSION);
  lua_setfield(L, -2, "version");
  lua_setfield(L, -2, "moonbox.paths");
  lua_pop(L, 1);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/scripts/?.lua;%s/scripts/?/init.lua;%s", root, root,
                  lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* require "moonbox" from stock lua5.4: set up, then hand over to scripts/moonbox/init.lua. */
MB_EXPORT int luaopen_moonbox(lua_State *L);
MB_EXPORT int luaopen_moonbox(lua_State *L)
{
  Dl_info info;
  const char *self = dladdr((void *)luaopen_moonbox, &info) ? info.dli_fname : NULL;
  mb_preload_natives(L);
  mb_setup_paths(L, self);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "moonbox.paths");
  lua_getfield(L, -1, "scripts");
  const char *init = lua_pushfstring(L, "%s/moonbox/init.lua", lua_tostring(L, -1));
  if (luaL_loadfile(L, init) != LUA_OK) return lua_error(L);
  lua_pushstring(L, "moonbox");
  lua_pushstring(L, init);
  lua_call(L, 2, 1);
  return 1;
}
