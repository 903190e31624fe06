/* localfs.c: moonbox.localfs — local_backend{root = DIR, allowed = {DIR...}}, a confined directory.
 *
 * Binds the LocalBackend userdata ("moonbox.localfs.LocalBackend") and its single-file methods:
 * exists, ls, read, read_bytes, write, edit (glob and grep are in localfs_search.c). The userdata
 * owns one O_PATH fd per area (the root, then each allowed directory) and their host path
 * strings; close/__close/__gc release them once. Text semantics (path normalization, read
 * format, edit matching) come from backend/backend_core.h, shared with every backend.
 *
 * Paths: "/" is the root, relative paths are relative to it, and an absolute host path inside the
 * root or an allowed directory is taken as such. Results under the root carry virtual paths
 * ("/src/a.c"); results under an allowed directory carry its host path (the only name it has).
 *
 * Options: root, allowed, durable (fsync every write), resolver ("auto" | "walk"; the
 * environment variable MOONBOX_LOCALFS_RESOLVER=walk changes the default, to run a whole suite
 * on the walk). Anything else raises; a permissions layer wraps this object from Lua.
 *
 * Fail codes: ENOENT, EACCES (outside the root, or the OS refused), EISDIR, ENOTDIR, INVALID
 * (malformed path, offset past the end, not a regular file, over 256 MiB), BINARY, NOT_FOUND,
 * NOT_UNIQUE, ENOSPC/EROFS/EIO (write failures). Wrong argument types and unknown options raise. */
#define _GNU_SOURCE /* O_PATH, qsort_r */
#include "localfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LFS_BOX "moonbox.localfs.box"

/* ---- scratch box ---------------------------------------------------------------------------- */

void lfs_box_release(lfs_box *box)
{
  for (int i = 0; i < LFS_BOX_BUFS; i++) mb_buf_free(&box->b[i]);
  for (int i = 0; i < 2; i++) {
    free(box->ptr[i]);
    box->ptr[i] = NULL;
  }
  mb_buf_free(&box->t.rel);
  mb_buf_free(&box->t.vpath);
  lfs_area_close(&box->area);
  if (box->cleanup) box->cleanup(box);
  box->cleanup = NULL;
}

static int box_gc(lua_State *L)
{
  lfs_box_release(luaL_checkudata(L, 1, LFS_BOX));
  return 0;
}

lfs_box *lfs_box_new(lua_State *L)
{
  lfs_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  memset(box, 0, sizeof *box);
  box->area.dirfd = -1;
  luaL_setmetatable(L, LFS_BOX);
  return box;
}

/* ---- the object ----------------------------------------------------------------------------- */

lfs_backend *lfs_check(lua_State *L)
{
  lfs_backend *b = luaL_checkudata(L, 1, LFS_TYPE);
  if (b->closed) luaL_error(L, "attempt to use a closed LocalBackend");
  return b;
}

/* Backends holding a spare, so that exit() without lua_close (os.exit) still removes them. */
static lfs_backend *spare_list;

static void spares_at_exit(void)
{
  for (lfs_backend *b = spare_list; b; b = b->spare_next) lfs_spare_drop(&b->spare);
}

static void spare_unlist(lfs_backend *b)
{
  if (!b->spare_prev) return;
  *b->spare_prev = b->spare_next;
  if (b->spare_next) b->spare_next->spare_prev = b->spare_prev;
  b->spare_prev = NULL;
  b->spare_next = NULL;
}

void lfs_settle(lfs_backend *b)
{
  if (b->spare.dirfd >= 0) {
    mb_timer_stop(b->loop, &b->idle);
    lfs_spare_drop(&b->spare);
  }
  spare_unlist(b);
}

static void spare_idle(mb_loop *loop, mb_timer *t)
{
  (void)loop;
  lfs_backend *b = t->data;
  lfs_spare_drop(&b->spare);
  spare_unlist(b);
}

/* After a write: a spare left behind is removed once the burst is over (LFS_SPARE_TTL without a
 * write), or at exit. */
