/* backend_glob.c: the glob matcher of glob() and grep's `glob` option (see backend_core.h).
 *
 * Compiling expands {a,b} alternatives and splits each into '/'-separated segments; a compiled
 * glob is immutable, so matching allocates nothing and threads may share it. Within a segment,
 * `*` uses the classic last-star backtracking (O(pattern x text) at worst, never exponential);
 * across segments, `**` is run as a set of NFA states in a 64-bit mask. No Lua. Fail codes:
 * INVALID (too many alternatives or segments, over-long pattern), ENOMEM. */
#include <stdlib.h>
#include <string.h>

#include "backend_core.h"

#define GLOB_MAX_ALTS 1024
#define GLOB_MAX_SEGS 63 /* NFA states fit a uint64_t: segments + the accepting state */
#define GLOB_MAX_LEN 4096

typedef struct {
  const char *p;
  size_t n;
  bool globstar; /* the segment is exactly "**" */
  bool literal;  /* no metacharacters: compare bytes */
} gseg;

typedef struct {
  gseg *segs;
  size_t nseg;
} galt;

struct mb_glob {
  galt *alts;
  size_t nalt;
  bool has_slash;
  size_t base_segs; /* leading literal directory segments shared by every alternative */
  mb_buf base;      /* those segments joined by "/" */
  mb_buf text;      /* expanded alternatives, back to back; segments point into it */
};

/* ---- one segment ------------------------------------------------------------------------------
 */

static size_t cp_len(const char *t, size_t n, size_t i)
{
  unsigned char c = (unsigned char)t[i];
  size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  return i + k <= n ? k : n - i;
}

