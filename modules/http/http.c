/* http.c: moonbox.http — HTTP requests on the host loop (libcurl multi, see multi.c).
 *
 *   request{url =, method = "GET"|"POST"|..., headers = {name = value, ...}, body = string,
 *           timeout = 300, connect_timeout = 10, unix_socket = path, on_chunk = fn(data, status),
 *           follow_redirects = false, max_body = 64 MiB, verify = true, ca_file =, ca_data =,
 *           client_cert =, client_key = (PEM text), proxy =}
 *     -> {status =, headers = {lowercase name = value}, body =}
 *     |  nil, msg, CODE   TIMEOUT, UNAVAILABLE (cannot connect, connection cut), TLS, CANCELLED
 *                         (on_chunk returned false), TOO_LARGE (body over max_body), INVALID, EIO
 *     An HTTP error status (404, 429, 500) is a result, not a failure. With on_chunk the body is
 *     delivered as it arrives (on_chunk(data, status); returning false stops the transfer) and
 *     the result's body is "". Yields inside a task, blocks elsewhere. TLS through OpenSSL with
 *     the system CA store; proxies from the environment (http_proxy, https_proxy, no_proxy).
 *   sse(on_event) -> fn(chunk)
 *     A Server-Sent Events parser to use as on_chunk: on_event{event =, data =, id =, retry =}
 *     for each complete event (event defaults to "message"); on_event returning false stops.
 *
 * Owns: the easy handle, header list and buffers of a request, in a userdata that sits on the
 * waiting stack (its __gc removes an unfinished transfer); on_chunk in its user value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define REQ_MT "moonbox.http.Request"
#define STREAM_HIGH_WATER (1u << 20)

typedef struct buf {
  char *data;
  size_t len, cap;
} buf;

static int buf_add(buf *b, const char *p, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static void buf_free(buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

typedef struct req {
  mb_http_xfer x;
  struct curl_slist *hdrs;
  buf body;    /* whole body, or the chunks not yet handed to on_chunk */
  buf headers; /* raw header lines of the last response block */
  size_t max_body;
  int streaming;
  int paused;
  int too_large;
  int alloc_failed;
  char errbuf[CURL_ERROR_SIZE];
} req;

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
  req *r = ud;
  size_t len = size * n;
  if (r->streaming && r->body.len >= STREAM_HIGH_WATER) {
    r->paused = 1; /* the reader is behind: libcurl keeps the data until we unpause */
    return CURL_WRITEFUNC_PAUSE;
  }
  if (!r->streaming && r->body.len + len > r->max_body) {
    r->too_large = 1;
    return 0;
  }
  if (buf_add(&r->body, ptr, len) != 0) {
    r->alloc_failed = 1;
    return 0;
  }
  if (r->streaming && r->x.multi) mb_wait_done(mb_http_loop(&r->x), &r->x.wait);
  return len;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
  req *r = ud;
  size_t len = size * n;
  /* A new status line starts a new block (after 100 Continue or a redirect): keep the last. */
  if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) r->headers.len = 0;
  if (buf_add(&r->headers, ptr, len) != 0) {
    r->alloc_failed = 1;
    return 0;
  }
  return len;
}

static void req_release(req *r)
{
  mb_http_stop(&r->x);
  if (r->x.easy) curl_easy_cleanup(r->x.easy);
  r->x.easy = NULL;
  curl_slist_free_all(r->hdrs);
  r->hdrs = NULL;
  buf_free(&r->body);
  buf_free(&r->headers);
}

static int req_gc(lua_State *L)
{
  req_release(lua_touserdata(L, 1));
  return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

static const char *const known_opts[] = {
    "url",         "method",      "headers",          "body",     "timeout", "connect_timeout",
    "unix_socket", "on_chunk",    "follow_redirects", "max_body", "verify",  "ca_file",
    "ca_data",     "client_cert", "client_key",       "proxy",    NULL};

static void check_known(lua_State *L, int t)
{
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; known_opts[i]; i++) ok |= strcmp(k, known_opts[i]) == 0;
    }
    if (!ok)
      luaL_error(L, "bad argument #1 to 'request' (unknown option '%s')",
                 luaL_tolstring(L, -1, NULL));
  }
}

static const char *opt_string(lua_State *L, int t, const char *name, const char *def)
{
  int ty = lua_getfield(L, t, name);
  const char *v = def;
  if (ty == LUA_TSTRING)
    v = lua_tostring(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "bad argument #1 to 'request' (%s must be a string, got %s)", name,
               luaL_typename(L, -1));
  lua_pop(L, 1); /* the string stays alive in the options table */
  return v;
}

