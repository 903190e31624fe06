/* backend_edit.c: exact string replacement for edit(), and the "not found" diagnosis.
 *
 * No Lua; the caller owns `out` and `err`. Fail codes: INVALID (empty or unchanged old text),
 * BINARY, NOT_FOUND (with the closest lines and how they differ), NOT_UNIQUE, ENOMEM.
 *
 * The diagnosis is linear in the file size: one pass hashes each line's whitespace-collapsed
 * form against the old text's most distinctive line; when nothing matches even loosely, a second
 * pass scores each line by shared character pairs (a bounded histogram, no allocation per line). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_core.h"

#define HINT_MAX_LINES 8    /* differing lines described in a NOT_FOUND message */
#define HINT_SHOW_BYTES 160 /* bytes of a line quoted in a message */
#define HINT_CANDIDATES 64  /* loosely equal blocks scored */
#define HINT_BLOCK 256      /* lines of a block scored */
#define PAIR_BUCKETS 4096
#define PAIR_LINE_MAX 512 /* bytes of a line the similarity score looks at */

typedef struct {
  const char *p;
  size_t n;
} span;

static bool is_ws(char c)
{
  return c == ' ' || c == '\t' || c == '\r';
}

static span trim(span s)
{
  while (s.n && is_ws(s.p[0])) s.p++, s.n--;
  while (s.n && is_ws(s.p[s.n - 1])) s.n--;
  return s;
}

/* Hash of a line with leading/trailing blanks dropped and inner runs of blanks as one space. */
static uint64_t loose_hash(span s)
{
  s = trim(s);
  uint64_t h = 1469598103934665603ull;
  bool gap = false;
  for (size_t i = 0; i < s.n; i++) {
    if (is_ws(s.p[i])) {
      gap = true;
      continue;
    }
    if (gap) h = (h ^ ' ') * 1099511628211ull, gap = false;
    h = (h ^ (unsigned char)s.p[i]) * 1099511628211ull;
  }
  return h;
}

static bool loose_equal(span a, span b)
{
  a = trim(a), b = trim(b);
  size_t i = 0, j = 0;
  while (i < a.n && j < b.n) {
    bool wa = is_ws(a.p[i]), wb = is_ws(b.p[j]);
    if (wa != wb) return false;
    if (wa) {
      while (i < a.n && is_ws(a.p[i])) i++;
      while (j < b.n && is_ws(b.p[j])) j++;
      continue;
    }
    if (a.p[i] != b.p[j]) return false;
    i++, j++;
  }
  return i == a.n && j == b.n;
}

/* Lines of a text, the "\n" excluded (a "\r" kept: the diagnosis reports it). */
typedef struct {
  span *v;
  size_t n;
} lines;

static bool split_lines(const char *p, size_t len, lines *out)
{
  size_t count = 1;
  for (const char *q = p, *end = p + len; (q = memchr(q, '\n', (size_t)(end - q))); q++) count++;
  out->v = malloc(count * sizeof *out->v);
  if (!out->v) return false;
  out->n = 0;
  const char *q = p, *end = p + len;
  for (;;) {
    const char *nl = memchr(q, '\n', (size_t)(end - q));
    out->v[out->n++] = (span){q, (size_t)((nl ? nl : end) - q)};
    if (!nl) break;
    q = nl + 1;
  }
  /* A final newline ends the last line rather than starting an empty one. */
  if (out->n > 1 && out->v[out->n - 1].n == 0) out->n--;
  return true;
}

static void describe_blanks(mb_buf *b, span s)
{
  size_t tabs = 0, spaces = 0, other = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (s.p[i] == '\t')
      tabs++;
    else if (s.p[i] == ' ')
      spaces++;
    else
      other++;
  }
  if (!tabs && !spaces && !other) mb_buf_addstr(b, "none");
  if (tabs) mb_buf_printf(b, "%zu tab%s", tabs, tabs == 1 ? "" : "s");
  if (spaces) mb_buf_printf(b, "%s%zu space%s", tabs ? " + " : "", spaces, spaces == 1 ? "" : "s");
  if (other) mb_buf_printf(b, "%s%zu other blank", tabs || spaces ? " + " : "", other);
}

static span leading(span s)
{
  size_t i = 0;
  while (i < s.n && (s.p[i] == ' ' || s.p[i] == '\t')) i++;
  return (span){s.p, i};
}

