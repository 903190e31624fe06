/* docker_tar.c: the tar codec of moonbox.docker, for GET/PUT /containers/{id}/archive.
 *
 *   tar_encode{{name =, type = "file"|"dir", data =, mode =, mtime =, uid =, gid =}, ...}
 *     -> string: ustar entries (a PAX "path" record for names longer than 100 bytes), then the
 *     two zero blocks. Names must be relative, without NUL.
 *   tar_decode(data [, with_data = true])
 *     -> {{name =, type = "file"|"dir"|"symlink"|"link"|"other", size =, mode =, mtime =,
 *          linkname =, data = (files, when with_data)}, ...} | nil, msg, "EIO"
 *     Reads ustar, PAX (path, linkpath, size, mtime) and GNU long names (L, K); every length is
 *     checked against the input, so a malformed archive fails instead of reading past it.
 *
 * Owns nothing beyond the Lua strings it builds (luaL_Buffer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/docker.h"

#define BLOCK 512

/* ---- encoding ------------------------------------------------------------------------------ */

static void put_octal(char *field, size_t width, uint64_t v)
{
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%0*llo", (int)(width - 1), (unsigned long long)v);
  memcpy(field, tmp, width - 1);
  field[width - 1] = '\0';
}

static void checksum(char *h)
{
  unsigned sum = 0;
  memset(h + 148, ' ', 8);
  for (int i = 0; i < BLOCK; i++) sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
}

/* The output: a userdata-backed byte array (collected by Lua if anything raises). */
typedef struct obuf {
  char *p;
  size_t len, cap;
} obuf;

static void add_padded(obuf *b, const char *p, size_t n)
{
  memmove(b->p + b->len, p, n);
  b->len += n;
  if (n % BLOCK) {
    memset(b->p + b->len, 0, BLOCK - n % BLOCK);
    b->len += BLOCK - n % BLOCK;
  }
}

static size_t padded_size(size_t n)
{
  return (n + BLOCK - 1) / BLOCK * BLOCK;
}

static void header(obuf *b, const char *name, size_t nlen, char type, uint64_t size, unsigned mode,
                   uint64_t mtime, uint64_t uid, uint64_t gid)
{
  char *h = b->p + b->len;
  memset(h, 0, BLOCK);
  memcpy(h, name, nlen > 100 ? 100 : nlen);
  put_octal(h + 100, 8, mode & 07777);
  put_octal(h + 108, 8, uid);
  put_octal(h + 116, 8, gid);
  put_octal(h + 124, 12, size);
  put_octal(h + 136, 12, mtime);
  h[156] = type;
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  checksum(h);
  b->len += BLOCK;
}

static lua_Integer opt_int(lua_State *L, int t, const char *name, lua_Integer def)
{
  lua_Integer v = def;
  int ty = lua_getfield(L, t, name);
  if (ty != LUA_TNIL) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0 || (uint64_t)v > 077777777777ULL)
      luaL_error(L, "tar_encode: %s must be an integer from 0 to 8^11-1", name);
  }
  lua_pop(L, 1);
  return v;
}

/* The length of the PAX record "<len> path=<name>\n" (len counts itself). */
static size_t pax_len(size_t nlen)
{
  char rec[32];
  size_t body = nlen + 7, len = body + 1;
  while ((size_t)snprintf(rec, sizeof rec, "%zu", len) + body != len) len++;
  return len;
}

/* Checks entry i (on top of the stack) and returns its encoded size; the name, data and type
 * are left in the entry table, which the caller keeps on the stack. */
static size_t entry_size(lua_State *L, lua_Integer i, const char **name, size_t *nlen, int *dir,
                         const char **data, size_t *dlen)
{
  int e = lua_gettop(L);
  if (!lua_istable(L, e)) luaL_error(L, "tar_encode: entry %d must be a table", (int)i);
  lua_getfield(L, e, "name");
  *name = lua_tolstring(L, -1, nlen);
  if (*name == NULL || *nlen == 0 || (*name)[0] == '/' || memchr(*name, '\0', *nlen))
    luaL_error(L, "tar_encode: entry %d needs a relative name without NUL", (int)i);
  lua_getfield(L, e, "type");
  const char *type = lua_tostring(L, -1);
  *dir = type != NULL && strcmp(type, "dir") == 0;
  if (type != NULL && !*dir && strcmp(type, "file") != 0)
    luaL_error(L, "tar_encode: type must be \"file\" or \"dir\"");
  *data = "";
  *dlen = 0;
  if (!*dir && lua_getfield(L, e, "data") != LUA_TNIL) {
    *data = lua_tolstring(L, -1, dlen);
    if (*data == NULL) luaL_error(L, "tar_encode: data must be a string");
  }
  size_t n = BLOCK + padded_size(*dlen);
  if (*nlen > 100) n += BLOCK + padded_size(pax_len(*nlen));
  return n;
}