static void spare_arm(lfs_backend *b)
{
  static bool registered;
  if (b->spare.dirfd < 0) {
    spare_unlist(b);
    return;
  }
  if ((!registered && atexit(spares_at_exit) != 0) ||
      mb_timer_start(b->loop, &b->idle, LFS_SPARE_TTL, spare_idle, b) != 0) {
    lfs_spare_drop(&b->spare); /* no way to clean up later: no spare either */
    return;
  }
  registered = true;
  if (!b->spare_prev) {
    b->spare_next = spare_list;
    if (spare_list) spare_list->spare_prev = &b->spare_next;
    b->spare_prev = &spare_list;
    spare_list = b;
  }
}

/* backend:flush(): removes the spare inode of an edit burst now (see localfs_core.h). Listings,
 * sandbox commands, close and an idle timer do it too; this is for callers that look at the
 * directory by other means. */
static int backend_flush(lua_State *L)
{
  lfs_settle(lfs_check(L));
  return 0;
}

static int backend_close(lua_State *L)
{
  lfs_backend *b = luaL_checkudata(L, 1, LFS_TYPE);
  if (b->loop) lfs_settle(b);
  for (int i = 0; i < b->nareas; i++) lfs_area_close(&b->areas[i]);
  b->nareas = 0;
  b->closed = true;
  return 0;
}

static int backend_tostring(lua_State *L)
{
  lfs_backend *b = luaL_checkudata(L, 1, LFS_TYPE);
  if (b->closed || b->nareas == 0)
    lua_pushstring(L, "LocalBackend (closed)");
  else
    lua_pushfstring(L, "LocalBackend (%s)", b->areas[0].host);
  return 1;
}

/* b:root() --> the root's host path. */
static int backend_root(lua_State *L)
{
  lua_pushstring(L, lfs_check(L)->areas[0].host);
  return 1;
}

/* b:resolver() --> "openat2" or "walk": how paths are being resolved. */
static int backend_resolver(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  int walk = b->areas[0].resolver == LFS_RESOLVE_WALK || lfs_openat2_missing();
  lua_pushstring(L, walk ? "walk" : "openat2");
  return 1;
}

/* ---- paths and failures --------------------------------------------------------------------- */

static const char *why(int err, const char **code)
{
  *code = mb_errno_code(err);
  switch (err) {
    case ENOENT:
      return "no such file or directory (ls or glob show what exists)";
    case EXDEV:
      *code = "EACCES";
      return "resolves outside the root (a symlink or '..' leads out); only paths inside it "
             "are allowed";
    case ELOOP:
      return "too many levels of symbolic links (a link loop?)";
    case EACCES:
    case EPERM:
      return "permission denied by the operating system (file mode or owner)";
    case EISDIR:
      return "is a directory (ls lists it; give a file path)";
    case ENOTDIR:
      return "a parent of it is a file, not a directory";
    case ENAMETOOLONG:
      return "name too long (at most 255 bytes a name, 4095 a path)";
    case EOVERFLOW:
      *code = "INVALID";
      return "too large to load (over 256 MiB); grep skips such files too";
    case EINVAL:
      *code = "INVALID";
      return "not a regular file (a device, FIFO or socket); only regular files are read";
    default:
      return strerror(err);
  }
}

int lfs_fail(lua_State *L, const char *op, const lfs_target *t, int neg_errno)
{
  const char *code;
  const char *text = why(-neg_errno, &code);
  mb_buf m = MB_BUF_INIT;
  bool ok = mb_buf_addstr(&m, op) && mb_buf_addstr(&m, " ") &&
            mb_buf_addquoted(&m, t->vpath.data ? t->vpath.data : "", t->vpath.len, 200) &&
            mb_buf_addstr(&m, ": ") && mb_buf_addstr(&m, text);
  lua_pushnil(L);
  if (ok)
    lua_pushlstring(L, m.data, m.len);
  else
    lua_pushstring(L, text);
  mb_buf_free(&m);
  lua_pushstring(L, code);
  return 3;
}

int lfs_fail_core(lua_State *L, mb_code code, const mb_buf *err)
{
  lua_pushnil(L);
  if (err->len)
    lua_pushlstring(L, err->data, err->len);
  else
    lua_pushstring(L, code);
  lua_pushstring(L, code);
  return 3;
}

static bool has_dotdot(const char *p, size_t n)
{
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && p[j] != '/') j++;
    if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') return true;
    i = j + 1;
  }
  return false;
}