static span trailing(span s) /* blanks before the end, a final "\r" excluded */
{
  size_t n = s.n;
  if (n && s.p[n - 1] == '\r') n--;
  size_t i = n;
  while (i > 0 && (s.p[i - 1] == ' ' || s.p[i - 1] == '\t')) i--;
  return (span){s.p + i, n - i};
}

static bool same(span a, span b)
{
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Where old-text line o (a fragment, perhaps) sits in file line f: the offset of its first
 * non-blank bytes, or 0. */
static size_t align(span f, span o)
{
  span t = trim(o);
  size_t k = t.n < 12 ? t.n : 12;
  if (!k || f.n < k) return 0;
  const char *m = memmem(f.p, f.n, t.p, k);
  size_t at = m ? (size_t)(m - f.p) : 0;
  size_t lead = (size_t)(t.p - o.p);
  return at >= lead ? at - lead : 0;
}

/* Says how file line `f` (number `no`) differs from old-text line `o`; nothing if equal. The
 * first old line may be the end of a file line and the last one its start (old text need not
 * begin or end at line boundaries). */
static bool line_differs(span f, span o, bool first, bool last)
{
  if (same(f, o)) return false;
  if (first && f.n >= o.n && memcmp(f.p + f.n - o.n, o.p, o.n) == 0) return false;
  if (last && f.n >= o.n && memcmp(f.p, o.p, o.n) == 0) return false;
  return true;
}

static void describe_line(mb_buf *b, size_t no, span f, span o)
{
  mb_buf_printf(b, "\n  line %zu: ", no);
  if (!loose_equal(f, o)) {
    size_t d = align(f, o), i = 0;
    while (d + i < f.n && i < o.n && f.p[d + i] == o.p[i]) i++;
    size_t from = i > 24 ? i - 24 : 0;
    mb_buf_printf(b, "text differs at column %zu: the file has ", d + i + 1);
    if (from) mb_buf_addstr(b, "...");
    mb_buf_addquoted(b, f.p + d + from, f.n - d - from, 64);
    mb_buf_addstr(b, " where old text has ");
    if (from) mb_buf_addstr(b, "...");
    mb_buf_addquoted(b, o.p + from, o.n - from, 64);
    return;
  }
  const char *sep = "";
  span lf = leading(f), lo = leading(o);
  if (!same(lf, lo)) {
    bool tabs_vs_spaces = (memchr(lf.p, '\t', lf.n) != NULL) != (memchr(lo.p, '\t', lo.n) != NULL);
    mb_buf_addstr(b, tabs_vs_spaces ? "indentation differs (tabs vs spaces): the file has "
                                    : "indentation differs: the file has ");
    describe_blanks(b, lf);
    mb_buf_addstr(b, ", old text has ");
    describe_blanks(b, lo);
    sep = "; ";
  }
  bool cr_f = f.n && f.p[f.n - 1] == '\r', cr_o = o.n && o.p[o.n - 1] == '\r';
  if (cr_f != cr_o) {
    mb_buf_printf(b, "%sline ending differs: the file has %s, old text has %s", sep,
                  cr_f ? "CRLF (\\r\\n)" : "LF (\\n)", cr_o ? "CRLF (\\r\\n)" : "LF (\\n)");
    sep = "; ";
  }
  span tf = trailing(f), to = trailing(o);
  if (!same(tf, to)) {
    mb_buf_printf(b, "%strailing whitespace differs: the file has ", sep);
    describe_blanks(b, tf);
    mb_buf_addstr(b, ", old text has ");
    describe_blanks(b, to);
    sep = "; ";
  }
  if (!*sep) mb_buf_addstr(b, "spacing inside the line differs");
}

/* Character-pair profile of a line: counts in hashed buckets. */
static unsigned pair_hash(const unsigned char *p)
{
  return ((unsigned)p[0] * 31u + p[1] * 131u) & (PAIR_BUCKETS - 1);
}

typedef struct {
  uint16_t want[PAIR_BUCKETS];
  uint16_t used[PAIR_BUCKETS];
  uint16_t touched[PAIR_LINE_MAX];
  size_t total;
} pair_profile;

static void profile_build(pair_profile *pp, span s)
{
  memset(pp->want, 0, sizeof pp->want);
  memset(pp->used, 0, sizeof pp->used);
  pp->total = 0;
  size_t n = s.n < PAIR_LINE_MAX ? s.n : PAIR_LINE_MAX;
  for (size_t i = 0; i + 1 < n; i++) {
    pp->want[pair_hash((const unsigned char *)s.p + i)]++;
    pp->total++;
  }
}

/* Dice coefficient in [0, 1000] between the profile and line s. */
static unsigned profile_score(pair_profile *pp, span s)
{
  size_t n = s.n < PAIR_LINE_MAX ? s.n : PAIR_LINE_MAX;
  if (n < 2 || !pp->total) return 0;
  size_t hit = 0, k = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    unsigned h = pair_hash((const unsigned char *)s.p + i);
    if (pp->used[h] < pp->want[h]) {
      if (pp->used[h] == 0) pp->touched[k++] = (uint16_t)h;
      pp->used[h]++;
      hit++;
    }
  }
  for (size_t i = 0; i < k; i++) pp->used[pp->touched[i]] = 0;
  return (unsigned)(2000 * hit / (pp->total + n - 1));
}