static double opt_number(lua_State *L, int t, const char *name, double def)
{
  int ty = lua_getfield(L, t, name);
  double v = def;
  if (ty == LUA_TNUMBER)
    v = lua_tonumber(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "bad argument #1 to 'request' (%s must be a number, got %s)", name,
               luaL_typename(L, -1));
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "bad argument #1 to 'request' (%s must be >= 0)", name);
  return v;
}

static int opt_bool(lua_State *L, int t, const char *name, int def)
{
  int ty = lua_getfield(L, t, name);
  int v = def;
  if (ty == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "bad argument #1 to 'request' (%s must be a boolean, got %s)", name,
               luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int has_crlf(const char *s)
{
  return strchr(s, '\r') != NULL || strchr(s, '\n') != NULL;
}

/* headers = {name = value} or {"Name: value", ...}; CR/LF inside either is refused (a header
 * injection), which is a misuse: raise. */
static void build_headers(lua_State *L, int t, req *r)
{
  if (lua_getfield(L, t, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
  } else {
    luaL_argexpected(L, lua_istable(L, -1), 1, "headers as a table");
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
      const char *line;
      if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
        line = lua_tostring(L, -1);
        lua_pushvalue(L, -1);
      } else if (lua_type(L, -2) == LUA_TSTRING &&
                 (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
        const char *v = lua_tostring(L, -1);
        /* "Name:" alone removes a default header; curl wants "Name;" to send it empty */
        line = *v ? lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), v)
                  : lua_pushfstring(L, "%s;", lua_tostring(L, -2));
      } else {
        luaL_error(L, "bad argument #1 to 'request' (headers: names and values must be strings)");
        return;
      }
      if (has_crlf(line)) luaL_error(L, "bad argument #1 to 'request' (header contains CR or LF)");
      struct curl_slist *n = curl_slist_append(r->hdrs, line);
      if (n == NULL) luaL_error(L, "not enough memory");
      r->hdrs = n;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:"); /* no 100-continue round trip */
  if (n == NULL) luaL_error(L, "not enough memory");
  r->hdrs = n;
}

static void set_blob(CURL *e, CURLoption opt, const char *data)
{
  struct curl_blob blob = {(void *)data, strlen(data), CURL_BLOB_COPY};
  curl_easy_setopt(e, opt, &blob);
}

/* ---- results ------------------------------------------------------------------------------ */

static void push_headers(lua_State *L, const buf *h)
{
  lua_newtable(L);
  const char *p = h->data, *end = h->data + h->len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *next = eol ? eol + 1 : end;
    if (eol == NULL) eol = end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p && memcmp(p, "HTTP/", 5) != 0) {
      luaL_Buffer name;
      luaL_buffinit(L, &name);
      for (const char *c = p; c < colon; c++) {
        char ch = *c;
        luaL_addchar(&name, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch);
      }
      luaL_pushresult(&name);
      const char *v = colon + 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated header: join with ", " */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = next;
  }
}

static int finish(lua_State *L, req *r)
{
  CURLcode rc = r->x.result;
  if (r->too_large) {
    char n[32];
    snprintf(n, sizeof n, "%zu", r->max_body);
    return mb_fail(L, "TOO_LARGE",
                   "http: response body exceeds max_body (%s bytes); raise max_body or stream it "
                   "with on_chunk",
                   n);
  }
  if (r->alloc_failed) return mb_fail(L, "ENOMEM", "http: not enough memory for the response");
  if (rc != CURLE_OK) {
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
    char *url = NULL;
    curl_easy_getinfo(r->x.easy, CURLINFO_EFFECTIVE_URL, &url);
    return mb_fail(L, mb_http_code(rc), "http: %s: %s", url ? url : "request", detail);
  }
  long status = 0;
  curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &status);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  push_headers(L, &r->headers);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, r->streaming ? "" : (r->body.data ? r->body.data : ""),
                  r->streaming ? 0 : r->body.len);
  lua_setfield(L, -2, "body");
  req_release(r);
  return 1;
}

/* Continuation: runs when the transfer finished, or (streaming) when data arrived. The request
 * userdata is at index 2. Outside a task it loops here rather than recursing through mb_await. */
