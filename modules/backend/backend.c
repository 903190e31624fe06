/* backend.c: moonbox.backend — the protocol's text semantics for Lua-written backends.
 *
 * Binds backend_core.h: path normalization, read formatting, edit, binary detection, globs
 * ("moonbox.backend.Glob", owns an mb_glob), regexes ("moonbox.backend.Regex", owns an
 * mb_regex), grep's walk rules, ISO-8601 time and base64. Each object frees its C data in one
 * idempotent release (__gc, __close, :close()); scratch buffers live in box userdata so nothing
 * leaks when Lua raises. Fail codes (nil, message, CODE): INVALID, BINARY, NOT_FOUND,
 * NOT_UNIQUE, ENOMEM.
 *
 * Lua API (a backend written in Lua builds its protocol methods from these):
 *   normalize(path)                       --> "/a/b" | nil, msg, INVALID
 *   under(root, path)                     --> path below root without "/" ("" for root) | nil
 *   format_read(content [, offset [, limit [, path]]]) --> numbered text | nil, msg, CODE
 *   apply_edit(content, old, new [, replace_all [, path]]) --> new_content, n | nil, msg, CODE
 *   is_binary(s), count_lines(s), format_line(s) (a line as read shows it)
 *   glob(pattern) --> Glob | nil, msg, INVALID;  g:match(rel), g:may_match_below(reldir),
 *                     g:filter(rel) (grep's rule), g:has_slash(), g:base(), g:close()
 *   regex(pattern [, {fixed, ignore_case}]) --> Regex | nil, msg, INVALID;
 *                     re:grep(content [, max [, path]]) --> {{line_number, line}...} | nil, msg,
 *                     CODE (BINARY: not searched; from 1 MiB on, inside a task, the search runs
 *                     on a worker thread); re:test(s), re:close()
 *   grep_skips(rel [, is_dir [, ignore_hidden]]), is_skipped_dir(name), grep_opts(opts)
 *   iso8601(sec [, nsec]), parse_iso8601(s) --> sec, nsec, base64_encode(s), base64_decode(s)
 *   READ_LIMIT, LINE_MAX_CHARS */
#include <stdlib.h>
#include <string.h>

#include "backend/backend_lua.h"
#include "scheduler.h"

#define GLOB_TYPE "moonbox.backend.Glob"
#define REGEX_TYPE "moonbox.backend.Regex"

/* ---- paths and text ------------------------------------------------------------------ */

static int backend_normalize(lua_State *L)
{
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  mb_code code = mb_lcheckpath(L, 1, out, err);
  if (code) return mb_lfail(L, code, err);
  mb_lpushbuf(L, out);
  return 1;
}

static int backend_under(lua_State *L)
{
  size_t rl, pl, n;
  const char *root = luaL_checklstring(L, 1, &rl);
  const char *path = luaL_checklstring(L, 2, &pl);
  const char *rel = mb_path_under(root, rl, path, pl, &n);
  if (!rel) return 0;
  lua_pushlstring(L, rel, n);
  return 1;
}

static int backend_is_binary(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushboolean(L, mb_classify(s, len, NULL) != MB_TEXT);
  return 1;
}

static int backend_count_lines(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)mb_count_lines(s, len));
  return 1;
}

static int backend_format_line(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  mb_buf *out = mb_lbuf(L);
  if (!mb_buf_add_line(out, s, len) || !mb_buf_add(out, "", 0)) return mb_lfail(L, MB_ENOMEM, NULL);
  mb_lpushbuf(L, out);
  return 1;
}

/* format_read(content [, offset [, limit [, path]]]) */
static int backend_format_read(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer offset = mb_loptint(L, 2, 0);
  lua_Integer limit = mb_loptint(L, 3, MB_READ_LIMIT);
  const char *path = luaL_optstring(L, 4, "");
  if (offset < 0) return mb_fail(L, MB_INVALID, "read %s: offset must be 0 or more", path);
  if (limit < 1) return mb_fail(L, MB_INVALID, "read %s: limit must be 1 or more", path);
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  mb_code code = mb_read_format(s, len, (size_t)offset, (size_t)limit, path, out, err);
  if (code) return mb_lfail(L, code, err);
  mb_lpushbuf(L, out);
  return 1;
}

/* apply_edit(content, old, new [, replace_all [, path]]) --> new_content, occurrences */
static int backend_apply_edit(lua_State *L)
{
  size_t len, ol, nl;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *o = luaL_checklstring(L, 2, &ol);
  const char *n = luaL_checklstring(L, 3, &nl);
  bool all = lua_toboolean(L, 4);
  const char *path = luaL_optstring(L, 5, "");
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  size_t occ;
  mb_code code = mb_edit_apply(s, len, o, ol, n, nl, all, path, out, &occ, err);
  if (code) return mb_lfail(L, code, err);
  mb_lpushbuf(L, out);
  lua_pushinteger(L, (lua_Integer)occ);
  return 2;
}

