/* nsexec.c: moonbox-nsexec, the helper the namespace sandbox puts in front of every command.
 *
 *   moonbox-nsexec --hold --root DIR [--net] [--ro PATH]... [--rw PATH]... [--tmp-size BYTES]
 *       One per sandbox. Creates a user namespace (the sandbox user, uid 1000 inside, is the
 *       caller's uid outside), a mount namespace holding the sandbox's file system (nsroot.c),
 *       an ipc namespace and, unless --net, a network namespace with only a loopback device.
 *       (The ipc namespace is the sandbox's, not each command's: tearing one down waits for an
 *       RCU grace period — its mqueue mount — which cost 1-3 ms per command on a busy host.)
 *       Prints "ready" on
 *       stdout once built (or a reason on stderr and exits 125), then lives until its stdin
 *       closes or its parent dies. It runs nothing itself.
 *   moonbox-nsexec --join PID:STARTTIME [--net] [--cgroup DIR]... [--cpu S] [--nofile N]
 *                  [--as BYTES] [--nproc N] [--fsize BYTES] [--cwd DIR] -- COMMAND...
 *       One per command. Joins the cgroups, then the holder's user, network, ipc and mount
 *       namespaces (by pidfd, checked against the holder's start time so a recycled pid is
 *       refused), unshares fresh mount, pid and uts namespaces and forks the namespace's
 *       init. The init mounts the pid namespace's own /proc, applies rlimits, no_new_privs and
 *       the seccomp filter (nsfilter.c), starts COMMAND and reaps; when COMMAND ends the init
 *       exits and the kernel kills whatever the command left behind. This process relays
 *       SIGTERM/SIGINT/SIGHUP/SIGQUIT to the init, which forwards them to every process of
 *       the namespace, and exits with the command's status (a signal n becomes 128+n).
 *
 * Both die with their parent (PR_SET_PDEATHSIG) and close every inherited descriptor but 0-2.
 * The configuration comes only from argv; nothing goes through a shell. Exit 125: the helper
 * itself failed, with "moonbox-nsexec: <step>: <reason>" on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
  if (mode == 1 && (!cfg->argv || !cfg->argv[0])) {
    ns_report(0, "--join needs -- COMMAND...");
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

static int write_proc(const char *path, const char *text)
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
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | (cfg->net ? 0 : CLONE_NEWNET);
  int rc = cfg->deny_userns ? (errno = EPERM, -1) : unshare(flags);
  if (rc < 0) {
    ns_report(errno, "unshare(user, mount, ipc%s namespaces)", cfg->net ? "" : ", network");
    userns_hint();
    return NS_EXIT_SETUP;
  }
  char map[64];
  if (write_proc("/proc/self/setgroups", "deny") < 0) {
    ns_report(errno, "write /proc/self/setgroups");
    return NS_EXIT_SETUP;
  }
  snprintf(map, sizeof map, "%d %u 1\n", NS_UID, (unsigned)uid);
  if (write_proc("/proc/self/uid_map", map) < 0) {
    ns_report(errno, "write /proc/self/uid_map");
    return NS_EXIT_SETUP;
  }
  snprintf(map, sizeof map, "%d %u 1\n", NS_GID, (unsigned)gid);
  if (write_proc("/proc/self/gid_map", map) < 0) {
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

/* The 22nd field of /proc/PID/stat: start time in clock ticks since boot. */
static long long start_time(pid_t pid)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p) return -1;
  p++;
  for (int field = 3; field < 22 && p; field++) p = strchr(p + 1, ' ');
  return p ? strtoll(p + 1, NULL, 10) : -1;
}

static int join_holder(const struct ns_cfg *cfg)
{
  int pid = 0;
  long long start = 0;
  if (sscanf(cfg->join, "%d:%lld", &pid, &start) != 2 || pid <= 0) {
    ns_report(0, "--join %s: need PID:STARTTIME", cfg->join);
    return -1;
  }
  int pfd = pidfd_open(pid, 0);
  if (pfd < 0 || start_time(pid) != start) {
    ns_report(pfd < 0 ? errno : ESRCH, "the sandbox's holder process %d is gone", pid);
    if (pfd >= 0) close(pfd);
    return -1;
  }
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | (cfg->net ? 0 : CLONE_NEWNET);
  int rc = setns(pfd, flags);
  int err = errno;
  close(pfd);
  if (rc < 0) {
    ns_report(err, "join the sandbox's namespaces");
    return -1;
  }
  if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS) < 0) {
    ns_report(errno, "unshare(mount, pid, uts namespaces)");
    return -1;
  }
  if (sethostname("moonbox", 7) < 0) {
    ns_report(errno, "sethostname");
    return -1;
  }
  return 0;
}

