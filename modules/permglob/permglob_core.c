/* permglob_core.c: compile and match permission globs (the reference's §8.3 semantics).
 *
 * Pattern language, matched against the whole subject, case-sensitively, by code point:
 *   `**` followed by `/`  zero or more leading directories, i.e. the regex (?:.*\/)?
 *   any other `**`        any run of characters, `/` and newlines included
 *   `*`                   any run of characters other than `/`
 *   `?`                   one character other than `/`
 *   `[...]`, `[!...]`, `[^...]`  a class (ranges a-z; `]` may come first; a backslash escapes
 *                         the next character); negated classes match `/` too, as in the regex
 *                         the reference renders; an unclosed `[` is a literal
 *   anything else         itself
 * A class the reference cannot render (a reversed range, a trailing backslash, an escape such as
 * \d) makes the pattern inert: it matches nothing, so the rule never fires.
 *
 * No Lua here. The caller provides every buffer; nothing is allocated or freed. No fail codes:
 * pg_parse refuses only an over-long pattern. */
#define _GNU_SOURCE /* memrchr */
#include "permglob_core.h"

#include <string.h>

enum { K_CHAR, K_QMARK, K_CLASS, K_STAR, K_ANY, K_DIRS };             /* token kinds */
enum { S_CHAR, S_QMARK, S_CLASS, S_STAR, S_ANY, S_DENTRY, S_DSLASH }; /* state kinds */

#define PG_INVALID_BASE 0x110000u /* an undecodable byte b stands for the code point BASE+b */
#define PG_MAX_WORDS ((3u * PG_MAX_PATTERN + 1u + 63u) / 64u + 1u)

typedef struct pg_tok {
  uint8_t kind, neg;
  uint32_t cp, r0, nr; /* CHAR: cp; CLASS: ranges r0 .. r0+nr-1 */
} pg_tok;

typedef struct pg_range {
  uint32_t lo, hi;
} pg_range;

typedef struct pg_special {
  uint32_t state;
  uint8_t kind, neg;
  uint32_t cp, r0, nr;
} pg_special;

struct pg_pattern {
  uint32_t nstates, nwords, nspecial;
  uint32_t min_bytes, prefix_len, suffix_len, needle_len, prefix_states;
  uint8_t inert, literal, basename;
  /* byte offsets from the start of the struct */
  uint32_t off_ascii, off_loop_any, off_loop_star, off_eps1, off_eps3, off_nonascii;
  uint32_t off_init, off_done_any, off_done_star, off_special, off_ranges, off_bytes;
};

#define AT(p, off, type) ((type *)((char *)(p) + (off)))
#define CAT(p, off, type) ((const type *)((const char *)(p) + (off)))

static size_t round8(size_t n)
{
  return (n + 7u) & ~(size_t)7u;
}

