/* state.c: moonbox.state — the in-memory backend, moonbox.state_backend{files = {...}}.
 *
 * Binds the backend protocol (DESIGN.md) over an mb_store (state_store.c) using the shared
 * semantics of moonbox.backend (backend_core.h). The userdata "moonbox.state.Backend" owns the
 * store and every file in it; close(), __close and __gc release it once. Directories are implied
 * by file paths. backend:files() exports the store as a JSON-serializable table that
 * state_backend{files = ...} loads back exactly:
 *   { ["/path"] = { content = <UTF-8 text | base64>, encoding = "base64" (only for non-UTF-8
 *     content), created_at = <ISO-8601>, modified_at = <ISO-8601> } }
 * and the constructor also takes plain strings ({["/path"] = "text"}) and the reference's
 * list-of-lines content.
 * Fail codes (nil, message, CODE): INVALID, ENOENT, EISDIR, ENOTDIR, BINARY, NOT_FOUND,
 * NOT_UNIQUE, ENOMEM. Misuse (argument types, unknown options, use after close) raises. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "state/state_internal.h"

state *state_check(lua_State *L)
{
  state *st = luaL_checkudata(L, 1, STATE_TYPE);
  if (st->closed) luaL_error(L, "attempt to use a closed Backend");
  return st;
}

void state_unhold(state *st)
{
  mb_store_release(&st->store);
  if (st->free_pending && st->store.readers == 0) {
    mb_store_free(&st->store);
    st->free_pending = false;
  }
}

/* A grep on a worker may still read the store: then the memory goes when it is done. */
static int state_release(lua_State *L)
{
  state *st = luaL_checkudata(L, 1, STATE_TYPE);
  if (!st->closed) {
    if (st->store.readers)
      st->free_pending = true;
    else
      mb_store_free(&st->store);
  }
  st->closed = true;
  return 0;
}

/* Normalizes argument `arg` into a new boxed buffer; on failure pushes the fail triple and
 * returns NULL (the caller returns 3). */
static mb_buf *check_path(lua_State *L, int arg)
{
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  mb_code code = mb_lcheckpath(L, arg, out, err);
  if (code) {
    mb_lfail(L, code, err);
    return NULL;
  }
  return out;
}

static void push_file(lua_State *L, const mb_entry *e)
{
  size_t nl;
  const char *name = mb_path_basename(e->path, e->plen, &nl);
  mb_lpush_fileinfo(L, name, nl, e->path, e->plen, false, (int64_t)e->len, e->mtime_us / 1000000,
                    (long)(e->mtime_us % 1000000) * 1000);
}

/* ---- exists, read_bytes, read -------------------------------------------------------- */

static int state_exists(lua_State *L)
{
  state *st = state_check(L);
  luaL_checkstring(L, 2);
  mb_buf *p = check_path(L, 2);
  lua_pushboolean(L, p && mb_store_get(&st->store, p->data, p->len) != NULL);
  return 1;
}

/* The file at a normalized path, or the fail triple pushed (ENOENT, EISDIR) and NULL. */
static mb_entry *lookup(lua_State *L, state *st, const char *op, const mb_buf *p)
{
  mb_entry *e = mb_store_get(&st->store, p->data, p->len);
  if (e) return e;
  if (mb_store_is_dir(&st->store, p->data, p->len))
    mb_fail(L, "EISDIR", "%s %s: is a directory; use ls to list it", op, p->data);
  else
    mb_fail(L, "ENOENT", "%s %s: no such file; use ls or glob to see what exists", op, p->data);
  return NULL;
}

static int state_read_bytes(lua_State *L)
{
  state *st = state_check(L);
  mb_buf *p = check_path(L, 2);
  if (!p) return 3;
  mb_entry *e = lookup(L, st, "read_bytes", p);
  if (!e) return 3;
  lua_pushlstring(L, e->data ? e->data : "", e->len);
  return 1;
}

static int state_read(lua_State *L)
{
  state *st = state_check(L);
  luaL_checkstring(L, 2);
  lua_Integer offset = mb_loptint(L, 3, 0), limit = mb_loptint(L, 4, MB_READ_LIMIT);
  mb_buf *p = check_path(L, 2);
  if (!p) return 3;
  if (offset < 0) return mb_fail(L, MB_INVALID, "read %s: offset must be 0 or more", p->data);
  if (limit < 1) return mb_fail(L, MB_INVALID, "read %s: limit must be 1 or more", p->data);
  mb_entry *e = lookup(L, st, "read", p);
  if (!e) return 3;
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  mb_code code = mb_read_format(e->data ? e->data : "", e->len, (size_t)offset, (size_t)limit,
                                p->data, out, err);
  if (code) return mb_lfail(L, code, err);
  mb_lpushbuf(L, out);
  return 1;
}

