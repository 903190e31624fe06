/* localfs.h: what localfs.c (object, path mapping, single-file methods) shares with
 * localfs_search.c (glob, grep). Internal to the module. */
#ifndef MOONBOX_LOCALFS_H
#define MOONBOX_LOCALFS_H

#include <stdbool.h>

#include "backend/backend_core.h"
#include "localfs_core.h"
#include "loop.h"
#include "moonbox.h"

#define LFS_TYPE "moonbox.localfs.LocalBackend"

typedef struct lfs_backend {
  bool closed;
  bool durable;    /* fsync file and directory on every write */
  lfs_spare spare; /* the inode an edit burst reuses (localfs_core.h); dropped when idle */
  mb_timer idle;   /* drops the spare LFS_SPARE_TTL after the last write */
  mb_loop *loop;   /* the state's loop, fetched at creation so it is finalized after us */
  struct lfs_backend **spare_prev, *spare_next; /* on the at-exit list while a spare exists */
  int nareas; /* areas[0] is the root; the rest are `allowed` directories */
  lfs_area areas[];
} lfs_backend;

/* A path resolved to an area: rel is relative to the area's top ("" for the top); vpath is what
 * results show (a virtual "/x" under the root, a host path under an allowed directory). */
typedef struct lfs_target {
  const lfs_area *area;
  mb_buf rel;
  mb_buf vpath;
} lfs_target;

/* Scratch memory owned by a userdata on the stack, so a Lua error (out of memory while
 * building results) never leaks it. lfs_box pushes the box; its bufs start empty. */
#define LFS_BOX_BUFS 6
typedef struct lfs_box {
  mb_buf b[LFS_BOX_BUFS];
  void *ptr[2]; /* other malloc'd blocks, freed with the box */
  lfs_target t;
  lfs_area area; /* a search's own copy of t.area (dup'd fd) for the worker thread; or dirfd -1 */
  void (*cleanup)(struct lfs_box *); /* extra release (compiled patterns), may be NULL */
  void *cleanup_ud[2];
} lfs_box;

lfs_box *lfs_box_new(lua_State *L);
void lfs_box_release(lfs_box *box);

lfs_backend *lfs_check(lua_State *L);
/* Removes the spare inode an edit burst left (before listings, commands, close). */
void lfs_settle(lfs_backend *b);

/* Maps a user path: on failure pushes the fail triple and returns its count (3), else 0.
 * `op` names the method in messages. */
int lfs_resolve(lua_State *L, lfs_backend *b, const char *op, const char *path, size_t len,
                lfs_target *t);

/* Pushes nil, "<op> '<vpath>': <why>", CODE for a -errno from the core. */
int lfs_fail(lua_State *L, const char *op, const lfs_target *t, int neg_errno);

/* Pushes nil, err text, code for a core mb_code failure. */
int lfs_fail_core(lua_State *L, mb_code code, const mb_buf *err);

/* Sets t[k] = modified_at string for a stat. */
void lfs_push_mtime(lua_State *L, const struct stat *st);

int lfs_glob(lua_State *L);
int lfs_grep(lua_State *L);

#endif