static unsigned cp_at(const char *t, size_t n, size_t i, size_t *len)
{
  size_t k = cp_len(t, n, i);
  const unsigned char *s = (const unsigned char *)t + i;
  *len = k;
  switch (k) {
    case 2:
      return (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu);
    case 3:
      return (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
    case 4:
      return (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
    default:
      return s[0];
  }
}

/* End of the class starting at p[i] == '[', or 0 when unterminated (then '[' is literal). */
static size_t class_end(const char *p, size_t n, size_t i)
{
  size_t j = i + 1;
  if (j < n && (p[j] == '!' || p[j] == '^')) j++;
  if (j < n && p[j] == ']') j++;
  while (j < n && p[j] != ']') j += (p[j] == '\\' && j + 1 < n) ? 2 : 1;
  return j < n ? j + 1 : 0;
}

static bool class_match(const char *p, size_t start, size_t end, unsigned c)
{
  size_t j = start + 1, stop = end - 1, k;
  bool neg = false, hit = false;
  if (p[j] == '!' || p[j] == '^') neg = true, j++;
  bool first = true;
  while (j < stop) {
    if (p[j] == '\\' && j + 1 < stop)
      j++;
    else if (p[j] == ']' && !first)
      break;
    first = false;
    unsigned lo = cp_at(p, stop, j, &k), hi = lo;
    j += k;
    if (j + 1 < stop && p[j] == '-' && p[j + 1] != ']') {
      j++;
      if (p[j] == '\\' && j + 1 < stop) j++;
      hi = cp_at(p, stop, j, &k);
      j += k;
    }
    if (c >= lo && c <= hi) hit = true;
  }
  return hit != neg;
}

/* Matches one pattern unit at p[pi] against one character at t[ti]; sets both unit lengths. */
static bool unit_match(const char *p, size_t pn, size_t pi, size_t *plen, const char *t, size_t tn,
                       size_t ti, size_t *tlen)
{
  size_t k;
  unsigned c = cp_at(t, tn, ti, &k);
  *tlen = k;
  if (p[pi] == '?') {
    *plen = 1;
    return true;
  }
  if (p[pi] == '[') {
    size_t e = class_end(p, pn, pi);
    if (e) {
      *plen = e - pi;
      return class_match(p, pi, e, c);
    }
  }
  if (p[pi] == '\\' && pi + 1 < pn)
    pi++, *plen = 1;
  else
    *plen = 0;
  size_t pk;
  unsigned pc = cp_at(p, pn, pi, &pk);
  *plen += pk;
  return pc == c;
}

static bool seg_match(const gseg *s, const char *t, size_t tn)
{
  if (s->literal) return s->n == tn && memcmp(s->p, t, tn) == 0;
  const char *p = s->p;
  size_t pn = s->n, pi = 0, ti = 0, star_p = SIZE_MAX, star_t = 0;
  while (ti < tn) {
    if (pi < pn) {
      if (p[pi] == '*') {
        star_p = ++pi;
        star_t = ti;
        continue;
      }
      size_t pl, tl;
      if (unit_match(p, pn, pi, &pl, t, tn, ti, &tl)) {
        pi += pl;
        ti += tl;
        continue;
      }
    }
    if (star_p == SIZE_MAX) return false;
    star_t += cp_len(t, tn, star_t);
    ti = star_t;
    pi = star_p;
  }
  while (pi < pn && p[pi] == '*') pi++;
  return pi == pn;
}

/* ---- segments: `**` as NFA states --------------------------------------------------------------
 */

/* A `**` may match no segment at all (issue 2: "any depth including zero"), so "a" followed by
 * `**` matches a file named a too. */
static uint64_t closure(const galt *a, uint64_t st)
{
  for (size_t i = 0; i < a->nseg; i++)
    if ((st >> i & 1) && a->segs[i].globstar) st |= 1ull << (i + 1);
  return st;
}

/* Runs the path's segments; returns the state set after them (0 = dead). */
static uint64_t run(const galt *a, const char *rel, size_t len)
{
  uint64_t st = closure(a, 1);
  size_t i = 0;
  while (i < len && st) {
    size_t start = i;
    while (i < len && rel[i] != '/') i++;
    size_t sn = i - start;
    i++;
    if (sn == 0) continue;
    uint64_t next = 0;
    for (size_t k = 0; k < a->nseg; k++) {
      if (!(st >> k & 1)) continue;
      if (a->segs[k].globstar)
        next |= 1ull << k;
      else if (seg_match(&a->segs[k], rel + start, sn))
        next |= 1ull << (k + 1);
    }
    st = closure(a, next);
  }
  return st;
}

bool mb_glob_match(const mb_glob *g, const char *rel, size_t len)
{
  for (size_t i = 0; i < g->nalt; i++) {
    const galt *a = &g->alts[i];
    if (run(a, rel, len) >> a->nseg & 1) return true;
  }
  return false;
}

bool mb_glob_may_match_below(const mb_glob *g, const char *reldir, size_t len)
{
  for (size_t i = 0; i < g->nalt; i++) {
    const galt *a = &g->alts[i];
    uint64_t below = a->nseg ? (1ull << a->nseg) - 1 : 0; /* states with pattern left */
    if (run(a, reldir, len) & below) return true;
  }
  return false;
}

bool mb_glob_filter(const mb_glob *g, const char *rel, size_t len)
{
  if (g->has_slash) return mb_glob_match(g, rel, len);
  size_t n;
  const char *base = mb_path_basename(rel, len, &n);
  return mb_glob_match(g, base, n);
}

const char *mb_glob_base(const mb_glob *g, size_t *len)
{
  *len = g->base.len;
  return g->base.data ? g->base.data : "";
}

bool mb_glob_has_slash(const mb_glob *g)
{
  return g->has_slash;
}

/* ---- compiling ------------------------------------------------------------------------------- */

/* Finds the first top-level {..,..} group; returns false when there is none. */
static bool find_braces(const char *p, size_t n, size_t *open, size_t *close)
{
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\\') {
      i++;
      continue;
    }
    if (p[i] == '[') {
      size_t e = class_end(p, n, i);
      if (e) i = e - 1;
      continue;
    }
    if (p[i] != '{') continue;
    int depth = 0;
    bool comma = false;
    for (size_t j = i; j < n; j++) {
      if (p[j] == '\\') {
        j++;
        continue;
      }
      if (p[j] == '{')
        depth++;
      else if (p[j] == '}' && --depth == 0) {
        if (!comma) break;
        *open = i, *close = j;
        return true;
      } else if (p[j] == ',' && depth == 1) {
        comma = true;
      }
    }
  }
  return false;
}

typedef struct {
  mb_buf *text;
  size_t count;
  size_t *ends; /* end offset of each alternative in text */
  bool overflow;
} expansion;

static bool expand(expansion *ex, const char *p, size_t n)
{
  size_t open, close;
  if (!find_braces(p, n, &open, &close)) {
    if (ex->count >= GLOB_MAX_ALTS || ex->text->len + n > GLOB_MAX_ALTS * GLOB_MAX_LEN) {
      ex->overflow = true;
      return true;
    }
    if (!mb_buf_add(ex->text, p, n)) return false;
    ex->ends[ex->count++] = ex->text->len;
    return true;
  }
  size_t start = open + 1;
  int depth = 0;
  for (size_t j = open + 1; j <= close && !ex->overflow; j++) {
    if (p[j] == '\\') {
      j++;
      continue;
    }
    if (p[j] == '{') depth++;
    if (j == close || (p[j] == ',' && depth == 0)) {
      mb_buf one = MB_BUF_INIT;
      bool ok = mb_buf_add(&one, p, open) && mb_buf_add(&one, p + start, j - start) &&
                mb_buf_add(&one, p + close + 1, n - close - 1) && expand(ex, one.data, one.len);
      mb_buf_free(&one);
      if (!ok) return false;
      start = j + 1;
    }
    if (p[j] == '}') depth--;
  }
  return true;
}

static bool is_literal(const char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] == '*' || p[i] == '?' || p[i] == '[' || p[i] == '\\') return false;
  return true;
}

