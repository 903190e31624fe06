/* hashline_core.c: newline scanning and MD5 line hashes for moonbox.hashline (no Lua here).
 *
 * Locating line N of a large file is the hot path of every hashline edit, so newlines are
 * counted 64 bytes at a time with SSE2 (a per-line memchr costs ~5 ns a call, which is 50 us
 * on a 10,000-line file; the vector count is a few us). The hasher owns one fetched EVP_MD and
 * one EVP_MD_CTX, reused for every line. Fail codes: none (OpenSSL failure is reported as -1). */
#include "hashline_core.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>

/* Newlines in the 64 bytes at p. */
static size_t block_nl(const char *p)
{
  const __m128i nl = _mm_set1_epi8('\n');
  __m128i acc = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), nl);
  acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), nl));
  acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), nl));
  acc = _mm_add_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), nl));
  /* Each byte now holds minus its count (0..4); negate and sum the bytes. */
  __m128i sums = _mm_sad_epu8(_mm_sub_epi8(_mm_setzero_si128(), acc), _mm_setzero_si128());
  return (size_t)_mm_cvtsi128_si32(sums) + (size_t)_mm_extract_epi16(sums, 4);
}
#define HL_BLOCK 64
#else
static size_t block_nl(const char *p)
{
  size_t c = 0;
  for (int i = 0; i < 64; i++) c += p[i] == '\n';
  return c;
}
#define HL_BLOCK 64
#endif

size_t hl_count_nl(const char *s, size_t n)
{
  size_t i = 0, c = 0;
  for (; i + HL_BLOCK <= n; i += HL_BLOCK) c += block_nl(s + i);
  for (; i < n; i++) c += s[i] == '\n';
  return c;
}

size_t hl_skip_nl(const char *s, size_t n, size_t k)
{
  size_t i = 0, seen = 0;
  for (; i + HL_BLOCK <= n; i += HL_BLOCK) {
    size_t c = block_nl(s + i);
    if (seen + c >= k) break;
    seen += c;
  }
  for (; i < n; i++) {
    if (s[i] == '\n' && ++seen == k) return i + 1;
  }
  return HL_NOT_FOUND;
}

size_t hl_total_lines(const char *s, size_t n)
{
  size_t nl = hl_count_nl(s, n);
  return nl + 1 - (n > 0 && s[n - 1] == '\n');
}

struct hl_hasher {
  EVP_MD *md;
  EVP_MD_CTX *ctx;
};

hl_hasher *hl_hasher_new(void)
{
  hl_hasher *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->md = EVP_MD_fetch(NULL, "MD5", NULL);
  h->ctx = EVP_MD_CTX_new();
  if (!h->md || !h->ctx) {
    hl_hasher_free(h);
    return NULL;
  }
  return h;
}

void hl_hasher_free(hl_hasher *h)
{
  if (!h) return;
  EVP_MD_CTX_free(h->ctx);
  EVP_MD_free(h->md);
  free(h);
}

int hl_hash(hl_hasher *h, const char *s, size_t n, int digits, char *out)
{
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 || EVP_DigestUpdate(h->ctx, s, n) != 1 ||
      EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1)
    return -1;
  for (int i = 0; i < digits && i / 2 < (int)mdlen; i++) {
    out[i] = hex[(i % 2 == 0) ? (md[i / 2] >> 4) : (md[i / 2] & 15)];
  }
  out[digits] = '\0';
  return 0;
}