/* Occurrences of needle, non-overlapping, left to right; stops counting at `stop` if non-zero. */
static size_t count_matches(const char *h, size_t hn, const char *nd, size_t nn, size_t stop)
{
  size_t count = 0;
  const char *p = h, *end = h + hn;
  while ((size_t)(end - p) >= nn) {
    const char *m = mb_find(p, (size_t)(end - p), nd, nn);
    if (!m) break;
    count++;
    if (stop && count >= stop) break;
    p = m + nn;
  }
  return count;
}

/* Tries old text with its line endings converted to the other convention. */
static bool hint_line_endings(mb_buf *err, const char *data, size_t len, const char *o, size_t on)
{
  bool has_crlf = false, has_lf = false;
  for (const char *q = o, *end = o + on; (q = memchr(q, '\n', (size_t)(end - q))); q++) {
    if (q > o && q[-1] == '\r')
      has_crlf = true;
    else
      has_lf = true;
  }
  if (has_crlf == has_lf) return false; /* no newline, or mixed */
  mb_buf conv = MB_BUF_INIT;
  bool ok = true;
  for (size_t i = 0; ok && i < on; i++) {
    if (has_lf && o[i] == '\n')
      ok = mb_buf_add(&conv, "\r\n", 2);
    else if (has_crlf && o[i] == '\r' && i + 1 < on && o[i + 1] == '\n')
      continue;
    else
      ok = mb_buf_add(&conv, o + i, 1);
  }
  size_t n = ok && conv.len ? count_matches(data, len, conv.data, conv.len, 0) : 0;
  size_t line = 1;
  if (n) {
    const char *m = mb_find(data, len, conv.data, conv.len);
    for (const char *q = data; (q = memchr(q, '\n', (size_t)(m - q))); q++) line++;
  }
  mb_buf_free(&conv);
  if (!n) return false;
  mb_buf_printf(err,
                "\nThe file uses %s line endings and old text uses %s: with %s line endings old "
                "text occurs %zu time%s, first at line %zu. Send old and new text with the file's "
                "line endings.",
                has_lf ? "CRLF (\\r\\n)" : "LF (\\n)", has_lf ? "LF (\\n)" : "CRLF (\\r\\n)",
                has_lf ? "CRLF" : "LF", n, n == 1 ? "" : "s", line);
  return true;
}

