/* hashline.c: moonbox.hashline — line-anchored reads and edits ("N:HH|text").
 *
 *   hash(line [, len])                        --> first len (2..8, default 2) hex digits of MD5
 *   format(content [, offset, limit [, len]]) --> "1:a3|first line\n2:..." (+ "... (N more lines)")
 *   apply(content, edit [, len])              --> new_content, summary
 *   apply_many(content, edits [, len])        --> new_content, summary (all or nothing)
 *
 * Lines are content split on '\n'; a final empty piece after a trailing '\n' is dropped (so ""
 * and "\n" are one empty line). A "\r" before a '\n' is the line's ending, not its text: it is
 * neither shown nor hashed, and it is kept. New lines take the ending of the line they replace
 * or follow; the file's trailing-newline state never changes. Fail codes: INVALID (line out of
 * range, offset past the end, contradictory or overlapping edits), CONFLICT (hash mismatch).
 * Wrong argument types raise. The module owns one MD5 context (an upvalue userdata, freed by
 * __gc); all other memory is Lua's (buffers, a userdata for apply_many's spans). */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashline_core.h"
#include "moonbox.h"

#define HL_DEFAULT_LEN 2
#define HL_DEFAULT_LIMIT 2000
#define HL_HASHER "moonbox.hashline.Hasher"

/* Module state (the upvalue of every function): the MD5 context, and scratch buffers where
 * edits assemble the new content. A luaL_Buffer would allocate, fill and free a box as large as
 * the file on every edit; reusing one buffer saves that allocation and its page faults.
 *
 * Chained edits (each applied to the previous result, the usual case) skip one copy: the box's
 * user value holds the last result string while `out` still holds its bytes, so an apply to
 * that very string (same object: the reference keeps it alive, so equal pointers mean equal
 * strings) moves only the tail in place. Anything that reuses `out` first drops the reference. */
typedef struct {
  hl_hasher *h;
  char *out; /* result under construction, or the last result's bytes */
  size_t cap, len;
  char *mid; /* the new lines of a chained edit */
  size_t midcap;
  /* Known facts about the last result, so a read and an edit of it do not rescan the file:
   * line hint_line starts at byte hint_off (0: none), and it has `total` lines (0: unknown). */
  size_t hint_line, hint_off, total;
} hasher_box;

#define HL_KEEP_SCRATCH (8u << 20) /* larger scratch buffers are released after use */

static hasher_box *get_box(lua_State *L)
{
  return lua_touserdata(L, lua_upvalueindex(1));
}

static hl_hasher *get_hasher(lua_State *L)
{
  hasher_box *box = get_box(L);
  if (!box || !box->h) luaL_error(L, "hashline: MD5 is unavailable in this OpenSSL");
  return box->h;
}

static int hasher_gc(lua_State *L)
{
  hasher_box *box = luaL_checkudata(L, 1, HL_HASHER);
  hl_hasher_free(box->h);
  box->h = NULL;
  free(box->out);
  free(box->mid);
  box->out = box->mid = NULL;
  box->cap = box->len = box->midcap = 0;
  return 0;
}

/* Output under construction: at most `cap` bytes, sized up front from the edits. */
typedef struct {
  char *p;
  size_t len;
} out_t;

/* Drops the last-result reference: `out` is about to change. Cannot raise. */
static void forget_last(lua_State *L)
{
  hasher_box *box = get_box(L);
  box->hint_line = box->hint_off = box->total = 0;
  lua_pushnil(L);
  lua_setiuservalue(L, lua_upvalueindex(1), 1);
}

/* Is s (n bytes) the last result, whose bytes are still in box->out? */
static int is_last(lua_State *L, const char *s, size_t n)
{
  int hit = 0;
  if (lua_getiuservalue(L, lua_upvalueindex(1), 1) == LUA_TSTRING) {
    size_t len;
    const char *last = lua_tolstring(L, -1, &len);
    hit = last == s && len == n && get_box(L)->len == n;
  }
  lua_pop(L, 1);
  return hit;
}

