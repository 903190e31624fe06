/* docker.c: moonbox.docker — the native half of the Docker sandbox: exec output streams over
 * the Engine API's unix socket, and tar encoding/decoding for the archive API (docker_tar.c).
 *
 *   stream{socket =, url =, body =, timeout =, max_output = 100000} -> Stream | nil, msg, CODE
 *     POSTs body (JSON) to url over the unix socket — an exec start with {"Detach":false,
 *     "Tty":false} — and demultiplexes the raw stream it answers (8-byte frame headers:
 *     [stream 1|2][0 0 0][uint32 big-endian length]) into three bounded captures (capture.h):
 *     stdout, stderr and both interleaved in arrival order. The transfer runs on the host loop;
 *     timeout (seconds, nil or 0 = none) ends it from the host: the caller then kills the
 *     command inside the container. A daemon that is down → UNAVAILABLE.
 *   Stream:wait() -> true | nil, msg, CODE    until the stream ends (yields in a task, blocks
 *     elsewhere). A timeout is not a failure: take() reports timed_out. An HTTP error status
 *     (404 no such exec, 409 container not running) fails with the daemon's message.
 *   Stream:take() -> {output, stdout, stderr, truncated, timed_out, running}: what arrived since
 *     the previous take (the loop is polled once first, so a background stream makes progress
 *     even when nothing else waits).
 *   Stream:close() (also __gc, __close): ends the transfer.
 *   tar_encode(entries), tar_decode(data [, with_data]): see docker_tar.c.
 *
 * Owns: the easy handle, its header list, the three captures and the error body, in the
 * Stream userdata (one idempotent release). Fail codes: UNAVAILABLE, TIMEOUT (connect), EIO,
 * CANCELLED, ENOMEM, and NOT_FOUND / CONFLICT / API_ERROR for daemon error statuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/docker.h"
#include "http/http.h"
#include "proc/capture.h"

#define STREAM_MT "moonbox.docker.Stream"
#define ERRBODY_MAX 65536

typedef struct dstream {
  mb_http_xfer x;
  struct curl_slist *hdrs;
  mb_capture out, err, all;
  unsigned char fh[8]; /* a frame header being read */
  size_t fh_len;
  size_t frame_left; /* payload bytes of the current frame still to come */
  int frame_stream;  /* 1 stdout, 2 stderr, other: dropped */
  char *errbody;     /* the body of an error status (the daemon's JSON message) */
  size_t errbody_len;
  int timed_out, alloc_failed, closed;
  char errbuf[CURL_ERROR_SIZE];
} dstream;

static void feed(dstream *s, const char *p, size_t n)
{
  int bad = 0;
  if (s->frame_stream == 1)
    bad = mb_capture_add(&s->out, p, n);
  else if (s->frame_stream == 2)
    bad = mb_capture_add(&s->err, p, n);
  else
    return;
  bad |= mb_capture_add(&s->all, p, n);
  if (bad) s->alloc_failed = 1;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
  dstream *s = ud;
  size_t len = size * n, i = 0;
  long code = 0;
  curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 300) { /* the daemon's error message, kept (bounded) for wait() */
    size_t k = ERRBODY_MAX - s->errbody_len < len ? ERRBODY_MAX - s->errbody_len : len;
    if (k > 0) {
      char *b = realloc(s->errbody, s->errbody_len + k + 1);
      if (b == NULL) return 0;
      memcpy(b + s->errbody_len, ptr, k);
      s->errbody_len += k;
      b[s->errbody_len] = '\0';
      s->errbody = b;
    }
    return len;
  }
  while (i < len) {
    if (s->frame_left == 0) { /* in a header */
      size_t k = 8 - s->fh_len < len - i ? 8 - s->fh_len : len - i;
      memcpy(s->fh + s->fh_len, ptr + i, k);
      s->fh_len += k;
      i += k;
      if (s->fh_len < 8) break;
      s->fh_len = 0;
      s->frame_stream = s->fh[0];
      s->frame_left = ((size_t)s->fh[4] << 24) | ((size_t)s->fh[5] << 16) |
                      ((size_t)s->fh[6] << 8) | (size_t)s->fh[7];
      continue;
    }
    size_t k = s->frame_left < len - i ? s->frame_left : len - i;
    feed(s, ptr + i, k);
    s->frame_left -= k;
    i += k;
  }
  return len;
}

static void stream_release(dstream *s)
{
  if (s->closed) return;
  s->closed = 1;
  mb_http_stop(&s->x);
  if (s->x.easy) curl_easy_cleanup(s->x.easy);
  s->x.easy = NULL;
  curl_slist_free_all(s->hdrs);
  s->hdrs = NULL;
  mb_capture_free(&s->out);
  mb_capture_free(&s->err);
  mb_capture_free(&s->all);
  free(s->errbody);
  s->errbody = NULL;
}

static dstream *check_stream(lua_State *L)
{
  dstream *s = luaL_checkudata(L, 1, STREAM_MT);
  if (s->closed) luaL_error(L, "docker stream: already closed");
  return s;
}

static int stream_gc(lua_State *L)
{
  stream_release(luaL_checkudata(L, 1, STREAM_MT));
  return 0;
}

static const char *field_string(lua_State *L, int t, const char *name, int required)
{
  int ty = lua_getfield(L, t, name);
  const char *v = NULL;
  if (ty == LUA_TSTRING)
    v = lua_tostring(L, -1);
  else if (ty != LUA_TNIL || required)
    luaL_error(L, "bad argument #1 to 'stream' (%s must be a string)", name);
  lua_pop(L, 1); /* the string stays alive in the options table */
  return v;
}