/* Appends the closest block to err. Returns false on ENOMEM. */
static bool hint_closest(mb_buf *err, const char *data, size_t len, const char *o, size_t on)
{
  lines fl = {0}, ol = {0};
  if (!split_lines(data, len, &fl) || !split_lines(o, on, &ol)) {
    free(fl.v);
    free(ol.v);
    return false;
  }
  /* Anchor: the longest old-text line once trimmed. */
  size_t anchor = 0, best_len = 0;
  for (size_t i = 0; i < ol.n; i++) {
    size_t t = trim(ol.v[i]).n;
    if (t > best_len) best_len = t, anchor = i;
  }
  if (best_len == 0) {
    mb_buf_addstr(err, "\nOld text is only whitespace; include the text to change.");
    goto done;
  }
  /* Pass 1: blocks whose anchor line equals loosely; keep the one with most loose-equal lines. */
  uint64_t want = loose_hash(ol.v[anchor]);
  size_t best_start = SIZE_MAX, best_score = 0;
  /* Bounded: at most HINT_CANDIDATES blocks of at most HINT_BLOCK lines are scored, so a file of
   * identical lines cannot make this quadratic. */
  size_t candidates = 0, block = ol.n < HINT_BLOCK ? ol.n : HINT_BLOCK;
  for (size_t i = anchor; i < fl.n && candidates < HINT_CANDIDATES; i++) {
    if (loose_hash(fl.v[i]) != want || !loose_equal(fl.v[i], ol.v[anchor])) continue;
    candidates++;
    size_t start = i - anchor, score = 0;
    for (size_t k = 0; k < block && start + k < fl.n; k++)
      if (loose_equal(fl.v[start + k], ol.v[k])) score++;
    if (score > best_score) best_score = score, best_start = start;
    if (score == block) break;
  }
  /* Pass 2: no loose match; score every line against the anchor by shared character pairs. */
  unsigned best_sim = 0;
  if (best_start == SIZE_MAX) {
    pair_profile *pp = malloc(sizeof *pp);
    if (!pp) goto oom;
    span a = trim(ol.v[anchor]);
    profile_build(pp, a);
    size_t best_line = 0;
    for (size_t i = 0; i < fl.n; i++) {
      unsigned s = profile_score(pp, trim(fl.v[i]));
      if (s > best_sim) best_sim = s, best_line = i;
    }
    free(pp);
    if (best_sim < 400) {
      mb_buf_addstr(err,
                    "\nNo line of the file resembles old text; the file may have changed: "
                    "read it again and copy the text exactly.");
      goto done;
    }
    best_start = best_line >= anchor ? best_line - anchor : 0;
  }
  size_t count = ol.n;
  if (best_start + count > fl.n) count = fl.n - best_start;
  /* The differing lines of the block (at most HINT_MAX_LINES), shown as read shows them. */
  size_t diff[HINT_MAX_LINES], nd = 0, more = 0;
  for (size_t k = 0; k < count; k++) {
    if (!line_differs(fl.v[best_start + k], ol.v[k], k == 0, k + 1 == ol.n)) continue;
    if (nd < HINT_MAX_LINES)
      diff[nd++] = k;
    else
      more++;
  }
  bool loose = true;
  for (size_t d = 0; d < nd; d++)
    loose = loose && loose_equal(fl.v[best_start + diff[d]], ol.v[diff[d]]);
  if (count == 1)
    mb_buf_printf(err, "\nClosest match: line %zu", best_start + 1);
  else
    mb_buf_printf(err, "\nClosest match: lines %zu-%zu", best_start + 1, best_start + count);
  mb_buf_addstr(err, loose && !more ? " (same text, different whitespace); the file has:"
                                    : " (similar text); the file has:");
  for (size_t d = 0; d < nd; d++) {
    span f = fl.v[best_start + diff[d]];
    if (f.n && f.p[f.n - 1] == '\r') f.n--;
    mb_buf_printf(err, "\n%6zu\t%.*s%s", best_start + diff[d] + 1,
                  (int)(f.n > HINT_SHOW_BYTES ? HINT_SHOW_BYTES : f.n), f.p,
                  f.n > HINT_SHOW_BYTES ? "..." : "");
  }
  mb_buf_addstr(err, "\nDifferences:");
  for (size_t d = 0; d < nd; d++)
    describe_line(err, best_start + diff[d] + 1, fl.v[best_start + diff[d]], ol.v[diff[d]]);
  if (more) mb_buf_printf(err, "\n  ... and %zu more differing line%s", more, more == 1 ? "" : "s");
  if (ol.n > count)
    mb_buf_printf(err, "\n  old text has %zu more line%s than the file has from there",
                  ol.n - count, ol.n - count == 1 ? "" : "s");
  mb_buf_addstr(err, "\nCopy the file's text exactly (read it again if unsure).");
done:
  free(fl.v);
  free(ol.v);
  return true;
oom:
  free(fl.v);
  free(ol.v);
  return false;
}

static size_t line_of(const char *data, const char *at, const char **from, size_t *line)
{
  for (const char *q = *from; (q = memchr(q, '\n', (size_t)(at - q))); q++) (*line)++;
  *from = at;
  return *line;
}

