/* hashline_core.h: the Lua-free half of moonbox.hashline — newline scanning and line hashes. */
#ifndef HASHLINE_CORE_H
#define HASHLINE_CORE_H

#include <stddef.h>

#define HL_NOT_FOUND ((size_t)-1)

/* Number of '\n' bytes in s[0..n). */
size_t hl_count_nl(const char *s, size_t n);

/* Offset just past the k-th '\n' of s[0..n) (k >= 1), or HL_NOT_FOUND when there are fewer. */
size_t hl_skip_nl(const char *s, size_t n, size_t k);

/* Lines as hashline counts them: split on '\n', a final empty piece after a trailing '\n'
 * dropped. So "" and "\n" have 1 line, "a\nb" and "a\nb\n" have 2. */
size_t hl_total_lines(const char *s, size_t n);

/* A reusable MD5 context (OpenSSL EVP, the digest fetched once). */
typedef struct hl_hasher hl_hasher;

hl_hasher *hl_hasher_new(void);
void hl_hasher_free(hl_hasher *h);

/* Writes the first `digits` (1..32) lowercase hex digits of MD5(s[0..n)) and a NUL into out.
 * Returns 0, or -1 when OpenSSL fails. */
int hl_hash(hl_hasher *h, const char *s, size_t n, int digits, char *out);

#endif