static int request_k(lua_State *L, int status, lua_KContext ctx)
{
  req *r = lua_touserdata(L, 2);
  for (;;) {
    if (r->streaming && r->body.len > 0) {
      long code = 0;
      curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
      lua_getiuservalue(L, 2, 1);
      lua_pushlstring(L, r->body.data, r->body.len);
      r->body.len = 0;
      lua_pushinteger(L, code);
      if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        req_release(r); /* stop the transfer now, not when the userdata is collected */
        return lua_error(L);
      }
      int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (stop) {
        req_release(r);
        return mb_fail(L, "CANCELLED", "http: stopped by on_chunk");
      }
      if (r->paused && !r->x.finished) {
        r->paused = 0;
        curl_easy_pause(r->x.easy, CURLPAUSE_CONT);
      }
    }
    if (r->x.finished) {
      /* Drop on_chunk: the request userdata has a finalizer, and the collector resurrects all
       * that a dead one references before running it. */
      lua_pushnil(L);
      lua_setiuservalue(L, 2, 1);
      return finish(L, r);
    }
    mb_http_rearm(&r->x);
    if (mb_task_current(L) != NULL && lua_isyieldable(L))
      return mb_await(L, &r->x.wait, request_k, ctx);
    if (mb_loop_run_until(mb_http_loop(&r->x), &r->x.wait.done) != 0)
      return luaL_error(L, "http: the loop ran dry during a transfer");
  }
}

static int http_request(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_known(L, 1);
  const char *url = opt_string(L, 1, "url", NULL);
  luaL_argcheck(L, url != NULL, 1, "url is required");
  const char *body = NULL;
  size_t body_len = 0;
  if (lua_getfield(L, 1, "body") == LUA_TSTRING)
    body = lua_tolstring(L, -1, &body_len);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "bad argument #1 to 'request' (body must be a string)");
  lua_pop(L, 1);
  const char *method = opt_string(L, 1, "method", body ? "POST" : "GET");
  for (const char *c = method; *c; c++)
    if (!((*c >= 'A' && *c <= 'Z') || *c == '-'))
      luaL_error(L, "bad argument #1 to 'request' (bad method '%s')", method);
  double timeout = opt_number(L, 1, "timeout", 300);
  double connect_timeout = opt_number(L, 1, "connect_timeout", 10);
  double max_body = opt_number(L, 1, "max_body", 64.0 * 1024 * 1024);
  const char *unix_socket = opt_string(L, 1, "unix_socket", NULL);
  const char *ca_file = opt_string(L, 1, "ca_file", NULL);
  const char *ca_data = opt_string(L, 1, "ca_data", NULL);
  const char *client_cert = opt_string(L, 1, "client_cert", NULL);
  const char *client_key = opt_string(L, 1, "client_key", NULL);
  const char *proxy = opt_string(L, 1, "proxy", NULL);
  int verify = opt_bool(L, 1, "verify", 1);
  int follow = opt_bool(L, 1, "follow_redirects", 0);
  int ty = lua_getfield(L, 1, "on_chunk");
  luaL_argcheck(L, ty == LUA_TNIL || ty == LUA_TFUNCTION, 1, "on_chunk must be a function");
  int streaming = ty == LUA_TFUNCTION;

  req *r = lua_newuserdatauv(L, sizeof *r, 1); /* index 3 */
  memset(r, 0, sizeof *r);
  if (luaL_newmetatable(L, REQ_MT)) {
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_replace(L, 2); /* the request at index 2, as request_k expects */
  lua_settop(L, 2);
  r->streaming = streaming;
  r->max_body = (size_t)max_body;

  CURL *e = r->x.easy = curl_easy_init();
  if (e == NULL) return luaL_error(L, "http: cannot create a curl handle");
  build_headers(L, 1, r);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout * 1000));
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  if (follow) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  }
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    if (strcmp(method, "GET") == 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "GET");
  }
  if (unix_socket) curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, unix_socket);
  if (!verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
  if (ca_data) set_blob(e, CURLOPT_CAINFO_BLOB, ca_data);
  if (client_cert) set_blob(e, CURLOPT_SSLCERT_BLOB, client_cert);
  if (client_key) set_blob(e, CURLOPT_SSLKEY_BLOB, client_key);
  if (proxy) curl_easy_setopt(e, CURLOPT_PROXY, proxy);

  mb_http_start(L, &r->x);
  return mb_await(L, &r->x.wait, request_k, 0);
}