/* Which area an absolute, normalized path names, and the part below its top. */
static int which_area(lfs_backend *b, const mb_buf *norm, const char **rel, size_t *rlen)
{
  for (int i = 0; i < b->nareas; i++) {
    const char *tops[2] = {b->areas[i].host, b->areas[i].real};
    for (int k = 0; k < 2; k++) {
      if (i == 0 && strcmp(tops[k], "/") == 0) continue; /* a "/" root: paths are virtual */
      *rel = mb_path_under(tops[k], strlen(tops[k]), norm->data, norm->len, rlen);
      if (*rel) return i;
    }
  }
  *rel = norm->data + 1;
  *rlen = norm->len - 1;
  return 0;
}

int lfs_resolve(lua_State *L, lfs_backend *b, const char *op, const char *path, size_t len,
                lfs_target *t)
{
  mb_buf norm = MB_BUF_INIT, err = MB_BUF_INIT;
  mb_buf_reset(&t->rel);
  mb_buf_reset(&t->vpath);
  if (!memchr(path, '\0', len) && has_dotdot(path, len)) {
    mb_buf_add(&t->vpath, path, len);
    return lfs_fail(L, op, t, -EXDEV);
  }
  mb_code code = mb_path_normalize(path, len, &norm, &err);
  if (code) {
    int n = lfs_fail_core(L, code, &err);
    mb_buf_free(&norm);
    mb_buf_free(&err);
    return n;
  }
  mb_buf_free(&err);
  const char *rel = norm.data + 1;
  size_t rlen = norm.len - 1;
  int i = path[0] == '/' ? which_area(b, &norm, &rel, &rlen) : 0;
  t->area = &b->areas[i];
  bool ok = mb_buf_add(&t->rel, rel, rlen);
  if (i == 0)
    ok = ok && mb_buf_addstr(&t->vpath, "/") && mb_buf_add(&t->vpath, rel, rlen);
  else
    ok = ok && mb_buf_addstr(&t->vpath, t->area->host) &&
         (rlen == 0 || (mb_buf_addstr(&t->vpath, "/") && mb_buf_add(&t->vpath, rel, rlen)));
  mb_buf_free(&norm);
  if (!ok) return mb_fail(L, "ENOMEM", "%s: out of memory", op);
  return 0;
}

