/* permglob_core.h: the permission-pattern glob matcher, with no Lua in it.
 *
 * A pattern is compiled in two steps so the caller owns every byte (the binding puts both
 * buffers in Lua userdata, so nothing is malloc'd): pg_parse() turns the text into tokens in a
 * scratch buffer and says how big the compiled form is; pg_build() writes the compiled form.
 * Matching is a bit-parallel NFA over code points: linear in the subject for a given pattern,
 * with no backtracking, behind cheap literal prefilters (length, prefix, suffix, a needle). */
#ifndef PERMGLOB_CORE_H
#define PERMGLOB_CORE_H

#include <stddef.h>
#include <stdint.h>

/* Longest pattern accepted, in bytes. Longer is refused (a rule is a glob, not a document). */
#define PG_MAX_PATTERN 4096

typedef struct pg_pattern pg_pattern;

typedef struct pg_info {
  uint32_t ntokens;  /* after wildcard runs are merged */
  uint32_t nranges;  /* class ranges */
  uint32_t nstates;  /* NFA states (accept state not counted) */
  uint32_t nwords;   /* 64-bit words per state set (states + accept) */
  uint32_t nspecial; /* states whose test on non-ASCII code points is not a table lookup */
  uint32_t nbytes;   /* literal bytes kept for the prefilters */
  uint32_t pattern_len;
  int basename; /* matched against the last path segment only */
  int inert;    /* the pattern can never match (an unrenderable class, as the reference) */
} pg_info;

/* Bytes of scratch pg_parse needs for a pattern of `len` bytes. */
size_t pg_scratch_size(size_t len);

/* Parses `pat` into `scratch` (pg_scratch_size(len) bytes, suitably aligned) and fills `info`.
 * Returns 0, or -1 when the pattern is longer than PG_MAX_PATTERN. */
int pg_parse(const char *pat, size_t len, void *scratch, pg_info *info);

/* Size of the compiled pattern described by `info`. */
size_t pg_compiled_size(const pg_info *info);

/* Writes the compiled pattern into `out` (pg_compiled_size bytes, aligned for uint64_t). */
void pg_build(pg_pattern *out, const void *scratch, const pg_info *info);

/* 1 when the whole of `s` (n bytes) matches, else 0. */
int pg_match(const pg_pattern *p, const char *s, size_t n);

/* Offset of the last path segment of s (just after its last '/', or 0). */
size_t pg_base(const char *s, size_t n);

/* pg_match with the subject's pg_base already known (one scan serves a whole set). */
int pg_match_at(const pg_pattern *p, const char *s, size_t n, size_t base);

/* Whether the pattern can never match. */
int pg_inert(const pg_pattern *p);

#endif
