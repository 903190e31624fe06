/* backend_core.h: the text semantics of the backend protocol, as plain C (no Lua).
 *
 * Every native backend (state, local, docker) and, through the moonbox.backend bindings, every
 * Lua-written backend shares these functions, so a path, a read, an edit, a glob and a grep mean
 * the same thing everywhere (DESIGN.md, issue 2 item 5).
 *
 * Conventions
 *   - Buffers: results go into a caller-owned mb_buf (reset by the callee unless said otherwise).
 *     The caller frees it with mb_buf_free. Data is always NUL-terminated when non-NULL, but may
 *     hold NUL bytes: use len.
 *   - Failures: a fallible function returns an mb_code: NULL on success, else one of the stable
 *     CODE strings below, and then `err` (reset first) holds a message ready for the user:
 *     "<context>: <detail>", saying what went wrong and what to do. On MB_ENOMEM err may be
 *     empty; report the code itself then.
 *   - Paths given to the core are virtual, normalized paths ("/a/b") or paths relative to a
 *     search root ("a/b", no leading slash), as each function says. `path` arguments that only
 *     serve messages may be NULL.
 *   - Thread safety: no global state. A compiled mb_glob is read-only and may be shared between
 *     threads; an mb_regex holds match scratch, so use one per thread. */
#ifndef MB_BACKEND_CORE_H
#define MB_BACKEND_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- fail codes ---------------------------------------------------------------------------- */

typedef const char *mb_code;
/* Distinct objects, so `code == MB_BINARY` is a valid test; the text is the Lua CODE. */
extern const char mb_code_invalid[], mb_code_binary[], mb_code_not_found[], mb_code_not_unique[],
    mb_code_enomem[];
#define MB_INVALID mb_code_invalid       /* "INVALID": bad path, offset past the end, bad pattern */
#define MB_BINARY mb_code_binary         /* "BINARY": text operation on binary content */
#define MB_NOT_FOUND mb_code_not_found   /* "NOT_FOUND": edit's old text does not occur */
#define MB_NOT_UNIQUE mb_code_not_unique /* "NOT_UNIQUE": edit's old text occurs more than once */
#define MB_ENOMEM mb_code_enomem         /* "ENOMEM": out of memory */

/* ---- limits of the protocol ---------------------------------------------------------------- */

#define MB_READ_LIMIT 2000          /* default lines per read */
#define MB_LINE_MAX_CHARS 2000      /* a displayed line is cut after this many characters */
#define MB_BINARY_SNIFF 8192        /* a NUL byte within this many leading bytes means binary */
#define MB_PATH_MAX 4095            /* bytes of a normalized virtual path */
#define MB_NAME_MAX 255             /* bytes of one path segment */
#define MB_GREP_MATCH_LIMIT 5000000 /* PCRE2 match limit per match call (hostile patterns) */
#define MB_GREP_DEPTH_LIMIT 10000   /* PCRE2 backtracking depth limit (interpreter only) */

/* ---- growable byte buffer ------------------------------------------------------------------ */

typedef struct {
  char *data; /* NULL until the first add; else NUL-terminated at data[len] */
  size_t len;
  size_t cap;
} mb_buf;
// clang-format off
#define MB_BUF_INIT {NULL, 0, 0}
// clang-format on