void lfs_push_mtime(lua_State *L, const struct stat *st)
{
  char iso[MB_ISO8601_SIZE];
  size_t n = mb_iso8601((int64_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, iso);
  lua_pushlstring(L, iso, n);
}

/* Resolves argument 2 into a fresh box (left on the stack); returns a fail count or 0. */
static int target_arg(lua_State *L, lfs_backend *b, const char *op, lfs_box **box)
{
  size_t len;
  const char *path = luaL_checklstring(L, 2, &len);
  *box = lfs_box_new(L);
  return lfs_resolve(L, b, op, path, len, &(*box)->t);
}

/* ---- single-file methods -------------------------------------------------------------------- */

static int backend_exists(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  lfs_box *box;
  bool yes = false;
  if (target_arg(L, b, "exists", &box) == 0) {
    int fd = lfs_open(box->t.area, box->t.rel.data, O_PATH);
    struct stat st;
    yes = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (fd >= 0) close(fd);
  }
  lfs_box_release(box);
  lua_pushboolean(L, yes);
  return 1;
}

/* Reads the target into box->b[0]; returns a fail count or 0. */
static int read_target(lua_State *L, const char *op, lfs_box *box)
{
  char *data;
  size_t len;
  int r = lfs_read_all(box->t.area, box->t.rel.data, &data, &len);
  if (r < 0) return lfs_fail(L, op, &box->t, r);
  box->b[0].data = data; /* owned by the box from here on */
  box->b[0].len = len;
  box->b[0].cap = len + 1;
  return 0;
}

static int backend_read(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  lua_Integer offset = luaL_optinteger(L, 3, 0);
  lua_Integer limit = luaL_optinteger(L, 4, MB_READ_LIMIT);
  lfs_box *box;
  int n = target_arg(L, b, "read", &box);
  if (n) return n;
  if (offset < 0)
    return mb_fail(L, "INVALID", "read: offset must be 0 or more, got %d", (int)offset);
  if (limit <= 0) return mb_fail(L, "INVALID", "read: limit must be 1 or more, got %d", (int)limit);
  if ((n = read_target(L, "read", box))) return n;
  mb_code code = mb_read_format(box->b[0].data, box->b[0].len, (size_t)offset, (size_t)limit,
                                box->t.vpath.data, &box->b[1], &box->b[2]);
  if (code) return lfs_fail_core(L, code, &box->b[2]);
  lua_pushlstring(L, box->b[1].data ? box->b[1].data : "", box->b[1].len);
  lfs_box_release(box);
  return 1;
}

static int backend_read_bytes(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  lfs_box *box;
  int n = target_arg(L, b, "read_bytes", &box);
  if (n || (n = read_target(L, "read_bytes", box))) return n;
  lua_pushlstring(L, box->b[0].data ? box->b[0].data : "", box->b[0].len);
  lfs_box_release(box);
  return 1;
}

static int push_path_result(lua_State *L, lfs_box *box)
{
  lua_createtable(L, 0, 2);
  lua_pushlstring(L, box->t.vpath.data, box->t.vpath.len);
  lua_setfield(L, -2, "path");
  return 1;
}

static int backend_write(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  size_t len;
  const char *content = luaL_checklstring(L, 3, &len);
  lfs_box *box;
  int n = target_arg(L, b, "write", &box);
  if (n) return n;
  struct iovec iov = {(void *)content, len};
  int r = lfs_write_atomic(box->t.area, box->t.rel.data, &iov, 1, b->durable, &b->spare);
  spare_arm(b);
  if (r < 0) return lfs_fail(L, "write", &box->t, r);
  push_path_result(L, box);
  lfs_box_release(box);
  return 1;
}

static int backend_edit(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  size_t olen, nlen;
  const char *old_s = luaL_checklstring(L, 3, &olen);
  const char *new_s = luaL_checklstring(L, 4, &nlen);
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TBOOLEAN);
  bool all = lua_toboolean(L, 5);
  lfs_box *box;
  int n = target_arg(L, b, "edit", &box);
  if (n || (n = read_target(L, "edit", box))) return n;
  const char *data = box->b[0].data ? box->b[0].data : "";
  size_t len = box->b[0].len, count = 1, at = 0;
  /* replace_all builds the new content in b[1]; one replacement is written as three pieces,
   * with no copy of the rest */
  mb_code code =
      all ? mb_edit_apply(data, len, old_s, olen, new_s, nlen, true, box->t.vpath.data, &box->b[1],
                          &count, &box->b[2])
          : mb_edit_locate(data, len, old_s, olen, new_s, nlen, box->t.vpath.data, &at, &box->b[2]);
  if (code) return lfs_fail_core(L, code, &box->b[2]);
  struct iovec iov[3] = {
      {(void *)data, at}, {(void *)new_s, nlen}, {(void *)(data + at + olen), len - at - olen}};
  if (all) iov[0] = (struct iovec){box->b[1].data, box->b[1].len};
  int r = lfs_write_atomic(box->t.area, box->t.rel.data, iov, all ? 1 : 3, b->durable, &b->spare);
  spare_arm(b);
  if (r < 0) return lfs_fail(L, "edit", &box->t, r);
  push_path_result(L, box);
  lua_pushinteger(L, (lua_Integer)count);
  lua_setfield(L, -2, "occurrences");
  lfs_box_release(box);
  return 1;
}

/* ---- ls ----------------------------------------------------------------------------------- */

typedef struct ls_row {
  size_t name_off, name_len;
  bool is_dir;
  struct stat st;
} ls_row;

static int ls_cmp(const void *pa, const void *pb, void *names)
{
  const ls_row *a = pa, *b = pb;
  if (a->is_dir != b->is_dir) return a->is_dir ? -1 : 1;
  const char *base = names;
  size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
  int c = memcmp(base + a->name_off, base + b->name_off, n);
  if (c) return c;
  return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

/* stat of a directory entry; a symlink is followed only while it stays inside the area. */
static bool ls_stat(lfs_box *box, int dfd, const char *name, struct stat *st)
{
  if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) return false;
  if (!S_ISLNK(st->st_mode)) return S_ISREG(st->st_mode) || S_ISDIR(st->st_mode);
  mb_buf *p = &box->b[3];
  mb_buf_reset(p);
  if (!mb_buf_add(p, box->t.rel.data, box->t.rel.len) ||
      (box->t.rel.len && !mb_buf_addstr(p, "/")) || !mb_buf_addstr(p, name))
    return false;
  int fd = lfs_open(box->t.area, p->data, O_PATH);
  bool ok = fd >= 0 && fstat(fd, st) == 0 && (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode));
  if (fd >= 0) close(fd);
  return ok;
}