int mb_docker_tar_encode(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Integer n = luaL_len(L, 1);
  size_t total = 2 * BLOCK;
  for (lua_Integer i = 1; i <= n; i++) {
    const char *name, *data;
    size_t nlen, dlen;
    int dir;
    lua_rawgeti(L, 1, i);
    total += entry_size(L, i, &name, &nlen, &dir, &data, &dlen);
    lua_settop(L, 1);
  }
  obuf b = {lua_newuserdatauv(L, total, 0), 0, total}; /* index 2 */
  for (lua_Integer i = 1; i <= n; i++) {
    const char *name, *data;
    size_t nlen, dlen;
    int dir;
    lua_rawgeti(L, 1, i);
    int e = lua_gettop(L);
    entry_size(L, i, &name, &nlen, &dir, &data, &dlen);
    unsigned mode = (unsigned)opt_int(L, e, "mode", dir ? 0755 : 0644);
    uint64_t mtime = (uint64_t)opt_int(L, e, "mtime", 0);
    uint64_t uid = (uint64_t)opt_int(L, e, "uid", 0), gid = (uint64_t)opt_int(L, e, "gid", 0);
    if (nlen > 100) {
      size_t len = pax_len(nlen);
      header(&b, "././@PaxHeader", 14, 'x', len, 0644, mtime, 0, 0);
      char *rec = b.p + b.len;
      int k = snprintf(rec, 32, "%zu path=", len);
      memcpy(rec + k, name, nlen);
      rec[k + (int)nlen] = '\n';
      add_padded(&b, rec, len); /* in place: only the padding is new */
    }
    header(&b, name, nlen, dir ? '5' : '0', dir ? 0 : dlen, mode, mtime, uid, gid);
    if (!dir) add_padded(&b, data, dlen);
    lua_settop(L, 2);
  }
  memset(b.p + b.len, 0, 2 * BLOCK);
  b.len += 2 * BLOCK;
  lua_pushlstring(L, b.p, b.len);
  return 1;
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* A numeric field: octal text (NUL/space padded) or GNU base-256. -1 when malformed. */
static int64_t get_num(const unsigned char *f, size_t w)
{
  if (f[0] & 0x80) {
    uint64_t v = f[0] & 0x3f;
    for (size_t i = 1; i < w; i++) {
      if (v >> 55) return -1;
      v = (v << 8) | f[i];
    }
    return (int64_t)v;
  }
  size_t i = 0;
  while (i < w && f[i] == ' ') i++;
  uint64_t v = 0;
  for (; i < w && f[i] >= '0' && f[i] <= '7'; i++) {
    if (v >> 60) return -1;
    v = v * 8 + (uint64_t)(f[i] - '0');
  }
  if (i < w && f[i] != '\0' && f[i] != ' ') return -1;
  return (int64_t)v;
}

static size_t field_len(const unsigned char *f, size_t w)
{
  const void *z = memchr(f, '\0', w);
  return z ? (size_t)((const unsigned char *)z - f) : w;
}

typedef struct pending {
  const char *name, *link; /* from PAX or GNU long-name entries, for the next entry */
  size_t name_len, link_len;
  int64_t size, mtime; /* -1: not given */
} pending;

/* Parses PAX records in p[0..n) into *pd. Returns 0, or -1 when malformed. */
static int parse_pax(const char *p, size_t n, pending *pd)
{
  size_t i = 0;
  while (i < n) {
    size_t len = 0, j = i;
    while (j < n && p[j] >= '0' && p[j] <= '9' && len < n) len = len * 10 + (size_t)(p[j++] - '0');
    if (j >= n || p[j] != ' ' || len == 0 || len > n - i) return -1;
    const char *kv = p + j + 1, *end = p + i + len - 1; /* end: the '\n' */
    if (*end != '\n' || kv > end) return -1;
    const char *eq = memchr(kv, '=', (size_t)(end - kv));
    if (eq == NULL) return -1;
    size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
    const char *v = eq + 1;
    if (klen == 4 && memcmp(kv, "path", 4) == 0) {
      pd->name = v, pd->name_len = vlen;
    } else if (klen == 8 && memcmp(kv, "linkpath", 8) == 0) {
      pd->link = v, pd->link_len = vlen;
    } else if ((klen == 4 && memcmp(kv, "size", 4) == 0) ||
               (klen == 5 && memcmp(kv, "mtime", 5) == 0)) {
      int64_t x = 0;
      for (size_t k = 0; k < vlen && v[k] != '.'; k++) {
        if (v[k] < '0' || v[k] > '9' || x > INT64_MAX / 16) return -1;
        x = x * 10 + (v[k] - '0');
      }
      if (klen == 4)
        pd->size = x;
      else
        pd->mtime = x;
    }
    i += len;
  }
  return 0;
}

static int bad_tar(lua_State *L, const char *why)
{
  return mb_fail(L, "EIO", "docker: malformed archive from the daemon (%s)", why);
}

int mb_docker_tar_decode(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int with_data = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  lua_settop(L, 2);
  lua_newtable(L); /* index 3 */
  lua_Integer count = 0;
  pending pd = {NULL, NULL, 0, 0, -1, -1};
  size_t off = 0;
  while (off + BLOCK <= n) {
    const unsigned char *h = (const unsigned char *)s + off;
    int zero = 1;
    for (int i = 0; i < BLOCK && zero; i++) zero = h[i] == 0;
    if (zero) break;
    int64_t size = get_num(h + 124, 12), mtime = get_num(h + 136, 12), mode = get_num(h + 100, 8);
    if (size < 0 || mtime < 0 || mode < 0) return bad_tar(L, "bad number in a header");
    char type = (char)h[156];
    if (pd.size >= 0 && type != 'x' && type != 'L' && type != 'K') size = pd.size;
    size_t data_off = off + BLOCK;
    if ((uint64_t)size > n - data_off) return bad_tar(L, "entry runs past the end");
    size_t padded = ((size_t)size + BLOCK - 1) / BLOCK * BLOCK;
    const char *data = s + data_off;
    off = data_off + (padded > n - data_off ? n - data_off : padded);
    if (type == 'x') {
      if (parse_pax(data, (size_t)size, &pd) != 0) return bad_tar(L, "bad PAX header");
      continue;
    }
    if (type == 'g') continue;
    if (type == 'L' || type == 'K') {
      size_t l = field_len((const unsigned char *)data, (size_t)size);
      if (type == 'L')
        pd.name = data, pd.name_len = l;
      else
        pd.link = data, pd.link_len = l;
      continue;
    }
    lua_createtable(L, 0, 7);
    if (pd.name) {
      lua_pushlstring(L, pd.name, pd.name_len);
    } else {
      size_t pl = memcmp(h + 257, "ustar", 5) == 0 ? field_len(h + 345, 155) : 0;
      luaL_Buffer nb;
      luaL_buffinit(L, &nb);
      if (pl) {
        luaL_addlstring(&nb, (const char *)h + 345, pl);
        luaL_addchar(&nb, '/');
      }
      luaL_addlstring(&nb, (const char *)h, field_len(h, 100));
      luaL_pushresult(&nb);
    }
    lua_setfield(L, -2, "name");
    const char *tname = type == '0' || type == '\0' || type == '7' ? "file"
                        : type == '5'                              ? "dir"
                        : type == '2'                              ? "symlink"
                        : type == '1'                              ? "link"
                                                                   : "other";
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, mode & 07777);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, pd.mtime >= 0 ? pd.mtime : mtime);
    lua_setfield(L, -2, "mtime");
    if (type == '1' || type == '2') {
      if (pd.link)
        lua_pushlstring(L, pd.link, pd.link_len);
      else
        lua_pushlstring(L, (const char *)h + 157, field_len(h + 157, 100));
      lua_setfield(L, -2, "linkname");
    }
    if (with_data && tname[0] == 'f') {
      lua_pushlstring(L, data, (size_t)size);
      lua_setfield(L, -2, "data");
    }
    lua_rawseti(L, 3, ++count);
    pd = (pending){NULL, NULL, 0, 0, -1, -1};
  }
  return 1;
}