bool mb_buf_reserve(mb_buf *b, size_t extra); /* room for len + extra + NUL; false on ENOMEM */
bool mb_buf_add(mb_buf *b, const void *p, size_t n);
bool mb_buf_addstr(mb_buf *b, const char *s);
bool mb_buf_printf(mb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted, printable string for messages: '...' with control bytes escaped
 * (\n, \t, \r, \0, \xNN) and anything past `max` bytes elided with "...". */
bool mb_buf_addquoted(mb_buf *b, const char *s, size_t n, size_t max);
void mb_buf_reset(mb_buf *b); /* len = 0, keeps the memory */
void mb_buf_free(mb_buf *b);  /* frees and re-initializes; safe to call twice */

/* ---- paths ----------------------------------------------------------------------------------- */

/* Normalizes a virtual path into `out`: always absolute, single slashes, no "." segments, no
 * trailing slash. "", ".", "./", "/." and "/" all become "/"; "a/b" becomes "/a/b".
 * INVALID for: a NUL byte, a ".." segment, a leading "~", a segment longer than MB_NAME_MAX
 * bytes, a result longer than MB_PATH_MAX bytes. ("a..b" is a fine name: only a whole ".."
 * segment is refused.) */
mb_code mb_path_normalize(const char *path, size_t len, mb_buf *out, mb_buf *err);

/* If `path` equals `root` or lies below it (both normalized), returns the part of path below
 * root without a leading slash ("" for root itself) and stores its length; else NULL.
 * mb_path_under("/a", 2, "/a/b/c", 6, &n) == "b/c"; every path is under "/". */
const char *mb_path_under(const char *root, size_t rlen, const char *path, size_t plen,
                          size_t *rel_len);

/* The last segment of a normalized path ("" for "/"). */
const char *mb_path_basename(const char *path, size_t len, size_t *name_len);

/* ---- text or binary -------------------------------------------------------------------------- */

typedef enum { MB_TEXT = 0, MB_BIN_NUL, MB_BIN_UTF8 } mb_textkind;

/* Binary when a NUL byte occurs in the first MB_BINARY_SNIFF bytes or the content is not valid
 * UTF-8 (overlongs, surrogates and code points past U+10FFFF are invalid). `where` (may be NULL)
 * gets the offending byte offset. Linear, with an ASCII fast path. */
mb_textkind mb_classify(const char *data, size_t len, size_t *where);
bool mb_utf8_valid(const char *s, size_t n, size_t *bad_at);

/* ---- read ------------------------------------------------------------------------------------ */

/* Formats lines [offset, offset+limit) of a text file for read():
 *   - each line as "%6d\t%s" with its 1-based number, joined by "\n";
 *   - a trailing newline does not add an empty line; a "\r" before "\n" (CRLF) is not shown
 *     (the bytes stay as they are: read_bytes and edit see them);
 *   - a line longer than MB_LINE_MAX_CHARS characters is cut, ending with the marker
 *     " [... line cut: N more characters]";
 *   - when lines remain after the slice: "\n\n... (N more lines)";
 *   - an empty file reads as "" (offset 0); an offset at or past the end (other than 0 on an empty
 *     file) is INVALID with exactly "Offset O exceeds file length (N lines)";
 *   - binary content (mb_classify) is BINARY, telling the caller to use read_bytes.
 * limit 0 means MB_READ_LIMIT. `path` only names the file in messages. */
mb_code mb_read_format(const char *data, size_t len, size_t offset, size_t limit, const char *path,
                       mb_buf *out, mb_buf *err);

/* Appends one line for display: a final "\r" dropped, cut after MB_LINE_MAX_CHARS characters
 * with the marker above. Used by read and for grep results. */
bool mb_buf_add_line(mb_buf *b, const char *line, size_t len);

/* Counts lines the way read does (a trailing newline adds no line; "" has 0). */
size_t mb_count_lines(const char *data, size_t len);

/* ---- edit ------------------------------------------------------------------------------------ */

/* Replaces exact, non-overlapping occurrences of old_s in data, byte for byte (CRLF, NUL bytes
 * and a missing final newline survive), writing the new content into `out`.
 *   - old_s empty, or old_s == new_s: INVALID;
 *   - binary data: BINARY;
 *   - no occurrence: NOT_FOUND, and err shows the closest line(s) of the file and how they differ
 *     (indentation, tabs vs spaces, CRLF vs LF, trailing spaces, other text); linear time;
 *   - more than one without replace_all: NOT_UNIQUE with the count and the first line numbers;
 *   - else *occurrences = replacements made (1, or all with replace_all). */
mb_code mb_edit_apply(const char *data, size_t len, const char *old_s, size_t old_len,
                      const char *new_s, size_t new_len, bool replace_all, const char *path,
                      mb_buf *out, size_t *occurrences, mb_buf *err);
/* mb_edit_apply's checks and messages for a single replacement (no replace_all), without the
 * copy: on success *at is the offset of the one occurrence, and the new content is
 * data[0, at) + new_s + data[at + old_len, len) — for callers that write those three pieces. */
mb_code mb_edit_locate(const char *data, size_t len, const char *old_s, size_t old_len,
                       const char *new_s, size_t new_len, const char *path, size_t *at,
                       mb_buf *err);

/* First occurrence of needle nd in h, or NULL (h itself for an empty needle). Faster than
 * memmem on source text, where common prefixes repeat on every line (backend_find.c). */
const char *mb_find(const char *h, size_t hn, const char *nd, size_t nn);

/* Length of the leading run of ASCII bytes (< 0x80) of s; vectorized. */
size_t mb_ascii_span(const char *s, size_t n);

/* ---- glob ------------------------------------------------------------------------------------ */

/* A compiled glob, matched against paths relative to a search root ("src/a.py"):
 *   `*` any run of characters within a segment (leading dots too), `?` one character,
 *   `[abc]`, `[a-z]`, `[!x]` / `[^x]` one character of / not of a set, `{a,b}` alternatives
 *   (nestable, at most 1024 expansions), `**` as a whole segment any number of segments
 *   including zero, `\` escapes the next character. A leading "/" or "./" is ignored.
 * Characters are UTF-8 code points. Matching is linear in practice (no exponential backtracking);
 * no allocation. */
typedef struct mb_glob mb_glob;

mb_code mb_glob_compile(const char *pat, size_t len, mb_glob **out, mb_buf *err);
void mb_glob_free(mb_glob *g);
/* Whole relative path against the whole pattern. */
bool mb_glob_match(const mb_glob *g, const char *rel, size_t len);
/* False when no path below directory `reldir` ("" for the root) can match: lets a walker prune. */
bool mb_glob_may_match_below(const mb_glob *g, const char *reldir, size_t len);
/* grep's `glob` option: a pattern without "/" matches the basename at any depth (like ripgrep);
 * a pattern with "/" matches the path relative to the search root. */
bool mb_glob_filter(const mb_glob *g, const char *rel, size_t len);
bool mb_glob_has_slash(const mb_glob *g);
/* The leading literal directories of the pattern: "src/lib" for "src/lib/{a,b}.c" and for src/lib
 * followed by deeper wildcards ending in a name pattern; "" when none (also when only `**`
 * follows, which may match zero segments). Every match lies below it, so a search may start
 * there. Never contains "." or ".." segments. */
const char *mb_glob_base(const mb_glob *g, size_t *len);

/* ---- grep ------------------------------------------------------------------------------------ */

/* Directories grep always skips: .git node_modules __pycache__ .venv venv .tox .mypy_cache
 * .pytest_cache .ruff_cache .eggs build dist. */
bool mb_is_skipped_dir(const char *name, size_t len);
/* A name starting with ".". */
bool mb_is_hidden_name(const char *name, size_t len);
/* Whether a grep walk leaves out `rel` (relative to the search root, no leading slash): any
 * directory segment in the skip list, or with ignore_hidden any hidden segment. The last segment
 * is a directory when last_is_dir. The search root itself ("") is never skipped, so a file or
 * directory named explicitly is searched even when hidden. */
bool mb_grep_skips(const char *rel, size_t len, bool last_is_dir, bool ignore_hidden);

typedef struct mb_regex mb_regex;
enum { MB_RE_FIXED = 1, MB_RE_IGNORE_CASE = 2 };

/* Compiles a PCRE2 pattern (UTF, multiline so ^/$ are line anchors, JIT when available) or, with
 * MB_RE_FIXED, a literal string. INVALID with PCRE2's message and the offset on a bad pattern. */
mb_code mb_regex_compile(const char *pat, size_t len, int flags, mb_regex **out, mb_buf *err);
void mb_regex_free(mb_regex *re);

/* Called once per matching line, in order: 1-based number, the line without "\n" or a final
 * "\r". Return false to stop the search. */
typedef bool (*mb_match_fn)(void *ud, size_t line_no, const char *line, size_t len);

/* Searches a whole buffer line by line (a match never spans lines). Binary content (mb_classify)
 * is not searched: returns MB_BINARY with no callback and no message. When a hostile pattern hits
 * the match limit: INVALID. `path` only names the file in messages. */
mb_code mb_regex_grep(mb_regex *re, const char *buf, size_t len, const char *path, mb_match_fn fn,
                      void *ud, mb_buf *err);

/* ---- time, base64 ---------------------------------------------------------------------------- */

#define MB_ISO8601_SIZE 32
/* "2026-11-26T17:40:41.123456Z" (UTC, microseconds); returns the length. */
size_t mb_iso8601(int64_t sec, long nsec, char out[MB_ISO8601_SIZE]);
/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)"; false when malformed. */
bool mb_iso8601_parse(const char *s, size_t n, int64_t *sec, long *nsec);

bool mb_base64_encode(const void *p, size_t n, mb_buf *out);
/* Standard alphabet, padding optional, whitespace ignored; INVALID on any other character. */
mb_code mb_base64_decode(const char *s, size_t n, mb_buf *out, mb_buf *err);

#endif