/* Everything mb_edit_apply checks before it copies; on success *at is the first occurrence. */
static mb_code edit_check(const char *data, size_t len, const char *old_s, size_t old_len,
                          const char *new_s, size_t new_len, bool replace_all, const char *path,
                          const char **at, mb_buf *err)
{
  /* Messages read "edit /path: ..." or, without a path, "edit: ...". */
  char name[MB_PATH_MAX + 2] = "";
  if (path && *path) snprintf(name, sizeof name, " %s", path);
  mb_buf_reset(err);
  if (old_len == 0) {
    mb_buf_printf(err,
                  "edit%s: old text is empty; give the exact text to replace (use write to "
                  "create or overwrite a whole file)",
                  name);
    return MB_INVALID;
  }
  if (old_len == new_len && memcmp(old_s, new_s, old_len) == 0) {
    mb_buf_printf(err, "edit%s: old and new text are the same; nothing would change", name);
    return MB_INVALID;
  }
  size_t where = 0;
  mb_textkind kind = mb_classify(data, len, &where);
  if (kind != MB_TEXT) {
    mb_buf_printf(err,
                  "edit%s: binary file (%s at byte %zu) cannot be edited as text; use write "
                  "with the complete new content",
                  name, kind == MB_BIN_NUL ? "NUL byte" : "invalid UTF-8", where);
    return MB_BINARY;
  }
  /* One pass over the content on the success path: find the first match, then either the
   * second (refusing when not replace_all) or all of them while copying. */
  const char *end = data + len;
  const char *first = mb_find(data, len, old_s, old_len);
  if (!first) {
    bool ok = mb_buf_printf(err, "edit%s: old text not found", name) &&
              (hint_line_endings(err, data, len, old_s, old_len) ||
               hint_closest(err, data, len, old_s, old_len));
    return ok ? MB_NOT_FOUND : MB_ENOMEM;
  }
  const char *after = first + old_len;
  if (!replace_all && mb_find(after, (size_t)(end - after), old_s, old_len)) {
    size_t count = count_matches(data, len, old_s, old_len, 0);
    mb_buf_printf(err, "edit%s: old text found %zu times (at lines ", name, count);
    const char *from = data, *p = data;
    size_t line = 1;
    for (size_t i = 0; i < count && i < 5; i++) {
      const char *m = mb_find(p, (size_t)(end - p), old_s, old_len);
      mb_buf_printf(err, "%s%zu", i ? ", " : "", line_of(data, m, &from, &line));
      p = m + old_len;
    }
    mb_buf_printf(err,
                  "%s); pass replace_all = true to replace all %zu, or add surrounding lines "
                  "to old text to make it unique",
                  count > 5 ? ", ..." : "", count);
    return MB_NOT_UNIQUE;
  }
  *at = first;
  return NULL;
}

mb_code mb_edit_locate(const char *data, size_t len, const char *old_s, size_t old_len,
                       const char *new_s, size_t new_len, const char *path, size_t *at, mb_buf *err)
{
  const char *first;
  mb_code code = edit_check(data, len, old_s, old_len, new_s, new_len, false, path, &first, err);
  if (code == NULL) *at = (size_t)(first - data);
  return code;
}

mb_code mb_edit_apply(const char *data, size_t len, const char *old_s, size_t old_len,
                      const char *new_s, size_t new_len, bool replace_all, const char *path,
                      mb_buf *out, size_t *occurrences, mb_buf *err)
{
  mb_buf_reset(out);
  *occurrences = 0;
  const char *first, *end = data + len;
  mb_code code =
      edit_check(data, len, old_s, old_len, new_s, new_len, replace_all, path, &first, err);
  if (code) return code;
  size_t grow = new_len > old_len ? new_len - old_len : 0;
  if (!mb_buf_reserve(out, len + grow)) return MB_ENOMEM;
  size_t n = 0;
  const char *p = data, *m = first;
  while (m) {
    if (!mb_buf_add(out, p, (size_t)(m - p)) || !mb_buf_add(out, new_s, new_len)) return MB_ENOMEM;
    n++;
    p = m + old_len;
    m = replace_all && p < end ? mb_find(p, (size_t)(end - p), old_s, old_len) : NULL;
  }
  if (!mb_buf_add(out, p, (size_t)(end - p))) return MB_ENOMEM;
  *occurrences = n;
  return NULL;
}
