/* backend_lua.h: Lua-side helpers shared by native backends (state, local, docker).
 *
 * Everything a backend binding repeats: scratch objects that Lua frees if a call raises,
 * the fail triple from an mb_code, argument checking for paths and grep options, and the
 * protocol's result rows. Implemented in backend_lua.c. */
#ifndef MB_BACKEND_LUA_H
#define MB_BACKEND_LUA_H

#include "backend/backend_core.h"
#include "moonbox.h"

/* Pushes a userdata that owns `ptr` and calls free_fn(ptr) when collected (or closed), and
 * returns the slot so the pointer can be filled in later: `mb_glob **g = (mb_glob **)mb_lbox(L,
 * (void (*)(void *))mb_glob_free); mb_glob_compile(..., g, ...)`. free_fn must accept NULL. Use it
 * for anything malloc'd that must survive a call that may raise. */
void **mb_lbox(lua_State *L, void (*free_fn)(void *));

/* An mb_buf owned by a new userdata on the stack (freed by __gc; never leaks on a raise). */
mb_buf *mb_lbuf(lua_State *L);

/* Pushes nil, message, code; the message is err's text, or the code when err is empty. Returns 3.
 */
int mb_lfail(lua_State *L, mb_code code, const mb_buf *err);

/* Pushes the buffer's bytes as a string ("" when empty). */
void mb_lpushbuf(lua_State *L, const mb_buf *b);

/* luaL_checklstring(arg), then mb_path_normalize into out. On failure returns the code with err
 * set; the caller returns mb_lfail(L, code, err). */
mb_code mb_lcheckpath(lua_State *L, int arg, mb_buf *out, mb_buf *err);

/* grep's options table (DESIGN.md): path, glob, ignore_hidden (default true), ignore_case, fixed,
 * max (0 = no cap). Raises on an unknown key or a wrong type ("bad argument #2 to 'grep' ...").
 * Strings point into the table, which stays on the stack at `arg`. nil or none = defaults. */
typedef struct {
  const char *path; /* NULL: the backend's root */
  size_t path_len;
  const char *glob; /* NULL: every file */
  size_t glob_len;
  bool ignore_hidden;
  bool ignore_case;
  bool fixed;
  lua_Integer max;
} mb_grep_opts;
void mb_lcheck_grep_opts(lua_State *L, int arg, mb_grep_opts *o);

/* Optional integer argument with a floor: raises on a non-integer, returns `def` when absent. */
lua_Integer mb_loptint(lua_State *L, int arg, lua_Integer def);

/* Pushes {name, path, is_dir, size, modified_at}: size < 0 leaves size nil (directories),
 * mtime_sec < 0 leaves modified_at nil. */
void mb_lpush_fileinfo(lua_State *L, const char *name, size_t name_len, const char *path,
                       size_t path_len, bool is_dir, int64_t size, int64_t mtime_sec,
                       long mtime_nsec);

/* Pushes {path, line_number, line}; the line is shown as read shows it (mb_buf_add_line). */
void mb_lpush_match(lua_State *L, const char *path, size_t path_len, size_t line_no,
                    const char *line, size_t len);

#endif
