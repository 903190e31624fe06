/* localfs_search.c: LocalBackend:glob(pattern [, path]) and LocalBackend:grep(pattern [, opts]).
 *
 * Both walk the tree with lfs_walk (confined, sorted, symlinked directories not entered) and
 * gather results in C buffers owned by a scratch box on the Lua stack; Lua tables are built
 * only at the end, so a Lua error never leaks a directory fd or a buffer. Inside a task the walk
 * runs on the loop's worker pool (mb_await_work) so other tasks keep running; it reads only the
 * box: its compiled patterns and its own copy of the area (a dup'd fd), so neither a cancelled
 * task nor another task closing the backend can pull anything from under the worker. Matching (glob
 * patterns, the grep regex, skip-dir and hidden rules, binary detection) is the shared core's.
 *
 * glob: files only, newest first by mtime, ties by path; a missing or non-directory base gives {}.
 * grep: results sorted by path then line (the walk is already in path order, so `max` stops it
 * early); a named file is searched even when hidden; binary files are skipped.
 * Fail codes: INVALID (bad pattern, bad option value), ENOENT (grep path missing), EACCES. */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "localfs.h"
#include "localfs_walk.h"
#include "scheduler.h"

/* Results live in box->b[0] (rows) and box->b[1] (strings); b[2] is the error text, b[3] the
 * file buffer grep reuses, b[4] the path prefix of every result, b[5] the current file's path. */
typedef struct search {
  lfs_box *box;
  const lfs_area *area;
  mb_glob *glob;
  mb_regex *re;
  bool ignore_hidden;
  size_t max, count;
  size_t path_off, path_len; /* the current file's result path inside b[1] */
  mb_code fail;              /* a core failure that ends the search */
  bool nomem;
  int r; /* the walk's -errno */
} search;

/* A search's state, in the box (freed with it), reading the box's own copy of the area: the
 * walk runs under mb_await_work, which keeps the box (at stack index `at`) alive until the
 * worker is done even if the task is cancelled meanwhile, and the backend may be closed by
 * another task without pulling the fd from under the worker. */
static search *search_new(lua_State *L, lfs_box *box, const char *op, int *fail)
{
  search *s = box->ptr[0] = calloc(1, sizeof *s);
  if (!s) {
    *fail = mb_fail(L, "ENOMEM", "%s: out of memory", op);
    return NULL;
  }
  int r = lfs_area_dup(&box->area, box->t.area);
  if (r < 0) {
    *fail = lfs_fail(L, op, &box->t, r);
    return NULL;
  }
  s->box = box;
  s->area = &box->area;
  s->max = (size_t)-1;
  return s;
}

static void free_patterns(lfs_box *box)
{
  mb_glob_free(box->cleanup_ud[0]);
  mb_regex_free(box->cleanup_ud[1]);
  box->cleanup_ud[0] = box->cleanup_ud[1] = NULL;
}

/* Appends prefix "/" rel to b[1] and remembers where it is. */
static bool add_path(search *s, const char *rel, size_t len)
{
  mb_buf *names = &s->box->b[1], *prefix = &s->box->b[4];
  s->path_off = names->len;
  bool ok = mb_buf_add(names, prefix->data, prefix->len) &&
            (len == 0 ||
             ((prefix->len == 1 || mb_buf_addstr(names, "/")) && mb_buf_add(names, rel, len)));
  s->path_len = names->len - s->path_off;
  if (!ok) s->nomem = true;
  return ok;
}

/* ---- glob ----------------------------------------------------------------------------------- */

typedef struct glob_row {
  size_t path_off, path_len;
  struct stat st;
} glob_row;

static bool glob_enter(void *ud, const lfs_walk_entry *e)
{
  search *s = ud;
  return mb_glob_may_match_below(s->glob, e->rel, e->rel_len);
}

static bool glob_file(void *ud, const lfs_walk_entry *e)
{
  search *s = ud;
  if (!mb_glob_match(s->glob, e->rel, e->rel_len)) return true;
  glob_row row;
  if (lfs_walk_stat(s->area, e, &row.st) < 0) return true; /* vanished: leave it out */
  if (!add_path(s, e->rel, e->rel_len)) return false;
  row.path_off = s->path_off;
  row.path_len = s->path_len;
  if (!mb_buf_add(&s->box->b[0], &row, sizeof row)) s->nomem = true;
  return !s->nomem;
}

