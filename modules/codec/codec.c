/* codec.c: moonbox.codec — base64 and SHA-256 for content parts and read fingerprints.
 *
 *   base64_encode(bytes)  --> text (RFC 4648, padded, no line breaks)
 *   base64_decode(text)   --> bytes | nil, msg, "INVALID" (whitespace is skipped)
 *   sha256(bytes)         --> 64 lowercase hex digits (OpenSSL EVP); from a task, inputs of
 *                             256 KiB or more are hashed on a worker thread while the task yields
 *
 * Owns nothing between calls; output is assembled in a Lua buffer (no malloc across a call
 * that can raise). Fail codes: INVALID (malformed base64). Wrong argument types raise. */
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "moonbox.h"
#include "scheduler.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int codec_base64_encode(lua_State *L)
{
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_argcheck(L, n <= ((size_t)-1 / 4) * 3 - 3, 1, "input too large");
  size_t outlen = (n + 2) / 3 * 4;
  luaL_Buffer b;
  char *o = luaL_buffinitsize(L, &b, outlen);
  size_t i = 0, j = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    o[j++] = b64_alphabet[v >> 18];
    o[j++] = b64_alphabet[(v >> 12) & 63];
    o[j++] = b64_alphabet[(v >> 6) & 63];
    o[j++] = b64_alphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
    o[j++] = b64_alphabet[v >> 18];
    o[j++] = b64_alphabet[(v >> 12) & 63];
    o[j++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
    o[j++] = '=';
  }
  luaL_pushresultsize(&b, j);
  return 1;
}

static int8_t b64_value(unsigned char c)
{
  if (c >= 'A' && c <= 'Z') return (int8_t)(c - 'A');
  if (c >= 'a' && c <= 'z') return (int8_t)(c - 'a' + 26);
  if (c >= '0' && c <= '9') return (int8_t)(c - '0' + 52);
  if (c == '+' || c == '-') return 62; /* '-' and '_': the URL-safe alphabet */
  if (c == '/' || c == '_') return 63;
  return -1;
}

static int codec_base64_decode(lua_State *L)
{
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *o = luaL_buffinitsize(L, &b, n / 4 * 3 + 3);
  size_t j = 0;
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    int8_t v = b64_value(c);
    if (v < 0 || pad) {
      return mb_fail(L, "INVALID", "base64: unexpected character at byte %d", (int)(i + 1));
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[j++] = (char)((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6 || pad > 2) return mb_fail(L, "INVALID", "base64: truncated input");
  luaL_pushresultsize(&b, j);
  return 1;
}

typedef struct sha_job {
  const char *s;
  size_t n;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen;
  int ok;
} sha_job;

static void sha_work(void *arg)
{
  sha_job *j = arg;
  j->ok = EVP_Digest(j->s, j->n, j->md, &j->mdlen, EVP_sha256(), NULL) == 1;
}

static int sha_k(lua_State *L, int status, lua_KContext ctx)
{
  sha_job *j = lua_touserdata(L, 2);
  if (!j->ok) return luaL_error(L, "codec.sha256: OpenSSL failed");
  static const char hex[] = "0123456789abcdef";
  char out[2 * EVP_MAX_MD_SIZE];
  for (unsigned int i = 0; i < j->mdlen; i++) {
    out[2 * i] = hex[j->md[i] >> 4];
    out[2 * i + 1] = hex[j->md[i] & 15];
  }
  lua_pushlstring(L, out, 2 * (size_t)j->mdlen);
  return 1;
}

/* Inputs of SHA_WORKER_MIN bytes or more are hashed on a worker thread when called from a task
 * (about 2 ms per MiB: long enough to stall every other task). */
#define SHA_WORKER_MIN (256 * 1024)

static int codec_sha256(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_settop(L, 1);
  sha_job *j = lua_newuserdatauv(L, sizeof *j, 1);
  lua_pushvalue(L, 1); /* the input stays alive as long as the job */
  lua_setiuservalue(L, 2, 1);
  j->s = s;
  j->n = n;
  j->ok = 0;
  j->mdlen = 0;
  if (n < SHA_WORKER_MIN) {
    sha_work(j);
    return sha_k(L, LUA_OK, 0);
  }
  return mb_await_work(L, sha_work, j, 2, sha_k, 0);
}

static const luaL_Reg codec_funcs[] = {{"base64_encode", codec_base64_encode},
                                       {"base64_decode", codec_base64_decode},
                                       {"sha256", codec_sha256},
                                       {NULL, NULL}};

MB_EXPORT int luaopen_moonbox_codec(lua_State *L);
MB_EXPORT int luaopen_moonbox_codec(lua_State *L)
{
  luaL_newlib(L, codec_funcs);
  return 1;
}
