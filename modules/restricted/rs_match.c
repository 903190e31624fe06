/* rs_match.c: string.find / match / gmatch / gsub for restricted states, with a deadline.
 *
 * Lua's own matcher runs in C and never reaches a hook, so a pattern such as
 * ("a"):rep(1e5):find(".-.-.-.-b") would keep a policy busy for centuries whatever the deadline.
 * This matcher implements the same pattern language (Lua 5.4 manual §6.4.1) but counts its steps
 * and checks the restricted state's deadline every 1024 of them, raising "deadline exceeded".
 * Plain finds use memmem (linear), not a quadratic scan. Nothing is allocated outside R; errors
 * are raised in R with the messages stock Lua uses. */
#define _GNU_SOURCE
#include <ctype.h>
#include <string.h>

#include "rs.h"

#define MAXCAP 32
#define MAXDEPTH 200
#define CAP_UNF (-1)
#define CAP_POS (-2)

struct ms {
  lua_State *L;
  const char *src, *src_end, *p_end;
  int level, depth;
  unsigned steps;
  struct {
    const char *init;
    ptrdiff_t len;
  } cap[MAXCAP];
};

static const char *match(struct ms *m, const char *s, const char *p);

static void tick(struct ms *m)
{
  if ((++m->steps & 1023u) == 0) rs_check_deadline(m->L);
}

static int class_is(int c, int cl)
{
  int r;
  switch (tolower(cl)) {
    case 'a':
      r = isalpha(c);
      break;
    case 'c':
      r = iscntrl(c);
      break;
    case 'd':
      r = isdigit(c);
      break;
    case 'g':
      r = isgraph(c);
      break;
    case 'l':
      r = islower(c);
      break;
    case 'p':
      r = ispunct(c);
      break;
    case 's':
      r = isspace(c);
      break;
    case 'u':
      r = isupper(c);
      break;
    case 'w':
      r = isalnum(c);
      break;
    case 'x':
      r = isxdigit(c);
      break;
    default:
      return cl == c;
  }
  if (isupper(cl)) r = !r;
  return r != 0;
}

/* p points at '[', ec at the closing ']'. */
static int in_set(int c, const char *p, const char *ec)
{
  int neg = 0;
  p++;
  if (*p == '^') {
    neg = 1;
    p++;
  }
  while (p < ec) {
    if (*p == '%' && p + 1 < ec) {
      if (class_is(c, (unsigned char)p[1])) return !neg;
      p += 2;
    } else if (p[1] == '-' && p + 2 < ec) {
      if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return !neg;
      p += 3;
    } else {
      if ((unsigned char)*p == c) return !neg;
      p++;
    }
  }
  return neg;
}

/* The end of the single-character class starting at p. */
static const char *class_end(struct ms *m, const char *p)
{
  char c = *p++;
  if (c == '%') {
    if (p >= m->p_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (p < m->p_end && *p == '^') p++;
    do { /* the first member may be ']' */
      if (p >= m->p_end) luaL_error(m->L, "malformed pattern (missing ']')");
      c = *p++;
      if (c == '%' && p < m->p_end) p++;
    } while (p >= m->p_end || *p != ']');
    return p + 1;
  }
  return p;
}

static int single_match(struct ms *m, const char *s, const char *p, const char *ep)
{
  if (s >= m->src_end) return 0;
  int c = (unsigned char)*s;
  switch (*p) {
    case '.':
      return 1;
    case '%':
      return class_is(c, (unsigned char)p[1]);
    case '[':
      return in_set(c, p, ep - 1);
    default:
      return (unsigned char)*p == c;
  }
}

static const char *max_expand(struct ms *m, const char *s, const char *p, const char *ep)
{
  ptrdiff_t i = 0;
  while (single_match(m, s + i, p, ep)) {
    i++;
    tick(m);
  }
  for (; i >= 0; i--) {
    const char *r = match(m, s + i, ep + 1);
    if (r) return r;
  }
  return NULL;
}

static const char *min_expand(struct ms *m, const char *s, const char *p, const char *ep)
{
  for (;;) {
    const char *r = match(m, s, ep + 1);
    if (r) return r;
    if (!single_match(m, s, p, ep)) return NULL;
    s++;
  }
}

static const char *start_cap(struct ms *m, const char *s, const char *p, ptrdiff_t what)
{
  if (m->level >= MAXCAP) luaL_error(m->L, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  const char *r = match(m, s, p);
  if (r == NULL) m->level--;
  return r;
}

static const char *end_cap(struct ms *m, const char *s, const char *p)
{
  int l = m->level - 1;
  while (l >= 0 && m->cap[l].len != CAP_UNF) l--;
  if (l < 0) luaL_error(m->L, "invalid pattern capture");
  m->cap[l].len = s - m->cap[l].init;
  const char *r = match(m, s, p);
  if (r == NULL) m->cap[l].len = CAP_UNF;
  return r;
}

static int check_capture(struct ms *m, int c)
{
  int l = c - '1';
  if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNF)
    luaL_error(m->L, "invalid capture index %%%d", l + 1);
  return l;
}

static const char *match_capture(struct ms *m, const char *s, int c)
{
  int l = check_capture(m, c);
  ptrdiff_t len = m->cap[l].len;
  if (len < 0) return NULL; /* a position capture never matches text */
  if (m->src_end - s >= len && memcmp(m->cap[l].init, s, (size_t)len) == 0) return s + len;
  return NULL;
}

static const char *match_balance(struct ms *m, const char *s, const char *p)
{
  if (p + 1 >= m->p_end) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m->src_end || *s != *p) return NULL;
  char open = p[0], close = p[1];
  int depth = 1;
  while (++s < m->src_end) {
    tick(m);
    if (*s == close) {
      if (--depth == 0) return s + 1;
    } else if (*s == open) {
      depth++;
    }
  }
  return NULL;
}

