/* rs.h: what the files of moonbox.restricted share (not a public header).
 *
 * A restricted state (struct rs) is one lua_State R running untrusted Lua under a memory cap (the
 * allocator below counts every byte) and a deadline (a POSIX timer signals this thread when time
 * runs out; the handler sets `expired` and arms a count hook that raises). Values cross between
 * the host state and R only as plain data, through a flat buffer (rs_copy.c), so no operation
 * ever touches both states at once and an error in one never unwinds through the other. */
#ifndef MB_RS_H
#define MB_RS_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "moonbox.h"

struct rs {
  lua_State *R;                  /* NULL once closed */
  size_t used, limit;            /* bytes held by R, and its cap */
  double timeout;                /* seconds per run/call */
  int max_depth;                 /* nesting of values leaving or entering R */
  long max_items;                /* values leaving or entering R per copy */
  size_t max_bytes;              /* encoded bytes per copy */
  timer_t timer;                 /* signals the thread that armed it */
  pid_t timer_tid;               /* 0: no timer yet */
  volatile sig_atomic_t running; /* a run/call is in progress on R */
  volatile sig_atomic_t expired; /* the deadline passed during this run/call */
  int refused;                   /* the allocator refused a request during this run/call */
};

/* A growable byte buffer; owned by a host userdata box so a raise never leaks it. */
struct rs_buf {
  char *p;
  size_t n, cap, pos;
};

/* The restricted state's own struct rs, kept in R's extra space. */
struct rs *rs_of(lua_State *R);

/* Raises in R (or the host) when the deadline passed: "timeout". Called by long C loops. */
void rs_check_deadline(lua_State *R);

/* Encodes the value at idx of S into b (plain data only: nil, boolean, number, string, table;
 * proxies made by rs_decode readonly are read through). Raises in S on anything else, on
 * too deep nesting, too many values or too many bytes; `what` names the value in messages. */
void rs_encode(lua_State *S, int idx, struct rs_buf *b, const struct rs *lim, const char *what);

/* Pushes the next value of b onto D; readonly tables become read-only proxies. Raises in D. */
void rs_decode(lua_State *D, struct rs_buf *b, int readonly);

/* Frees b's memory (idempotent). */
void rs_buf_free(struct rs_buf *b);

/* lua_CFunction run protected in a fresh R: opens the allowed libraries and builds the strict
 * global table (allow-list, print to a log, clone). */
int rs_open_env(lua_State *R);

/* Installs the budgeted find/match/gmatch/gsub into the string table on top of R's stack. */
void rs_open_match(lua_State *R);

/* string.rep and table.move whose running time the caps bound (rs_lib.c). */
int rs_rep(lua_State *L);
int rs_move(lua_State *L);

#endif
