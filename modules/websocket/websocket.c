/* websocket.c: moonbox.websocket — an RFC 6455 client on the host loop (Kubernetes exec).
 *
 * Debian's libcurl 7.88 has no WebSocket support, so libcurl only makes the connection
 * (CURLOPT_CONNECT_ONLY: TCP, TLS, CA, client certificates, proxies) through the loop's multi
 * handle; the upgrade request and the framing are ours, over curl_easy_send/curl_easy_recv.
 *
 *   connect{url = "wss://host/path" | "ws://...", headers = {name = value}, protocols = {...},
 *           timeout = 30, verify = true, ca_file =, ca_data =, client_cert =, client_key =}
 *     -> Conn | nil, msg, CODE    (UNAVAILABLE, TIMEOUT, TLS, PROTOCOL: the server did not
 *                                  upgrade — its status and body are in the message)
 *   conn.protocol                  the subprotocol the server chose (or nil)
 *   conn:send(data [, "binary"|"text"]) -> true | nil, msg, CODE (CLOSED, EIO, TIMEOUT)
 *   conn:receive([timeout]) -> data, "binary"|"text" | nil, msg, CODE
 *                                  CLOSED (the server closed: msg has its code and reason),
 *                                  TIMEOUT, EIO. Pings are answered; fragments are joined.
 *   conn:close([code [, reason]])  sends a close frame (best effort) and frees the connection
 *
 * Owns: the easy handle and a receive buffer, in the Conn userdata (__gc / __close / close);
 * each wait's loop handles live in the Conn too (one operation at a time per connection). */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

#define CONN_MT "moonbox.websocket.Conn"
#define MAX_MESSAGE (64u << 20)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"

typedef struct conn {
  mb_http_xfer x;
  struct curl_slist *hdrs; /* only for the connect phase */
  curl_socket_t fd;
  int open;   /* upgraded and not closed */
  int closed; /* released */
  /* received bytes not yet parsed into frames */
  unsigned char *rbuf;
  size_t rlen, rcap;
  /* the frame being sent (or the upgrade request), and how much of it went out */
  unsigned char *sbuf;
  size_t slen, soff, scap;
  /* one operation at a time: socket readiness and a timer */
  mb_wait wait;
  mb_io io;
  mb_timer timer;
  mb_loop *loop;
  int timed_out;
  int busy;        /* an operation is in progress */
  double deadline; /* of the operation in progress, < 0 none */
  char key[32];    /* Sec-WebSocket-Key of the handshake */
  char errbuf[CURL_ERROR_SIZE];
} conn;

static void wait_release(conn *c)
{
  if (c->loop) {
    mb_io_stop(c->loop, &c->io);
    mb_timer_stop(c->loop, &c->timer);
  }
}

static void conn_release(conn *c)
{
  if (c->closed) return;
  c->closed = 1;
  c->open = 0;
  wait_release(c);
  mb_http_stop(&c->x);
  if (c->x.easy) curl_easy_cleanup(c->x.easy);
  c->x.easy = NULL;
  curl_slist_free_all(c->hdrs);
  c->hdrs = NULL;
  free(c->rbuf);
  c->rbuf = NULL;
  c->rlen = c->rcap = 0;
  free(c->sbuf);
  c->sbuf = NULL;
  c->slen = c->soff = c->scap = 0;
}

static int conn_gc(lua_State *L)
{
  conn_release(luaL_checkudata(L, 1, CONN_MT));
  return 0;
}

static conn *check_open(lua_State *L)
{
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->closed) luaL_error(L, "attempt to use a closed websocket connection");
  return c;
}