/* ---- Server-Sent Events ------------------------------------------------------------------- */
/* Upvalues: 1 on_event, 2 the unfinished line (string), 3 the event being built (table with
 * event/id/retry and a `data` list of lines). Lines end in "\r\n", "\n" or "\r"; a "\r" that
 * ends a chunk is held back in case "\n" follows in the next one. */

static void sse_field(lua_State *L, const char *line, size_t len)
{
  if (len == 0 || line[0] == ':') return; /* blank lines are handled by the caller; comments */
  const char *colon = memchr(line, ':', len);
  size_t nlen = colon ? (size_t)(colon - line) : len;
  const char *v = colon ? colon + 1 : line + len;
  size_t vlen = (size_t)(line + len - v);
  if (vlen > 0 && *v == ' ') v++, vlen--;
  lua_pushvalue(L, lua_upvalueindex(3));
  if (nlen == 4 && memcmp(line, "data", 4) == 0) {
    lua_getfield(L, -1, "data");
    lua_pushlstring(L, v, vlen);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
  } else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
    lua_pushlstring(L, v, vlen);
    lua_setfield(L, -2, "event");
  } else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
    lua_pushlstring(L, v, vlen);
    lua_setfield(L, -2, "id");
  } else if (nlen == 5 && memcmp(line, "retry", 5) == 0) {
    lua_pushlstring(L, v, vlen);
    lua_Integer n = 0;
    if (lua_stringtonumber(L, lua_tostring(L, -1)) != 0 && lua_isinteger(L, -1)) {
      n = lua_tointeger(L, -1);
      lua_pop(L, 1);
      lua_pushinteger(L, n);
      lua_setfield(L, -3, "retry");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void sse_new_event(lua_State *L)
{
  lua_createtable(L, 0, 4);
  lua_newtable(L);
  lua_setfield(L, -2, "data");
  lua_replace(L, lua_upvalueindex(3));
}

/* Dispatches the event being built if it has data. Returns 0 when on_event asked to stop. */
static int sse_dispatch(lua_State *L)
{
  int ev = lua_upvalueindex(3);
  lua_getfield(L, ev, "data");
  size_t n = lua_rawlen(L, -1);
  if (n == 0) {
    lua_pop(L, 1);
    sse_new_event(L);
    return 1;
  }
  int list = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\n');
    lua_rawgeti(L, list, (lua_Integer)i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_remove(L, list);
  lua_createtable(L, 0, 4);
  lua_insert(L, -2);
  lua_setfield(L, -2, "data");
  if (lua_getfield(L, ev, "event") != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
    lua_pop(L, 1);
    lua_pushliteral(L, "message");
  }
  lua_setfield(L, -2, "event");
  lua_getfield(L, ev, "id");
  lua_setfield(L, -2, "id");
  lua_getfield(L, ev, "retry");
  lua_setfield(L, -2, "retry");
  sse_new_event(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  return !stop;
}

static int sse_feed(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TSTRING);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_concat(L, 2);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  int data = lua_gettop(L); /* keeps s alive */
  size_t pos = 0;
  while (pos < len) {
    size_t i = pos;
    while (i < len && s[i] != '\n' && s[i] != '\r') i++;
    if (i == len) break;                     /* no line end yet */
    if (s[i] == '\r' && i + 1 == len) break; /* "\r" at the end: maybe "\r\n" */
    size_t next = i + 1;
    if (s[i] == '\r' && s[next] == '\n') next++;
    if (i == pos) {
      if (!sse_dispatch(L)) {
        lua_pushliteral(L, "");
        lua_replace(L, lua_upvalueindex(2));
        lua_pushboolean(L, 0);
        return 1;
      }
    } else {
      sse_field(L, s + pos, i - pos);
    }
    pos = next;
  }
  lua_pushlstring(L, s + pos, len - pos);
  lua_replace(L, lua_upvalueindex(2));
  lua_settop(L, data - 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int http_sse(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushliteral(L, "");
  lua_createtable(L, 0, 4);
  lua_newtable(L);
  lua_setfield(L, -2, "data");
  lua_pushcclosure(L, sse_feed, 3);
  return 1;
}

MB_EXPORT int luaopen_moonbox_http(lua_State *L);
MB_EXPORT int luaopen_moonbox_http(lua_State *L)
{
  static const luaL_Reg funcs[] = {{"request", http_request}, {"sse", http_sse}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_setfield(L, -2, "curl_version");
  return 1;
}