static int glob_cmp(const void *pa, const void *pb, void *names)
{
  const glob_row *a = pa, *b = pb;
  const struct timespec *ta = &a->st.st_mtim, *tb = &b->st.st_mtim;
  if (ta->tv_sec != tb->tv_sec) return ta->tv_sec > tb->tv_sec ? -1 : 1;
  if (ta->tv_nsec != tb->tv_nsec) return ta->tv_nsec > tb->tv_nsec ? -1 : 1;
  const char *base = names;
  size_t n = a->path_len < b->path_len ? a->path_len : b->path_len;
  int c = memcmp(base + a->path_off, base + b->path_off, n);
  if (c) return c;
  return a->path_len < b->path_len ? -1 : a->path_len > b->path_len;
}

static void glob_work(void *arg)
{
  search *s = arg;
  lfs_box *box = s->box;
  lfs_walk_ops ops = {glob_enter, glob_file};
  s->r = lfs_walk(s->area, box->t.rel.data, &ops, s);
  if (s->r == -ENOENT || s->r == -ENOTDIR) s->r = 0; /* a missing base: no matches */
  size_t count = box->b[0].len / sizeof(glob_row);
  if (s->r == 0 && !s->nomem && count > 1)
    qsort_r(box->b[0].data, count, sizeof(glob_row), glob_cmp, box->b[1].data);
}

static int glob_finish(lua_State *L, int status, lua_KContext at)
{
  (void)status;
  lfs_box *box = lua_touserdata(L, (int)at);
  search *s = box->ptr[0];
  if (s->r < 0) return lfs_fail(L, "glob", &box->t, s->r);
  if (s->nomem) return mb_fail(L, "ENOMEM", "glob: out of memory");
  glob_row *rows = (glob_row *)box->b[0].data;
  size_t count = box->b[0].len / sizeof(glob_row);
  lua_createtable(L, (int)count, 0);
  for (size_t i = 0; i < count; i++) {
    const char *p = box->b[1].data + rows[i].path_off;
    size_t nlen;
    const char *name = mb_path_basename(p, rows[i].path_len, &nlen);
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, name, nlen);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, p, rows[i].path_len);
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "is_dir");
    lua_pushinteger(L, (lua_Integer)rows[i].st.st_size);
    lua_setfield(L, -2, "size");
    lfs_push_mtime(L, &rows[i].st);
    lua_setfield(L, -2, "modified_at");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lfs_box_release(box);
  return 1;
}

int lfs_glob(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  lfs_settle(b);
  size_t plen, len;
  const char *pat = luaL_checklstring(L, 2, &plen);
  const char *path = luaL_optlstring(L, 3, "/", &len);
  lua_settop(L, 3);
  lfs_box *box = lfs_box_new(L); /* index 4 */
  int n = lfs_resolve(L, b, "glob", path, len, &box->t);
  if (n) return n;
  search *s = search_new(L, box, "glob", &n);
  if (!s) return n;
  mb_code code = mb_glob_compile(pat, plen, &s->glob, &box->b[2]);
  if (code) return lfs_fail_core(L, code, &box->b[2]);
  box->cleanup_ud[0] = s->glob;
  box->cleanup = free_patterns;
  mb_buf_add(&box->b[4], box->t.vpath.data, box->t.vpath.len);
  return mb_await_work(L, glob_work, s, 4, glob_finish, 4);
}

/* ---- grep ----------------------------------------------------------------------------------- */

typedef struct grep_row {
  size_t path_off, path_len;
  size_t line_no;
  size_t line_off, line_len;
} grep_row;

