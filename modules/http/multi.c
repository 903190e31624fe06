/* multi.c: the loop's libcurl multi handle (http.h).
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); both become loop handles here. When a watched socket is ready or the
 * timer fires, curl_multi_socket_action runs the transfers, and each finished one gets its
 * result recorded and its wait marked done. Nothing here calls Lua.
 *
 * Owns: the CURLM (a userdata in the registry under "moonbox.http.multi", whose __gc removes any
 * transfer still attached and cleans the multi up — it is created after the loop, so at state
 * close it is finalized before the loop is), one mb_io per watched socket (malloc'd, freed when
 * libcurl says CURL_POLL_REMOVE or at cleanup) and one timer. */
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "http.h"

#define MULTI_KEY "moonbox.http.multi"

typedef struct sock_watch {
  mb_io io;
  curl_socket_t fd;
  struct sock_watch *next;
  mb_http_multi *m;
} sock_watch;

struct mb_http_multi {
  CURLM *multi;
  mb_loop *loop;
  mb_timer timer;
  sock_watch *socks;   /* every live watch, for cleanup */
  mb_http_xfer *xfers; /* every attached transfer, for cleanup */
};

static void xfer_link(mb_http_multi *m, mb_http_xfer *x)
{
  x->prev = NULL;
  x->next = m->xfers;
  if (m->xfers) m->xfers->prev = x;
  m->xfers = x;
}

static void xfer_unlink(mb_http_multi *m, mb_http_xfer *x)
{
  if (x->prev)
    x->prev->next = x->next;
  else if (m->xfers == x)
    m->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void check_finished(mb_http_multi *m)
{
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    mb_http_xfer *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    CURLcode rc = msg->data.result;
    if (x) { /* CONNECT_ONLY users (websocket) need the socket the transfer ended on */
      curl_socket_t s = CURL_SOCKET_BAD;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_ACTIVESOCKET, &s);
      x->sock = s;
    }
    if (x && x->keep_attached) { /* its connection lives on in the multi until mb_http_stop */
      x->finished = 1;
      x->result = rc;
      mb_wait_done(m->loop, &x->wait);
      continue;
    }
    curl_multi_remove_handle(m->multi, msg->easy_handle);
    if (x) {
      xfer_unlink(m, x);
      x->active = 0;
      x->finished = 1;
      x->result = rc;
      mb_wait_done(m->loop, &x->wait);
    }
  }
}

static void on_socket_ready(mb_loop *loop, mb_io *io, unsigned events)
{
  sock_watch *w = io->data;
  mb_http_multi *m = w->m;
  int mask = 0, running;
  if (events & MB_READABLE) mask |= CURL_CSELECT_IN;
  if (events & MB_WRITABLE) mask |= CURL_CSELECT_OUT;
  curl_multi_socket_action(m->multi, w->fd, mask, &running);
  check_finished(m);
}

static void on_timer(mb_loop *loop, mb_timer *t)
{
  mb_http_multi *m = t->data;
  int running;
  curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_finished(m);
}

static void unlink_watch(mb_http_multi *m, sock_watch *w)
{
  for (sock_watch **p = &m->socks; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  mb_io_stop(m->loop, &w->io);
  free(w);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
  mb_http_multi *m = userp;
  sock_watch *w = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (w) {
      curl_multi_assign(m->multi, fd, NULL);
      unlink_watch(m, w);
    }
    return 0;
  }
  unsigned events = 0;
  if (what & CURL_POLL_IN) events |= MB_READABLE;
  if (what & CURL_POLL_OUT) events |= MB_WRITABLE;
  if (w == NULL) {
    w = calloc(1, sizeof *w);
    if (w == NULL) return -1;
    w->fd = fd;
    w->m = m;
    if (mb_io_start(m->loop, &w->io, fd, events, on_socket_ready, w) != 0) {
      free(w);
      return -1;
    }
    w->next = m->socks;
    m->socks = w;
    curl_multi_assign(m->multi, fd, w);
  } else if (mb_io_update(m->loop, &w->io, events) != 0) {
    return -1;
  }
  return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
  mb_http_multi *m = userp;
  if (timeout_ms < 0) {
    mb_timer_stop(m->loop, &m->timer);
    return 0;
  }
  /* Never call back into libcurl from here: a zero delay fires on the next iteration. */
  return mb_timer_start(m->loop, &m->timer, (double)timeout_ms / 1000.0, on_timer, m) ? -1 : 0;
}

static int multi_gc(lua_State *L)
{
  mb_http_multi *m = lua_touserdata(L, 1);
  if (m->multi == NULL) return 0;
  /* Detach whatever is still attached (its owner's __gc may run later and find it inactive). */
  while (m->xfers) {
    mb_http_xfer *x = m->xfers;
    xfer_unlink(m, x);
    curl_multi_remove_handle(m->multi, x->easy);
    x->active = 0;
    x->multi = NULL;
  }
  while (m->socks) unlink_watch(m, m->socks);
  mb_timer_stop(m->loop, &m->timer);
  curl_multi_cleanup(m->multi);
  m->multi = NULL;
  return 0;
}

static mb_http_multi *multi_get(lua_State *L)
{
  if (lua_getfield(L, LUA_REGISTRYINDEX, MULTI_KEY) == LUA_TUSERDATA) {
    mb_http_multi *m = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (m->multi) return m;
    luaL_error(L, "moonbox.http: used while the state is closing");
  }
  lua_pop(L, 1);
  mb_loop *loop = mb_loop_get(L); /* first: the loop must outlive the multi at close */
  pthread_once(&global_once, global_init);
  mb_http_multi *m = lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  m->loop = loop;
  m->multi = curl_multi_init();
  if (m->multi == NULL) luaL_error(L, "moonbox.http: cannot create a curl multi handle");
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, multi_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "moonbox.http.Multi");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, MULTI_KEY);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  return m;
}

static void xfer_cancel(mb_loop *loop, mb_wait *w)
{
  mb_http_stop(w->data);
}

void mb_http_start(lua_State *L, mb_http_xfer *x)
{
  mb_http_multi *m = multi_get(L);
  mb_wait_init(&x->wait, xfer_cancel, x);
  x->multi = m;
  x->finished = 0;
  x->result = CURLE_OK;
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
  CURLMcode mc = curl_multi_add_handle(m->multi, x->easy);
  if (mc != CURLM_OK) luaL_error(L, "moonbox.http: %s", curl_multi_strerror(mc));
  x->active = 1;
  xfer_link(m, x);
}

mb_loop *mb_http_loop(const mb_http_xfer *x)
{
  return x->multi ? x->multi->loop : NULL;
}

void mb_http_rearm(mb_http_xfer *x)
{
  mb_wait_init(&x->wait, xfer_cancel, x);
}

void mb_http_stop(mb_http_xfer *x)
{
  if (x->active && x->multi && x->multi->multi) {
    xfer_unlink(x->multi, x);
    curl_multi_remove_handle(x->multi->multi, x->easy);
  }
  x->active = 0;
}

const char *mb_http_code(CURLcode rc)
{
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "TIMEOUT";
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
      return "UNAVAILABLE";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
      return "TLS";
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR:
      return "CANCELLED";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return "INVALID";
    default:
      return "EIO";
  }
}
