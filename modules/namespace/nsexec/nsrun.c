/* nsrun.c: moonbox-nsexec --join, one command in namespaces no other command ever shares.
 *
 * The process the host spawns and waits for (the runner):
 *   1. joins the sandbox's cgroups;
 *   2. joins the holder's user and mount namespaces (by pidfd, checked against the holder's
 *      start time so a recycled pid is refused) — the template, only to be copied;
 *   3. unshares a new user namespace nested in the template's (uid and gid 1000 map to the
 *      template's 1000, the caller outside), owning a new copy of the template's mount
 *      namespace (its mounts locked together: nothing can be unmounted to uncover what lies
 *      below), new ipc, uts and, unless --net, network namespaces (only a down loopback);
 *   4. forks the keeper, which holds those namespaces until the runner has exited: the last
 *      reference to a mount namespace unmounts its tree and waits for an RCU grace period, and
 *      a network namespace's last reference schedules its cleanup; dropped in the keeper's exit
 *      (it dies with the runner), none of that delays the exit status the host waits for;
 *   5. unshares a new pid namespace and forks its init (pid 1), which mounts the namespace's
 *      own proc, applies rlimits, no_new_privs and the seccomp filter (nsfilter.c), takes the
 *      command (argv, or a spare's header on stdin), starts it and reaps; when the command ends
 *      the init exits and the kernel kills whatever the command left behind.
 * The runner relays SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the init, which forwards
 * them to every process of the namespace, and exits with the command's status (a signal n
 * becomes 128+n).
 *
 * A spare (no "-- COMMAND" in argv) builds all of that, then its init waits for the command on
 * stdin, so the host can prepare the next command's namespaces while nobody waits. The header:
 * "MBX1", 8 lowercase hex digits giving the payload length (at most 8 MiB), then the payload:
 * NUL-terminated fields — the stdin mode ("0": /dev/null, "1": the rest of the stream is the
 * command's stdin), the working directory, the number N of environment entries, N
 * "NAME=value" entries, then argv (at least one; argv[0] an absolute path). Nothing else is
 * read before the command starts. A stream that ends before a header (the host dropped the
 * spare) ends the spare quietly with status 125. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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

#define HEADER_MAX (8u << 20)

extern char **environ;

/* The command as the init runs it. */
struct command {
  const char *cwd;
  char **argv;
  char **envp;
  int keep_stdin;
};

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

static int join_template(const struct ns_cfg *cfg)
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
  int rc = setns(pfd, CLONE_NEWUSER | CLONE_NEWNS);
  int err = errno;
  close(pfd);
  if (rc < 0) {
    ns_report(err, "join the sandbox's namespaces");
    return -1;
  }
  return 0;
}

/* Step 3: the command's own user, mount, ipc, uts and network namespaces. */
static int fresh_namespaces(const struct ns_cfg *cfg)
{
  uid_t uid = geteuid(); /* the sandbox user, as the template sees it */
  gid_t gid = getegid();
  /* RLIMIT_NPROC is counted at every user namespace level: the command's own, checked against
   * the rlimit its init sets, and the template's, checked against the limit the creator of the
   * command's namespace had. Set here, that one caps all the sandbox's commands together. */
  if (cfg->nproc) {
    struct rlimit rl = {(rlim_t)cfg->nproc, (rlim_t)cfg->nproc};
    if (setrlimit(RLIMIT_NPROC, &rl) < 0) {
      ns_report(errno, "setrlimit nproc");
      return -1;
    }
  }
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  if (!cfg->net) flags |= CLONE_NEWNET;
  if (unshare(flags) < 0) {
    ns_report(errno, "unshare(user, mount, ipc, uts%s namespaces)", cfg->net ? "" : ", network");
    return -1;
  }
  char map[64];
  if (ns_write_proc("/proc/self/setgroups", "deny") < 0) {
    ns_report(errno, "write /proc/self/setgroups");
    return -1;
  }
  snprintf(map, sizeof map, "%d %u 1\n", NS_UID, (unsigned)uid);
  if (ns_write_proc("/proc/self/uid_map", map) < 0) {
    ns_report(errno, "write /proc/self/uid_map");
    return -1;
  }
  snprintf(map, sizeof map, "%d %u 1\n", NS_GID, (unsigned)gid);
  if (ns_write_proc("/proc/self/gid_map", map) < 0) {
    ns_report(errno, "write /proc/self/gid_map");
    return -1;
  }
  if (sethostname("moonbox", 7) < 0) {
    ns_report(errno, "sethostname");
    return -1;
  }
  return 0;
}

/* Step 4. The keeper holds no descriptor (a pipe it kept open would delay the host's EOF). */
static int start_keeper(void)
{
  pid_t parent = getpid();
  pid_t k = fork();
  if (k < 0) {
    ns_report(errno, "fork the keeper");
    return -1;
  }
  if (k > 0) return 0;
  if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0)
    for (int fd = 0; fd < 1024; fd++) close(fd);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(0);
  sigset_t none;
  sigemptyset(&none);
  for (;;) sigsuspend(&none);
}

