/* nsexec.c: moonbox-nsexec, the helper the namespace sandbox puts in front of every command.
 *
 *   moonbox-nsexec --hold --root DIR [--net] [--ro PATH]... [--rw PATH]... [--tmp-size BYTES]
 *       One per sandbox: the template. Creates a user namespace (the sandbox user, uid 1000
 *       inside, is the caller's uid outside) and a mount namespace holding the sandbox's file
 *       system (nsroot.c), prints "ready" on stdout once built (or a reason on stderr and exits
 *       125), then lives until its stdin closes or its parent dies. It runs nothing itself.
 *   moonbox-nsexec --join PID:STARTTIME [--net] [--cgroup DIR]... [--cpu S] [--nofile N]
 *                  [--as BYTES] [--nproc N] [--fsize BYTES] [--cwd DIR] [-- COMMAND...]
 *       One per command, in fresh namespaces (nsrun.c): joins the template's user and mount
 *       namespaces only to copy them — a new user namespace nested in the template's, a new
 *       mount namespace copied from its root, and new pid, ipc, uts and (unless --net) network
 *       namespaces, none ever shared with another command. Without "-- COMMAND" it is a spare:
 *       everything is built and the command arrives later on stdin (nsrun.c describes the
 *       header), so the host can prepare the next command's namespaces ahead of time.
 *
 * Both die with their parent (PR_SET_PDEATHSIG) and close every inherited descriptor but 0-2.
 * The configuration comes only from argv (and a spare's command header); nothing goes through a
 * shell. Exit 125: the helper itself failed, with "moonbox-nsexec: <step>: <reason>" on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsexec.h"

extern char **environ;

void ns_report(int err, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err)
    fprintf(stderr, "moonbox-nsexec: %s: %s\n", msg, strerror(err));
  else
    fprintf(stderr, "moonbox-nsexec: %s\n", msg);
}

static void usage(void)
{
  fputs(
      "usage: moonbox-nsexec --hold --root DIR [options]\n"
      "       moonbox-nsexec --join PID:STARTTIME [options] -- COMMAND...\n",
      stderr);
}

static int parse_num(const char *s, long long *out)
{
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < 0) return -1;
  *out = v;
  return 0;
}

/* Returns 0 = hold, 1 = join, -1 = bad usage (reported). */
static int parse(int argc, char **argv, struct ns_cfg *cfg)
{
  int mode = -1;
  cfg->cwd = "/workspace";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    long long *num = NULL;
    if (strcmp(a, "--") == 0) {
      cfg->argv = argv + i + 1;
      break;
    } else if (strcmp(a, "--hold") == 0) {
      mode = 0;
      continue;
    } else if (strcmp(a, "--net") == 0) {
      cfg->net = 1;
      continue;
    } else if (strcmp(a, "--deny-userns") == 0) {
      cfg->deny_userns = 1;
      continue;
    }
    if (!v) {
      ns_report(0, "%s needs a value", a);
      return -1;
    }
    i++;
    if (strcmp(a, "--join") == 0) {
      mode = 1;
      cfg->join = v;
    } else if (strcmp(a, "--root") == 0) {
      cfg->root = v;
    } else if (strcmp(a, "--cwd") == 0) {
      cfg->cwd = v;
    } else if (strcmp(a, "--ro") == 0 || strcmp(a, "--rw") == 0) {
      int ro = a[3] == 'o';
      int *n = ro ? &cfg->nro : &cfg->nrw;
      if (*n == NS_MAX_PATHS || v[0] != '/' || strstr(v, "/..") || strcmp(v, "/") == 0) {
        ns_report(0, "%s %s: need an absolute path other than / (at most %d)", a, v, NS_MAX_PATHS);
        return -1;
      }
      (ro ? cfg->ro : cfg->rw)[(*n)++] = v;
    } else if (strcmp(a, "--cgroup") == 0) {
      if (cfg->ncgroups == (int)(sizeof cfg->cgroups / sizeof *cfg->cgroups)) {
        ns_report(0, "too many --cgroup");
        return -1;
      }
      cfg->cgroups[cfg->ncgroups++] = v;
    } else if (strcmp(a, "--cpu") == 0) {
      num = &cfg->cpu;
    } else if (strcmp(a, "--nofile") == 0) {
      num = &cfg->nofile;
    } else if (strcmp(a, "--as") == 0) {
      num = &cfg->as;
    } else if (strcmp(a, "--nproc") == 0) {
      num = &cfg->nproc;
    } else if (strcmp(a, "--fsize") == 0) {
      num = &cfg->fsize;
    } else if (strcmp(a, "--tmp-size") == 0) {
      num = &cfg->tmp_size;
    } else {
      ns_report(0, "unknown option %s", a);
      usage();
      return -1;
    }
    if (num && parse_num(v, num) < 0) {
      ns_report(0, "%s %s: need a non-negative integer", a, v);
      return -1;
    }
  }
  if (mode == 0 && !cfg->root) {
    ns_report(0, "--hold needs --root");
    return -1;
  }
  if (mode == 1 && cfg->argv && !cfg->argv[0]) {
    ns_report(0, "--join: nothing after --");
    return -1;
  }
  if (mode < 0) usage();
  return mode;
}