/* ---- grep's walk rules --------------------------------------------------------------- */

static int backend_grep_skips(lua_State *L)
{
  size_t len;
  const char *rel = luaL_checklstring(L, 1, &len);
  bool is_dir = lua_toboolean(L, 2);
  bool hidden = lua_isnoneornil(L, 3) ? true : lua_toboolean(L, 3);
  lua_pushboolean(L, mb_grep_skips(rel, len, is_dir, hidden));
  return 1;
}

static int backend_is_skipped_dir(lua_State *L)
{
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  lua_pushboolean(L, mb_is_skipped_dir(name, len));
  return 1;
}

static int backend_grep_opts(lua_State *L)
{
  mb_grep_opts o;
  mb_lcheck_grep_opts(L, 1, &o);
  lua_createtable(L, 0, 6);
  if (o.path) lua_pushlstring(L, o.path, o.path_len), lua_setfield(L, -2, "path");
  if (o.glob) lua_pushlstring(L, o.glob, o.glob_len), lua_setfield(L, -2, "glob");
  lua_pushboolean(L, o.ignore_hidden), lua_setfield(L, -2, "ignore_hidden");
  lua_pushboolean(L, o.ignore_case), lua_setfield(L, -2, "ignore_case");
  lua_pushboolean(L, o.fixed), lua_setfield(L, -2, "fixed");
  lua_pushinteger(L, o.max), lua_setfield(L, -2, "max");
  return 1;
}

/* ---- Glob ---------------------------------------------------------------------------- */

static mb_glob **glob_check(lua_State *L)
{
  mb_glob **g = luaL_checkudata(L, 1, GLOB_TYPE);
  if (!*g) luaL_error(L, "attempt to use a closed Glob");
  return g;
}

static int glob_release(lua_State *L)
{
  mb_glob **g = luaL_checkudata(L, 1, GLOB_TYPE);
  mb_glob_free(*g);
  *g = NULL;
  return 0;
}

static int backend_glob(lua_State *L)
{
  size_t len;
  const char *pat = luaL_checklstring(L, 1, &len);
  mb_buf *err = mb_lbuf(L);
  mb_glob **g = lua_newuserdatauv(L, sizeof *g, 0);
  *g = NULL;
  luaL_setmetatable(L, GLOB_TYPE);
  mb_code code = mb_glob_compile(pat, len, g, err);
  if (code) return mb_lfail(L, code, err);
  return 1;
}

static int glob_match(lua_State *L)
{
  mb_glob **g = glob_check(L);
  size_t len;
  const char *rel = luaL_checklstring(L, 2, &len);
  lua_pushboolean(L, mb_glob_match(*g, rel, len));
  return 1;
}

static int glob_may_match_below(lua_State *L)
{
  mb_glob **g = glob_check(L);
  size_t len;
  const char *rel = luaL_checklstring(L, 2, &len);
  lua_pushboolean(L, mb_glob_may_match_below(*g, rel, len));
  return 1;
}

static int glob_filter(lua_State *L)
{
  mb_glob **g = glob_check(L);
  size_t len;
  const char *rel = luaL_checklstring(L, 2, &len);
  lua_pushboolean(L, mb_glob_filter(*g, rel, len));
  return 1;
}

static int glob_base(lua_State *L)
{
  size_t n;
  const char *base = mb_glob_base(*glob_check(L), &n);
  lua_pushlstring(L, base, n);
  return 1;
}

static int glob_has_slash(lua_State *L)
{
  lua_pushboolean(L, mb_glob_has_slash(*glob_check(L)));
  return 1;
}

/* ---- Regex --------------------------------------------------------------------------- */

typedef struct {
  mb_regex *re; /* owned; NULL once closed */
  int flags;    /* to compile a private copy for a worker; the pattern is user value 1 */
} regex_ud;

static regex_ud *regex_check(lua_State *L)
{
  regex_ud *r = luaL_checkudata(L, 1, REGEX_TYPE);
  if (!r->re) luaL_error(L, "attempt to use a closed Regex");
  return r;
}

static int regex_release(lua_State *L)
{
  regex_ud *r = luaL_checkudata(L, 1, REGEX_TYPE);
  mb_regex_free(r->re);
  r->re = NULL;
  return 0;
}