/* Fills box->b[0] with ls_rows and box->b[1] with their names; returns 0 or -errno. */
static int ls_collect(lfs_box *box, int fd)
{
  int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return -errno;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
    ls_row row = {.name_off = box->b[1].len, .name_len = strlen(nm)};
    if (!ls_stat(box, dirfd(d), nm, &row.st)) continue; /* vanished, escaping or special */
    row.is_dir = S_ISDIR(row.st.st_mode);
    if (!mb_buf_add(&box->b[1], nm, row.name_len + 1) || !mb_buf_add(&box->b[0], &row, sizeof row))
      break;
  }
  closedir(d);
  return 0;
}

static void push_info(lua_State *L, const char *name, size_t nlen, const char *path, size_t plen,
                      const struct stat *st)
{
  lua_createtable(L, 0, 5);
  lua_pushlstring(L, name, nlen);
  lua_setfield(L, -2, "name");
  lua_pushlstring(L, path, plen);
  lua_setfield(L, -2, "path");
  bool dir = S_ISDIR(st->st_mode);
  lua_pushboolean(L, dir);
  lua_setfield(L, -2, "is_dir");
  if (!dir) {
    lua_pushinteger(L, (lua_Integer)st->st_size);
    lua_setfield(L, -2, "size");
  }
  lfs_push_mtime(L, st);
  lua_setfield(L, -2, "modified_at");
}

static int backend_ls(lua_State *L)
{
  lfs_backend *b = lfs_check(L);
  lfs_settle(b);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushliteral(L, "/");
  }
  lfs_box *box;
  int n = target_arg(L, b, "ls", &box);
  if (n) return n;
  int fd = lfs_open(box->t.area, box->t.rel.data, O_PATH);
  if (fd < 0) return lfs_fail(L, "ls", &box->t, fd);
  struct stat st;
  int r = fstat(fd, &st) < 0 ? -errno : 0;
  if (r == 0 && S_ISDIR(st.st_mode)) r = ls_collect(box, fd);
  close(fd);
  if (r < 0) return lfs_fail(L, "ls", &box->t, r);
  if (!S_ISDIR(st.st_mode)) { /* a file lists itself */
    size_t nlen;
    const char *name = mb_path_basename(box->t.vpath.data, box->t.vpath.len, &nlen);
    lua_createtable(L, 1, 0);
    push_info(L, name, nlen, box->t.vpath.data, box->t.vpath.len, &st);
    lua_rawseti(L, -2, 1);
    lfs_box_release(box);
    return 1;
  }
  ls_row *rows = (ls_row *)box->b[0].data;
  size_t count = box->b[0].len / sizeof(ls_row);
  if (count > 1) qsort_r(rows, count, sizeof *rows, ls_cmp, box->b[1].data);
  lua_createtable(L, (int)count, 0);
  mb_buf *path = &box->b[4];
  for (size_t i = 0; i < count; i++) {
    const char *name = box->b[1].data + rows[i].name_off;
    mb_buf_reset(path);
    if (!mb_buf_add(path, box->t.vpath.data, box->t.vpath.len) ||
        (box->t.vpath.len > 1 && !mb_buf_addstr(path, "/")) ||
        !mb_buf_add(path, name, rows[i].name_len))
      return mb_fail(L, "ENOMEM", "ls: out of memory");
    push_info(L, name, rows[i].name_len, path->data, path->len, &rows[i].st);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lfs_box_release(box);
  return 1;
}

/* ---- constructor ------------------------------------------------------------------------------
 */

