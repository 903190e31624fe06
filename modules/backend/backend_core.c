/* backend_core.c: buffers, virtual paths, text detection, read formatting, time and base64 for
 * the backend protocol (see backend_core.h). No Lua; callers own every buffer they pass.
 * Fail codes: INVALID (path, offset, base64), BINARY (read of binary content), ENOMEM. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_core.h"

const char mb_code_invalid[] = "INVALID", mb_code_binary[] = "BINARY",
           mb_code_not_found[] = "NOT_FOUND", mb_code_not_unique[] = "NOT_UNIQUE",
           mb_code_enomem[] = "ENOMEM";

/* ---- buffers ------------------------------------------------------------------------- */

bool mb_buf_reserve(mb_buf *b, size_t extra)
{
  if (extra > SIZE_MAX / 2 - b->len) return false;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return false;
  b->data = p;
  b->cap = cap;
  return true;
}

bool mb_buf_add(mb_buf *b, const void *p, size_t n)
{
  if (!mb_buf_reserve(b, n)) return false;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return true;
}

bool mb_buf_addstr(mb_buf *b, const char *s)
{
  return mb_buf_add(b, s, strlen(s));
}

bool mb_buf_printf(mb_buf *b, const char *fmt, ...)
{
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return false;
  if ((size_t)n < sizeof small) return mb_buf_add(b, small, (size_t)n);
  if (!mb_buf_reserve(b, (size_t)n)) return false;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return true;
}

bool mb_buf_addquoted(mb_buf *b, const char *s, size_t n, size_t max)
{
  bool ok = mb_buf_add(b, "'", 1);
  size_t shown = n > max ? max : n;
  for (size_t i = 0; ok && i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
      case '\n':
        ok = mb_buf_add(b, "\\n", 2);
        break;
      case '\t':
        ok = mb_buf_add(b, "\\t", 2);
        break;
      case '\r':
        ok = mb_buf_add(b, "\\r", 2);
        break;
      case '\0':
        ok = mb_buf_add(b, "\\0", 2);
        break;
      case '\\':
        ok = mb_buf_add(b, "\\\\", 2);
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          ok = mb_buf_printf(b, "\\x%02x", c);
        else
          ok = mb_buf_add(b, s + i, 1);
    }
  }
  if (ok && shown < n) ok = mb_buf_add(b, "...", 3);
  return ok && mb_buf_add(b, "'", 1);
}

void mb_buf_reset(mb_buf *b)
{
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void mb_buf_free(mb_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ---- paths --------------------------------------------------------------------------- */

static mb_code path_fail(mb_buf *err, const char *path, size_t len, const char *why)
{
  mb_buf_reset(err);
  mb_buf_addstr(err, "invalid path ");
  mb_buf_addquoted(err, path, len, 200);
  mb_buf_printf(err, ": %s", why);
  return MB_INVALID;
}

mb_code mb_path_normalize(const char *path, size_t len, mb_buf *out, mb_buf *err)
{
  mb_buf_reset(out);
  if (memchr(path, '\0', len))
    return path_fail(err, path, len, "it contains a NUL byte; remove it");
  if (len > 0 && path[0] == '~')
    return path_fail(err, path, len,
                     "'~' is not expanded; use a path relative to the workspace root");
  if (!mb_buf_reserve(out, len + 1)) return MB_ENOMEM;
  size_t i = 0;
  while (i < len) {
    while (i < len && path[i] == '/') i++;
    size_t start = i;
    while (i < len && path[i] != '/') i++;
    size_t seg = i - start;
    if (seg == 0 || (seg == 1 && path[start] == '.')) continue;
    if (seg == 2 && path[start] == '.' && path[start + 1] == '.')
      return path_fail(err, path, len,
                       "'..' is not allowed; use a path from the workspace root, like /dir/file");
    if (seg > MB_NAME_MAX)
      return path_fail(err, path, len, "a name is longer than 255 bytes; use a shorter name");
    out->data[out->len++] = '/';
    memcpy(out->data + out->len, path + start, seg);
    out->len += seg;
  }
  if (out->len == 0) out->data[out->len++] = '/';
  out->data[out->len] = '\0';
  if (out->len > MB_PATH_MAX)
    return path_fail(err, path, len, "longer than 4095 bytes; use a shorter path");
  return NULL;
}

const char *mb_path_under(const char *root, size_t rlen, const char *path, size_t plen,
                          size_t *rel_len)
{
  if (rlen == 1 && root[0] == '/') {
    *rel_len = plen > 0 ? plen - 1 : 0;
    return plen > 0 ? path + 1 : path;
  }
  if (plen < rlen || memcmp(root, path, rlen) != 0) return NULL;
  if (plen == rlen) {
    *rel_len = 0;
    return path + plen;
  }
  if (path[rlen] != '/') return NULL;
  *rel_len = plen - rlen - 1;
  return path + rlen + 1;
}

const char *mb_path_basename(const char *path, size_t len, size_t *name_len)
{
  const char *slash = memrchr(path, '/', len);
  const char *name = slash ? slash + 1 : path;
  *name_len = len - (size_t)(name - path);
  return name;
}

/* ---- text or binary ------------------------------------------------------------------ */

bool mb_utf8_valid(const char *str, size_t n, size_t *bad_at)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    /* ASCII fast path (vectorized), entered only at an ASCII byte: a run of multi-byte
     * characters does not pay a call per character. */
    if (s[i] < 0x80) i += mb_ascii_span(str + i, n - i);
    if (i >= n) break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3, cp = c & 0x07, min = 0x10000;
    } else {
      goto bad;
    }
    if (n - i <= need) goto bad;
    for (size_t k = 1; k <= need; k++) {
      unsigned cc = s[i + k];
      if ((cc & 0xC0) != 0x80) goto bad;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
    i += need + 1;
  }
  return true;
bad:
  if (bad_at) *bad_at = i;
  return false;
}