/* ---- write, edit --------------------------------------------------------------------- */

/* Refuses a path that is a directory or lies below a file; returns 3 after pushing the triple. */
static int check_writable(lua_State *L, state *st, const char *op, const mb_buf *p)
{
  if (mb_store_is_dir(&st->store, p->data, p->len))
    return mb_fail(L, "EISDIR", "%s %s: is a directory; write to a file path below it", op,
                   p->data);
  for (size_t i = p->len - 1; i > 0; i--) {
    if (p->data[i] != '/') continue;
    if (mb_store_get(&st->store, p->data, i)) {
      lua_pushlstring(L, p->data, i);
      return mb_fail(L, "ENOTDIR", "%s %s: %s is a file, not a directory", op, p->data,
                     lua_tostring(L, -1));
    }
  }
  return 0;
}

static char *copy_bytes(const char *s, size_t n)
{
  char *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, s, n);
  return d;
}

static int state_write(lua_State *L)
{
  state *st = state_check(L);
  luaL_checkstring(L, 2);
  size_t len;
  const char *content = luaL_checklstring(L, 3, &len);
  mb_buf *p = check_path(L, 2);
  if (!p) return 3;
  if (mb_store_get(&st->store, p->data, p->len) == NULL && check_writable(L, st, "write", p))
    return 3;
  char *data = copy_bytes(content, len);
  if (!data || !mb_store_put(&st->store, p->data, p->len, data, len, -1, -1)) {
    free(data);
    return mb_fail(L, MB_ENOMEM, "write %s: out of memory", p->data);
  }
  lua_createtable(L, 0, 1);
  mb_lpushbuf(L, p);
  lua_setfield(L, -2, "path");
  return 1;
}

static int state_edit(lua_State *L)
{
  state *st = state_check(L);
  luaL_checkstring(L, 2);
  size_t ol, nl;
  const char *old_s = luaL_checklstring(L, 3, &ol);
  const char *new_s = luaL_checklstring(L, 4, &nl);
  bool all = lua_toboolean(L, 5);
  mb_buf *p = check_path(L, 2);
  if (!p) return 3;
  mb_entry *e = lookup(L, st, "edit", p);
  if (!e) return 3;
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  size_t n;
  mb_code code = mb_edit_apply(e->data ? e->data : "", e->len, old_s, ol, new_s, nl, all, p->data,
                               out, &n, err);
  if (code) return mb_lfail(L, code, err);
  char *data = out->data ? out->data : copy_bytes("", 0);
  if (!data) return mb_fail(L, MB_ENOMEM, "edit %s: out of memory", p->data);
  if (!mb_store_put(&st->store, p->data, p->len, data, out->len, -1, -1)) {
    if (!out->data) free(data);
    return mb_fail(L, MB_ENOMEM, "edit %s: out of memory", p->data);
  }
  out->data = NULL; /* the store owns it now */
  out->len = out->cap = 0;
  lua_createtable(L, 0, 2);
  mb_lpushbuf(L, p);
  lua_setfield(L, -2, "path");
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, "occurrences");
  return 1;
}

/* ---- ls, glob ------------------------------------------------------------------------ */

typedef struct {
  const char *name;
  size_t len;
  int64_t mtime_us; /* directories: the newest file below */
} name_ref;