static mb_code glob_fail(mb_buf *err, const char *pat, size_t len, const char *why)
{
  mb_buf_reset(err);
  mb_buf_addstr(err, "invalid glob ");
  mb_buf_addquoted(err, pat, len, 200);
  mb_buf_printf(err, ": %s", why);
  return MB_INVALID;
}

void mb_glob_free(mb_glob *g)
{
  if (!g) return;
  if (g->alts)
    for (size_t i = 0; i < g->nalt; i++) free(g->alts[i].segs);
  free(g->alts);
  mb_buf_free(&g->text);
  mb_buf_free(&g->base);
  free(g);
}

/* Whether a segment other than `**` follows segment k: then every match has a segment below the
 * first k + 1, and those may serve as the search base. */
static bool real_after(const galt *a, size_t k)
{
  for (size_t j = k + 1; j < a->nseg; j++)
    if (!a->segs[j].globstar) return true;
  return false;
}

mb_code mb_glob_compile(const char *pat, size_t len, mb_glob **out, mb_buf *err)
{
  *out = NULL;
  if (len > GLOB_MAX_LEN) return glob_fail(err, pat, len, "longer than 4096 bytes");
  if (memchr(pat, '\0', len)) return glob_fail(err, pat, len, "it contains a NUL byte");
  for (;;) { /* a leading "/" or "./" names the search root itself */
    if (len && pat[0] == '/')
      pat++, len--;
    else if (len >= 2 && pat[0] == '.' && pat[1] == '/')
      pat += 2, len -= 2;
    else
      break;
  }
  mb_glob *g = calloc(1, sizeof *g);
  size_t *ends = malloc(GLOB_MAX_ALTS * sizeof *ends);
  if (!g || !ends) goto oom;
  g->has_slash = memchr(pat, '/', len) != NULL;
  expansion ex = {&g->text, 0, ends, false};
  if (!expand(&ex, pat, len)) goto oom;
  if (ex.overflow) {
    free(ends);
    mb_glob_free(g);
    return glob_fail(err, pat, len, "more than 1024 {a,b} alternatives; simplify it");
  }
  if (ex.count == 0 && !mb_buf_add(&g->text, "", 0)) goto oom;
  if (ex.count == 0) ends[ex.count++] = 0;
  g->alts = calloc(ex.count, sizeof *g->alts);
  if (!g->alts) goto oom;
  g->nalt = ex.count;
  for (size_t a = 0; a < ex.count; a++) {
    size_t from = a ? ends[a - 1] : 0, to = ends[a];
    const char *p = g->text.data + from;
    size_t n = to - from, nseg = 0;
    galt *alt = &g->alts[a];
    alt->segs = malloc((n / 2 + 2) * sizeof *alt->segs);
    if (!alt->segs) goto oom;
    for (size_t i = 0; i < n;) {
      size_t s = i;
      while (i < n && p[i] != '/') i++;
      if (i > s) {
        if (nseg >= GLOB_MAX_SEGS) {
          free(ends);
          mb_glob_free(g);
          return glob_fail(err, pat, len, "more than 63 path segments");
        }
        gseg *sg = &alt->segs[nseg++];
        sg->p = p + s;
        sg->n = i - s;
        sg->globstar = sg->n == 2 && p[s] == '*' && p[s + 1] == '*';
        sg->literal = !sg->globstar && is_literal(sg->p, sg->n);
      }
      i++;
    }
    /* Consecutive "**" segments mean the same as one. */
    size_t w = 0;
    for (size_t r = 0; r < nseg; r++)
      if (!(w && alt->segs[r].globstar && alt->segs[w - 1].globstar)) alt->segs[w++] = alt->segs[r];
    alt->nseg = w;
  }
  free(ends);
  /* The literal directory prefix: segments before the last that every alternative spells the
   * same way without metacharacters (a walker may start there). */
  size_t k = 0;
  for (;; k++) {
    const galt *a0 = &g->alts[0];
    if (!real_after(a0, k) || !a0->segs[k].literal) break;
    const gseg *sk = &a0->segs[k];
    if ((sk->n == 1 && sk->p[0] == '.') || (sk->n == 2 && sk->p[0] == '.' && sk->p[1] == '.'))
      break;
    bool same = true;
    for (size_t a = 1; a < g->nalt && same; a++) {
      const galt *ai = &g->alts[a];
      same = real_after(ai, k) && ai->segs[k].literal && ai->segs[k].n == a0->segs[k].n &&
             memcmp(ai->segs[k].p, a0->segs[k].p, a0->segs[k].n) == 0;
    }
    if (!same) break;
    if ((k && !mb_buf_add(&g->base, "/", 1)) ||
        !mb_buf_add(&g->base, a0->segs[k].p, a0->segs[k].n)) {
      mb_glob_free(g);
      return MB_ENOMEM;
    }
  }
  g->base_segs = k;
  *out = g;
  return NULL;
oom:
  free(ends);
  mb_glob_free(g);
  return MB_ENOMEM;
}