static int join_cgroups(const struct ns_cfg *cfg)
{
  for (int i = 0; i < cfg->ncgroups; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", cfg->cgroups[i]);
    if (write_proc(path, "0") < 0) {
      ns_report(errno, "join cgroup %s", cfg->cgroups[i]);
      return -1;
    }
  }
  return 0;
}

static int set_limit(int resource, long long value, const char *name)
{
  struct rlimit rl;
  if (getrlimit(resource, &rl) < 0) return -1;
  rlim_t v = (rlim_t)value;
  if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max) v = rl.rlim_max; /* cannot raise */
  rl.rlim_cur = v;
  rl.rlim_max = v;
  if (resource == RLIMIT_CPU && v != RLIM_INFINITY) rl.rlim_max = v + 1; /* SIGXCPU, then KILL */
  if (setrlimit(resource, &rl) < 0) {
    ns_report(errno, "setrlimit %s", name);
    return -1;
  }
  return 0;
}

static int apply_limits(const struct ns_cfg *cfg)
{
  if (set_limit(RLIMIT_CORE, 0, "core") < 0) return -1;
  if (cfg->cpu && set_limit(RLIMIT_CPU, cfg->cpu, "cpu") < 0) return -1;
  if (cfg->nofile && set_limit(RLIMIT_NOFILE, cfg->nofile, "nofile") < 0) return -1;
  if (cfg->as && set_limit(RLIMIT_AS, cfg->as, "as") < 0) return -1;
  if (cfg->nproc && set_limit(RLIMIT_NPROC, cfg->nproc, "nproc") < 0) return -1;
  if (cfg->fsize && set_limit(RLIMIT_FSIZE, cfg->fsize, "fsize") < 0) return -1;
  return 0;
}

static void forward(int sig)
{
  kill(-1, sig); /* from pid 1: every other process of the namespace */
}

static const int relayed[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static int status_code(int st)
{
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* pid 1 of the command's pid namespace. Never returns. */
static void run_init(const struct ns_cfg *cfg, int lifefd)
{
  struct pollfd p = {.fd = lifefd, .events = POLLIN};
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&p, 1, 0) != 0) _exit(NS_EXIT_SETUP);
  close(lifefd);
  if (ns_mount_proc(cfg->caller_is_root) < 0) _exit(NS_EXIT_SETUP);
  if (chdir(cfg->cwd) < 0) {
    ns_report(errno, "cd %s", cfg->cwd);
    _exit(NS_EXIT_SETUP);
  }
  if (apply_limits(cfg) < 0 || ns_load_filter(cfg) < 0) _exit(NS_EXIT_SETUP);
  struct sigaction sa = {.sa_handler = forward};
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaction(relayed[i], &sa, NULL);
  fflush(stderr);
  sigset_t none;
  sigemptyset(&none);
  pid_t cmd = vfork();
  if (cmd == 0) {
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(cfg->argv[0], cfg->argv, environ);
    int err = errno;
    static const char pre[] = "moonbox-nsexec: cannot run ";
    const char *why = strerror(err);
    if (write(2, pre, sizeof pre - 1) < 0 || write(2, cfg->argv[0], strlen(cfg->argv[0])) < 0 ||
        write(2, ": ", 2) < 0 || write(2, why, strlen(why)) < 0 || write(2, "\n", 1) < 0) {
    }
    _exit(err == ENOENT ? 127 : 126);
  }
  if (cmd < 0) {
    ns_report(errno, "start the command");
    _exit(NS_EXIT_SETUP);
  }
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (;;) {
    int st = 0;
    pid_t w = waitpid(-1, &st, 0);
    if (w == cmd) _exit(status_code(st));
    if (w < 0 && errno != EINTR) _exit(NS_EXIT_SETUP);
  }
}

static int join(const struct ns_cfg *cfg)
{
  if (join_cgroups(cfg) < 0 || join_holder(cfg) < 0) return NS_EXIT_SETUP;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaddset(&set, relayed[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int life[2];
  if (pipe2(life, O_CLOEXEC) < 0) {
    ns_report(errno, "pipe");
    return NS_EXIT_SETUP;
  }
  fflush(stderr);
  pid_t init = fork();
  if (init == 0) {
    close(life[1]);
    run_init(cfg, life[0]);
  }
  close(life[0]);
  if (init < 0) {
    ns_report(errno, "fork the sandbox's init");
    return NS_EXIT_SETUP;
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(init, sig);
      continue;
    }
    int st = 0;
    pid_t w = waitpid(init, &st, WNOHANG);
    if (w == init) return status_code(st);
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
  return mode == 0 ? hold(&cfg) : join(&cfg);
}
