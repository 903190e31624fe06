/* nsroot.c: the sandbox's file system, built once per sandbox by the holder and then copied
 * (unshare(CLONE_NEWNS)) for every command.
 *
 * New root: a small tmpfs holding /etc (generated passwd, group, hosts, nsswitch.conf plus a few
 * read-only host files the dynamic linker and TLS need), /dev (null, zero, full, random, urandom
 * bound read-only so their host inodes cannot be chmod-ed; /dev/shm a tmpfs; no /dev/tty, so a
 * command can never reach the host's terminal), a private /tmp
 * tmpfs, /workspace (the workspace, read-write), the system directories /usr /bin /lib /lib64
 * /sbin read-only (symlinks reproduced as symlinks), the caller's extra read-only and writable
 * paths, and the host's /proc — only so that a command, as pid 1 of its own pid namespace, may
 * mount its own proc there (the kernel refuses a proc mount in a user namespace unless one is
 * already fully visible); ns_mount_proc covers it before anything untrusted runs.
 *
 * Sources are cloned (open_tree) before anything is mounted, so a workspace under /tmp is never
 * hidden by the staging mount; every mount is private (nothing propagates back to the host). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsexec.h"

#define RO_ATTRS (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
#define STAGING "/tmp"

/* One thing to place in the new root: a cloned mount tree, or a symlink to reproduce. */
struct item {
  char rel[PATH_MAX]; /* path inside, without the leading '/' */
  int tree;           /* open_tree fd, or -1 */
  int is_dir;
  char link[PATH_MAX]; /* symlink target when tree == -1 */
};

#define MAX_ITEMS (NS_MAX_PATHS * 2 + 48)
static struct item items[MAX_ITEMS];
static int nitems;

static int clone_tree(const char *src, unsigned long long attrs, int *is_dir)
{
  int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0) return -1;
  struct mount_attr attr = {.attr_set = attrs};
  if (attrs && mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  *is_dir = S_ISDIR(st.st_mode);
  return fd;
}

/* Queues host path `src` to appear at `dst` inside. `optional`: a missing source is skipped.
 * `keep_links`: a symlink source is reproduced as a symlink instead of being followed. */
static int add(const char *src, const char *dst, unsigned long long attrs, int optional,
               int keep_links)
{
  if (nitems == MAX_ITEMS) {
    ns_report(0, "too many paths to mount");
    return -1;
  }
  struct item *it = &items[nitems];
  while (*dst == '/') dst++;
  if (snprintf(it->rel, sizeof it->rel, "%s", dst) >= (int)sizeof it->rel) {
    ns_report(ENAMETOOLONG, "%s", src);
    return -1;
  }
  it->tree = -1;
  it->link[0] = '\0';
  struct stat st;
  if (lstat(src, &st) < 0) {
    if (optional && errno == ENOENT) return 0;
    ns_report(errno, "%s", src);
    return -1;
  }
  if (keep_links && S_ISLNK(st.st_mode)) {
    ssize_t n = readlink(src, it->link, sizeof it->link - 1);
    if (n < 0) {
      ns_report(errno, "readlink %s", src);
      return -1;
    }
    it->link[n] = '\0';
    nitems++;
    return 0;
  }
  it->tree = clone_tree(src, attrs, &it->is_dir);
  if (it->tree < 0) {
    if (optional && errno == ENOENT) return 0;
    ns_report(errno, "bind %s", src);
    return -1;
  }
  nitems++;
  return 0;
}

/* mkdir -p of `rel` under dirfd without following symlinks; the last component is a directory
 * (is_dir) or an empty file (a mount point for a file). Returns 0 or -1 with errno set. */
static int make_path(int dirfd, const char *rel, int is_dir)
{
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", rel);
  int fd = dup(dirfd);
  if (fd < 0) return -1;
  char *save = NULL;
  char *comp = strtok_r(buf, "/", &save);
  while (comp) {
    char *next = strtok_r(NULL, "/", &save);
    if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0) {
      close(fd);
      errno = EINVAL;
      return -1;
    }
    if (next || is_dir) {
      if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) goto fail;
      int sub = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) goto fail;
      close(fd);
      fd = sub;
    } else {
      int f = openat(fd, comp, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (f < 0 && errno != EROFS && errno != EACCES) goto fail;
      if (f >= 0) close(f);
    }
    comp = next;
  }
  close(fd);
  return 0;
