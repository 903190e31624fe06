/* capture.c: bounded output capture (see capture.h). No Lua; owns its two buffers. */
#include "capture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mb_capture_init(mb_capture *c, size_t max)
{
  memset(c, 0, sizeof *c);
  if (max < 2) max = 2;
  c->head_cap = max / 2;
  c->tail_cap = max - c->head_cap;
}

static int head_reserve(mb_capture *c, size_t need)
{
  if (need <= c->head_alloc) return 0;
  size_t a = c->head_alloc ? c->head_alloc : 4096;
  while (a < need) a *= 2;
  if (a > c->head_cap) a = c->head_cap;
  char *h = realloc(c->head, a);
  if (h == NULL) return -1;
  c->head = h;
  c->head_alloc = a;
  return 0;
}

/* Copies n (<= tail_cap - tail_len) bytes to the end of the ring. */
static void ring_put(mb_capture *c, const char *p, size_t n)
{
  size_t end = (c->tail_start + c->tail_len) % c->tail_cap;
  size_t first = c->tail_cap - end < n ? c->tail_cap - end : n;
  memcpy(c->tail + end, p, first);
  memcpy(c->tail, p + first, n - first);
  c->tail_len += n;
}

int mb_capture_add(mb_capture *c, const char *p, size_t n)
{
  c->total += n;
  if (c->head_len < c->head_cap) {
    size_t k = c->head_cap - c->head_len < n ? c->head_cap - c->head_len : n;
    if (head_reserve(c, c->head_len + k) != 0) {
      c->dropped += n;
      c->ever_truncated = 1;
      return -1;
    }
    memcpy(c->head + c->head_len, p, k);
    c->head_len += k;
    p += k;
    n -= k;
  }
  if (n == 0) return 0;
  if (c->tail == NULL) {
    c->tail = malloc(c->tail_cap);
    if (c->tail == NULL) {
      c->dropped += n;
      c->ever_truncated = 1;
      return -1;
    }
  }
  if (n >= c->tail_cap) { /* only the last tail_cap bytes can survive */
    c->dropped += c->tail_len + (n - c->tail_cap);
    c->tail_start = c->tail_len = 0;
    p += n - c->tail_cap;
    n = c->tail_cap;
  } else if (c->tail_len + n > c->tail_cap) {
    size_t over = c->tail_len + n - c->tail_cap;
    c->dropped += over;
    c->tail_start = (c->tail_start + over) % c->tail_cap;
    c->tail_len -= over;
  }
  if (c->dropped) c->ever_truncated = 1;
  ring_put(c, p, n);
  return 0;
}

uint64_t mb_capture_pending(const mb_capture *c)
{
  return c->head_len + c->tail_len;
}

/* Length of s[0..n) without an incomplete UTF-8 sequence at its end. */
static size_t utf8_trim_end(const char *s, size_t n)
{
  size_t i = n, back = 0;
  while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
  if (i == 0) return n;
  unsigned char lead = (unsigned char)s[i - 1];
  size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (want > 1 && back + 1 < want) return i - 1; /* cut before the partial character */
  return n;
}

int mb_capture_take(mb_capture *c, char **out, size_t *len, int *truncated)
{
  char marker[96];
  size_t head_n = c->head_len, skip = 0, mlen = 0;
  uint64_t dropped = c->dropped;
  if (dropped > 0) {
    /* Cut on character boundaries: the bytes given up count as dropped. */
    size_t h = utf8_trim_end(c->head, head_n);
    dropped += head_n - h;
    head_n = h;
    while (skip < c->tail_len && skip < 3 &&
           ((unsigned char)c->tail[(c->tail_start + skip) % c->tail_cap] & 0xC0) == 0x80)
      skip++;
    dropped += skip;
    mlen = (size_t)snprintf(marker, sizeof marker,
                            "\n\n[... %" PRIu64 " bytes of output dropped ...]\n\n", dropped);
  }
  size_t tail_n = c->tail_len - skip;
  size_t n = head_n + mlen + tail_n;
  char *buf = malloc(n + 1);
  if (buf == NULL) return -1;
  if (head_n) memcpy(buf, c->head, head_n);
  if (mlen) memcpy(buf + head_n, marker, mlen);
  size_t start = (c->tail_start + skip) % (c->tail_cap ? c->tail_cap : 1);
  size_t first = tail_n && c->tail_cap - start < tail_n ? c->tail_cap - start : tail_n;
  if (tail_n) {
    memcpy(buf + head_n + mlen, c->tail + start, first);
    if (tail_n > first) memcpy(buf + head_n + mlen + first, c->tail, tail_n - first);
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  if (truncated) *truncated = dropped > 0;
  c->head_len = c->tail_start = c->tail_len = 0;
  c->dropped = c->total = 0;
  return 0;
}

void mb_capture_free(mb_capture *c)
{
  free(c->head);
  free(c->tail);
  c->head = c->tail = NULL;
  c->head_len = c->head_alloc = c->tail_len = c->tail_start = 0;
}