mb_textkind mb_classify(const char *data, size_t len, size_t *where)
{
  const char *nul = memchr(data, '\0', len < MB_BINARY_SNIFF ? len : MB_BINARY_SNIFF);
  if (nul) {
    if (where) *where = (size_t)(nul - data);
    return MB_BIN_NUL;
  }
  return mb_utf8_valid(data, len, where) ? MB_TEXT : MB_BIN_UTF8;
}

/* ---- read ---------------------------------------------------------------------------- */

size_t mb_count_lines(const char *data, size_t len)
{
  size_t n = 0;
  const char *p = data, *end = data + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    n++;
    if (!nl) break;
    p = nl + 1;
  }
  return n;
}

bool mb_buf_add_line(mb_buf *b, const char *line, size_t len)
{
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len <= MB_LINE_MAX_CHARS) return mb_buf_add(b, line, len);
  /* Cut after MB_LINE_MAX_CHARS code points (continuation bytes do not start a character). */
  size_t chars = 0, i = 0, cut = len;
  for (; i < len; i++) {
    if (((unsigned char)line[i] & 0xC0) != 0x80) {
      if (chars == MB_LINE_MAX_CHARS) {
        cut = i;
        break;
      }
      chars++;
    }
  }
  if (cut == len) return mb_buf_add(b, line, len);
  size_t more = 0;
  for (i = cut; i < len; i++)
    if (((unsigned char)line[i] & 0xC0) != 0x80) more++;
  return mb_buf_add(b, line, cut) && mb_buf_printf(b, " [... line cut: %zu more characters]", more);
}

