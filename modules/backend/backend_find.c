/* backend_find.c: the byte scans every edit pays for (see backend_core.h): mb_find, the
 * substring search, and mb_ascii_span, the fast path of UTF-8 validation.
 *
 * Source files repeat their prefixes ("line_", "    self.", "def "), which makes a
 * first-byte-driven memmem stop and compare on nearly every line. mb_find instead picks the two
 * bytes of the needle that are rarest in typical text (a fixed rank table) and scans 64 bytes a
 * round for positions where both sit at their offsets, verifying only those candidates with
 * memcmp. On x86-64 the scans use AVX2 when the CPU has it and SSE2 otherwise (or when the
 * environment sets MOONBOX_NO_AVX2); other targets use a scalar pair scan and a word-at-a-time
 * loop. No allocation, no Lua. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "backend_core.h"

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

/* The offsets of the two rarest bytes of the needle (nn >= 2), with different values if any. */
static void pick_pair(const char *nd, size_t nn, size_t *o1, size_t *o2)
{
  size_t a = 0, b = 1;
  if (byte_rank((unsigned char)nd[1]) < byte_rank((unsigned char)nd[0])) a = 1, b = 0;
  for (size_t i = 2; i < nn && i < 256; i++) {
    unsigned char r = byte_rank((unsigned char)nd[i]);
    if (r < byte_rank((unsigned char)nd[a]))
      b = a, a = i;
    else if ((r < byte_rank((unsigned char)nd[b]) || nd[b] == nd[a]) && nd[i] != nd[a])
      b = i;
  }
  *o1 = a, *o2 = b;
}

/* Scalar tail: candidates from p to the last possible start. */
static const char *find_tail(const char *p, const char *last, const char *nd, size_t nn, size_t o1,
                             size_t o2)
{
  for (; p <= last; p++)
    if (p[o1] == nd[o1] && p[o2] == nd[o2] && memcmp(p, nd, nn) == 0) return p;
  return NULL;
}

/* Checks the candidates of one 64-byte round; returns the match or NULL (then *stop says the
 * candidates ran past the last possible start). */
static inline const char *verify(const char *p, uint64_t mask, const char *last, const char *nd,
                                 size_t nn, bool *stop)
{
  while (mask) {
    const char *c = p + __builtin_ctzll(mask);
    if (c > last) {
      *stop = true;
      return NULL;
    }
    if (memcmp(c, nd, nn) == 0) return c;
    mask &= mask - 1;
  }
  return NULL;
}

#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>

/* AVX2 when the CPU has it, unless MOONBOX_NO_AVX2 is set (the specs use it to test the SSE2
 * path). Decided once; threads racing on the first call store the same value. */
static bool use_avx2(void)
{
  static int state; /* 0 undecided, 1 AVX2, 2 SSE2 */
  int v = __atomic_load_n(&state, __ATOMIC_RELAXED);
  if (!v) {
    v = __builtin_cpu_supports("avx2") && !getenv("MOONBOX_NO_AVX2") ? 1 : 2;
    __atomic_store_n(&state, v, __ATOMIC_RELAXED);
  }
  return v == 1;
}

#define FIND_BODY(VEC, SET1, LOADU, CMPEQ, AND, MOVEMASK, WIDTH)                            \
  const VEC v1 = SET1(nd[o1]), v2 = SET1(nd[o2]);                                           \
  const char *last = h + (hn - nn), *p = h;                                                 \
  size_t omax = o1 > o2 ? o1 : o2;                                                          \
  while (p + 64 + omax <= h + hn && p <= last) {                                            \
    uint64_t mask = 0;                                                                      \
    for (int k = 0; k < 64 / (WIDTH); k++) {                                                \
      VEC a = LOADU((const VEC *)(p + (WIDTH)*k + o1));                                     \
      VEC b = LOADU((const VEC *)(p + (WIDTH)*k + o2));                                     \
      mask |= (uint64_t)(uint32_t)MOVEMASK(AND(CMPEQ(a, v1), CMPEQ(b, v2))) << ((WIDTH)*k); \
    }                                                                                       \
    bool stop = false;                                                                      \
    const char *m = verify(p, mask, last, nd, nn, &stop);                                   \
    if (m || stop) return m;                                                                \
    p += 64;                                                                                \
  }                                                                                         \
  return find_tail(p, last, nd, nn, o1, o2);

__attribute__((target("avx2"))) static const char *find_avx2(const char *h, size_t hn,
                                                             const char *nd, size_t nn, size_t o1,
                                                             size_t o2)
{
  FIND_BODY(__m256i, _mm256_set1_epi8, _mm256_loadu_si256, _mm256_cmpeq_epi8, _mm256_and_si256,
            _mm256_movemask_epi8, 32)
}

static const char *find_sse2(const char *h, size_t hn, const char *nd, size_t nn, size_t o1,
                             size_t o2)
{
  FIND_BODY(__m128i, _mm_set1_epi8, _mm_loadu_si128, _mm_cmpeq_epi8, _mm_and_si128,
            _mm_movemask_epi8, 16)
}

const char *mb_find(const char *h, size_t hn, const char *nd, size_t nn)
{
  if (nn == 0) return h;
  if (nn > hn) return NULL;
  if (nn == 1) return memchr(h, nd[0], hn);
  size_t o1, o2;
  pick_pair(nd, nn, &o1, &o2);
  if (use_avx2()) return find_avx2(h, hn, nd, nn, o1, o2);
  return find_sse2(h, hn, nd, nn, o1, o2);
}

__attribute__((target("avx2"))) static size_t ascii_avx2(const unsigned char *s, size_t n)
{
  size_t i = 0;
  while (i + 128 <= n) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
    __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
    __m256i c = _mm256_loadu_si256((const __m256i *)(s + i + 64));
    __m256i d = _mm256_loadu_si256((const __m256i *)(s + i + 96));
    if (_mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d)))) break;
    i += 128;
  }
  while (i + 32 <= n && !_mm256_movemask_epi8(_mm256_loadu_si256((const __m256i *)(s + i))))
    i += 32;
  while (i < n && s[i] < 0x80) i++;
  return i;
}

static size_t ascii_sse2(const unsigned char *s, size_t n)
{
  size_t i = 0;
  while (i + 64 <= n) {
    __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
    __m128i d = _mm_loadu_si128((const __m128i *)(s + i + 48));
    if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) break;
    i += 64;
  }
  while (i < n && s[i] < 0x80) i++;
  return i;
}

size_t mb_ascii_span(const char *s, size_t n)
{
  if (use_avx2()) return ascii_avx2((const unsigned char *)s, n);
  return ascii_sse2((const unsigned char *)s, n);
}

#else

const char *mb_find(const char *h, size_t hn, const char *nd, size_t nn)
{
  if (nn < 2 || nn > hn) return nn == 0 ? h : nn > hn ? NULL : memchr(h, nd[0], hn);
  size_t o1, o2;
  pick_pair(nd, nn, &o1, &o2);
  return find_tail(h, h + (hn - nn), nd, nn, o1, o2);
}

size_t mb_ascii_span(const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ull) break;
  }
  while (i < n && s[i] < 0x80) i++;
  return i;
}

#endif