/* regex(pattern [, {fixed = bool, ignore_case = bool}]) */
static int backend_regex(lua_State *L)
{
  size_t len;
  const char *pat = luaL_checklstring(L, 1, &len);
  int flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      int bit = strcmp(k, "fixed") == 0         ? MB_RE_FIXED
                : strcmp(k, "ignore_case") == 0 ? MB_RE_IGNORE_CASE
                                                : 0;
      if (!bit) luaL_argerror(L, 2, "unknown option (known: fixed, ignore_case)");
      if (!lua_isboolean(L, -1)) luaL_argerror(L, 2, "options must be booleans");
      if (lua_toboolean(L, -1)) flags |= bit;
      lua_pop(L, 1);
    }
  }
  mb_buf *err = mb_lbuf(L);
  regex_ud *r = lua_newuserdatauv(L, sizeof *r, 1);
  r->re = NULL;
  r->flags = flags;
  luaL_setmetatable(L, REGEX_TYPE);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  mb_code code = mb_regex_compile(pat, len, flags, &r->re, err);
  if (code) return mb_lfail(L, code, err);
  return 1;
}

typedef struct {
  lua_State *L;
  lua_Integer max, count;
} collect;

/* Runs inside mb_regex_grep; a raise here (out of memory) leaks nothing: all C state is boxed. */
static bool collect_line(void *ud, size_t line_no, const char *line, size_t len)
{
  collect *c = ud;
  lua_State *L = c->L;
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)line_no);
  lua_setfield(L, -2, "line_number");
  mb_buf *b = mb_lbuf(L);
  if (!mb_buf_add_line(b, line, len)) luaL_error(L, "not enough memory");
  mb_lpushbuf(L, b);
  lua_remove(L, -2);
  lua_setfield(L, -2, "line");
  lua_rawseti(L, -2, ++c->count);
  return c->max == 0 || c->count < c->max;
}

/* A search of GREP_WORKER_MIN bytes or more runs on a worker thread (inside a task), with a
 * private copy of the regex (match scratch is per thread) and the content anchored by the job. */
#define GREP_WORKER_MIN (1024 * 1024)
#define JOB_TYPE "moonbox.backend.GrepJob"

typedef struct {
  mb_regex *re; /* owned */
  const char *s, *path;
  size_t len, max;
  size_t (*hits)[3]; /* line number, offset, length; owned */
  size_t nhits, cap;
  mb_code code;
  mb_buf err;
} grep_job;

static int job_gc(lua_State *L)
{
  grep_job *j = luaL_checkudata(L, 1, JOB_TYPE);
  mb_regex_free(j->re);
  j->re = NULL;
  free(j->hits);
  j->hits = NULL;
  mb_buf_free(&j->err);
  return 0;
}

static bool job_hit(void *ud, size_t line_no, const char *line, size_t len)
{
  grep_job *j = ud;
  if (j->nhits == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 64;
    void *h = realloc(j->hits, cap * sizeof *j->hits);
    if (!h) {
      j->code = MB_ENOMEM;
      return false;
    }
    j->hits = h;
    j->cap = cap;
  }
  size_t *hit = j->hits[j->nhits++];
  hit[0] = line_no, hit[1] = (size_t)(line - j->s), hit[2] = len;
  return j->max == 0 || j->nhits < j->max;
}

static void job_run(void *arg) /* on a worker: no Lua */
{
  grep_job *j = arg;
  mb_code code = mb_regex_grep(j->re, j->s, j->len, j->path, job_hit, j, &j->err);
  if (!j->code) j->code = code;
}

/* Continuation: the job is at index 5. */
static int job_finish(lua_State *L, int status, lua_KContext ctx)
{
  grep_job *j = luaL_checkudata(L, 5, JOB_TYPE);
  if (j->code == MB_BINARY)
    return mb_fail(L, MB_BINARY, "grep %s: binary content is not searched", j->path);
  if (j->code) return mb_lfail(L, j->code, &j->err);
  lua_createtable(L, (int)j->nhits, 0);
  collect c = {L, 0, 0};
  for (size_t i = 0; i < j->nhits; i++)
    collect_line(&c, j->hits[i][0], j->s + j->hits[i][1], j->hits[i][2]);
  return 1;
}

