/* state_grep.c: grep of moonbox.state_backend, on a worker thread when there is much to search.
 *
 * The files to search are chosen on the Lua thread (path, skip rules, glob) into a snapshot of
 * (entry, content, length). Small snapshots are searched at once. From GREP_WORKER_MIN bytes on
 * the search runs under mb_await_work, so other tasks keep running: a job userdata
 * ("moonbox.state.GrepJob") owns the regex, the snapshot and the hits, and holds the store
 * (mb_store_hold) so contents replaced meanwhile by other tasks stay readable until the job is
 * released (after the results are built, or by __gc when the task was cancelled). The worker
 * touches only the job and the contents it lists, never Lua.
 * Fail codes: INVALID (path, pattern, glob; costly pattern), ENOENT, ENOMEM. */
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "state/state_internal.h"

#define JOB_TYPE "moonbox.state.GrepJob"
#define GREP_WORKER_MIN (1024 * 1024)

typedef struct {
  const mb_entry *e;
  const char *data;
  size_t len;
} grep_item;

typedef struct {
  size_t item, line_no, off, len;
} grep_hit;

typedef struct {
  state *st; /* held while `holding`; the job's user value keeps it alive */
  bool holding;
  mb_regex *re;     /* owned */
  grep_item *items; /* owned */
  size_t nitems;
  grep_hit *hits; /* owned */
  size_t nhits, cap;
  size_t max;     /* 0: no cap */
  size_t current; /* item being searched */
  mb_code code;   /* the worker's failure, with err */
  mb_buf err;
} grep_job;

static void job_release(grep_job *j)
{
  if (j->holding) {
    j->holding = false;
    state_unhold(j->st);
  }
  mb_regex_free(j->re);
  j->re = NULL;
  free(j->items);
  j->items = NULL;
  free(j->hits);
  j->hits = NULL;
  mb_buf_free(&j->err);
}

static int job_gc(lua_State *L)
{
  job_release(luaL_checkudata(L, 1, JOB_TYPE));
  return 0;
}

static bool collect(void *ud, size_t line_no, const char *line, size_t len)
{
  grep_job *j = ud;
  if (j->nhits == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 64;
    grep_hit *h = realloc(j->hits, cap * sizeof *h);
    if (!h) {
      j->code = MB_ENOMEM;
      return false;
    }
    j->hits = h;
    j->cap = cap;
  }
  const grep_item *it = &j->items[j->current];
  j->hits[j->nhits++] = (grep_hit){j->current, line_no, (size_t)(line - it->data), len};
  return j->max == 0 || j->nhits < j->max;
}

/* Runs on a worker (or inline): no Lua. */
static void job_run(void *arg)
{
  grep_job *j = arg;
  for (j->current = 0; j->current < j->nitems; j->current++) {
    const grep_item *it = &j->items[j->current];
    mb_code code = mb_regex_grep(j->re, it->data, it->len, it->e->path, collect, j, &j->err);
    if (j->code) return;
    if (code && code != MB_BINARY) {
      j->code = code;
      return;
    }
    if (j->max && j->nhits >= j->max) return;
  }
}

/* Continuation: builds the result rows; the job is at stack index 4. */
static int job_finish(lua_State *L, int status, lua_KContext ctx)
{
  grep_job *j = luaL_checkudata(L, 4, JOB_TYPE);
  if (j->code) {
    mb_code code = j->code;
    lua_pushnil(L);
    if (j->err.len)
      lua_pushlstring(L, j->err.data, j->err.len);
    else
      lua_pushstring(L, code);
    lua_pushstring(L, code);
    job_release(j);
    return 3;
  }
  lua_createtable(L, (int)j->nhits, 0);
  for (size_t i = 0; i < j->nhits; i++) {
    const grep_hit *h = &j->hits[i];
    const grep_item *it = &j->items[h->item];
    mb_lpush_match(L, it->e->path, it->e->plen, h->line_no, it->data + h->off, h->len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  job_release(j);
  return 1;
}

/* Fills the job's snapshot: one named file, or the files below a directory that the walk rules
 * and the glob keep. Returns 0, or 3 with the fail triple pushed. */
static int snapshot(lua_State *L, state *st, grep_job *j, const mb_buf *p, const mb_grep_opts *o,
                    const mb_glob *g, size_t *bytes)
{
  *bytes = 0;
  mb_entry *e = mb_store_get(&st->store, p->data, p->len);
  size_t end = 0, i = 0;
  if (!e) {
    if (!mb_store_is_dir(&st->store, p->data, p->len))
      return mb_fail(L, "ENOENT", "grep %s: no such file or directory", p->data);
    i = mb_store_below(&st->store, p->data, p->len, &end);
  }
  j->items = malloc((e ? 1 : end - i + 1) * sizeof *j->items);
  if (!j->items) return mb_fail(L, MB_ENOMEM, "grep %s: out of memory", p->data);
  if (e) { /* a file named explicitly is searched even when hidden or filtered out */
    j->items[j->nitems++] = (grep_item){e, e->data ? e->data : "", e->len};
    *bytes = e->len;
    return 0;
  }
  size_t base = p->len == 1 ? 1 : p->len + 1;
  for (; i < end; i++) {
    e = st->store.order[i];
    const char *rel = e->path + base;
    size_t rlen = e->plen - base;
    if (mb_grep_skips(rel, rlen, false, o->ignore_hidden)) continue;
    if (g && !mb_glob_filter(g, rel, rlen)) continue;
    j->items[j->nitems++] = (grep_item){e, e->data ? e->data : "", e->len};
    *bytes += e->len;
  }
  return 0;
}

int state_grep(lua_State *L)
{
  state *st = state_check(L);
  size_t plen;
  const char *pat = luaL_checklstring(L, 2, &plen);
  mb_grep_opts o;
  mb_lcheck_grep_opts(L, 3, &o);
  lua_settop(L, 3);
  grep_job *j = lua_newuserdatauv(L, sizeof *j, 1); /* index 4 */
  memset(j, 0, sizeof *j);
  if (luaL_newmetatable(L, JOB_TYPE)) {
    lua_pushcfunction(L, job_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, 4);
  lua_pushvalue(L, 1); /* the backend lives as long as the job */
  lua_setiuservalue(L, 4, 1);
  j->st = st;
  j->max = (size_t)o.max;
  mb_buf *p = mb_lbuf(L), *err = mb_lbuf(L);
  mb_code code = mb_path_normalize(o.path ? o.path : "/", o.path ? o.path_len : 1, p, err);
  if (code) return mb_lfail(L, code, err);
  int flags = (o.fixed ? MB_RE_FIXED : 0) | (o.ignore_case ? MB_RE_IGNORE_CASE : 0);
  if ((code = mb_regex_compile(pat, plen, flags, &j->re, err))) return mb_lfail(L, code, err);
  mb_glob **g = (mb_glob **)mb_lbox(L, (void (*)(void *))mb_glob_free);
  if (o.glob && (code = mb_glob_compile(o.glob, o.glob_len, g, err))) return mb_lfail(L, code, err);
  size_t bytes;
  int r = snapshot(L, st, j, p, &o, *g, &bytes);
  if (r) return r;
  lua_settop(L, 4);
  mb_store_hold(&st->store);
  j->holding = true;
  if (bytes < GREP_WORKER_MIN) {
    job_run(j);
    return job_finish(L, LUA_OK, 0);
  }
  return mb_await_work(L, job_run, j, 4, job_finish, 0);
}
