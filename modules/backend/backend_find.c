/* backend_find.c: mb_find, the substring search behind edit (see backend_core.h).
 *
 * Source files repeat their prefixes ("line ", "    self.", "def "), which makes a
 * first-byte-driven memmem stop and compare on nearly every line. Instead this picks the two
 * bytes of the needle that are rarest in typical text (a fixed rank table) and scans 16 bytes
 * at a time for positions where both sit at their offsets (SSE2, baseline on x86-64), verifying
 * only those candidates with memcmp. Other targets use memmem. No allocation, no Lua. */
#define _GNU_SOURCE
#include <string.h>

#include "backend_core.h"

#if defined(__SSE2__)
#include <emmintrin.h>

/* Roughly how common a byte is in source code and prose: higher = more common. */
static unsigned char byte_rank(unsigned char c)
{
  if (c == ' ') return 255;
  if (c >= 'a' && c <= 'z') return strchr("etaoinsrlhdcu", c) ? 240 : 210;
  if (c == '\n' || c == '\t') return 220;
  if (c >= '0' && c <= '9') return c <= '2' ? 180 : 160;
  if (c >= 'A' && c <= 'Z') return 140;
  if (c == '_' || c == '.' || c == ',' || c == '(' || c == ')' || c == '=' || c == '"' ||
      c == '\'' || c == ':' || c == ';')
    return 165;
  if (c < 0x80) return 120;
  return 90;
}

const char *mb_find(const char *h, size_t hn, const char *nd, size_t nn)
{
  if (nn == 0) return h;
  if (nn > hn) return NULL;
  if (nn == 1) return memchr(h, nd[0], hn);
  /* The two rarest bytes at distinct offsets. */
  size_t o1 = 0, o2 = 1;
  if (byte_rank((unsigned char)nd[1]) < byte_rank((unsigned char)nd[0])) o1 = 1, o2 = 0;
  for (size_t i = 2; i < nn && i < 256; i++) {
    unsigned char r = byte_rank((unsigned char)nd[i]);
    if (r < byte_rank((unsigned char)nd[o1]))
      o2 = o1, o1 = i;
    else if (r < byte_rank((unsigned char)nd[o2]) && nd[i] != nd[o1])
      o2 = i;
  }
  const __m128i v1 = _mm_set1_epi8(nd[o1]), v2 = _mm_set1_epi8(nd[o2]);
  const char *last = h + (hn - nn); /* the last possible start */
  const char *p = h;
  size_t omax = o1 > o2 ? o1 : o2;
  /* 64 bytes per round: four 16-byte masks folded into one 64-bit candidate mask. */
  while (p + 64 + omax <= h + hn && p <= last) {
    uint64_t mask = 0;
    for (int k = 0; k < 4; k++) {
      __m128i a = _mm_loadu_si128((const __m128i *)(p + 16 * k + o1));
      __m128i b = _mm_loadu_si128((const __m128i *)(p + 16 * k + o2));
      mask |= (uint64_t)(unsigned)_mm_movemask_epi8(
                  _mm_and_si128(_mm_cmpeq_epi8(a, v1), _mm_cmpeq_epi8(b, v2)))
              << (16 * k);
    }
    while (mask) {
      const char *c = p + __builtin_ctzll(mask);
      if (c > last) return NULL;
      if (memcmp(c, nd, nn) == 0) return c;
      mask &= mask - 1;
    }
    p += 64;
  }
  for (; p <= last; p++)
    if (p[o1] == nd[o1] && p[o2] == nd[o2] && memcmp(p, nd, nn) == 0) return p;
  return NULL;
}

#else

const char *mb_find(const char *h, size_t hn, const char *nd, size_t nn)
{
  return memmem(h, hn, nd, nn);
}

#endif