static int open_area(lua_State *L, lfs_backend *b, const char *dir, int resolver)
{
  int r = lfs_area_open(&b->areas[b->nareas], dir, resolver);
  if (r < 0) {
    lua_pushfstring(L, "local_backend: cannot open directory '%s'", dir);
    int n = mb_fail_errno(L, -r, lua_tostring(L, -1));
    lua_remove(L, -4);
    return n;
  }
  b->nareas++;
  return 0;
}

/* local_backend{root = DIR, allowed = {DIR...}, resolver = "auto"|"walk", durable = bool} */
static int localfs_new(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const known[] = {"root", "allowed", "resolver", "durable", NULL};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "local_backend: option names are strings");
    luaL_checkoption(L, -1, NULL, known);
  }
  int t = lua_getfield(L, 1, "root");
  if (t != LUA_TNIL && t != LUA_TSTRING) luaL_error(L, "local_backend: root must be a string");
  const char *root = lua_tostring(L, -1);
  t = lua_getfield(L, 1, "allowed");
  int nallowed = 0;
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE) luaL_error(L, "local_backend: allowed must be a list of directories");
    nallowed = (int)luaL_len(L, 3);
    for (int i = 1; i <= nallowed; i++) {
      if (lua_geti(L, 3, i) != LUA_TSTRING)
        luaL_error(L, "local_backend: allowed[%d] must be a string (a directory)", i);
      lua_pop(L, 1);
    }
  }
  lua_getfield(L, 1, "resolver");
  static const char *const resolvers[] = {"auto", "walk", NULL};
  const char *env = getenv("MOONBOX_LOCALFS_RESOLVER");
  int resolver =
      luaL_checkoption(L, -1, env && strcmp(env, "walk") == 0 ? "walk" : "auto", resolvers);
  lua_getfield(L, 1, "durable");
  if (!lua_isnil(L, -1)) luaL_checktype(L, -1, LUA_TBOOLEAN);
  bool durable = lua_toboolean(L, -1);
  lua_pop(L, 2); /* leaves root at 2, allowed at 3 */

  size_t size = sizeof(lfs_backend) + (size_t)(nallowed + 1) * sizeof(lfs_area);
  mb_loop *loop = mb_loop_get(L); /* before our metatable: the loop must outlive our __gc */
  lfs_backend *b = lua_newuserdatauv(L, size, 0);
  memset(b, 0, size);
  b->durable = durable;
  b->loop = loop;
  b->spare = (lfs_spare)LFS_SPARE_NONE;
  luaL_setmetatable(L, LFS_TYPE);
  char cwd[4096];
  if (!root && nallowed == 0) root = getcwd(cwd, sizeof cwd) ? cwd : ".";
  if (!root) {
    lua_geti(L, 3, 1);
    root = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the allowed table */
  }
  int n = open_area(L, b, root, resolver);
  for (int i = 1; n == 0 && i <= nallowed; i++) {
    lua_geti(L, 3, i);
    n = open_area(L, b, lua_tostring(L, -1), resolver);
    if (n == 0) lua_pop(L, 1);
  }
  return n ? n : 1;
}

static const luaL_Reg backend_methods[] = {{"exists", backend_exists},
                                           {"ls", backend_ls},
                                           {"read", backend_read},
                                           {"read_bytes", backend_read_bytes},
                                           {"write", backend_write},
                                           {"edit", backend_edit},
                                           {"glob", lfs_glob},
                                           {"grep", lfs_grep},
                                           {"root", backend_root},
                                           {"resolver", backend_resolver},
                                           {"flush", backend_flush},
                                           {"close", backend_close},
                                           {NULL, NULL}};

static const luaL_Reg backend_meta[] = {{"__gc", backend_close},
                                        {"__close", backend_close},
                                        {"__tostring", backend_tostring},
                                        {NULL, NULL}};

static const luaL_Reg localfs_funcs[] = {{"local_backend", localfs_new}, {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_localfs(lua_State *L);
MB_EXPORT int luaopen_moonbox_localfs(lua_State *L)
{
  mb_newclass(L, LFS_TYPE, backend_methods, backend_meta);
  static const luaL_Reg box_meta[] = {{"__gc", box_gc}, {NULL, NULL}};
  mb_newclass(L, LFS_BOX, NULL, box_meta);
  luaL_newlib(L, localfs_funcs);
  return 1;
}
