/* http.h: libcurl transfers driven by the host loop, for natives that speak HTTP themselves
 * (the Docker sandbox, the Kubernetes client) and for moonbox.http.
 *
 * One CURLM per loop (created on first use, kept in the registry, cleaned up when the state
 * closes). A native sets up its own easy handle (URL, callbacks, options), embeds an mb_http_xfer
 * in a userdata that stays on the waiting stack, and calls mb_http_start; the loop drives the
 * transfer, and when it completes `result` holds the CURLcode and the wait is done. Write and
 * header callbacks run on the loop thread inside libcurl: they must not call Lua. A native that
 * wants to see data before the end (a stream) calls mb_wait_done itself from its write callback
 * and re-arms the wait (mb_wait_init) after consuming the data; mb_http_xfer_done tells whether
 * the transfer itself is over. */
#ifndef MOONBOX_HTTP_H
#define MOONBOX_HTTP_H

#include <curl/curl.h>

#include "scheduler.h"

typedef struct mb_http_multi mb_http_multi;

typedef struct mb_http_xfer {
  CURL *easy;
  mb_wait wait;       /* done at completion (or earlier, by the owner's own callbacks) */
  CURLcode result;    /* valid once finished */
  int finished;       /* the transfer is over (result set) */
  curl_socket_t sock; /* the connection's socket when it finished (CONNECT_ONLY transfers) */
  int keep_attached;  /* CONNECT_ONLY: stay in the multi after finishing (curl_easy_send/recv
                         need the connection; mb_http_stop detaches it) */
  int active;         /* added to the multi */
  mb_http_multi *multi;
  struct mb_http_xfer *prev, *next; /* the multi's list of attached transfers */
} mb_http_xfer;

/* Adds x->easy (already configured) to the loop's multi. The wait is initialised here with a
 * cancel hook that removes the transfer. Returns 0, or raises on a libcurl error. */
void mb_http_start(lua_State *L, mb_http_xfer *x);

/* The loop driving a started transfer (for mb_wait_done from the owner's callbacks). */
mb_loop *mb_http_loop(const mb_http_xfer *x);

/* Re-arms x->wait (same cancel hook) after the owner consumed what woke it early. */
void mb_http_rearm(mb_http_xfer *x);

/* Removes the transfer from the multi if it is still there (idempotent; for __gc and cancel).
 * Does not clean up the easy handle. */
void mb_http_stop(mb_http_xfer *x);

/* The CODE for a libcurl error: TIMEOUT, UNAVAILABLE, TLS, CANCELLED, INVALID or EIO. */
const char *mb_http_code(CURLcode rc);

#endif