static int cmp_names(const void *x, const void *y)
{
  const name_ref *a = x, *b = y;
  int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int cmp_basenames(const void *x, const void *y)
{
  const mb_entry *a = *(mb_entry *const *)x, *b = *(mb_entry *const *)y;
  size_t an, bn;
  name_ref ra = {mb_path_basename(a->path, a->plen, &an), 0, 0},
           rb = {mb_path_basename(b->path, b->plen, &bn), 0, 0};
  ra.len = an, rb.len = bn;
  return cmp_names(&ra, &rb);
}

static int state_ls(lua_State *L)
{
  state *st = state_check(L);
  mb_buf *p = check_path(L, 2);
  if (!p) return 3;
  mb_entry *e = mb_store_get(&st->store, p->data, p->len);
  if (e) {
    lua_createtable(L, 1, 0);
    push_file(L, e);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  if (!mb_store_is_dir(&st->store, p->data, p->len))
    return mb_fail(L, "ENOENT", "ls %s: no such file or directory", p->data);
  size_t end, i = mb_store_below(&st->store, p->data, p->len, &end);
  size_t base = p->len == 1 ? 1 : p->len + 1; /* offset of the child name in a path */
  /* Collect child directories (names) and files (entries) into boxed arrays, then sort each. */
  void **dslot = mb_lbox(L, free), **fslot = mb_lbox(L, free);
  name_ref *dirs = malloc((end - i + 1) * sizeof *dirs);
  mb_entry **files = malloc((end - i + 1) * sizeof *files);
  *dslot = dirs, *fslot = files;
  if (!dirs || !files) return mb_fail(L, MB_ENOMEM, "ls %s: out of memory", p->data);
  size_t nd = 0, nf = 0;
  mb_entry **order = st->store.order;
  while (i < end) {
    mb_entry *c = order[i];
    const char *name = c->path + base, *slash = memchr(name, '/', c->plen - base);
    if (!slash) {
      files[nf++] = c;
      i++;
      continue;
    }
    size_t nlen = (size_t)(slash - name);
    /* The whole subdirectory (everything below it sorts before "<dir>0") in one step; an implied
     * directory was modified when the newest file below it was. */
    size_t sub_end;
    mb_store_below(&st->store, c->path, base + nlen, &sub_end);
    if (sub_end <= i) sub_end = i + 1;
    int64_t newest = 0;
    for (; i < sub_end; i++)
      if (order[i]->mtime_us > newest) newest = order[i]->mtime_us;
    dirs[nd++] = (name_ref){name, nlen, newest};
  }
  qsort(dirs, nd, sizeof *dirs, cmp_names);
  qsort(files, nf, sizeof *files, cmp_basenames);
  lua_createtable(L, (int)(nd + nf), 0);
  for (size_t k = 0; k < nd; k++) {
    mb_buf *dp = mb_lbuf(L);
    if (!mb_buf_add(dp, p->data, p->len == 1 ? 0 : p->len) || !mb_buf_add(dp, "/", 1) ||
        !mb_buf_add(dp, dirs[k].name, dirs[k].len))
      return mb_fail(L, MB_ENOMEM, "ls %s: out of memory", p->data);
    mb_lpush_fileinfo(L, dirs[k].name, dirs[k].len, dp->data, dp->len, true, -1,
                      dirs[k].mtime_us / 1000000, (long)(dirs[k].mtime_us % 1000000) * 1000);
    lua_rawseti(L, -3, (lua_Integer)k + 1);
    lua_pop(L, 1);
  }
  for (size_t k = 0; k < nf; k++) {
    push_file(L, files[k]);
    lua_rawseti(L, -2, (lua_Integer)(nd + k) + 1);
  }
  return 1;
}

static int cmp_newest(const void *x, const void *y)
{
  const mb_entry *a = *(mb_entry *const *)x, *b = *(mb_entry *const *)y;
  if (a->mtime_us != b->mtime_us) return a->mtime_us > b->mtime_us ? -1 : 1;
  int c = memcmp(a->path, b->path, a->plen < b->plen ? a->plen : b->plen);
  return c ? c : (a->plen > b->plen) - (a->plen < b->plen);
}

static int state_glob(lua_State *L)
{
  state *st = state_check(L);
  size_t plen;
  const char *pat = luaL_checklstring(L, 2, &plen);
  if (lua_isnoneornil(L, 3)) {
    lua_settop(L, 2);
    lua_pushliteral(L, "/");
  }
  mb_buf *p = check_path(L, 3);
  if (!p) return 3;
  mb_buf *err = mb_lbuf(L);
  mb_glob **g = (mb_glob **)mb_lbox(L, (void (*)(void *))mb_glob_free);
  mb_code code = mb_glob_compile(pat, plen, g, err);
  if (code) return mb_lfail(L, code, err);
  /* Only the range below the pattern's literal directories can match. */
  size_t blen, end, i;
  const char *lit = mb_glob_base(*g, &blen);
  if (blen) {
    mb_buf *dir = mb_lbuf(L);
    if (!mb_buf_add(dir, p->data, p->len == 1 ? 0 : p->len) || !mb_buf_add(dir, "/", 1) ||
        !mb_buf_add(dir, lit, blen))
      return mb_fail(L, MB_ENOMEM, "glob %s: out of memory", p->data);
    i = mb_store_below(&st->store, dir->data, dir->len, &end);
  } else {
    i = mb_store_below(&st->store, p->data, p->len, &end);
  }
  void **slot = mb_lbox(L, free);
  mb_entry **hits = malloc((end - i + 1) * sizeof *hits);
  *slot = hits;
  if (!hits) return mb_fail(L, MB_ENOMEM, "glob %s: out of memory", p->data);
  size_t n = 0, base = p->len == 1 ? 1 : p->len + 1;
  const char *pruned = NULL; /* a directory (relative) known to hold no match */
  size_t pruned_len = 0;
  for (; i < end; i++) {
    mb_entry *e = st->store.order[i];
    const char *rel = e->path + base;
    size_t rlen = e->plen - base;
    const char *slash = memrchr(rel, '/', rlen);
    size_t dlen = slash ? (size_t)(slash - rel) : 0;
    if (pruned && dlen >= pruned_len && memcmp(rel, pruned, pruned_len) == 0 &&
        (dlen == pruned_len || rel[pruned_len] == '/'))
      continue;
    if (dlen && !mb_glob_may_match_below(*g, rel, dlen)) {
      pruned = rel, pruned_len = dlen;
      continue;
    }
    if (mb_glob_match(*g, rel, rlen)) hits[n++] = e;
  }
  qsort(hits, n, sizeof *hits, cmp_newest);
  lua_createtable(L, (int)n, 0);
  for (size_t k = 0; k < n; k++) {
    push_file(L, hits[k]);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  return 1;
}

/* ---- files(): export ----------------------------------------------------------------- */

static void push_iso(lua_State *L, int64_t us)
{
  char iso[MB_ISO8601_SIZE];
  lua_pushlstring(L, iso, mb_iso8601(us / 1000000, (long)(us % 1000000) * 1000, iso));
}

static int state_files(lua_State *L)
{
  state *st = state_check(L);
  size_t n;
  mb_entry **order = mb_store_sorted(&st->store, &n);
  if (!order && st->store.count) return mb_fail(L, MB_ENOMEM, "files: out of memory");
  mb_buf *b64 = mb_lbuf(L);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    const mb_entry *e = order[i];
    const char *data = e->data ? e->data : "";
    lua_createtable(L, 0, 4);
    if (mb_classify(data, e->len, NULL) == MB_TEXT) {
      lua_pushlstring(L, data, e->len);
    } else {
      if (!mb_base64_encode(data, e->len, b64))
        return mb_fail(L, MB_ENOMEM, "files: out of memory");
      mb_lpushbuf(L, b64);
      lua_pushliteral(L, "base64");
      lua_setfield(L, -3, "encoding");
    }
    lua_setfield(L, -2, "content");
    push_iso(L, e->ctime_us);
    lua_setfield(L, -2, "created_at");
    push_iso(L, e->mtime_us);
    lua_setfield(L, -2, "modified_at");
    lua_setfield(L, -2, e->path);
  }
  return 1;
}

/* ---- constructor --------------------------------------------------------------------- */

/* Optional time field of a file record: microseconds, or -1 when absent. Raises when malformed. */
static int64_t opt_time(lua_State *L, int rec, const char *key, const char *path)
{
  int64_t us = -1;
  if (lua_getfield(L, rec, key) != LUA_TNIL) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    int64_t sec;
    long nsec;
    if (!s || !mb_iso8601_parse(s, n, &sec, &nsec))
      luaL_error(L, "state_backend: files[\"%s\"].%s must be an ISO-8601 time", path, key);
    us = sec * 1000000 + nsec / 1000;
  }
  lua_pop(L, 1);
  return us;
}

/* Pushes the bytes of files[path] (a string, or a record whose content is a string or a list of
 * strings: lines joined by "\n", base64 chunks concatenated). */
static void load_content(lua_State *L, int rec, const char *path, bool *b64)
{
  *b64 = false;
  if (lua_type(L, rec) == LUA_TSTRING) {
    lua_pushvalue(L, rec);
    return;
  }
  if (lua_type(L, rec) != LUA_TTABLE)
    luaL_error(L, "state_backend: files[\"%s\"] must be a string or a {content = ...} table", path);
  int t = lua_getfield(L, rec, "encoding");
  if (t != LUA_TNIL) {
    const char *enc = lua_tostring(L, -1);
    if (enc && strcmp(enc, "base64") == 0)
      *b64 = true;
    else if (!enc || (strcmp(enc, "utf-8") != 0 && strcmp(enc, "utf8") != 0))
      luaL_error(L, "state_backend: files[\"%s\"].encoding must be \"base64\" or \"utf-8\"", path);
  }
  lua_pop(L, 1);
  t = lua_getfield(L, rec, "content");
  if (t == LUA_TTABLE) {
    luaL_Buffer lb;
    int list = lua_gettop(L);
    lua_Integer n = luaL_len(L, list);
    luaL_buffinit(L, &lb);
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1 && !*b64) luaL_addchar(&lb, '\n');
      if (lua_geti(L, list, i) != LUA_TSTRING)
        luaL_error(L, "state_backend: files[\"%s\"].content[%d] must be a string", path, (int)i);
      luaL_addvalue(&lb);
    }
    luaL_pushresult(&lb);
    lua_remove(L, list);
  } else if (t != LUA_TSTRING) {
    luaL_error(L, "state_backend: files[\"%s\"].content must be a string", path);
  }
}

