/* localfs_core.h: confined file access beneath a directory fd, with no Lua.
 *
 * An lfs_area is one host directory the backend may touch (the root, or an `allowed` dir). Every
 * path handed to these functions is relative to the area's top, already normalized (no leading
 * '/', no "." or empty segments; "" is the top itself). Functions return >= 0 on success and
 * -errno on failure; an escape from the area (by "..", an absolute symlink or a relative one that
 * climbs out) is -EXDEV, whatever resolver is in use (the binding reports it as EACCES). */
#ifndef MOONBOX_LOCALFS_CORE_H
#define MOONBOX_LOCALFS_CORE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* How paths are resolved: openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) when the kernel has it,
 * else (or when forced) a component walk that opens each segment with O_NOFOLLOW and follows
 * symlinks itself. Both give the same answers; the walk is the reference for edge cases. */
enum lfs_resolver { LFS_RESOLVE_AUTO = 0, LFS_RESOLVE_WALK = 1 };

typedef struct lfs_area {
  int dirfd;    /* O_PATH|O_DIRECTORY fd of the top; owned by whoever filled the struct */
  char *host;   /* the top's host path as configured, made absolute, no trailing '/' */
  char *real;   /* realpath() of the top (absolute symlinks into the area compare to both) */
  int resolver; /* enum lfs_resolver */
} lfs_area;

/* Opens (creating if missing) `dir` and fills `a`; -errno on failure. lfs_area_close releases. */
int lfs_area_open(lfs_area *a, const char *dir, int resolver);
void lfs_area_close(lfs_area *a);

/* True when the running kernel refused openat2 (ENOSYS) at least once. */
int lfs_openat2_missing(void);

/* openat(2) of an existing `rel` beneath the area, following symlinks only while they stay
 * inside it. `flags` as for openat without O_CREAT (O_CLOEXEC is added): files are only ever
 * created by lfs_write_atomic, in a directory resolved first. */
int lfs_open(const lfs_area *a, const char *rel, int flags);

/* The directory that will hold `rel` and the entry name inside it, after following `rel` through
 * any symlinks that stay inside the area (so a write through a link replaces its target).
 * With `create`, missing parent directories are made (confined, mode 0777 & ~umask).
 * On success *dirfd is an O_PATH fd the caller closes and `name` holds the final entry. */
int lfs_parent(const lfs_area *a, const char *rel, int create, int *dirfd, char *name,
               size_t namecap);

/* Writing a whole file atomically: a temp file with a random name in the target's directory
 * (O_EXCL), all bytes written, optional fsync, then renameat over the target. An existing target
 * keeps its permission bits; a directory target is -EISDIR. On any failure the temp file is
 * removed and the target is untouched. */
int lfs_write_atomic(const lfs_area *a, const char *rel, const char *data, size_t len, int durable);

/* Largest file read, edit and grep load into memory; bigger ones fail with -EOVERFLOW (grep
 * skips them), so a planted multi-gigabyte file cannot exhaust the host's memory. */
#define LFS_MAX_FILE ((size_t)256 << 20)

/* Reads a whole regular file into a malloc'd buffer (NUL-terminated for convenience, *len bytes
 * of content). -EISDIR for a directory. The caller frees *out. */
int lfs_read_all(const lfs_area *a, const char *rel, char **out, size_t *len);

/* Reads everything from an open fd (fstat-sized first read, then until EOF), at most
 * LFS_MAX_FILE bytes. */
int lfs_read_fd(int fd, size_t hint, char **out, size_t *len);

#endif