/* One code point from s[*i]; an invalid sequence yields PG_INVALID_BASE + its first byte. */
static uint32_t decode(const unsigned char *s, size_t n, size_t *i)
{
  unsigned char b = s[*i];
  uint32_t cp, min;
  size_t need;
  if (b < 0x80) {
    (*i)++;
    return b;
  }
  if ((b & 0xE0) == 0xC0) {
    cp = b & 0x1Fu, need = 1, min = 0x80;
  } else if ((b & 0xF0) == 0xE0) {
    cp = b & 0x0Fu, need = 2, min = 0x800;
  } else if ((b & 0xF8) == 0xF0) {
    cp = b & 0x07u, need = 3, min = 0x10000;
  } else {
    goto invalid;
  }
  if (n - *i <= need) goto invalid;
  for (size_t k = 1; k <= need; k++) {
    unsigned char c = s[*i + k];
    if ((c & 0xC0) != 0x80) goto invalid;
    cp = (cp << 6) | (c & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto invalid;
  *i += need + 1;
  return cp;
invalid:
  (*i)++;
  return PG_INVALID_BASE + b;
}

static size_t encode(uint32_t cp, unsigned char *out)
{
  if (cp >= PG_INVALID_BASE) {
    out[0] = (unsigned char)(cp - PG_INVALID_BASE);
    return 1;
  }
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xC0 | (cp >> 6));
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (unsigned char)(0xE0 | (cp >> 12));
    out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | (cp >> 18));
  out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

static size_t cp_len(uint32_t cp)
{
  unsigned char tmp[4];
  return encode(cp, tmp);
}

/* One class member at b[*j]: a character or a backslash escape. Returns 0 when the reference's
 * regex would not compile (the pattern is then inert). */
static int class_item(const unsigned char *b, size_t blen, size_t *j, uint32_t *cp)
{
  if (b[*j] != '\\') {
    *cp = decode(b, blen, j);
    return 1;
  }
  if (*j + 1 >= blen) return 0; /* trailing backslash: the regex's class never closes */
  unsigned char e = b[*j + 1];
  static const char controls[] = "n\nt\tr\rf\fv\va\ab\b";
  if (e >= 0x80 || !((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))) {
    *j += 1;
    *cp = decode(b, blen, j);
    return 1;
  }
  for (size_t k = 0; controls[k]; k += 2) {
    if ((unsigned char)controls[k] == e) {
      *cp = (unsigned char)controls[k + 1];
      *j += 2;
      return 1;
    }
  }
  return 0; /* \d, \w, \x41, \0 ...: not reproduced, so the rule is inert */
}

/* Parses a class body into ranges; returns 0 for an unrenderable class. */
static int parse_class(const unsigned char *b, size_t blen, pg_range *ranges, uint32_t *nr)
{
  size_t j = 0;
  while (j < blen) {
    uint32_t lo, hi;
    if (!class_item(b, blen, &j, &lo)) return 0;
    hi = lo;
    if (j + 1 < blen && b[j] == '-') {
      j++;
      if (!class_item(b, blen, &j, &hi)) return 0;
      if (hi < lo) return 0;
    }
    ranges[*nr].lo = lo;
    ranges[*nr].hi = hi;
    (*nr)++;
  }
  return 1;
}

/* Wildcard runs collapse: three stars are two, a doubled "two stars and a slash" is one, two
 * stars then a slash then one star is two stars... The merged pattern matches the same strings
 * and keeps every chain of epsilon moves short. */
static int merge(uint8_t below, uint8_t top, uint8_t *out)
{
  if (below == K_ANY && (top == K_STAR || top == K_ANY || top == K_DIRS))
    *out = K_ANY;
  else if (below == K_STAR && top == K_STAR)
    *out = K_STAR;
  else if (below == K_STAR && top == K_ANY)
    *out = K_ANY;
  else if (below == K_DIRS && top == K_DIRS)
    *out = K_DIRS;
  else if (below == K_DIRS && (top == K_ANY || top == K_STAR))
    *out = K_ANY;
  else
    return 0;
  return 1;
}

static void push(pg_tok *toks, uint32_t *nt, pg_tok t)
{
  toks[(*nt)++] = t;
  while (*nt >= 2) {
    uint8_t k;
    if (!merge(toks[*nt - 2].kind, toks[*nt - 1].kind, &k)) break;
    (*nt)--;
    toks[*nt - 1].kind = k;
  }
}

static int class_has(const pg_range *r, uint32_t nr, uint32_t cp)
{
  for (uint32_t k = 0; k < nr; k++)
    if (cp >= r[k].lo && cp <= r[k].hi) return 1;
  return 0;
}

size_t pg_scratch_size(size_t len)
{
  return round8((len + 1) * sizeof(pg_tok)) + round8((len + 1) * sizeof(pg_range));
}

static pg_tok *scratch_toks(const void *scratch)
{
  return (pg_tok *)scratch;
}

static pg_range *scratch_ranges(const void *scratch, size_t len)
{
  return (pg_range *)((char *)scratch + round8((len + 1) * sizeof(pg_tok)));
}

int pg_parse(const char *pattern, size_t len, void *scratch, pg_info *info)
{
  const unsigned char *pat = (const unsigned char *)pattern;
  memset(info, 0, sizeof *info);
  if (len > PG_MAX_PATTERN) return -1;
  pg_tok *toks = scratch_toks(scratch);
  pg_range *ranges = scratch_ranges(scratch, len);
  uint32_t nt = 0, nr = 0;
  size_t i = 0;
  while (i < len) {
    pg_tok t = {0};
    if (pat[i] == '*' && i + 1 < len && pat[i + 1] == '*') {
      t.kind = (i + 2 < len && pat[i + 2] == '/') ? K_DIRS : K_ANY;
      i += t.kind == K_DIRS ? 3 : 2;
    } else if (pat[i] == '*') {
      t.kind = K_STAR, i++;
    } else if (pat[i] == '?') {
      t.kind = K_QMARK, i++;
    } else if (pat[i] == '[') {
      size_t end = i + 1;
      int neg = end < len && (pat[end] == '!' || pat[end] == '^');
      if (neg) end++;
      if (end < len && pat[end] == ']') end++;
      while (end < len && pat[end] != ']') end++;
      if (end >= len) { /* unclosed: the `[` is a literal */
        t.kind = K_CHAR, t.cp = '[', i++;
      } else {
        size_t body = i + 1 + (size_t)neg;
        t.kind = K_CLASS, t.neg = (uint8_t)neg, t.r0 = nr;
        if (!parse_class(pat + body, end - body, ranges, &nr)) info->inert = 1;
        t.nr = nr - t.r0;
        i = end + 1;
      }
    } else {
      t.kind = K_CHAR;
      t.cp = decode(pat, len, &i);
    }
    push(toks, &nt, t);
  }
  /* `**` + `/` then a tail that can never match a `/`: the tail alone decides, on the last path
   * segment (the leading part must then run through the last `/`). Most secrets rules look so. */
  if (nt >= 2 && toks[0].kind == K_DIRS) {
    int tail_only = 1;
    for (uint32_t k = 1; k < nt && tail_only; k++) {
      const pg_tok *t = &toks[k];
      if (t->kind == K_CHAR)
        tail_only = t->cp != '/';
      else if (t->kind == K_CLASS)
        tail_only = !t->neg && !class_has(ranges + t->r0, t->nr, '/');
      else
        tail_only = t->kind == K_STAR || t->kind == K_QMARK;
    }
    if (tail_only) {
      memmove(toks, toks + 1, (nt - 1) * sizeof *toks);
      nt--;
      info->basename = 1;
    }
  }
  info->ntokens = nt;
  info->nranges = nr;
  uint32_t ns = 0, nspecial = 0;
  for (uint32_t k = 0; k < nt; k++) {
    ns += toks[k].kind == K_DIRS ? 3 : 1;
    if (toks[k].kind == K_CLASS || (toks[k].kind == K_CHAR && toks[k].cp >= 0x80)) nspecial++;
  }
  info->nstates = ns;
  info->nwords = (ns + 1 + 63) / 64;
  info->nspecial = nspecial;
  /* prefix, suffix and needle bytes: at most 3x the literal bytes */
  uint32_t lit = 0;
  for (uint32_t k = 0; k < nt; k++)
    if (toks[k].kind == K_CHAR) lit += (uint32_t)cp_len(toks[k].cp);
  info->nbytes = 3 * lit;
  info->pattern_len = (uint32_t)len;
  return 0;
}

static void layout(pg_pattern *p, const pg_info *info)
{
  size_t w = (size_t)info->nwords * 8u, off = round8(sizeof(pg_pattern));
  p->off_ascii = (uint32_t)off, off += 128u * w;
  p->off_loop_any = (uint32_t)off, off += w;
  p->off_loop_star = (uint32_t)off, off += w;
  p->off_eps1 = (uint32_t)off, off += w;
  p->off_eps3 = (uint32_t)off, off += w;
  p->off_nonascii = (uint32_t)off, off += w;
  p->off_init = (uint32_t)off, off += w;
  p->off_done_any = (uint32_t)off, off += w;
  p->off_done_star = (uint32_t)off, off += w;
  p->off_special = (uint32_t)off, off += round8(info->nspecial * sizeof(pg_special));
  p->off_ranges = (uint32_t)off, off += round8(info->nranges * sizeof(pg_range));
  p->off_bytes = (uint32_t)off;
}

size_t pg_compiled_size(const pg_info *info)
{
  size_t w = (size_t)info->nwords * 8u;
  return round8(sizeof(pg_pattern)) + 136u * w + round8(info->nspecial * sizeof(pg_special)) +
         round8(info->nranges * sizeof(pg_range)) + round8(info->nbytes + 1);
}

static void setbit(uint64_t *set, uint32_t i)
{
  set[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Adds every state reachable by epsilon moves (all forward: +1 after a wildcard, +3 past a
 * skipped `**` followed by `/`). Runs of wildcards are merged, so this settles in a few rounds. */
static void closure(uint64_t *set, const uint64_t *eps1, const uint64_t *eps3, uint32_t w)
{
  for (;;) {
    uint64_t changed = 0, c1 = 0, c3 = 0;
    for (uint32_t k = 0; k < w; k++) {
      uint64_t a1 = set[k] & eps1[k], a3 = set[k] & eps3[k];
      uint64_t add = (a1 << 1) | c1 | (a3 << 3) | c3;
      c1 = a1 >> 63;
      c3 = a3 >> 61;
      changed |= add & ~set[k];
      set[k] |= add;
    }
    if (!changed) return;
  }
}

static void copy_bytes(const pg_tok *toks, uint32_t from, uint32_t to, unsigned char *out,
                       uint32_t *len)
{
  for (uint32_t k = from; k < to; k++) *len += (uint32_t)encode(toks[k].cp, out + *len);
}

void pg_build(pg_pattern *p, const void *scratch, const pg_info *info)
{
  memset(p, 0, pg_compiled_size(info));
  layout(p, info);
  const pg_tok *toks = scratch_toks(scratch);
  uint32_t nt = info->ntokens, w = info->nwords;
  p->nstates = info->nstates, p->nwords = w, p->nspecial = info->nspecial;
  p->inert = (uint8_t)info->inert;
  p->basename = (uint8_t)info->basename;
  uint64_t *ascii = AT(p, p->off_ascii, uint64_t);
  uint64_t *loop_any = AT(p, p->off_loop_any, uint64_t);
  uint64_t *loop_star = AT(p, p->off_loop_star, uint64_t);
  uint64_t *eps1 = AT(p, p->off_eps1, uint64_t), *eps3 = AT(p, p->off_eps3, uint64_t);
  uint64_t *nonascii = AT(p, p->off_nonascii, uint64_t);
  pg_special *special = AT(p, p->off_special, pg_special);
  pg_range *ranges = AT(p, p->off_ranges, pg_range);
  if (info->nranges)
    memcpy(ranges, scratch_ranges(scratch, info->pattern_len), info->nranges * sizeof(pg_range));
  uint32_t s = 0, nsp = 0;
  for (uint32_t k = 0; k < nt; k++) {
    const pg_tok *t = &toks[k];
    switch (t->kind) {
      case K_CHAR:
        if (t->cp < 0x80)
          setbit(ascii + t->cp * w, s);
        else
          special[nsp++] = (pg_special){s, S_CHAR, 0, t->cp, 0, 0};
        s++;
        break;
      case K_QMARK:
        for (uint32_t c = 0; c < 128; c++)
          if (c != '/') setbit(ascii + c * w, s);
        setbit(nonascii, s);
        s++;
        break;
      case K_CLASS:
        for (uint32_t c = 0; c < 128; c++)
          if (class_has(ranges + t->r0, t->nr, c) != t->neg) setbit(ascii + c * w, s);
        special[nsp++] = (pg_special){s, S_CLASS, t->neg, 0, t->r0, t->nr};
        s++;
        break;
      case K_STAR:
        setbit(loop_star, s), setbit(eps1, s), s++;
        break;
      case K_ANY:
        setbit(loop_any, s), setbit(eps1, s), s++;
        break;
      default: /* K_DIRS: entry (skip or enter), any-loop, then the '/' */
        setbit(eps1, s), setbit(eps3, s), s++;
        setbit(loop_any, s), setbit(eps1, s), s++;
        setbit(ascii + (uint32_t)'/' * w, s), s++;
        break;
    }
  }
  /* literal prefilters */
  unsigned char *bytes = AT(p, p->off_bytes, unsigned char);
  uint32_t pre = 0, suf = nt, nb = 0;
  while (pre < nt && toks[pre].kind == K_CHAR) pre++;
  while (suf > pre && toks[suf - 1].kind == K_CHAR) suf--;
  p->literal = pre == nt;
  p->prefix_states = pre;
  copy_bytes(toks, 0, pre, bytes, &nb);
  p->prefix_len = nb;
  if (!p->literal) {
    copy_bytes(toks, suf, nt, bytes + nb, &p->suffix_len);
    nb += p->suffix_len;
    uint32_t best = 0, best_from = 0, run = 0, best_bytes = 0;
    for (uint32_t k = pre; k <= suf; k++) {
      if (k < suf && toks[k].kind == K_CHAR) {
        run++;
        continue;
      }
      uint32_t from = k - run, rb = 0;
      for (uint32_t q = from; q < k; q++) rb += (uint32_t)cp_len(toks[q].cp);
      if (rb > best_bytes) best = run, best_from = from, best_bytes = rb;
      run = 0;
    }
    if (best) copy_bytes(toks, best_from, best_from + best, bytes + nb, &p->needle_len);
  }
  for (uint32_t k = 0; k < nt; k++) {
    if (toks[k].kind == K_CHAR) p->min_bytes += (uint32_t)cp_len(toks[k].cp);
    if (toks[k].kind == K_QMARK || toks[k].kind == K_CLASS) p->min_bytes += 1;
  }
  /* initial set: the state after the literal prefix, closed */
  uint64_t *init = AT(p, p->off_init, uint64_t);
  setbit(init, pre == nt ? p->nstates : pre);
  closure(init, eps1, eps3, w);
  /* wildcard states from which the accept state is one epsilon walk away */
  uint64_t probe[PG_MAX_WORDS];
  uint64_t *done_any = AT(p, p->off_done_any, uint64_t);
  uint64_t *done_star = AT(p, p->off_done_star, uint64_t);
  for (uint32_t q = 0; q < p->nstates; q++) {
    int is_any = (loop_any[q / 64] >> (q % 64)) & 1, is_star = (loop_star[q / 64] >> (q % 64)) & 1;
    if (!is_any && !is_star) continue;
    memset(probe, 0, w * 8u);
    setbit(probe, q);
    closure(probe, eps1, eps3, w);
    if ((probe[p->nstates / 64] >> (p->nstates % 64)) & 1) setbit(is_any ? done_any : done_star, q);
  }
}

int pg_inert(const pg_pattern *p)
{
  return p->inert;
}

/* The state set a non-ASCII code point moves: `?`, classes and non-ASCII literals. */
static void nonascii_mask(const pg_pattern *p, uint32_t cp, uint64_t *m)
{
  const pg_special *sp = CAT(p, p->off_special, pg_special);
  const pg_range *ranges = CAT(p, p->off_ranges, pg_range);
  memcpy(m, CAT(p, p->off_nonascii, uint64_t), p->nwords * 8u);
  for (uint32_t k = 0; k < p->nspecial; k++) {
    int hit = sp[k].kind == S_CHAR ? sp[k].cp == cp
                                   : class_has(ranges + sp[k].r0, sp[k].nr, cp) != sp[k].neg;
    if (hit) setbit(m, sp[k].state);
  }
}

static int testbit(const uint64_t *set, uint32_t i)
{
  return (int)((set[i / 64] >> (i % 64)) & 1);
}

/* The general simulation, for any number of words. */
static int run(const pg_pattern *p, const unsigned char *s, size_t n, size_t i,
               ptrdiff_t last_slash)
{
  uint32_t w = p->nwords;
  const uint64_t *ascii = CAT(p, p->off_ascii, uint64_t);
  const uint64_t *loop_any = CAT(p, p->off_loop_any, uint64_t);
  const uint64_t *loop_star = CAT(p, p->off_loop_star, uint64_t);
  const uint64_t *eps1 = CAT(p, p->off_eps1, uint64_t), *eps3 = CAT(p, p->off_eps3, uint64_t);
  const uint64_t *done_any = CAT(p, p->off_done_any, uint64_t);
  const uint64_t *done_star = CAT(p, p->off_done_star, uint64_t);
  uint64_t cur[PG_MAX_WORDS], nx[PG_MAX_WORDS], m[PG_MAX_WORDS];
  memcpy(cur, CAT(p, p->off_init, uint64_t), w * 8u);
  for (;;) {
    uint64_t da = 0, ds = 0, live = 0;
    for (uint32_t k = 0; k < w; k++) da |= cur[k] & done_any[k], ds |= cur[k] & done_star[k];
    if (da || (ds && (ptrdiff_t)i > last_slash)) return 1;
    if (i >= n) return testbit(cur, p->nstates);
    uint32_t cp = s[i];
    if (cp < 0x80) {
      memcpy(m, ascii + cp * w, w * 8u);
      i++;
    } else {
      cp = decode(s, n, &i);
      nonascii_mask(p, cp, m);
    }
    uint64_t carry = 0;
    for (uint32_t k = 0; k < w; k++) {
      uint64_t moved = cur[k] & m[k];
      nx[k] =
          (cur[k] & loop_any[k]) | (cp == '/' ? 0 : cur[k] & loop_star[k]) | (moved << 1) | carry;
      carry = moved >> 63;
    }
    closure(nx, eps1, eps3, w);
    for (uint32_t k = 0; k < w; k++) live |= nx[k];
    if (!live) return 0;
    memcpy(cur, nx, w * 8u);
  }
}

/* Whether `needle` occurs in s. Subjects are short paths and commands, where a memchr walk
 * beats a general substring search's set-up. */
static int contains(const unsigned char *s, size_t n, const unsigned char *needle, size_t k)
{
  const unsigned char *end = s + n;
  while ((size_t)(end - s) >= k) {
    const unsigned char *hit = memchr(s, needle[0], (size_t)(end - s) - k + 1);
    if (!hit) return 0;
    if (memcmp(hit + 1, needle + 1, k - 1) == 0) return 1;
    s = hit + 1;
  }
  return 0;
}

int pg_match_at(const pg_pattern *p, const char *subject, size_t n, size_t base)
{
  const unsigned char *s = (const unsigned char *)subject;
  const unsigned char *bytes = CAT(p, p->off_bytes, unsigned char);
  ptrdiff_t last_slash = (ptrdiff_t)base - 1;
  if (p->inert) return 0;
  if (p->basename) s += base, n -= base, last_slash = -1;
  if (n < p->min_bytes) return 0;
  if (p->prefix_len && memcmp(s, bytes, p->prefix_len) != 0) return 0;
  if (p->literal) return n == p->prefix_len;
  if (p->suffix_len && memcmp(s + n - p->suffix_len, bytes + p->prefix_len, p->suffix_len) != 0)
    return 0;
  if (p->needle_len && !contains(s, n, bytes + p->prefix_len + p->suffix_len, p->needle_len))
    return 0;
  return run(p, s, n, p->prefix_len, last_slash);
}

size_t pg_base(const char *subject, size_t n)
{
  const char *slash = memrchr(subject, '/', n);
  return slash ? (size_t)(slash + 1 - subject) : 0;
}

int pg_match(const pg_pattern *p, const char *subject, size_t n)
{
  return pg_match_at(p, subject, n, pg_base(subject, n));
}