/* Dies with the parent; returns -1 when the parent is already gone. */
static int tie_to_parent(void)
{
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return -1;
  return getppid() == parent ? 0 : -1;
}

int ns_write_proc(const char *path, const char *text)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int err = errno;
  close(fd);
  errno = err;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Why user namespaces may be refused, from the knobs that refuse them. */
static void userns_hint(void)
{
  static const char *const knobs[] = {"/proc/sys/user/max_user_namespaces",
                                      "/proc/sys/kernel/unprivileged_userns_clone",
                                      "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"};
  for (size_t i = 0; i < sizeof knobs / sizeof *knobs; i++) {
    FILE *f = fopen(knobs[i], "re");
    if (!f) continue;
    char line[32] = "";
    if (fgets(line, sizeof line, f)) fprintf(stderr, "moonbox-nsexec: %s = %s", knobs[i], line);
    fclose(f);
  }
  fputs(
      "moonbox-nsexec: user namespaces are unavailable here (unprivileged containers such as "
      "Docker's default seccomp profile, AppArmor-restricted kernels, or a zero "
      "max_user_namespaces); the namespace sandbox cannot run\n",
      stderr);
}

static int hold(const struct ns_cfg *cfg)
{
  uid_t uid = geteuid();
  gid_t gid = getegid();
  int rc = cfg->deny_userns ? (errno = EPERM, -1) : unshare(CLONE_NEWUSER | CLONE_NEWNS);
  if (rc < 0) {
    ns_report(errno, "unshare(user, mount namespaces)");
    userns_hint();
    return NS_EXIT_SETUP;
  }
  char map[64];
  if (ns_write_proc("/proc/self/setgroups", "deny") < 0) {
    ns_report(errno, "write /proc/self/setgroups");
    return NS_EXIT_SETUP;
  }
  snprintf(map, sizeof map, "%d %u 1\n", NS_UID, (unsigned)uid);
  if (ns_write_proc("/proc/self/uid_map", map) < 0) {
    ns_report(errno, "write /proc/self/uid_map");
    return NS_EXIT_SETUP;
  }
  snprintf(map, sizeof map, "%d %u 1\n", NS_GID, (unsigned)gid);
  if (ns_write_proc("/proc/self/gid_map", map) < 0) {
    ns_report(errno, "write /proc/self/gid_map");
    return NS_EXIT_SETUP;
  }
  if (ns_build_root(cfg) < 0) return NS_EXIT_SETUP;
  signal(SIGPIPE, SIG_IGN);
  if (write(1, "ready\n", 6) != 6) return NS_EXIT_SETUP;
  close(1);
  char buf[64];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR)) return 0;
  }
}

int main(int argc, char **argv)
{
  struct ns_cfg cfg = {0};
  int mode = parse(argc, argv, &cfg);
  if (mode < 0) return NS_EXIT_SETUP;
  cfg.caller_is_root = geteuid() == 0;
  if (tie_to_parent() < 0) return NS_EXIT_SETUP;
  /* descriptors the host forgot to mark close-on-exec must not reach the sandbox */
  if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
    for (int fd = 3; fd < 1024; fd++) close(fd);
  }
  return mode == 0 ? hold(&cfg) : ns_run(&cfg);
}