/* "%6d\t" without printf: the number right-aligned in six columns, wider if it needs to be. */
static bool add_lineno(mb_buf *b, size_t n)
{
  char tmp[24];
  size_t k = sizeof tmp;
  tmp[--k] = '\t';
  do {
    tmp[--k] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  while (sizeof tmp - k < 7) tmp[--k] = ' ';
  return mb_buf_add(b, tmp + k, sizeof tmp - k);
}

static void binary_message(mb_buf *err, const char *op, const char *path, mb_textkind kind,
                           size_t where, const char *advice)
{
  mb_buf_reset(err);
  mb_buf_printf(err, "%s%s%s: binary file (%s at byte %zu); %s", op, path && *path ? " " : "",
                path ? path : "", kind == MB_BIN_NUL ? "NUL byte" : "invalid UTF-8", where, advice);
}

mb_code mb_read_format(const char *data, size_t len, size_t offset, size_t limit, const char *path,
                       mb_buf *out, mb_buf *err)
{
  mb_buf_reset(out);
  if (limit == 0) limit = MB_READ_LIMIT;
  size_t where = 0;
  mb_textkind kind = mb_classify(data, len, &where);
  if (kind != MB_TEXT) {
    binary_message(err, "read", path, kind, where, "use read_bytes to get its bytes");
    return MB_BINARY;
  }
  if (len == 0 && offset == 0) return mb_buf_add(out, "", 0) ? NULL : MB_ENOMEM;
  const char *p = data, *end = data + len;
  size_t skipped = 0;
  while (skipped < offset && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
    skipped++;
  }
  if (p >= end) { /* offset at or past the last line: skipped is the line count */
    mb_buf_reset(err);
    mb_buf_printf(err, "Offset %zu exceeds file length (%zu lines)", offset, skipped);
    return MB_INVALID;
  }
  size_t shown = 0;
  while (shown < limit && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    if (shown && !mb_buf_add(out, "\n", 1)) return MB_ENOMEM;
    if (!add_lineno(out, offset + shown + 1) || !mb_buf_add_line(out, p, (size_t)(le - p)))
      return MB_ENOMEM;
    shown++;
    p = nl ? nl + 1 : end;
  }
  if (p < end) {
    size_t more = mb_count_lines(p, (size_t)(end - p));
    if (!mb_buf_printf(out, "\n\n... (%zu more lines)", more)) return MB_ENOMEM;
  }
  return NULL;
}

/* ---- grep's walk rules --------------------------------------------------------------- */

static const char *const skipped_dirs[] = {
    ".git",          "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache",  ".eggs",       "build", "dist", NULL};

bool mb_is_skipped_dir(const char *name, size_t len)
{
  for (const char *const *d = skipped_dirs; *d; d++)
    if (strlen(*d) == len && memcmp(*d, name, len) == 0) return true;
  return false;
}

bool mb_is_hidden_name(const char *name, size_t len)
{
  return len > 0 && name[0] == '.';
}

bool mb_grep_skips(const char *rel, size_t len, bool last_is_dir, bool ignore_hidden)
{
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && rel[i] != '/') i++;
    size_t seg = i - start;
    bool is_dir = i < len || last_is_dir;
    if (seg > 0) {
      if (ignore_hidden && mb_is_hidden_name(rel + start, seg)) return true;
      if (is_dir && mb_is_skipped_dir(rel + start, seg)) return true;
    }
    i++;
  }
  return false;
}

/* ---- time ---------------------------------------------------------------------------- */

size_t mb_iso8601(int64_t sec, long nsec, char out[MB_ISO8601_SIZE])
{
  time_t t = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof tm);
  int n = snprintf(out, MB_ISO8601_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (nsec / 1000) % 1000000);
  return n > 0 && n < MB_ISO8601_SIZE ? (size_t)n : 0;
}

static bool digits(const char *s, size_t n, int *v)
{
  int x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return true;
}

bool mb_iso8601_parse(const char *s, size_t n, int64_t *sec, long *nsec)
{
  int y, mo, d, h, mi, se;
  if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' ||
      s[16] != ':')
    return false;
  if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
      !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
  size_t i = 19;
  long frac = 0, scale = 100000000;
  if (i < n && s[i] == '.') {
    i++;
    size_t start = i;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
      frac += (s[i] - '0') * scale;
      scale /= 10;
    }
    if (i == start) return false;
  }
  if (!(i + 1 == n && s[i] == 'Z') && !(i + 6 == n && memcmp(s + i, "+00:00", 6) == 0) && i != n)
    return false;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  *sec = (int64_t)timegm(&tm);
  *nsec = frac;
  return true;
}

/* ---- base64 -------------------------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool mb_base64_encode(const void *src, size_t n, mb_buf *out)
{
  const unsigned char *p = src;
  mb_buf_reset(out);
  if (!mb_buf_reserve(out, (n + 2) / 3 * 4)) return false;
  char *o = out->data;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    *o++ = b64chars[(v >> 6) & 63];
    *o++ = b64chars[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
    *o++ = b64chars[v >> 18];
    *o++ = b64chars[(v >> 12) & 63];
    *o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  out->len = (size_t)(o - out->data);
  out->data[out->len] = '\0';
  return true;
}

mb_code mb_base64_decode(const char *s, size_t n, mb_buf *out, mb_buf *err)
{
  mb_buf_reset(out);
  if (!mb_buf_reserve(out, n / 4 * 3 + 3)) return MB_ENOMEM;
  unsigned acc = 0;
  int bits = 0;
  bool padded = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=') {
      padded = true;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
      continue;
    } else {
      mb_buf_reset(err);
      mb_buf_printf(err, "base64: invalid character at byte %zu", i);
      return MB_INVALID;
    }
    if (padded) {
      mb_buf_reset(err);
      mb_buf_printf(err, "base64: data after padding at byte %zu", i);
      return MB_INVALID;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->data[out->len++] = (char)((acc >> bits) & 0xFF);
    }
  }
  if (bits >= 6) {
    mb_buf_reset(err);
    mb_buf_addstr(err, "base64: truncated input (a lone trailing character)");
    return MB_INVALID;
  }
  out->data[out->len] = '\0';
  return NULL;
}
