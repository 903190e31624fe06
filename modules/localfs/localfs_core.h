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
#include <sys/uio.h>

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
/* A copy of `src` with its own fd and strings, for work that must not depend on the original
 * staying open (a search on a worker thread while another task closes the backend). */
int lfs_area_dup(lfs_area *dst, const lfs_area *src);

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

/* The spare inode of an edit burst. Replacing a file atomically means writing a new inode, and
 * on ext4 the new inode's fresh page-cache pages cost ~4x the copy itself (a 389 KB file: ~120 us
 * against ~25 us). So after a replace the old inode, which the exchange left under the temp
 * name, is kept as the spare: the next replace in the same directory within LFS_SPARE_TTL
 * overwrites it (its pages are already cached) and exchanges it in. The target's name always
 * holds a whole old or whole new file. The spare is a ".mb-*.tmp" entry beside the target: its
 * owner removes it (lfs_spare_drop) before listing or running commands, when idle, and on close.
 * It is reused only while its name still holds exactly the inode we left there (same device,
 * number and change time: inode numbers are recycled at once) with a single link (never a file
 * someone linked, symlinked or swapped in), and never with `durable`. */
#define LFS_SPARE_TTL 0.05 /* seconds: a spare older than this is dropped, not reused */
typedef struct lfs_spare {
  int dirfd;          /* O_PATH fd of the directory that holds it; -1: no spare */
  dev_t dir_dev, dev; /* the directory's and the kept inode's identity */
  ino_t dir_ino, ino;
  struct timespec ctime; /* with dev/ino: the inode we left (numbers are reused at once) */
  double at;             /* CLOCK_MONOTONIC seconds of the write that left it */
  char name[32];
} lfs_spare;
#define LFS_SPARE_NONE \
  {                    \
    .dirfd = -1        \
  }
/* Removes the spare if its name still holds the inode we left there; forgets it either way. */
void lfs_spare_drop(lfs_spare *sp);
/* Writing a whole file atomically: the content goes to a temp file in the target's directory (a
 * fresh one with a random name, O_EXCL, or the spare), optional fsync, then it is exchanged with
 * (or renamed over) the target. An existing target keeps its permission bits; a directory target
 * is -EISDIR. On any failure the temp file is removed and the target is untouched. `spare` may be
 * NULL (no reuse: the replaced inode is unlinked at once). The content is the concatenation of
 * iovcnt (<= LFS_IOV_MAX) pieces, so an edit writes its unchanged parts from where they lie. */
#define LFS_IOV_MAX 8
int lfs_write_atomic(const lfs_area *a, const char *rel, const struct iovec *iov, int iovcnt,
                     int durable, lfs_spare *spare);

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