static void load_files(lua_State *L, state *st, int files)
{
  mb_buf *p = mb_lbuf(L), *err = mb_lbuf(L), *raw = mb_lbuf(L);
  lua_pushnil(L);
  while (lua_next(L, files)) {
    int rec = lua_gettop(L);
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "state_backend: files keys must be path strings");
    size_t kl;
    const char *key = lua_tolstring(L, -2, &kl);
    mb_code code = mb_path_normalize(key, kl, p, err);
    if (code) luaL_error(L, "state_backend: files: %s", err->len ? err->data : code);
    if (mb_store_get(&st->store, p->data, p->len))
      luaL_error(L, "state_backend: files: two keys name %s", p->data);
    bool b64;
    load_content(L, rec, p->data, &b64);
    size_t len;
    const char *content = lua_tolstring(L, -1, &len);
    if (b64) {
      if ((code = mb_base64_decode(content, len, raw, err)))
        luaL_error(L, "state_backend: files[\"%s\"]: %s", p->data, err->len ? err->data : code);
      content = raw->data ? raw->data : "", len = raw->len;
    }
    int64_t mtime = lua_istable(L, rec) ? opt_time(L, rec, "modified_at", p->data) : -1;
    int64_t ctime = lua_istable(L, rec) ? opt_time(L, rec, "created_at", p->data) : -1;
    char *data = copy_bytes(content, len);
    if (!data || !mb_store_put(&st->store, p->data, p->len, data, len, mtime, ctime)) {
      free(data);
      luaL_error(L, "state_backend: out of memory");
    }
    lua_settop(L, rec - 1);
  }
  /* A path cannot be both a file and a directory ({"/a" = ..., "/a/b" = ...}). */
  size_t n;
  mb_entry **order = mb_store_sorted(&st->store, &n);
  for (size_t i = 0; order && i < n; i++)
    if (mb_store_is_dir(&st->store, order[i]->path, order[i]->plen))
      luaL_error(L, "state_backend: files: %s is both a file and a directory", order[i]->path);
}