static bool grep_line(void *ud, size_t line_no, const char *line, size_t len)
{
  search *s = ud;
  mb_buf *names = &s->box->b[1];
  grep_row row = {s->path_off, s->path_len, line_no, names->len, 0};
  if (!mb_buf_add_line(names, line, len)) {
    s->nomem = true;
    return false;
  }
  row.line_len = names->len - row.line_off;
  if (!mb_buf_add(&s->box->b[0], &row, sizeof row)) {
    s->nomem = true;
    return false;
  }
  return ++s->count < s->max;
}

/* Reads an open file into the reusable buffer b[3]. */
static int slurp(search *s, int fd)
{
  mb_buf *buf = &s->box->b[3];
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  if ((uint64_t)st.st_size > LFS_MAX_FILE) return -EOVERFLOW;
  mb_buf_reset(buf);
  size_t want = (size_t)st.st_size + 1;
  for (;;) {
    if (!mb_buf_reserve(buf, want)) return -ENOMEM;
    ssize_t got = read(fd, buf->data + buf->len, want);
    if (got < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (got == 0) break;
    buf->len += (size_t)got;
    if (buf->len > LFS_MAX_FILE) return -EOVERFLOW;
    want = 64 * 1024; /* the file grew since fstat: keep reading */
  }
  buf->data[buf->len] = '\0';
  return 0;
}

/* Searches one open file (closes it); false stops the walk. */
static bool grep_fd(search *s, int fd, const char *rel, size_t rel_len)
{
  int r = slurp(s, fd);
  close(fd);
  if (r < 0) {
    if (r == -ENOMEM) s->nomem = true;
    return !s->nomem; /* unreadable: skipped */
  }
  if (!add_path(s, rel, rel_len)) return false;
  size_t before = s->box->b[1].len;
  mb_buf *name = &s->box->b[5]; /* b[1] may move while lines are added */
  mb_buf_reset(name);
  if (!mb_buf_add(name, s->box->b[1].data + s->path_off, s->path_len)) {
    s->nomem = true;
    return false;
  }
  mb_code code = mb_regex_grep(s->re, s->box->b[3].data, s->box->b[3].len, name->data, grep_line, s,
                               &s->box->b[2]);
  if (code && code != MB_BINARY) {
    s->fail = code;
    return false;
  }
  if (s->box->b[1].len == before) s->box->b[1].len = s->path_off; /* no hits: drop the path */
  return !s->nomem && s->count < s->max;
}

static bool grep_enter(void *ud, const lfs_walk_entry *e)
{
  search *s = ud;
  if (mb_is_skipped_dir(e->name, e->name_len)) return false;
  return !(s->ignore_hidden && mb_is_hidden_name(e->name, e->name_len));
}

static bool grep_file(void *ud, const lfs_walk_entry *e)
{
  search *s = ud;
  if (s->ignore_hidden && mb_is_hidden_name(e->name, e->name_len)) return true;
  if (s->glob && !mb_glob_filter(s->glob, e->rel, e->rel_len)) return true;
  int fd = lfs_walk_open(s->area, e);
  if (fd < 0) return true;
  return grep_fd(s, fd, e->rel, e->rel_len);
}

/* Reads the options table at index 3 into s and the regex flags; raises on misuse. */
static int grep_options(lua_State *L, search *s, int *flags, const char **glob, size_t *glen)
{
  static const char *const known[] = {"path", "glob", "ignore_hidden", "ignore_case", "fixed",
                                      "max",  NULL};
  s->ignore_hidden = true;
  s->max = (size_t)-1;
  if (lua_isnoneornil(L, 3)) return 0;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "grep: option names are strings");
    luaL_checkoption(L, -1, NULL, known);
  }
  static const struct {
    const char *name;
    int flag;
  } bools[] = {{"ignore_hidden", 0}, {"ignore_case", MB_RE_IGNORE_CASE}, {"fixed", MB_RE_FIXED}};
  for (int i = 0; i < 3; i++) {
    int t = lua_getfield(L, 3, bools[i].name);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
      luaL_error(L, "grep: option '%s' must be a boolean", bools[i].name);
    if (t != LUA_TNIL && bools[i].flag == 0) s->ignore_hidden = lua_toboolean(L, -1);
    if (lua_toboolean(L, -1)) *flags |= bools[i].flag;
    lua_pop(L, 1);
  }
  if (lua_getfield(L, 3, "glob") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "grep: option 'glob' must be a string");
    *glob = lua_tolstring(L, -1, glen); /* kept alive by the options table */
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 3, "max") != LUA_TNIL) {
    if (!lua_isinteger(L, -1)) luaL_error(L, "grep: option 'max' must be an integer");
    lua_Integer m = lua_tointeger(L, -1);
    if (m < 1) return mb_fail(L, "INVALID", "grep: max must be 1 or more, got %d", (int)m);
    s->max = (size_t)m;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 3, "path") != LUA_TNIL && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "grep: option 'path' must be a string");
  lua_pop(L, 1);
  return 0;
}