/* re:grep(content [, max [, path]]) --> { {line_number, line}, ... } */
static int regex_grep(lua_State *L)
{
  regex_ud *r = regex_check(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  lua_Integer max = mb_loptint(L, 3, 0);
  const char *path = luaL_optstring(L, 4, "");
  if (len >= GREP_WORKER_MIN) {
    lua_settop(L, 4);
    grep_job *j = lua_newuserdatauv(L, sizeof *j, 2); /* index 5 */
    memset(j, 0, sizeof *j);
    if (luaL_newmetatable(L, JOB_TYPE)) {
      lua_pushcfunction(L, job_gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, 5);
    lua_pushvalue(L, 2); /* what the worker reads lives as long as the job, even on cancel */
    lua_setiuservalue(L, 5, 1);
    lua_pushstring(L, path);
    lua_setiuservalue(L, 5, 2);
    j->s = s, j->len = len, j->path = path, j->max = max < 0 ? 0 : (size_t)max;
    size_t plen;
    lua_getiuservalue(L, 1, 1);
    const char *pat = lua_tolstring(L, -1, &plen);
    mb_code code = mb_regex_compile(pat, plen, r->flags, &j->re, &j->err);
    lua_pop(L, 1);
    if (code) return mb_lfail(L, code, &j->err);
    return mb_await_work(L, job_run, j, 5, job_finish, 0);
  }
  mb_buf *err = mb_lbuf(L);
  lua_newtable(L);
  collect c = {L, max < 0 ? 0 : max, 0};
  mb_code code = mb_regex_grep(r->re, s, len, path, collect_line, &c, err);
  if (code == MB_BINARY && !err->len)
    return mb_fail(L, MB_BINARY, "grep %s: binary content is not searched", path);
  if (code) return mb_lfail(L, code, err);
  return 1;
}

static bool first_only(void *ud, size_t line_no, const char *line, size_t len)
{
  *(bool *)ud = true;
  return false;
}

static int regex_test(lua_State *L)
{
  regex_ud *r = regex_check(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  mb_buf *err = mb_lbuf(L);
  bool hit = false;
  mb_code code = mb_regex_grep(r->re, s, len, NULL, first_only, &hit, err);
  if (code && code != MB_BINARY) return mb_lfail(L, code, err);
  lua_pushboolean(L, hit);
  return 1;
}

/* ---- time and base64 ----------------------------------------------------------------- */

static int backend_iso8601(lua_State *L)
{
  lua_Integer sec = luaL_checkinteger(L, 1);
  lua_Integer nsec = luaL_optinteger(L, 2, 0);
  char out[MB_ISO8601_SIZE];
  size_t n = mb_iso8601(sec, (long)nsec, out);
  lua_pushlstring(L, out, n);
  return 1;
}

static int backend_parse_iso8601(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int64_t sec;
  long nsec;
  if (!mb_iso8601_parse(s, len, &sec, &nsec))
    return mb_fail(L, MB_INVALID, "time '%s': not ISO-8601 (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)", s);
  lua_pushinteger(L, sec);
  lua_pushinteger(L, nsec);
  return 2;
}

static int backend_base64_encode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  mb_buf *out = mb_lbuf(L);
  if (!mb_base64_encode(s, len, out)) return mb_lfail(L, MB_ENOMEM, NULL);
  mb_lpushbuf(L, out);
  return 1;
}

static int backend_base64_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  mb_buf *out = mb_lbuf(L), *err = mb_lbuf(L);
  mb_code code = mb_base64_decode(s, len, out, err);
  if (code) return mb_lfail(L, code, err);
  mb_lpushbuf(L, out);
  return 1;
}

static const luaL_Reg backend_funcs[] = {{"normalize", backend_normalize},
                                         {"under", backend_under},
                                         {"is_binary", backend_is_binary},
                                         {"count_lines", backend_count_lines},
                                         {"format_line", backend_format_line},
                                         {"format_read", backend_format_read},
                                         {"apply_edit", backend_apply_edit},
                                         {"grep_skips", backend_grep_skips},
                                         {"is_skipped_dir", backend_is_skipped_dir},
                                         {"grep_opts", backend_grep_opts},
                                         {"glob", backend_glob},
                                         {"regex", backend_regex},
                                         {"iso8601", backend_iso8601},
                                         {"parse_iso8601", backend_parse_iso8601},
                                         {"base64_encode", backend_base64_encode},
                                         {"base64_decode", backend_base64_decode},
                                         {NULL, NULL}};

static const luaL_Reg glob_methods[] = {{"match", glob_match},
                                        {"may_match_below", glob_may_match_below},
                                        {"filter", glob_filter},
                                        {"has_slash", glob_has_slash},
                                        {"base", glob_base},
                                        {"close", glob_release},
                                        {NULL, NULL}};
static const luaL_Reg glob_meta[] = {
    {"__gc", glob_release}, {"__close", glob_release}, {NULL, NULL}};

static const luaL_Reg regex_methods[] = {
    {"grep", regex_grep}, {"test", regex_test}, {"close", regex_release}, {NULL, NULL}};
static const luaL_Reg regex_meta[] = {
    {"__gc", regex_release}, {"__close", regex_release}, {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_backend(lua_State *L);
MB_EXPORT int luaopen_moonbox_backend(lua_State *L)
{
  mb_newclass(L, GLOB_TYPE, glob_methods, glob_meta);
  mb_newclass(L, REGEX_TYPE, regex_methods, regex_meta);
  luaL_newlib(L, backend_funcs);
  lua_pushinteger(L, MB_READ_LIMIT);
  lua_setfield(L, -2, "READ_LIMIT");
  lua_pushinteger(L, MB_LINE_MAX_CHARS);
  lua_setfield(L, -2, "LINE_MAX_CHARS");
  return 1;
}