static double field_number(lua_State *L, int t, const char *name, double def)
{
  int ty = lua_getfield(L, t, name);
  double v = def;
  if (ty == LUA_TNUMBER)
    v = lua_tonumber(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "bad argument #1 to 'stream' (%s must be a number)", name);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "bad argument #1 to 'stream' (%s must be >= 0)", name);
  return v;
}

static int docker_stream(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const char *sock = field_string(L, 1, "socket", 1);
  const char *url = field_string(L, 1, "url", 1);
  const char *body = field_string(L, 1, "body", 0);
  double timeout = field_number(L, 1, "timeout", 0);
  double max_output = field_number(L, 1, "max_output", 100000);
  luaL_argcheck(L, max_output >= 2, 1, "max_output must be >= 2");

  dstream *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->closed = 1; /* nothing to release until set up */
  luaL_setmetatable(L, STREAM_MT);
  mb_capture_init(&s->out, (size_t)max_output);
  mb_capture_init(&s->err, (size_t)max_output);
  mb_capture_init(&s->all, (size_t)max_output);
  s->closed = 0;
  CURL *e = s->x.easy = curl_easy_init();
  if (e == NULL) return luaL_error(L, "docker: cannot create a curl handle");
  s->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  struct curl_slist *h2 = s->hdrs ? curl_slist_append(s->hdrs, "Expect:") : NULL;
  if (h2 == NULL) return luaL_error(L, "not enough memory");
  s->hdrs = h2;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000) + 1);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
  mb_http_start(L, &s->x);
  return 1;
}

/* ---- waiting and results ------------------------------------------------------------------ */

/* nil, msg, CODE for a failed transfer or an error status; 0 when it went well (or timed out). */
static int stream_failure(lua_State *L, dstream *s)
{
  CURLcode rc = s->x.result;
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    long connected = 0;
    curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &connected);
    if (connected == 0)
      return mb_fail(L, "TIMEOUT", "docker: no answer from the daemon: %s",
                     s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    s->timed_out = 1;
    return 0;
  }
  if (rc != CURLE_OK) {
    return mb_fail(L, mb_http_code(rc), "docker: %s",
                   s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
  }
  long code = 0;
  curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 300) {
    const char *why = code == 404 ? "NOT_FOUND" : code == 409 ? "CONFLICT" : "API_ERROR";
    return mb_fail(L, why, "docker: exec start: HTTP %d: %s", (int)code,
                   s->errbody ? s->errbody : "(no message)");
  }
  if (s->alloc_failed) return mb_fail(L, "ENOMEM", "docker: not enough memory for the output");
  return 0;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
  (void)status, (void)ctx;
  dstream *s = lua_touserdata(L, 1);
  if (!s->x.finished) return luaL_error(L, "docker stream: woke before the end");
  int n = stream_failure(L, s);
  if (n) return n;
  lua_pushboolean(L, 1);
  return 1;
}

static int stream_wait(lua_State *L)
{
  dstream *s = check_stream(L);
  lua_settop(L, 1);
  if (s->x.finished) return wait_k(L, LUA_OK, 0);
  if (s->x.wait.task != NULL) return luaL_error(L, "wait: another task is waiting for this stream");
  return mb_await(L, &s->x.wait, wait_k, 0);
}

static int take_field(lua_State *L, mb_capture *c, const char *name)
{
  char *buf;
  size_t len;
  int truncated = 0;
  if (mb_capture_take(c, &buf, &len, &truncated) != 0) return luaL_error(L, "not enough memory");
  lua_pushlstring(L, buf, len);
  free(buf);
  lua_setfield(L, -2, name);
  return truncated;
}

static int stream_take(lua_State *L)
{
  dstream *s = check_stream(L);
  if (!s->x.finished) mb_loop_run_once(mb_http_loop(&s->x), 0);
  if (s->x.finished && s->x.result == CURLE_OPERATION_TIMEDOUT) s->timed_out = 1;
  lua_createtable(L, 0, 6);
  int t = take_field(L, &s->all, "output");
  t |= take_field(L, &s->out, "stdout");
  t |= take_field(L, &s->err, "stderr");
  lua_pushboolean(L, t);
  lua_setfield(L, -2, "truncated");
  lua_pushboolean(L, s->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, !s->x.finished);
  lua_setfield(L, -2, "running");
  return 1;
}

static int stream_running(lua_State *L)
{
  dstream *s = check_stream(L);
  if (!s->x.finished) mb_loop_run_once(mb_http_loop(&s->x), 0);
  lua_pushboolean(L, !s->x.finished);
  return 1;
}

static int stream_close(lua_State *L)
{
  stream_release(luaL_checkudata(L, 1, STREAM_MT));
  return 0;
}

MB_EXPORT int luaopen_moonbox_docker(lua_State *L);
MB_EXPORT int luaopen_moonbox_docker(lua_State *L)
{
  static const luaL_Reg methods[] = {{"wait", stream_wait},
                                     {"take", stream_take},
                                     {"running", stream_running},
                                     {"close", stream_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", stream_gc}, {"__close", stream_gc}, {NULL, NULL}};
  mb_newclass(L, STREAM_MT, methods, meta);
  static const luaL_Reg funcs[] = {{"stream", docker_stream},
                                   {"tar_encode", mb_docker_tar_encode},
                                   {"tar_decode", mb_docker_tar_decode},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