static void push_grep_rows(lua_State *L, lfs_box *box)
{
  grep_row *rows = (grep_row *)box->b[0].data;
  size_t count = box->b[0].len / sizeof(grep_row);
  lua_createtable(L, (int)count, 0);
  for (size_t i = 0; i < count; i++) {
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, box->b[1].data + rows[i].path_off, rows[i].path_len);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, (lua_Integer)rows[i].line_no);
    lua_setfield(L, -2, "line_number");
    lua_pushlstring(L, box->b[1].data + rows[i].line_off, rows[i].line_len);
    lua_setfield(L, -2, "line");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void grep_work(void *arg)
{
  search *s = arg;
  lfs_box *box = s->box;
  int fd = lfs_open(s->area, box->t.rel.data, O_RDONLY | O_NONBLOCK);
  if (fd < 0) {
    s->r = fd;
    return;
  }
  struct stat st;
  s->r = fstat(fd, &st) < 0 ? -errno : 0;
  if (s->r == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    lfs_walk_ops ops = {grep_enter, grep_file};
    s->r = lfs_walk(s->area, box->t.rel.data, &ops, s);
  } else if (s->r == 0) {
    grep_fd(s, fd, "", 0); /* a named file: searched even when hidden, whatever the glob */
  } else {
    close(fd);
  }
}

static int grep_finish(lua_State *L, int status, lua_KContext at)
{
  (void)status;
  lfs_box *box = lua_touserdata(L, (int)at);
  search *s = box->ptr[0];
  if (s->r < 0) return lfs_fail(L, "grep", &box->t, s->r);
  if (s->fail) return lfs_fail_core(L, s->fail, &box->b[2]);
  if (s->nomem) return mb_fail(L, "ENOMEM", "grep: out of memory");
  push_grep_rows(L, box);
  lfs_box_release(box);
  return 1;
}

int lfs_grep(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  lfs_settle(b);
  size_t plen, glen = 0, len = 1;
  const char *pat = luaL_checklstring(L, 2, &plen);
  const char *glob = NULL, *path = "/";
  int flags = 0;
  search opts = {0};
  int n = grep_options(L, &opts, &flags, &glob, &glen);
  if (n) return n;
  lua_settop(L, 3);
  if (lua_istable(L, 3) && lua_getfield(L, 3, "path") == LUA_TSTRING)
    path = lua_tolstring(L, -1, &len); /* index 4 keeps it alive */
  lua_settop(L, 4);
  lfs_box *box = lfs_box_new(L); /* index 5 */
  box->cleanup = free_patterns;
  if ((n = lfs_resolve(L, b, "grep", path, len, &box->t))) return n;
  search *s = search_new(L, box, "grep", &n);
  if (!s) return n;
  s->ignore_hidden = opts.ignore_hidden;
  s->max = opts.max;
  mb_code code = mb_regex_compile(pat, plen, flags, &s->re, &box->b[2]);
  if (code) return lfs_fail_core(L, code, &box->b[2]);
  box->cleanup_ud[1] = s->re;
  if (glob && (code = mb_glob_compile(glob, glen, &s->glob, &box->b[2])))
    return lfs_fail_core(L, code, &box->b[2]);
  box->cleanup_ud[0] = s->glob;
  mb_buf_add(&box->b[4], box->t.vpath.data, box->t.vpath.len);
  return mb_await_work(L, grep_work, s, 5, grep_finish, 5);
}
