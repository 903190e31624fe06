/* localfs_walk.c: the sorted, confined directory walk behind glob and grep (no Lua).
 *
 * One DIR per level is open at a time along the current branch (closed on the way back up).
 * Entries are read with readdir (getdents64 in 32 KiB batches), typed from d_type (fstatat only
 * when the file system does not say), sorted, then visited. Errors below the start are skipped.
 * The callbacks never raise, so nothing here can leak on a Lua error. */
#define _GNU_SOURCE /* O_PATH, qsort_r */
#include "localfs_walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct dent {
  const char *name; /* set once the arena stops moving */
  size_t off, len;
  unsigned char type; /* DT_REG, DT_DIR, or DT_LNK for a link to a regular file inside */
} dent;

typedef struct walker {
  const lfs_area *a;
  const lfs_walk_ops *ops;
  void *ud;
  char path[PATH_MAX]; /* start "/" rel, relative to the area */
  size_t rel_at;       /* where rel begins inside path */
  bool stop;
} walker;

/* Byte order of the full paths the entries stand for: a directory sorts as "name/", so visiting
 * "a.txt" before "a/b" keeps the walk in global path order. */
static int dent_cmp(const void *pa, const void *pb)
{
  const dent *a = pa, *b = pb;
  for (size_t i = 0;; i++) {
    int ca = i < a->len ? (unsigned char)a->name[i] : (i == a->len && a->type == DT_DIR ? '/' : -1);
    int cb = i < b->len ? (unsigned char)b->name[i] : (i == b->len && b->type == DT_DIR ? '/' : -1);
    if (ca != cb) return ca < cb ? -1 : 1;
    if (ca == -1) return 0;
  }
}

/* Appends "/name" (or "name" at the top) to w->path; false when it would not fit. */
static bool path_push(walker *w, size_t at, const char *name, size_t len, size_t *out)
{
  size_t sep = at > 0 ? 1 : 0;
  if (at + sep + len + 1 > sizeof w->path) return false;
  if (sep) w->path[at] = '/';
  memcpy(w->path + at + sep, name, len + 1);
  *out = at + sep + len;
  return true;
}

/* The type an entry is visited as, or 0 to leave it out. */
static unsigned char entry_type(walker *w, int fd, struct dirent *de, size_t at)
{
  unsigned char t = de->d_type;
  if (t == DT_UNKNOWN) {
    struct stat st;
    if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) return 0;
    t = S_ISDIR(st.st_mode)   ? DT_DIR
        : S_ISREG(st.st_mode) ? DT_REG
        : S_ISLNK(st.st_mode) ? DT_LNK
                              : 0;
  }
  if (t == DT_LNK) {
    size_t end;
    if (!path_push(w, at, de->d_name, strlen(de->d_name), &end)) return 0;
    int lfd = lfs_open(w->a, w->path, O_PATH);
    w->path[at] = '\0';
    struct stat st;
    int ok = lfd >= 0 && fstat(lfd, &st) == 0 && S_ISREG(st.st_mode);
    if (lfd >= 0) close(lfd);
    return ok ? DT_LNK : 0;
  }
  return t == DT_REG || t == DT_DIR ? t : 0;
}

/* Reads the entries of `d` into a sorted array; *names holds the copied names. */
static dent *read_dir(walker *w, DIR *d, size_t at, size_t *count, char **names)
{
  size_t n = 0, cap = 0, nbytes = 0, ncap = 0;
  dent *v = NULL;
  char *arena = NULL;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *nm = de->d_name;
    if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) continue;
    unsigned char t = entry_type(w, dirfd(d), de, at);
    if (!t) continue;
    size_t len = strlen(nm);
    if (n == cap || nbytes + len + 1 > ncap) {
      size_t c2 = n == cap ? (cap ? cap * 2 : 64) : cap;
      size_t n2 = nbytes + len + 1 > ncap ? (ncap ? ncap * 2 : 4096) + len + 1 : ncap;
      dent *v2 = realloc(v, c2 * sizeof *v2);
      if (v2) v = v2;
      char *a2 = v2 ? realloc(arena, n2) : NULL;
      if (!a2) break; /* out of memory: walk what we have */
      arena = a2;
      cap = c2;
      ncap = n2;
    }
    memcpy(arena + nbytes, nm, len + 1);
    v[n].off = nbytes;
    v[n].len = len;
    v[n].type = t;
    nbytes += len + 1;
    n++;
  }
  for (size_t i = 0; i < n; i++) v[i].name = arena + v[i].off;
  if (n > 1) qsort(v, n, sizeof *v, dent_cmp);
  *count = n;
  *names = arena;
  return v;
}

static void walk_dir(walker *w, int fd, size_t at)
{
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return;
  }
  size_t n = 0;
  char *arena = NULL;
  dent *v = read_dir(w, d, at, &n, &arena);
  for (size_t i = 0; i < n && !w->stop; i++) {
    size_t end;
    if (!path_push(w, at, v[i].name, v[i].len, &end)) continue;
    lfs_walk_entry e = {
        .dirfd = dirfd(d),
        .name = v[i].name,
        .name_len = v[i].len,
        .rel = w->path + w->rel_at,
        .rel_len = end - w->rel_at,
        .area_rel = w->path,
        .is_link = v[i].type == DT_LNK,
    };
    if (v[i].type == DT_DIR) {
      if (w->ops->enter && !w->ops->enter(w->ud, &e)) continue;
      int cfd = openat(dirfd(d), v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd >= 0) walk_dir(w, cfd, end);
    } else if (!w->ops->file(w->ud, &e)) {
      w->stop = true;
    }
    w->path[at] = '\0';
  }
  free(v);
  free(arena);
  closedir(d);
}

int lfs_walk(const lfs_area *a, const char *start, const lfs_walk_ops *ops, void *ud)
{
  walker *w = malloc(sizeof *w);
  if (!w) return -ENOMEM;
  size_t n = strlen(start);
  if (n >= sizeof w->path) {
    free(w);
    return -ENAMETOOLONG;
  }
  int fd = lfs_open(a, start, O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    free(w);
    return fd;
  }
  w->a = a;
  w->ops = ops;
  w->ud = ud;
  w->stop = false;
  memcpy(w->path, start, n + 1);
  w->rel_at = n > 0 ? n + 1 : 0;
  walk_dir(w, fd, n);
  free(w);
  return 0;
}

int lfs_walk_open(const lfs_area *a, const lfs_walk_entry *e)
{
  int fd = e->is_link ? lfs_open(a, e->area_rel, O_RDONLY | O_NONBLOCK)
                      : openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return e->is_link ? fd : -errno;
  return fd;
}

int lfs_walk_stat(const lfs_area *a, const lfs_walk_entry *e, struct stat *st)
{
  if (!e->is_link) return fstatat(e->dirfd, e->name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
  int fd = lfs_open(a, e->area_rel, O_PATH);
  if (fd < 0) return fd;
  int r = fstat(fd, st) < 0 ? -errno : 0;
  close(fd);
  return r;
}