static void grow(lua_State *L, char **buf, size_t *cap, size_t need)
{
  if (need <= *cap) return;
  char *grown = realloc(*buf, need);
  if (!grown)
    luaL_error(L, "hashline: out of memory (%d bytes)", (int)(need > INT_MAX ? INT_MAX : need));
  *buf = grown;
  *cap = need;
}

static out_t scratch(lua_State *L, size_t need)
{
  hasher_box *box = get_box(L);
  forget_last(L);
  grow(L, &box->out, &box->cap, need);
  out_t o = {box->out, 0};
  return o;
}

static void out_add(out_t *o, const char *s, size_t n)
{
  if (n) memcpy(o->p + o->len, s, n);
  o->len += n;
}

/* Pushes the result (box->out, len bytes) and remembers it for the next chained edit, unless
 * the buffer is oversized: then it is released instead. */
static int out_push(lua_State *L, size_t len)
{
  hasher_box *box = get_box(L);
  lua_pushlstring(L, box->out, len);
  box->len = len;
  if (box->cap > HL_KEEP_SCRATCH) {
    free(box->out);
    box->out = NULL;
    box->cap = box->len = 0;
    return 0;
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, lua_upvalueindex(1), 1);
  return 1;
}

static int opt_len(lua_State *L, int arg)
{
  lua_Integer len = luaL_optinteger(L, arg, HL_DEFAULT_LEN);
  luaL_argcheck(L, len >= 2 && len <= 8, arg, "hash length must be 2..8");
  return (int)len;
}

static void line_hash(lua_State *L, const char *s, size_t n, int digits, char *out)
{
  if (hl_hash(get_hasher(L), s, n, digits, out) != 0) luaL_error(L, "hashline: MD5 failed");
}

static int hashline_hash(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char out[16];
  line_hash(L, s, n, opt_len(L, 2), out);
  lua_pushstring(L, out);
  return 1;
}

/* One line of the original: text [off, te), ending bytes [te, next). */
typedef struct {
  size_t off, te, next;
  int crlf;       /* ended by "\r\n" */
  int terminated; /* has a '\n' */
} line_t;

static void read_line(const char *s, size_t n, size_t off, line_t *ln)
{
  const char *nl = memchr(s + off, '\n', n - off);
  size_t e = nl ? (size_t)(nl - s) : n;
  ln->off = off;
  ln->terminated = nl != NULL;
  ln->crlf = nl && e > off && s[e - 1] == '\r';
  ln->te = ln->crlf ? e - 1 : e;
  ln->next = nl ? e + 1 : n;
}

/* Offset where 1-based line `target` starts, counting from line `from` at offset `from_off`;
 * HL_NOT_FOUND when the file has fewer lines. */
static size_t locate(const char *s, size_t n, size_t from_off, size_t from, size_t target)
{
  if (target == from) return from_off;
  size_t rel = hl_skip_nl(s + from_off, n - from_off, target - from);
  if (rel == HL_NOT_FOUND) return HL_NOT_FOUND;
  size_t off = from_off + rel;
  return off == n ? HL_NOT_FOUND : off; /* the piece after a trailing '\n' is not a line */
}

/* locate() from line 1, starting from the hint when s is the last result; records the line it
 * found as the next hint. */
static size_t locate_start(lua_State *L, const char *s, size_t n, size_t target, int last)
{
  hasher_box *box = get_box(L);
  size_t off;
  if (last && box->hint_line && target >= box->hint_line) {
    off = locate(s, n, box->hint_off, box->hint_line, target);
  } else {
    off = locate(s, n, 0, 1, target);
  }
  if (last && off != HL_NOT_FOUND) {
    box->hint_line = target;
    box->hint_off = off;
  }
  return off;
}