static const char *match_frontier(struct ms *m, const char *s, const char *p, const char **next)
{
  if (p >= m->p_end || *p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
  const char *ep = class_end(m, p);
  int prev = (s == m->src) ? '\0' : (unsigned char)s[-1];
  int cur = (s < m->src_end) ? (unsigned char)*s : '\0';
  *next = ep;
  return (!in_set(prev, p, ep - 1) && in_set(cur, p, ep - 1)) ? s : NULL;
}

/* Matches pattern p (to p_end) at s; the end of the match, or NULL. */
static const char *match(struct ms *m, const char *s, const char *p)
{
  if (++m->depth > MAXDEPTH) luaL_error(m->L, "pattern too complex");
  tick(m);
  while (p < m->p_end && s != NULL) {
    if (*p == '(') {
      s = (p + 1 < m->p_end && p[1] == ')') ? start_cap(m, s, p + 2, CAP_POS)
                                            : start_cap(m, s, p + 1, CAP_UNF);
      break;
    }
    if (*p == ')') {
      s = end_cap(m, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == m->p_end) {
      if (s != m->src_end) s = NULL;
      break;
    }
    if (*p == '%' && p + 1 < m->p_end) {
      int c = (unsigned char)p[1];
      if (c == 'b') {
        s = match_balance(m, s, p + 2);
        p += 4;
        continue;
      }
      if (c == 'f') {
        s = match_frontier(m, s, p + 2, &p);
        continue;
      }
      if (isdigit(c)) {
        s = match_capture(m, s, c);
        p += 2;
        continue;
      }
    }
    const char *ep = class_end(m, p);
    int q = ep < m->p_end ? *ep : '\0';
    if (!single_match(m, s, p, ep)) {
      if (q == '*' || q == '?' || q == '-') {
        p = ep + 1; /* the item may match nothing */
        continue;
      }
      s = NULL;
      break;
    }
    if (q == '?') {
      const char *r = match(m, s + 1, ep + 1);
      if (r) {
        s = r;
        break;
      }
      p = ep + 1;
    } else if (q == '+') {
      s = max_expand(m, s + 1, p, ep);
      break;
    } else if (q == '*') {
      s = max_expand(m, s, p, ep);
      break;
    } else if (q == '-') {
      s = min_expand(m, s, p, ep);
      break;
    } else {
      s++;
      p = ep;
    }
  }
  m->depth--;
  return s;
}

static void push_one(struct ms *m, int i, const char *s, const char *e)
{
  if (i >= m->level) {
    if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(m->L, s, (size_t)(e - s));
    return;
  }
  ptrdiff_t l = m->cap[i].len;
  if (l == CAP_UNF) luaL_error(m->L, "unfinished capture");
  if (l == CAP_POS)
    lua_pushinteger(m->L, (m->cap[i].init - m->src) + 1);
  else
    lua_pushlstring(m->L, m->cap[i].init, (size_t)l);
}

/* Pushes the captures (or the whole match when there are none and s is given). */
static int push_caps(struct ms *m, const char *s, const char *e)
{
  int n = (m->level == 0 && s) ? 1 : m->level;
  luaL_checkstack(m->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_one(m, i, s, e);
  return n;
}

static void ms_init(struct ms *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
  m->L = L;
  m->src = s;
  m->src_end = s + ls;
  m->p_end = p + lp;
  m->level = 0;
  m->depth = 0;
  m->steps = 0;
}

static void ms_reset(struct ms *m)
{
  m->level = 0;
  m->depth = 0;
}

/* Lua 5.4's rule for an initial position: negative counts from the end, clamped at 1. */
static size_t start_pos(lua_Integer pos, size_t len)
{
  if (pos > 0) return (size_t)pos;
  if (pos == 0 || pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

static int no_specials(const char *p, size_t lp)
{
  for (size_t i = 0; i < lp; i++)
    if (strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0') return 0;
  return 1;
}

static int find_aux(lua_State *L, int find)
{
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_pos(luaL_optinteger(L, 3, 1), ls);
  if (init > ls + 1) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    const char *r = memmem(s + init - 1, ls - init + 1, p, lp);
    if (r) {
      lua_pushinteger(L, (r - s) + 1);
      lua_pushinteger(L, (lua_Integer)((size_t)(r - s) + lp));
      return 2;
    }
  } else {
    struct ms m;
    int anchor = lp > 0 && *p == '^';
    if (anchor) p++, lp--;
    ms_init(&m, L, s, ls, p, lp);
    const char *s1 = s + init - 1;
    do {
      ms_reset(&m);
      const char *e = match(&m, s1, p);
      if (e != NULL) {
        if (!find) return push_caps(&m, s1, e);
        lua_pushinteger(L, (s1 - s) + 1);
        lua_pushinteger(L, e - s);
        return push_caps(&m, NULL, NULL) + 2;
      }
    } while (s1++ < m.src_end && !anchor);
  }
  luaL_pushfail(L);
  return 1;
}

static int rs_find(lua_State *L)
{
  return find_aux(L, 1);
}

static int rs_match(lua_State *L)
{
  return find_aux(L, 0);
}

struct gm {
  size_t src;
  ptrdiff_t last; /* end of the previous match, -1 before the first */
};

static int gmatch_aux(lua_State *L)
{
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  struct gm *g = lua_touserdata(L, lua_upvalueindex(3));
  struct ms m;
  ms_init(&m, L, s, ls, p, lp);
  for (size_t off = g->src; off <= ls; off++) {
    ms_reset(&m);
    const char *e = match(&m, s + off, p);
    if (e != NULL && (e - s) != g->last) {
      g->src = (size_t)(e - s);
      g->last = e - s;
      return push_caps(&m, s + off, e);
    }
  }
  g->src = ls + 1;
  return 0;
}

static int rs_gmatch(lua_State *L)
{
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t init = start_pos(luaL_optinteger(L, 3, 1), ls);
  lua_settop(L, 2);
  struct gm *g = lua_newuserdatauv(L, sizeof *g, 0);
  g->src = init > ls + 1 ? ls + 1 : init - 1;
  g->last = -1;
  lua_pushcclosure(L, gmatch_aux, 3);
  return 1;
}

static void add_string(struct ms *m, luaL_Buffer *b, const char *s, const char *e)
{
  size_t l;
  const char *r = lua_tolstring(m->L, 3, &l);
  const char *end = r + l;
  for (; r < end; r++) {
    if (*r != '%') {
      luaL_addchar(b, *r);
      continue;
    }
    r++;
    if (r < end && *r == '%') {
      luaL_addchar(b, '%');
    } else if (r < end && isdigit((unsigned char)*r)) {
      if (*r == '0') {
        luaL_addlstring(b, s, (size_t)(e - s));
      } else {
        push_one(m, *r - '1', s, e);
        lua_tostring(m->L, -1); /* a position capture is a number */
        luaL_addvalue(b);
      }
    } else {
      luaL_error(m->L, "invalid use of '%%' in replacement string");
    }
  }
}

static void add_value(struct ms *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
  lua_State *L = m->L;
  if (tr == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_caps(m, s, e);
    lua_call(L, n, 1);
  } else if (tr == LUA_TTABLE) {
    push_one(m, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_string(m, b, s, e);
    return;
  }
  if (!lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  } else {
    luaL_addvalue(b);
  }
}

static int rs_gsub(lua_State *L)
{
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  int anchor = lp > 0 && *p == '^';
  if (anchor) p++, lp--;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  struct ms m;
  ms_init(&m, L, src, ls, p, lp);
  const char *last = NULL;
  lua_Integer n = 0;
  while (n < max_n) {
    ms_reset(&m);
    const char *e = match(&m, src, p);
    if (e != NULL && e != last) {
      n++;
      add_value(&m, &b, src, e, tr);
      src = last = e;
    } else if (src < m.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  luaL_addlstring(&b, src, (size_t)(m.src_end - src));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

void rs_open_match(lua_State *R)
{
  static const luaL_Reg fns[] = {{"find", rs_find},
                                 {"match", rs_match},
                                 {"gmatch", rs_gmatch},
                                 {"gsub", rs_gsub},
                                 {NULL, NULL}};
  luaL_setfuncs(R, fns, 0);
}