fail : {
  int err = errno;
  close(fd);
  errno = err;
  return -1;
}
}

static int write_file(int rootfd, const char *rel, const char *text)
{
  int fd = openat(rootfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  size_t len = strlen(text);
  ssize_t n = write(fd, text, len);
  int err = errno;
  close(fd);
  if (n != (ssize_t)len) {
    errno = n < 0 ? err : EIO;
    return -1;
  }
  return 0;
}

static int mount_tmpfs(const char *target, const char *opts, unsigned long flags)
{
  if (mount("tmpfs", target, "tmpfs", flags | MS_NOSUID | MS_NODEV, opts) < 0) {
    ns_report(errno, "mount tmpfs on %s", target);
    return -1;
  }
  return 0;
}

static const char etc_text[][2][160] = {
    {"etc/passwd",
     "root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n"
     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
    {"etc/group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"},
    {"etc/hosts",
     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
     "127.0.1.1\tmoonbox\n"},
    {"etc/hostname", "moonbox\n"},
    {"etc/nsswitch.conf",
     "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
     "networks: files\nprotocols: files\nservices: files\n"},
};

/* Host files under /etc a command needs to link, resolve names and verify TLS; nothing secret. */
static const char *const etc_binds[] = {
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",   "ssl",       "ca-certificates",
    "localtime",   "timezone",   "os-release",   "debian_version", "protocols", "services",
    "mime.types",  "gai.conf",   "host.conf",    "magic",          "magic.mime"};

static const char *const sys_dirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom"};

static int queue_sources(const struct ns_cfg *cfg)
{
  char src[PATH_MAX];
  for (size_t i = 0; i < sizeof sys_dirs / sizeof *sys_dirs; i++) {
    snprintf(src, sizeof src, "/%s", sys_dirs[i]);
    if (add(src, sys_dirs[i], RO_ATTRS, 1, 1) < 0) return -1;
  }
  for (size_t i = 0; i < sizeof etc_binds / sizeof *etc_binds; i++) {
    snprintf(src, sizeof src, "/etc/%s", etc_binds[i]);
    char dst[64];
    snprintf(dst, sizeof dst, "etc/%s", etc_binds[i]);
    if (add(src, dst, RO_ATTRS, 1, 1) < 0) return -1;
  }
  if (cfg->net && add("/etc/resolv.conf", "etc/resolv.conf", RO_ATTRS, 1, 0) < 0) return -1;
  for (size_t i = 0; i < sizeof dev_nodes / sizeof *dev_nodes; i++) {
    snprintf(src, sizeof src, "/dev/%s", dev_nodes[i]);
    char dst[64];
    snprintf(dst, sizeof dst, "dev/%s", dev_nodes[i]);
    /* read-only: writes to a device still work, chmod/chown of the host inode do not */
    if (add(src, dst, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0, 0) < 0)
      return -1;
  }
  if (add(cfg->root, "workspace", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0) < 0) return -1;
  for (int i = 0; i < cfg->nro; i++)
    if (add(cfg->ro[i], cfg->ro[i], RO_ATTRS, 0, 0) < 0) return -1;
  for (int i = 0; i < cfg->nrw; i++)
    if (add(cfg->rw[i], cfg->rw[i], MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0) < 0) return -1;
  return add("/proc", "proc", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0, 0);
}

static int populate(const struct ns_cfg *cfg, int rootfd)
{
  static const char *const dirs[] = {"etc", "dev", "dev/shm", "tmp", "var", "workspace", "proc"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    if (mkdirat(rootfd, dirs[i], 0755) < 0 && errno != EEXIST) {
      ns_report(errno, "mkdir /%s", dirs[i]);
      return -1;
    }
  }
  for (size_t i = 0; i < sizeof etc_text / sizeof *etc_text; i++) {
    if (write_file(rootfd, etc_text[i][0], etc_text[i][1]) < 0) {
      ns_report(errno, "write /%s", etc_text[i][0]);
      return -1;
    }
  }
  static const char *const links[][2] = {{"dev/fd", "/proc/self/fd"},
                                         {"dev/stdin", "/proc/self/fd/0"},
                                         {"dev/stdout", "/proc/self/fd/1"},
                                         {"dev/stderr", "/proc/self/fd/2"},
                                         {"var/tmp", "/tmp"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    if (symlinkat(links[i][1], rootfd, links[i][0]) < 0) {
      ns_report(errno, "symlink /%s", links[i][0]);
      return -1;
    }
  }
  char opts[64] = "mode=1777";
  if (cfg->tmp_size > 0) snprintf(opts, sizeof opts, "mode=1777,size=%lld", cfg->tmp_size);
  if (mount_tmpfs(STAGING "/tmp", opts, 0) < 0) return -1;
  if (mount_tmpfs(STAGING "/dev/shm", opts, MS_NOEXEC) < 0) return -1;

  for (int i = 0; i < nitems; i++) {
    struct item *it = &items[i];
    if (it->tree < 0) {
      if (symlinkat(it->link, rootfd, it->rel) < 0) {
        ns_report(errno, "symlink /%s", it->rel);
        return -1;
      }
      continue;
    }
    if (make_path(rootfd, it->rel, it->is_dir) < 0) {
      ns_report(errno, "mount point /%s", it->rel);
      return -1;
    }
    if (move_mount(it->tree, "", rootfd, it->rel, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      ns_report(errno, "mount /%s", it->rel);
      return -1;
    }
    close(it->tree);
    it->tree = -1;
  }
  return 0;
}

int ns_build_root(const struct ns_cfg *cfg)
{
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    ns_report(errno, "make / private");
    return -1;
  }
  if (queue_sources(cfg) < 0) return -1;
  if (mount_tmpfs(STAGING, "mode=0755,size=4m", 0) < 0) return -1;
  int rootfd = open(STAGING, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    ns_report(errno, "open new root");
    return -1;
  }
  if (populate(cfg, rootfd) < 0) return -1;
  if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0) {
    ns_report(errno, "pivot_root");
    return -1;
  }
  close(rootfd);
  /* the old root now sits on top of the new one: detach it and everything below it */
  if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
    ns_report(errno, "detach the old root");
    return -1;
  }
  struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
  if (mount_setattr(AT_FDCWD, "/", 0, &ro, sizeof ro) < 0) {
    ns_report(errno, "make / read-only");
    return -1;
  }
  return 0;
}

/* The command's proc is mounted read-only as a whole: one attribute, no per-file mounts, and
 * every host-wide knob under it (/proc/sys, sysrq-trigger, irq, bus ...) refuses writes even
 * where the sandbox user is the host's root outside (the files' owner). Reading stays as for any
 * host user, except the key list, which shows the owner's keys: hidden when the caller is root. */
int ns_mount_proc(int caller_is_root)
{
  int fs = fsopen("proc", FSOPEN_CLOEXEC);
  if (fs < 0) {
    ns_report(errno, "fsopen proc");
    return -1;
  }
  int mnt = -1;
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
      (mnt = fsmount(
           fs, FSMOUNT_CLOEXEC,
           MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC)) < 0) {
    ns_report(errno, "mount proc");
    close(fs);
    return -1;
  }
  close(fs);
  /* Stacked on the host's proc, which no path reaches any more: every lookup of /proc lands
   * on the top mount, the command holds no descriptor below it, and taking the top away needs
   * CAP_SYS_ADMIN plus umount/move_mount, which the command has not and the filter refuses.
   * (Unmounting the host's proc instead costs an RCU grace period per command: 0.1-3 ms.) */
  if (move_mount(mnt, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    ns_report(errno, "replace /proc");
    close(mnt);
    return -1;
  }
  close(mnt);
  if (!caller_is_root) return 0;
  int is_dir = 0;
  int fd = clone_tree("/dev/null", MOUNT_ATTR_RDONLY, &is_dir);
  if (fd < 0 || move_mount(fd, "", AT_FDCWD, "/proc/keys", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    if (errno == ENOENT) { /* a kernel without keys */
      if (fd >= 0) close(fd);
      return 0;
    }
    ns_report(errno, "hide /proc/keys");
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return 0;
}