static int conn_index(lua_State *L)
{
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/* ---- waiting: yield inside a task, run the loop elsewhere (no recursion) ---------------- */

static void on_ready(mb_loop *loop, mb_io *io, unsigned events)
{
  conn *c = io->data;
  wait_release(c);
  mb_wait_done(loop, &c->wait);
}

static void on_timeout(mb_loop *loop, mb_timer *t)
{
  conn *c = t->data;
  c->timed_out = 1;
  wait_release(c);
  mb_wait_done(loop, &c->wait);
}

static void wait_cancel(mb_loop *loop, mb_wait *w)
{
  wait_release(w->data);
}

/* Arms a wait for the socket. Returns 0 or an errno value. */
static int arm(conn *c, unsigned events)
{
  mb_wait_init(&c->wait, wait_cancel, c);
  c->timed_out = 0;
  int rc = mb_io_start(c->loop, &c->io, (int)c->fd, events, on_ready, c);
  if (rc) return rc;
  if (c->deadline >= 0) {
    double d = c->deadline - mb_now();
    rc = mb_timer_start(c->loop, &c->timer, d < 0 ? 0 : d, on_timeout, c);
    if (rc) wait_release(c);
  }
  return rc;
}

static int yieldable(lua_State *L)
{
  return mb_task_current(L) != NULL && lua_isyieldable(L);
}

/* Outside a task: run the loop until the armed wait is over. 0, or raises. */
static void block(lua_State *L, conn *c)
{
  if (mb_loop_run_until(c->loop, &c->wait.done) != 0) luaL_error(L, "websocket: the loop ran dry");
  if (c->wait.cancelled) luaL_error(L, "task cancelled");
}

static int op_fail(lua_State *L, conn *c, const char *code, const char *detail)
{
  c->busy = 0;
  return mb_fail(L, code, "websocket: %s", detail);
}

static int rbuf_reserve(conn *c, size_t more)
{
  if (c->rlen + more <= c->rcap) return 0;
  size_t cap = c->rcap ? c->rcap : 16384;
  while (cap < c->rlen + more) cap *= 2;
  unsigned char *p = realloc(c->rbuf, cap);
  if (!p) return ENOMEM;
  c->rbuf = p;
  c->rcap = cap;
  return 0;
}

/* Reads what the socket has now into rbuf. 1 got data, 0 would block, -1 closed/error. */
static int pull(conn *c)
{
  if (rbuf_reserve(c, 16384)) return -1;
  size_t n = 0;
  CURLcode rc = curl_easy_recv(c->x.easy, c->rbuf + c->rlen, c->rcap - c->rlen, &n);
  if (rc == CURLE_AGAIN) return 0;
  if (rc != CURLE_OK || n == 0) return -1;
  c->rlen += n;
  return 1;
}

/* Pushes the pending send buffer. 1 all sent, 0 would block, -1 error. */
static int push(conn *c)
{
  while (c->soff < c->slen) {
    size_t n = 0;
    CURLcode rc = curl_easy_send(c->x.easy, c->sbuf + c->soff, c->slen - c->soff, &n);
    if (rc == CURLE_AGAIN) return 0;
    if (rc != CURLE_OK) return -1;
    c->soff += n;
  }
  return 1;
}

static int sbuf_set(conn *c, size_t len)
{
  if (len > c->scap) {
    unsigned char *p = realloc(c->sbuf, len);
    if (!p) return ENOMEM;
    c->sbuf = p;
    c->scap = len;
  }
  c->slen = len;
  c->soff = 0;
  return 0;
}

/* Builds a masked client frame in sbuf. */
static int frame(conn *c, int opcode, const char *data, size_t len)
{
  size_t hdr = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4;
  if (sbuf_set(c, hdr + len)) return ENOMEM;
  unsigned char *p = c->sbuf;
  p[0] = (unsigned char)(0x80 | opcode);
  size_t i = 2;
  if (len < 126) {
    p[1] = (unsigned char)(0x80 | len);
  } else if (len <= 0xffff) {
    p[1] = 0x80 | 126;
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
    i = 4;
  } else {
    p[1] = 0x80 | 127;
    for (int k = 0; k < 8; k++) p[2 + k] = (unsigned char)((uint64_t)len >> (56 - 8 * k));
    i = 10;
  }
  unsigned char mask[4];
  if (RAND_bytes(mask, 4) != 1) return EIO;
  memcpy(p + i, mask, 4);
  i += 4;
  for (size_t k = 0; k < len; k++) p[i + k] = (unsigned char)data[k] ^ mask[k & 3];
  return 0;
}

/* ---- send ----------------------------------------------------------------------------- */

static int send_k(lua_State *L, int status, lua_KContext ctx)
{
  conn *c = lua_touserdata(L, 1);
  for (;;) {
    if (c->closed) return op_fail(L, c, "CLOSED", "the connection is closed");
    if (c->timed_out) return op_fail(L, c, "TIMEOUT", "send timed out");
    int r = push(c);
    if (r > 0) {
      c->busy = 0;
      lua_pushboolean(L, 1);
      return 1;
    }
    if (r < 0) {
      c->open = 0;
      return op_fail(L, c, "EIO", "send failed: the connection broke");
    }
    int e = arm(c, MB_WRITABLE);
    if (e) return op_fail(L, c, "EIO", strerror(e));
    if (yieldable(L)) return mb_await(L, &c->wait, send_k, ctx);
    block(L, c);
  }
}

static int conn_send(lua_State *L)
{
  conn *c = check_open(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  static const char *const kinds[] = {"binary", "text", NULL};
  int kind = luaL_checkoption(L, 3, "binary", kinds);
  lua_settop(L, 1);
  if (c->busy)
    return luaL_error(L, "websocket: another operation is in progress on this connection");
  if (!c->open) return mb_fail(L, "CLOSED", "websocket: %s", "the connection is closed");
  if (frame(c, kind == 0 ? 2 : 1, data, len))
    return mb_fail(L, "ENOMEM", "websocket: %s", "out of memory");
  c->busy = 1;
  c->deadline = mb_now() + 60;
  c->timed_out = 0;
  return send_k(L, LUA_OK, 0);
}

/* ---- receive -------------------------------------------------------------------------- */

/* Parses one complete frame at the start of rbuf. Returns its total size, 0 if incomplete,
 * or -1 if malformed. Sets opcode, fin, payload offset and length. */
static long parse_frame(conn *c, int *opcode, int *fin, size_t *off, uint64_t *plen)
{
  if (c->rlen < 2) return 0;
  unsigned char *p = c->rbuf;
  *fin = p[0] >> 7;
  *opcode = p[0] & 0x0f;
  int masked = p[1] >> 7;
  uint64_t len = p[1] & 0x7f;
  size_t i = 2;
  if (len == 126) {
    if (c->rlen < 4) return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    i = 4;
  } else if (len == 127) {
    if (c->rlen < 10) return 0;
    len = 0;
    for (int k = 0; k < 8; k++) len = len << 8 | p[2 + k];
    i = 10;
  }
  if (len > MAX_MESSAGE) return -1;
  size_t maskoff = i;
  if (masked) i += 4;
  if (c->rlen < i + len) return 0;
  if (masked) /* servers must not mask, but be lenient */
    for (uint64_t k = 0; k < len; k++) p[i + k] ^= p[maskoff + (k & 3)];
  *off = i;
  *plen = len;
  return (long)(i + len);
}

static void consume(conn *c, size_t n)
{
  memmove(c->rbuf, c->rbuf + n, c->rlen - n);
  c->rlen -= n;
}

/* The message being assembled from fragments lives in a Lua buffer table at index 2:
 * {opcode, parts...}. */
static int receive_k(lua_State *L, int status, lua_KContext ctx)
{
  conn *c = lua_touserdata(L, 1);
  for (;;) {
    if (c->closed) return op_fail(L, c, "CLOSED", "the connection is closed");
    int opcode, fin;
    size_t off;
    uint64_t plen;
    long n = parse_frame(c, &opcode, &fin, &off, &plen);
    if (n < 0) {
      c->open = 0;
      return op_fail(L, c, "EIO", "malformed or oversized frame");
    }
    if (n > 0) {
      const char *payload = (const char *)c->rbuf + off;
      if (opcode == 0x9) { /* ping: answer with a pong carrying the same data */
        char tmp[125];
        size_t m = plen < sizeof tmp ? (size_t)plen : sizeof tmp;
        memcpy(tmp, payload, m);
        consume(c, (size_t)n);
        if (frame(c, 0xA, tmp, m) == 0) push(c); /* best effort; a partial pong is rare */
        continue;
      }
      if (opcode == 0xA) {
        consume(c, (size_t)n);
        continue;
      }
      if (opcode == 0x8) { /* close: echo it, report the code and reason */
        int code = plen >= 2 ? ((unsigned char)payload[0] << 8 | (unsigned char)payload[1]) : 1005;
        lua_pushfstring(L, "websocket: closed by the server (%d", code);
        if (plen > 2) {
          lua_pushliteral(L, ": ");
          lua_pushlstring(L, payload + 2, (size_t)plen - 2);
          lua_concat(L, 3);
        }
        lua_pushliteral(L, ")");
        lua_concat(L, 2);
        consume(c, (size_t)n);
        if (c->open && frame(c, 0x8, NULL, 0) == 0) push(c);
        c->open = 0;
        c->busy = 0;
        lua_pushnil(L);
        lua_insert(L, -2);
        lua_pushliteral(L, "CLOSED");
        return 3;
      }
      if (opcode == 0x1 || opcode == 0x2) {
        lua_settop(L, 1);
        lua_createtable(L, 4, 0);
        lua_pushinteger(L, opcode);
        lua_rawseti(L, 2, 1);
      } else if (opcode != 0x0 || lua_gettop(L) < 2) {
        c->open = 0;
        return op_fail(L, c, "EIO", "unexpected frame");
      }
      lua_pushlstring(L, payload, (size_t)plen);
      lua_rawseti(L, 2, (lua_Integer)lua_rawlen(L, 2) + 1);
      consume(c, (size_t)n);
      if (fin) {
        c->busy = 0;
        lua_rawgeti(L, 2, 1);
        int op = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        luaL_Buffer b;
        size_t parts = lua_rawlen(L, 2);
        luaL_buffinit(L, &b);
        for (size_t k = 2; k <= parts; k++) {
          lua_rawgeti(L, 2, (lua_Integer)k);
          luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_pushstring(L, op == 1 ? "text" : "binary");
        return 2;
      }
      continue;
    }
    if (c->timed_out) return op_fail(L, c, "TIMEOUT", "no message before the timeout");
    int r = pull(c);
    if (r > 0) continue;
    if (r < 0) {
      c->open = 0;
      return op_fail(L, c, "CLOSED", "the connection was closed without a close frame");
    }
    int e = arm(c, MB_READABLE);
    if (e) return op_fail(L, c, "EIO", strerror(e));
    if (yieldable(L)) return mb_await(L, &c->wait, receive_k, ctx);
    block(L, c);
  }
}

static int conn_receive(lua_State *L)
{
  conn *c = check_open(L);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  if (c->busy)
    return luaL_error(L, "websocket: another operation is in progress on this connection");
  if (!c->open && c->rlen == 0)
    return mb_fail(L, "CLOSED", "websocket: %s", "the connection is closed");
  c->busy = 1;
  c->deadline = timeout >= 0 ? mb_now() + timeout : -1;
  c->timed_out = 0;
  return receive_k(L, LUA_OK, 0);
}

static int conn_close(lua_State *L)
{
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (!c->closed && c->open && !c->busy) {
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    size_t rl = 0;
    const char *reason = luaL_optlstring(L, 3, "", &rl);
    char payload[125];
    payload[0] = (char)(code >> 8);
    payload[1] = (char)code;
    if (rl > sizeof payload - 2) rl = sizeof payload - 2;
    memcpy(payload + 2, reason, rl);
    if (frame(c, 0x8, payload, rl + 2) == 0) push(c); /* best effort, never waits */
  }
  conn_release(c);
  return 0;
}

/* ---- connect and the upgrade ---------------------------------------------------------- */

static void accept_key(const char *key, char out[64])
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  char buf[128];
  int n = snprintf(buf, sizeof buf, "%s%s", key, WS_GUID);
  EVP_Digest(buf, (size_t)n, digest, &dlen, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)out, digest, (int)dlen);
}

/* Reads the upgrade response; phase 2 of connect. */
static int upgrade_k(lua_State *L, int status, lua_KContext ctx)
{
  conn *c = lua_touserdata(L, 1);
  for (;;) {
    if (c->timed_out) return op_fail(L, c, "TIMEOUT", "the upgrade timed out");
    if (c->soff < c->slen) { /* still sending the request */
      int r = push(c);
      if (r < 0) return op_fail(L, c, "UNAVAILABLE", "sending the upgrade failed");
      if (r == 0) {
        int e = arm(c, MB_WRITABLE);
        if (e) return op_fail(L, c, "EIO", strerror(e));
        if (yieldable(L)) return mb_await(L, &c->wait, upgrade_k, ctx);
        block(L, c);
        continue;
      }
    }
    const char *end = NULL;
    for (size_t i = 0; c->rlen >= 4 && i + 4 <= c->rlen; i++) {
      if (memcmp(c->rbuf + i, "\r\n\r\n", 4) == 0) {
        end = (const char *)c->rbuf + i + 4;
        break;
      }
    }
    if (end) {
      size_t hlen = (size_t)(end - (const char *)c->rbuf);
      lua_pushlstring(L, (const char *)c->rbuf, hlen);
      const char *h = lua_tostring(L, -1);
      int code = 0;
      sscanf(h, "HTTP/%*s %d", &code);
      if (code != 101) {
        /* include what the server said (status line and a little of the body) */
        size_t more = c->rlen - hlen > 300 ? 300 : c->rlen - hlen;
        lua_pushlstring(L, end, more);
        lua_concat(L, 2);
        c->busy = 0;
        return mb_fail(L, "PROTOCOL", "websocket: the server did not upgrade: %s",
                       lua_tostring(L, -1));
      }
      char want[64];
      accept_key(c->key, want);
      /* header names are case-insensitive: look for the accept value itself */
      if (strstr(h, want) == NULL) {
        c->busy = 0;
        return mb_fail(L, "PROTOCOL", "websocket: %s",
                       "bad Sec-WebSocket-Accept in the upgrade reply");
      }
      lua_pop(L, 1);
      /* the chosen subprotocol, if any */
      lua_pushlstring(L, (const char *)c->rbuf, hlen);
      const char *hp = lua_tostring(L, -1);
      const char *proto = NULL;
      size_t plen = 0;
      for (const char *line = hp; line && *line;
           line = strstr(line, "\r\n") ? strstr(line, "\r\n") + 2 : NULL) {
        if (strncasecmp(line, "Sec-WebSocket-Protocol:", 23) == 0) {
          proto = line + 23;
          while (*proto == ' ') proto++;
          const char *e = strstr(proto, "\r\n");
          plen = e ? (size_t)(e - proto) : strlen(proto);
          break;
        }
      }
      lua_getiuservalue(L, 1, 1);
      if (proto)
        lua_pushlstring(L, proto, plen);
      else
        lua_pushnil(L);
      lua_setfield(L, -2, "protocol");
      lua_pop(L, 2);    /* fields, header text */
      consume(c, hlen); /* bytes after the headers are the first frames */
      c->open = 1;
      c->busy = 0;
      lua_settop(L, 1);
      return 1;
    }
    if (c->rlen > 65536) return op_fail(L, c, "PROTOCOL", "upgrade reply too long");
    int r = pull(c);
    if (r > 0) continue;
    if (r < 0) return op_fail(L, c, "UNAVAILABLE", "the server closed during the upgrade");
    int e = arm(c, MB_READABLE);
    if (e) return op_fail(L, c, "EIO", strerror(e));
    if (yieldable(L)) return mb_await(L, &c->wait, upgrade_k, ctx);
    block(L, c);
  }
}

/* Phase 1 done (libcurl connected): send the upgrade request. The request text is at index 2. */
static int connected_k(lua_State *L, int status, lua_KContext ctx)
{
  conn *c = lua_touserdata(L, 1);
  if (c->x.result != CURLE_OK) {
    c->busy = 0;
    return mb_fail(L, mb_http_code(c->x.result), "websocket: %s",
                   c->errbuf[0] ? c->errbuf : curl_easy_strerror(c->x.result));
  }
  curl_socket_t fd = c->x.sock;
  if (fd == CURL_SOCKET_BAD) curl_easy_getinfo(c->x.easy, CURLINFO_ACTIVESOCKET, &fd);
  if (fd == CURL_SOCKET_BAD) return op_fail(L, c, "UNAVAILABLE", "no socket after connect");
  c->fd = fd;
  size_t len;
  const char *req = lua_tolstring(L, 2, &len);
  if (sbuf_set(c, len)) return op_fail(L, c, "ENOMEM", "out of memory");
  memcpy(c->sbuf, req, len);
  return upgrade_k(L, LUA_OK, ctx);
}

static int ws_connect(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "url");
  const char *url = lua_tostring(L, -1);
  luaL_argcheck(L, url != NULL, 1, "url is required");
  lua_pop(L, 1); /* the string stays alive in the options table */
  int tls;
  if (strncmp(url, "wss://", 6) == 0 || strncmp(url, "https://", 8) == 0)
    tls = 1;
  else if (strncmp(url, "ws://", 5) == 0 || strncmp(url, "http://", 7) == 0)
    tls = 0;
  else
    return luaL_argerror(L, 1, "url must start with ws://, wss://, http:// or https://");
  if (strpbrk(url, "\r\n \t")) return luaL_argerror(L, 1, "url contains spaces or newlines");
  const char *rest = strstr(url, "://") + 3;
  const char *slash = strchr(rest, '/');
  size_t hostlen = slash ? (size_t)(slash - rest) : strlen(rest);
  const char *path = slash ? slash : "/";
  lua_getfield(L, 1, "timeout");
  double timeout = luaL_optnumber(L, -1, 30);
  lua_getfield(L, 1, "verify");
  int verify = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_settop(L, 1);
  const char *ca_file = NULL, *ca_data = NULL, *client_cert = NULL, *client_key = NULL;
  if (lua_getfield(L, 1, "ca_file") == LUA_TSTRING) ca_file = lua_tostring(L, -1);
  if (lua_getfield(L, 1, "ca_data") == LUA_TSTRING) ca_data = lua_tostring(L, -1);
  if (lua_getfield(L, 1, "client_cert") == LUA_TSTRING) client_cert = lua_tostring(L, -1);
  if (lua_getfield(L, 1, "client_key") == LUA_TSTRING) client_key = lua_tostring(L, -1);
  lua_settop(L, 1);

  conn *c = lua_newuserdatauv(L, sizeof *c, 1); /* index 2 */
  memset(c, 0, sizeof *c);
  c->fd = CURL_SOCKET_BAD;
  c->deadline = -1;
  luaL_setmetatable(L, CONN_MT);
  lua_newtable(L); /* conn fields (protocol) */
  lua_setiuservalue(L, 2, 1);
  unsigned char nonce[16];
  if (RAND_bytes(nonce, 16) != 1) return luaL_error(L, "websocket: no randomness");
  EVP_EncodeBlock((unsigned char *)c->key, nonce, 16);

  /* the upgrade request, as pieces concatenated at the end (index 3) */
  int base = lua_gettop(L);
  lua_pushfstring(L, "GET %s HTTP/1.1\r\nHost: ", path);
  lua_pushlstring(L, rest, hostlen);
  lua_pushfstring(L,
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n",
                  c->key);
  if (lua_getfield(L, 1, "protocols") == LUA_TTABLE) {
    int t = lua_gettop(L);
    size_t n = lua_rawlen(L, t);
    lua_pushliteral(L, "");
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, t, (lua_Integer)i);
      const char *name = lua_tostring(L, -1);
      if (name == NULL || strpbrk(name, "\r\n,")) return luaL_argerror(L, 1, "bad protocol name");
      if (i > 1) {
        lua_pushliteral(L, ", ");
        lua_insert(L, -2);
        lua_concat(L, 3);
      } else {
        lua_concat(L, 2);
      }
    }
    lua_remove(L, t);
    if (n > 0) {
      lua_pushliteral(L, "Sec-WebSocket-Protocol: ");
      lua_insert(L, -2);
      lua_pushliteral(L, "\r\n");
      lua_concat(L, 3);
    }
  } else {
    lua_pop(L, 1);
  }
  if (lua_getfield(L, 1, "headers") == LUA_TTABLE) {
    int t = lua_gettop(L);
    lua_pushliteral(L, ""); /* accumulated header lines */
    lua_pushnil(L);
    while (lua_next(L, t)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_argerror(L, 1, "headers must map names to strings");
      const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
        return luaL_argerror(L, 1, "header contains CR or LF");
      lua_pushfstring(L, "%s%s: %s\r\n", lua_tostring(L, t + 1), k, v);
      lua_replace(L, t + 1);
      lua_pop(L, 1); /* the value; the key stays for lua_next */
    }
    lua_remove(L, t);
  } else {
    lua_pop(L, 1);
  }
  lua_pushliteral(L, "\r\n");
  lua_concat(L, lua_gettop(L) - base); /* index 3: the whole request */

  CURL *e = c->x.easy = curl_easy_init();
  if (e == NULL) return luaL_error(L, "websocket: cannot create a curl handle");
  lua_pushfstring(L, "%s://", tls ? "https" : "http");
  lua_pushstring(L, rest);
  lua_concat(L, 2);
  curl_easy_setopt(e, CURLOPT_URL, lua_tostring(L, -1));
  lua_pop(L, 1);
  curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout * 1000));
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
  struct curl_blob blob;
  if (ca_data) {
    blob = (struct curl_blob){(void *)ca_data, strlen(ca_data), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (client_cert) {
    blob = (struct curl_blob){(void *)client_cert, strlen(client_cert), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
  }
  if (client_key) {
    blob = (struct curl_blob){(void *)client_key, strlen(client_key), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
  }
  /* stack: opts, conn, request; the continuations want conn at 1 and the request at 2 */
  lua_remove(L, 1);
  c->loop = mb_loop_get(L);
  c->busy = 1;
  c->deadline = mb_now() + timeout;
  c->x.keep_attached = 1;
  mb_http_start(L, &c->x);
  return mb_await(L, &c->x.wait, connected_k, 0);
}

MB_EXPORT int luaopen_moonbox_websocket(lua_State *L);
MB_EXPORT int luaopen_moonbox_websocket(lua_State *L)
{
  static const luaL_Reg methods[] = {
      {"send", conn_send}, {"receive", conn_receive}, {"close", conn_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", conn_gc}, {"__close", conn_gc}, {NULL, NULL}};
  luaL_newmetatable(L, CONN_MT);
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, CONN_MT);
  lua_setfield(L, -2, "__name");
  /* __index: methods first, then the fields table in the user value (protocol) */
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushcclosure(L, conn_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"connect", ws_connect}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