static int join_cgroups(const struct ns_cfg *cfg)
{
  for (int i = 0; i < cfg->ncgroups; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", cfg->cgroups[i]);
    if (ns_write_proc(path, "0") < 0) {
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

/* Reads exactly n bytes from fd 0; 0, or -1 (EOF reported as errno 0, *got the bytes read). */
static int read_exact(char *buf, size_t n, size_t *got_out)
{
  size_t got = 0;
  size_t *gotp = got_out ? got_out : &got;
  *gotp = 0;
  while (*gotp < n) {
    ssize_t r = read(0, buf + *gotp, n - *gotp);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = 0;
      return -1;
    }
    *gotp += (size_t)r;
  }
  return 0;
}

/* The next NUL-terminated field at *pos, or NULL past the end. */
static char *field(char *buf, size_t len, size_t *pos)
{
  if (*pos >= len) return NULL;
  char *s = buf + *pos;
  char *nul = memchr(s, '\0', len - *pos);
  if (!nul) return NULL;
  *pos = (size_t)(nul - buf) + 1;
  return s;
}

/* A spare's command header from stdin (see the top of this file); 0, 1 (the stream ended
 * before a header: dropped quietly) or -1 (reported). */
static int read_header(struct command *cmd)
{
  char head[12];
  size_t got = 0;
  if (read_exact(head, sizeof head, &got) < 0) {
    if (errno == 0 && got == 0) return 1;
    if (errno == 0)
      ns_report(0, "bad command header: the stream ends inside it");
    else
      ns_report(errno, "read the command");
    return -1;
  }
  char hex[9];
  memcpy(hex, head + 4, 8);
  hex[8] = '\0';
  char *end = NULL;
  unsigned long len = strtoul(hex, &end, 16);
  if (memcmp(head, "MBX1", 4) != 0 || *end || len == 0 || len > HEADER_MAX) {
    ns_report(0, "bad command header");
    return -1;
  }
  char *buf = malloc(len);
  if (!buf) {
    ns_report(ENOMEM, "read the command");
    return -1;
  }
  if (read_exact(buf, len, NULL) < 0) {
    if (errno == 0)
      ns_report(0, "bad command header: the stream ends inside it");
    else
      ns_report(errno, "read the command");
    return -1;
  }
  size_t pos = 0;
  char *mode = field(buf, len, &pos);
  cmd->cwd = field(buf, len, &pos);
  char *count = field(buf, len, &pos);
  long nenv = count ? strtol(count, &end, 10) : -1;
  if (!mode || !cmd->cwd || nenv < 0 || *end || (size_t)nenv > len) goto bad;
  cmd->keep_stdin = strcmp(mode, "1") == 0;
  size_t nfields = 0;
  for (size_t i = pos; i < len; i++) nfields += buf[i] == '\0';
  char **vec = calloc(nfields + 2, sizeof *vec);
  if (!vec) goto bad;
  cmd->envp = vec;
  for (long i = 0; i < nenv; i++)
    if (!(vec[i] = field(buf, len, &pos))) goto bad;
  vec[nenv] = NULL;
  cmd->argv = vec + nenv + 1;
  size_t argc = 0;
  while ((cmd->argv[argc] = field(buf, len, &pos))) argc++;
  if (argc == 0 || cmd->argv[0][0] != '/' || pos != len) goto bad;
  return 0;
bad:
  ns_report(0, "bad command header");
  return -1;
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

static void exec_command(const struct command *cmd)
{
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(cmd->argv[0], cmd->argv, cmd->envp);
  int err = errno;
  static const char pre[] = "moonbox-nsexec: cannot run ";
  const char *why = strerror(err);
  if (write(2, pre, sizeof pre - 1) < 0 || write(2, cmd->argv[0], strlen(cmd->argv[0])) < 0 ||
      write(2, ": ", 2) < 0 || write(2, why, strlen(why)) < 0 || write(2, "\n", 1) < 0) {
  }
  _exit(err == ENOENT ? 127 : 126);
}

/* pid 1 of the command's pid namespace. Never returns. */
static void run_init(const struct ns_cfg *cfg, int lifefd)
{
  struct pollfd p = {.fd = lifefd, .events = POLLIN};
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&p, 1, 0) != 0) _exit(NS_EXIT_SETUP);
  close(lifefd);
  if (ns_mount_proc(cfg->caller_is_root) < 0) _exit(NS_EXIT_SETUP);
  if (apply_limits(cfg) < 0 || ns_load_filter(cfg) < 0) _exit(NS_EXIT_SETUP);
  struct command cmd = {cfg->cwd, cfg->argv, environ, 1};
  if (!cfg->argv) {
    int rc = read_header(&cmd);
    if (rc != 0) _exit(NS_EXIT_SETUP);
  }
  if (!cmd.keep_stdin) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0) {
      ns_report(errno, "open /dev/null");
      _exit(NS_EXIT_SETUP);
    }
    close(null);
  }
  if (chdir(cmd.cwd) < 0) {
    ns_report(errno, "cd %s", cmd.cwd);
    _exit(NS_EXIT_SETUP);
  }
  struct sigaction sa = {.sa_handler = forward};
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaction(relayed[i], &sa, NULL);
  fflush(stderr);
  pid_t child = vfork();
  if (child == 0) exec_command(&cmd);
  if (child < 0) {
    ns_report(errno, "start the command");
    _exit(NS_EXIT_SETUP);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (;;) {
    int st = 0;
    pid_t w = waitpid(-1, &st, 0);
    if (w == child) _exit(status_code(st));
    if (w < 0 && errno != EINTR) _exit(NS_EXIT_SETUP);
  }
}

int ns_run(const struct ns_cfg *cfg)
{
  if (join_cgroups(cfg) < 0 || join_template(cfg) < 0 || fresh_namespaces(cfg) < 0)
    return NS_EXIT_SETUP;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaddset(&set, relayed[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  if (start_keeper() < 0) return NS_EXIT_SETUP;
  if (unshare(CLONE_NEWPID) < 0) {
    ns_report(errno, "unshare(pid namespace)");
    return NS_EXIT_SETUP;
  }
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