static int state_new(lua_State *L)
{
  lua_settop(L, 1);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "files") != 0)
        luaL_argerror(
            L, 1,
            lua_pushfstring(L, "unknown option '%s' (known: files)", luaL_tolstring(L, -1, NULL)));
    }
  }
  state *st = lua_newuserdatauv(L, sizeof *st, 0);
  mb_store_init(&st->store);
  st->closed = false;
  st->free_pending = false;
  luaL_setmetatable(L, STATE_TYPE);
  int self = lua_gettop(L);
  if (!lua_isnoneornil(L, 1) && lua_getfield(L, 1, "files") != LUA_TNIL) {
    luaL_argexpected(L, lua_istable(L, -1), 1, "files as a table");
    load_files(L, st, lua_gettop(L));
  }
  lua_settop(L, self);
  return 1;
}

static int state_tostring(lua_State *L)
{
  state *st = luaL_checkudata(L, 1, STATE_TYPE);
  if (st->closed)
    lua_pushliteral(L, "moonbox.state.Backend (closed)");
  else
    lua_pushfstring(L, "moonbox.state.Backend (%d files)", (int)st->store.count);
  return 1;
}

static const luaL_Reg state_methods[] = {{"exists", state_exists},
                                         {"ls", state_ls},
                                         {"read", state_read},
                                         {"read_bytes", state_read_bytes},
                                         {"write", state_write},
                                         {"edit", state_edit},
                                         {"glob", state_glob},
                                         {"grep", state_grep},
                                         {"files", state_files},
                                         {"close", state_release},
                                         {NULL, NULL}};
static const luaL_Reg state_meta[] = {{"__gc", state_release},
                                      {"__close", state_release},
                                      {"__tostring", state_tostring},
                                      {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_state(lua_State *L);
MB_EXPORT int luaopen_moonbox_state(lua_State *L)
{
  mb_newclass(L, STATE_TYPE, state_methods, state_meta);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, state_new);
  lua_setfield(L, -2, "new");
  return 1;
}