static int hashline_format(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_Integer offset = luaL_optinteger(L, 2, 0);
  lua_Integer limit = luaL_optinteger(L, 3, HL_DEFAULT_LIMIT);
  int digits = opt_len(L, 4);
  luaL_argcheck(L, offset >= 0, 2, "offset must be >= 0");
  luaL_argcheck(L, limit >= 1, 3, "limit must be >= 1");
  int last = is_last(L, s, n);
  size_t pos = locate_start(L, s, n, (size_t)offset + 1, last);
  if (pos == HL_NOT_FOUND) {
    return mb_fail(L, "INVALID", "Offset %d exceeds file length (%d lines)",
                   offset > INT_MAX ? INT_MAX : (int)offset, (int)hl_total_lines(s, n));
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer shown = 0;
  char prefix[48], hash[16];
  while (shown < limit && (shown == 0 || pos < n)) {
    line_t ln;
    read_line(s, n, pos, &ln);
    line_hash(L, s + ln.off, ln.te - ln.off, digits, hash);
    int k = snprintf(prefix, sizeof prefix, "%s%lld:%s|", shown ? "\n" : "",
                     (long long)(offset + shown + 1), hash);
    luaL_addlstring(&b, prefix, (size_t)k);
    luaL_addlstring(&b, s + ln.off, ln.te - ln.off);
    pos = ln.next;
    shown++;
  }
  if (pos < n) {
    hasher_box *box = get_box(L);
    size_t before = (size_t)(offset + shown), rest;
    if (last && box->total > before) {
      rest = box->total - before;
    } else {
      rest = hl_total_lines(s + pos, n - pos);
      if (last) box->total = before + rest;
    }
    int k = snprintf(prefix, sizeof prefix, "\n\n... (%zu more lines)", rest);
    luaL_addlstring(&b, prefix, (size_t)k);
  }
  luaL_pushresult(&b);
  return 1;
}

/* A validated edit: bytes [p, q) of the original give way to the new lines. */
typedef struct {
  size_t start, end; /* 1-based lines the edit touches (insert: its anchor line) */
  size_t p, q;
  const char *text;
  size_t textlen;  /* new_content without one trailing '\n' */
  size_t nnew;     /* new line count (0: delete) */
  size_t line_off; /* where line `start` begins (the same in the result, the prefix being kept) */
  int insert, crlf, lead_term, index;
} span_t;

typedef struct {
  const char *code;
  char msg[240];
} edit_err;

static int fail_edit(edit_err *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_edit(edit_err *err, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->code = code;
  return -1;
}

/* Reads edit field `name` of the table at idx; raises on a wrong type. */
static int field(lua_State *L, int idx, const char *where, const char *name, int type, int required)
{
  lua_pushstring(L, name);
  int t = lua_rawget(L, idx); /* raw: the table itself then owns every string we keep */
  if (t == LUA_TNIL && !required) return 0;
  if (t != type) {
    return luaL_error(L, "hashline: %s.%s must be a %s (got %s)", where, name,
                      type == LUA_TNUMBER ? "integer" : lua_typename(L, type),
                      luaL_typename(L, -1));
  }
  return 1;
}

static size_t int_field(lua_State *L, int idx, const char *where, const char *name, int required,
                        int *present)
{
  *present = field(L, idx, where, name, LUA_TNUMBER, required);
  lua_Integer v = 0;
  if (*present && !lua_isinteger(L, -1)) {
    lua_Number f = lua_tonumber(L, -1);
    if (!lua_numbertointeger(f, &v) || (lua_Number)v != f)
      luaL_error(L, "hashline: %s.%s must be an integer", where, name);
  } else if (*present) {
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  if (v < 0) return 0; /* negative lines are simply out of range */
  return (size_t)v;
}

/* Compares a given hash (any case) with the line's; fills `actual`. */
static int hash_matches(lua_State *L, const char *s, const line_t *ln, const char *given,
                        size_t glen, int digits, char *actual)
{
  line_hash(L, s + ln->off, ln->te - ln->off, digits, actual);
  if (glen != (size_t)digits) return 0;
  for (size_t i = 0; i < glen; i++) {
    char c = given[i];
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    if (c != actual[i]) return 0;
  }
  return 1;
}

/* Validates the edit table at idx against the original (reference order) into *sp. */
static int resolve(lua_State *L, const char *s, size_t n, int idx, const char *where, int digits,
                   int chained, span_t *sp, edit_err *err)
{
  int has_start, has_end, has_ehash, insert = 0;
  size_t start = int_field(L, idx, where, "start_line", 1, &has_start);
  size_t end = int_field(L, idx, where, "end_line", 0, &has_end);
  size_t glen = 0, elen = 0, tlen = 0;
  field(L, idx, where, "start_hash", LUA_TSTRING, 1);
  const char *given = lua_tolstring(L, -1, &glen);
  field(L, idx, where, "new_content", LUA_TSTRING, 1);
  const char *text = lua_tolstring(L, -1, &tlen);
  const char *ehash = NULL;
  if ((has_ehash = field(L, idx, where, "end_hash", LUA_TSTRING, 0))) {
    ehash = lua_tolstring(L, -1, &elen);
  }
  if (field(L, idx, where, "insert_after", LUA_TBOOLEAN, 0)) insert = lua_toboolean(L, -1);

  size_t p = start >= 1 ? locate_start(L, s, n, start, chained) : HL_NOT_FOUND;
  if (p == HL_NOT_FOUND) {
    return fail_edit(err, "INVALID", "Line %zu out of range (file has %zu lines)", start,
                     hl_total_lines(s, n));
  }
  if (insert && (has_end || has_ehash)) {
    return fail_edit(err, "INVALID", "end_line/end_hash cannot be combined with insert_after");
  }
  line_t first, last;
  char actual[16];
  read_line(s, n, p, &first);
  if (!hash_matches(L, s, &first, given, glen, digits, actual)) {
    return fail_edit(err, "CONFLICT",
                     "Hash mismatch at line %zu: expected '%.*s', got '%s'. File may have "
                     "changed \xe2\x80\x94 re-read it first.",
                     start, (int)(glen > 16 ? 16 : glen), given, actual);
  }
  last = first;
  if (has_end) {
    if (end < start) {
      return fail_edit(err, "INVALID", "end_line (%zu) must be >= start_line (%zu)", end, start);
    }
    size_t pe = locate(s, n, p, start, end);
    if (pe == HL_NOT_FOUND) {
      return fail_edit(err, "INVALID", "End line %zu out of range (file has %zu lines)", end,
                       hl_total_lines(s, n));
    }
    read_line(s, n, pe, &last);
    if (has_ehash && !hash_matches(L, s, &last, ehash, elen, digits, actual)) {
      return fail_edit(err, "CONFLICT",
                       "Hash mismatch at line %zu: expected '%.*s', got '%s'. File may have "
                       "changed \xe2\x80\x94 re-read it first.",
                       end, (int)(elen > 16 ? 16 : elen), ehash, actual);
    }
  } else if (has_ehash) {
    return fail_edit(err, "INVALID", "end_hash needs end_line (the line it anchors)");
  } else {
    end = start;
  }
  /* new_content "" deletes; anything else is at least one line. One trailing '\n' ends the
   * last new line rather than starting another ("a\n" is one line, "\n" one empty line). */
  size_t given_len = tlen;
  if (tlen > 0 && text[tlen - 1] == '\n') tlen--;
  sp->text = text;
  sp->textlen = tlen;
  sp->nnew = given_len == 0 ? 0 : hl_count_nl(text, tlen) + 1;
  if (insert && sp->nnew == 0) {
    return fail_edit(err, "INVALID", "new_content is empty: there is nothing to insert");
  }
  sp->insert = insert;
  sp->start = start;
  sp->end = end;
  /* New lines end like the line they replace or follow; an unterminated last line borrows
   * the ending of the line before it. */
  if (first.terminated) {
    sp->crlf = first.crlf;
  } else {
    sp->crlf = first.off >= 2 && s[first.off - 2] == '\r';
  }
  sp->lead_term = insert && !first.terminated;
  sp->line_off = first.off;
  sp->p = insert ? first.next : first.off;
  sp->q = insert ? first.next : last.next;
  return 0;
}

static void add_term(out_t *b, int crlf)
{
  if (crlf) b->p[b->len++] = '\r';
  b->p[b->len++] = '\n';
}

/* Appends the span's new lines (and the ending an unterminated last line needs before them). */
static void emit_lines(out_t *b, const span_t *sp, int at_eof, int trailing)
{
  if (sp->lead_term) add_term(b, sp->crlf);
  const char *t = sp->text, *end = sp->text + sp->textlen;
  for (size_t i = 0; i < sp->nnew; i++) {
    const char *nl = memchr(t, '\n', (size_t)(end - t));
    const char *te = nl ? nl : end;
    size_t len = (size_t)(te - t);
    if (len > 0 && t[len - 1] == '\r') len--; /* the file decides line endings */
    out_add(b, t, len);
    if (i + 1 < sp->nnew || !at_eof || trailing) add_term(b, sp->crlf);
    t = nl ? nl + 1 : end;
  }
}

/* Bytes to drop before the span: deleting the last lines of a file without a final newline
 * takes the ending of the new last line too. `before` is what precedes the span's start. */
static size_t strip_before(const span_t *sp, size_t n, int trailing, const char *before,
                           size_t avail)
{
  if (sp->nnew != 0 || sp->q != n || trailing || avail == 0 || before[-1] != '\n') return 0;
  return (avail >= 2 && before[-2] == '\r') ? 2 : 1;
}

/* Appends the original bytes from cursor up to sp->p, then the span's new lines. */
static void emit(out_t *b, const char *s, size_t n, size_t cursor, const span_t *sp, int trailing)
{
  out_add(b, s + cursor, sp->p - cursor);
  b->len -= strip_before(sp, n, trailing, b->p + b->len, b->len);
  emit_lines(b, sp, sp->q == n, trailing);
}

static void push_summary(lua_State *L, const span_t *sp)
{
  size_t r = sp->end - sp->start + 1;
  if (sp->insert) {
    lua_pushfstring(L, "Inserted %I line(s) after line %I", (lua_Integer)sp->nnew,
                    (lua_Integer)sp->start);
  } else if (sp->nnew == 0) {
    lua_pushfstring(L, "Deleted %I line(s) at line %I", (lua_Integer)r, (lua_Integer)sp->start);
  } else if (sp->nnew == r) {
    lua_pushfstring(L, "Replaced %I line(s) at line %I", (lua_Integer)r, (lua_Integer)sp->start);
  } else {
    lua_pushfstring(L, "Replaced %I line(s) with %I line(s) at line %I", (lua_Integer)r,
                    (lua_Integer)sp->nnew, (lua_Integer)sp->start);
  }
}

static int hashline_apply(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_checktype(L, 2, LUA_TTABLE);
  int digits = opt_len(L, 3);
  span_t sp;
  edit_err err;
  int last = is_last(L, s, n);
  if (resolve(L, s, n, 2, "edit", digits, last, &sp, &err) != 0)
    return mb_fail(L, err.code, "%s", err.msg);
  int trailing = n > 0 && s[n - 1] == '\n';
  size_t midmax = sp.textlen + 2 * sp.nnew + 4;
  hasher_box *box = get_box(L);
  size_t removed = sp.insert ? 0 : sp.end - sp.start + 1;
  size_t total = (last && box->total) ? box->total + sp.nnew - removed : 0;
  int remembered;
  if (last) {
    /* box->out holds s: build the new lines aside, move the tail, drop them in. */
    grow(L, &box->mid, &box->midcap, midmax);
    out_t m = {box->mid, 0};
    emit_lines(&m, &sp, sp.q == n, trailing);
    size_t pre = sp.p - strip_before(&sp, n, trailing, s + sp.p, sp.p);
    size_t len = pre + m.len + (n - sp.q);
    forget_last(L);
    grow(L, &box->out, &box->cap, len);
    memmove(box->out + pre + m.len, box->out + sp.q, n - sp.q);
    memcpy(box->out + pre, m.p, m.len);
    remembered = out_push(L, len);
  } else {
    out_t b = scratch(L, n - (sp.q - sp.p) + midmax);
    emit(&b, s, n, 0, &sp, trailing);
    out_add(&b, s + sp.q, n - sp.q);
    remembered = out_push(L, b.len);
  }
  if (remembered) {
    /* Line `start` still begins where it did, unless the edit deleted the file's last lines. */
    if (sp.insert || sp.nnew > 0 || sp.q < n) {
      box->hint_line = sp.start;
      box->hint_off = sp.line_off;
    }
    box->total = box->len == 0 ? 1 : total;
  }
  push_summary(L, &sp);
  return 2;
}

static int by_start(const void *a, const void *b)
{
  const span_t *x = a, *y = b;
  return (x->start > y->start) - (x->start < y->start);
}

static int hashline_apply_many(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_checktype(L, 2, LUA_TTABLE);
  int digits = opt_len(L, 3);
  lua_Integer count = luaL_len(L, 2);
  if (count < 1) return mb_fail(L, "INVALID", "no edits given: pass at least one edit");
  luaL_argcheck(L, count <= 100000, 2, "too many edits");
  span_t *spans = lua_newuserdatauv(L, (size_t)count * sizeof *spans, 0);
  int spans_idx = lua_gettop(L);
  size_t extra = 0;
  for (lua_Integer i = 0; i < count; i++) {
    char where[32];
    snprintf(where, sizeof where, "edits[%lld]", (long long)(i + 1));
    if (lua_rawgeti(L, 2, i + 1) != LUA_TTABLE) { /* raw: the list owns its edit tables */
      return luaL_error(L, "hashline: %s must be a table (got %s)", where, luaL_typename(L, -1));
    }
    edit_err err;
    if (resolve(L, s, n, lua_gettop(L), where, digits, 0, &spans[i], &err) != 0) {
      return mb_fail(L, err.code, "edit %d: %s", (int)(i + 1), err.msg);
    }
    spans[i].index = (int)(i + 1);
    extra += spans[i].textlen + 2 * spans[i].nnew + 4;
    /* Read raw, so the edit tables own the strings kept in spans. */
    lua_settop(L, spans_idx);
  }
  qsort(spans, (size_t)count, sizeof *spans, by_start);
  for (lua_Integer i = 1; i < count; i++) {
    const span_t *a = &spans[i - 1], *b = &spans[i];
    if (b->start <= a->end) {
      const span_t *lo = a->index < b->index ? a : b, *hi = a->index < b->index ? b : a;
      edit_err err;
      fail_edit(&err, "INVALID",
                "edits %d and %d overlap (lines %zu-%zu and %zu-%zu); combine them into one edit",
                lo->index, hi->index, lo->start, lo->end, hi->start, hi->end);
      return mb_fail(L, err.code, "%s", err.msg);
    }
  }
  int trailing = n > 0 && s[n - 1] == '\n';
  out_t b = scratch(L, n + extra);
  size_t cursor = 0;
  for (lua_Integer i = 0; i < count; i++) {
    emit(&b, s, n, cursor, &spans[i], trailing);
    cursor = spans[i].q;
  }
  out_add(&b, s + cursor, n - cursor);
  out_push(L, b.len);
  /* Summaries in the order the edits were given. */
  luaL_Buffer sb;
  luaL_buffinit(L, &sb);
  for (int want = 1; want <= count; want++) {
    for (lua_Integer i = 0; i < count; i++) {
      if (spans[i].index != want) continue;
      if (want > 1) luaL_addstring(&sb, "; ");
      push_summary(L, &spans[i]);
      luaL_addvalue(&sb);
      break;
    }
  }
  luaL_pushresult(&sb);
  lua_remove(L, spans_idx);
  return 2;
}

static const luaL_Reg hashline_funcs[] = {{"hash", hashline_hash},
                                          {"format", hashline_format},
                                          {"apply", hashline_apply},
                                          {"apply_many", hashline_apply_many},
                                          {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_hashline(lua_State *L);
MB_EXPORT int luaopen_moonbox_hashline(lua_State *L)
{
  lua_newtable(L);
  hasher_box *box = lua_newuserdatauv(L, sizeof *box, 1);
  memset(box, 0, sizeof *box);
  if (luaL_newmetatable(L, HL_HASHER)) {
    lua_pushcfunction(L, hasher_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  box->h = hl_hasher_new();
  luaL_setfuncs(L, hashline_funcs, 1);
  lua_pushinteger(L, HL_DEFAULT_LEN);
  lua_setfield(L, -2, "DEFAULT_LEN");
  return 1;
}
