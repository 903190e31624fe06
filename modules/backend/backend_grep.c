/* backend_grep.c: grep over one buffer with PCRE2 (JIT) or a fixed string (see backend_core.h).
 *
 * The search runs over the whole buffer, not line by line: the JIT (or memmem, for a
 * case-sensitive fixed string) skips to the next candidate, and only then are the line's bounds
 * found with memchr/memrchr and its number counted from the previous hit, so a file without
 * matches costs one scan and no per-line work. A match that runs past its line (a pattern like
 * \s or [^x] that can eat a newline) is re-checked against that line alone. No Lua; an mb_regex
 * owns its PCRE2 code, match data, match context and JIT stack (one per thread).
 * Fail codes: INVALID (bad pattern with PCRE2's message and offset; match limit hit), BINARY
 * (content not searched), ENOMEM. */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "backend_core.h"

struct mb_regex {
  pcre2_code *code;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit_stack;
  char *fixed; /* case-sensitive fixed string: memmem instead of PCRE2 */
  size_t fixed_len;
};

void mb_regex_free(mb_regex *re)
{
  if (!re) return;
  pcre2_match_data_free(re->md);
  pcre2_match_context_free(re->mctx);
  pcre2_jit_stack_free(re->jit_stack);
  pcre2_code_free(re->code);
  free(re->fixed);
  free(re);
}

mb_code mb_regex_compile(const char *pat, size_t len, int flags, mb_regex **out, mb_buf *err)
{
  *out = NULL;
  mb_regex *re = calloc(1, sizeof *re);
  if (!re) return MB_ENOMEM;
  if ((flags & MB_RE_FIXED) && !(flags & MB_RE_IGNORE_CASE)) {
    re->fixed = malloc(len + 1);
    if (!re->fixed) goto oom;
    memcpy(re->fixed, pat, len);
    re->fixed_len = len;
    *out = re;
    return NULL;
  }
  /* PCRE2_LITERAL allows only a few other options (no MULTILINE: a literal has no anchors). */
  uint32_t opts = PCRE2_UTF;
  if (flags & MB_RE_FIXED)
    opts |= PCRE2_LITERAL;
  else
    opts |= PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C;
  if (flags & MB_RE_IGNORE_CASE) opts |= PCRE2_CASELESS;
  int ec;
  PCRE2_SIZE eo;
  re->code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &eo, NULL);
  if (!re->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    mb_buf_reset(err);
    mb_buf_addstr(err, "invalid regex ");
    mb_buf_addquoted(err, pat, len, 200);
    mb_buf_printf(err, ": %s at offset %zu (use fixed = true to search for the text literally)",
                  (const char *)msg, (size_t)eo);
    mb_regex_free(re);
    return MB_INVALID;
  }
  re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
  re->mctx = pcre2_match_context_create(NULL);
  if (!re->md || !re->mctx) goto oom;
  pcre2_set_match_limit(re->mctx, MB_GREP_MATCH_LIMIT);
  pcre2_set_depth_limit(re->mctx, MB_GREP_DEPTH_LIMIT);
  /* JIT is an optimisation: without it (no JIT support, no executable memory) the interpreter
   * runs the same pattern. */
  if (pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0) {
    re->jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (re->jit_stack) pcre2_jit_stack_assign(re->mctx, NULL, re->jit_stack);
  }
  *out = re;
  return NULL;
oom:
  mb_regex_free(re);
  return MB_ENOMEM;
}

/* Finds the next match at or after `from`; returns 1 with its bounds, 0 for none, <0 on error. */
static int find(mb_regex *re, const char *buf, size_t len, size_t from, size_t *ms, size_t *me)
{
  if (re->fixed) {
    if (re->fixed_len == 0) {
      *ms = *me = from;
      return from <= len;
    }
    const char *m = memmem(buf + from, len - from, re->fixed, re->fixed_len);
    if (!m) return 0;
    *ms = (size_t)(m - buf);
    *me = *ms + re->fixed_len;
    return 1;
  }
  int rc = pcre2_match(re->code, (PCRE2_SPTR)buf, len, from, PCRE2_NO_UTF_CHECK, re->md, re->mctx);
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  if (rc < 0) return rc;
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
  *ms = ov[0];
  *me = ov[1];
  return 1;
}

static mb_code match_failed(mb_buf *err, int rc, const char *path, size_t line)
{
  PCRE2_UCHAR msg[256];
  pcre2_get_error_message(rc, msg, sizeof msg);
  mb_buf_reset(err);
  mb_buf_printf(err,
                "grep%s%s: the pattern is too costly at line %zu (%s); simplify it or use "
                "fixed = true",
                path && *path ? " " : "", path ? path : "", line, (const char *)msg);
  return MB_INVALID;
}

mb_code mb_regex_grep(mb_regex *re, const char *buf, size_t len, const char *path, mb_match_fn fn,
                      void *ud, mb_buf *err)
{
  if (mb_classify(buf, len, NULL) != MB_TEXT) return MB_BINARY;
  if (len == 0) return NULL; /* an empty file has no lines, not one empty line */
  size_t pos = 0;            /* search from here */
  size_t counted_to = 0;     /* line numbers are known up to this offset */
  size_t line_no = 1;        /* number of the line holding counted_to */
  while (pos <= len) {
    size_t ms, me;
    int rc = find(re, buf, len, pos, &ms, &me);
    if (rc == 0) break;
    if (rc < 0) return match_failed(err, rc, path, line_no);
    /* An empty match at the very end of a buffer ending in "\n" is not a line. */
    if (ms == len && len > 0 && buf[len - 1] == '\n') break;
    const char *ls = ms ? memrchr(buf, '\n', ms) : NULL;
    size_t line_start = ls ? (size_t)(ls - buf) + 1 : 0;
    const char *le = memchr(buf + ms, '\n', len - ms);
    size_t line_end = le ? (size_t)(le - buf) : len;
    for (const char *q = buf + counted_to; (q = memchr(q, '\n', line_start - (size_t)(q - buf)));
         q++)
      line_no++;
    counted_to = line_start;
    bool hit = true;
    if (me > line_end && !re->fixed) { /* ran into the next line: does this line match alone? */
      int r2 = pcre2_match(re->code, (PCRE2_SPTR)buf + line_start, line_end - line_start, 0,
                           PCRE2_NO_UTF_CHECK, re->md, re->mctx);
      if (r2 < 0 && r2 != PCRE2_ERROR_NOMATCH) return match_failed(err, r2, path, line_no);
      hit = r2 >= 0;
    }
    if (hit) {
      size_t n = line_end - line_start;
      if (n && buf[line_end - 1] == '\r') n--;
      if (!fn(ud, line_no, buf + line_start, n)) break;
    }
    if (!le) break;
    pos = line_end + 1;
  }
  return NULL;
}
