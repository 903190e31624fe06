/* localfs_walk.h: a confined, sorted directory walk for glob and grep (no Lua).
 *
 * The walk starts at a directory resolved beneath an area and descends with
 * openat(O_NOFOLLOW | O_DIRECTORY) from the parent's fd, so a directory swapped for a symlink
 * mid-walk is not entered. Symlinks to regular files that resolve inside the area are reported
 * (flagged is_link); symlinked directories are not descended (no cycles, no duplicates). Entries
 * of one directory are visited in an order that makes the whole walk sorted by relative path
 * (byte order), so a consumer with a cap may stop early and still return the first results. */
#ifndef MOONBOX_LOCALFS_WALK_H
#define MOONBOX_LOCALFS_WALK_H

#include <stdbool.h>
#include <stddef.h>

#include "localfs_core.h"

typedef struct lfs_walk_entry {
  int dirfd;        /* the directory holding the entry (valid during the callback only) */
  const char *name; /* entry name */
  size_t name_len;
  const char *rel; /* path relative to the walk's start, no leading '/' */
  size_t rel_len;
  const char *area_rel; /* the same entry relative to the area's top */
  bool is_link;         /* a symlink whose target is a regular file inside the area */
} lfs_walk_entry;

typedef struct lfs_walk_ops {
  /* Descend into directory `e`? (NULL: always.) */
  bool (*enter)(void *ud, const lfs_walk_entry *e);
  /* A regular file (or a link to one). Return false to stop the walk. */
  bool (*file)(void *ud, const lfs_walk_entry *e);
} lfs_walk_ops;

/* Walks the directory `start` (relative to the area, "" for its top). Per-entry errors (vanished
 * files, unreadable directories, too many open fds) skip that entry. Returns 0 or -errno for a
 * start that cannot be opened as a directory. */
int lfs_walk(const lfs_area *a, const char *start, const lfs_walk_ops *ops, void *ud);

/* Opens a walked file for reading: openat(O_NOFOLLOW) from its directory, or a confined
 * resolution for a link. -errno on failure. */
int lfs_walk_open(const lfs_area *a, const lfs_walk_entry *e);

/* stat of a walked entry (following a link, confined). */
int lfs_walk_stat(const lfs_area *a, const lfs_walk_entry *e, struct stat *st);

#endif
