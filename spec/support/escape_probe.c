/* escape_probe.c: moonbox-escape-probe, a test tool for spec/namespace_sandbox_spec.lua (built
 * with the project, never installed). Each mode tries one thing a sandboxed command must not be
 * able to do — or, run on the host, provides the other end — and prints what happened:
 *
 *   listen PORTFILE        (host) listen on 127.0.0.1:0, write the port to PORTFILE, print
 *                          "accepted" for the first connection (gives up after 20 s)
 *   connect HOST PORT      "connected" or "connect: <error>" / "socket: <error>"
 *   socket FAMILY          socket(FAMILY, SOCK_STREAM or DGRAM): "created" or "socket: <error>"
 *   socket-highbits        socket(AF_INET | 1 << 32): the filter must read only the low bits
 *   ptrace PID             PTRACE_ATTACH: "attached" or "ptrace: <error>"
 *   kill PID               kill(PID, SIGKILL): "killed" or "kill: <error>"
 *   unshare                unshare(CLONE_NEWUSER), then clone(CLONE_NEWUSER)
 *   mount                  mount a tmpfs on /tmp
 *   chmod PATH             chmod(PATH, 0)
 *   nsids                  "NAME ID" for the user, net, ipc, uts, mnt and pid namespaces: the
 *                          kernel's 64-bit namespace id (NS_GET_ID, never reused), else
 *                          "NAME ino:INODE" (inode numbers are recycled once a namespace is gone)
 *   unix-listen NAME       bind the abstract unix socket @NAME, print "listening", then
 *                          "accepted" for the first connection (gives up after 20 s)
 *   unix-connect NAME      connect to @NAME: "connected" or "connect: <error>"
 *   denied                 one harmless call each of io_uring_setup, bpf, perf_event_open,
 *                          keyctl, add_key, userfaultfd, setns, open_by_handle_at: "name: ok" or
 *                          "name: <error>" per line (bad pointers and descriptors, so on the
 *                          host they fail with EFAULT/EBADF; under the filter with EPERM)
 * Exit status 0 when the attempt succeeded, 1 when it was refused, 2 on bad usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static int result(const char *what, long rc, const char *ok)
{
  if (rc < 0) {
    printf("%s: %s\n", what, strerror(errno));
    return 1;
  }
  printf("%s\n", ok);
  return 0;
}

static int do_listen(const char *portfile)
{
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0 ||
      getsockname(s, (struct sockaddr *)&a, &len) < 0)
    return result("listen", -1, "");
  FILE *f = fopen(portfile, "w");
  if (!f) return result("portfile", -1, "");
  fprintf(f, "%d\n", ntohs(a.sin_port));
  fclose(f);
  alarm(20);
  int c = accept(s, NULL, NULL);
  return result("accept", c, "accepted");
}

static int do_connect(const char *host, const char *port)
{
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return result("socket", -1, "");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  inet_pton(AF_INET, host, &a.sin_addr);
  return result("connect", connect(s, (struct sockaddr *)&a, sizeof a), "connected");
}

static int do_socket(const char *family)
{
  static const struct {
    const char *name;
    int af, type;
  } fams[] = {{"inet", AF_INET, SOCK_STREAM},    {"inet6", AF_INET6, SOCK_STREAM},
              {"unix", AF_UNIX, SOCK_STREAM},    {"netlink", AF_NETLINK, SOCK_DGRAM},
              {"packet", AF_PACKET, SOCK_DGRAM}, {"vsock", 40, SOCK_STREAM},
              {"alg", AF_ALG, SOCK_SEQPACKET}};
  for (size_t i = 0; i < sizeof fams / sizeof *fams; i++)
    if (strcmp(family, fams[i].name) == 0)
      return result("socket", socket(fams[i].af, fams[i].type, 0), "created");
  return 2;
}

static int do_unshare(void)
{
  int a = result("unshare", unshare(CLONE_NEWUSER), "unshared");
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  int b = result("clone", pid, "cloned");
  return a && b ? 1 : 0;
}

static int do_nsids(void)
{
  static const char *const names[] = {"user", "net", "ipc", "uts", "mnt", "pid"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t id = 0;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) return result(path, -1, "");
    if (ioctl(fd, _IOR(0xb7, 0xd, uint64_t), &id) == 0) /* NS_GET_ID, Linux 6.18 */
      printf("%s %llu\n", names[i], (unsigned long long)id);
    else
      printf("%s ino:%llu\n", names[i], (unsigned long long)st.st_ino);
    close(fd);
  }
  return 0;
}

/* The abstract address @name (no file: it lives in the network namespace). */
static socklen_t abstract(struct sockaddr_un *a, const char *name)
{
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  size_t n = strlen(name);
  if (n > sizeof a->sun_path - 1) n = sizeof a->sun_path - 1;
  memcpy(a->sun_path + 1, name, n);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int do_unix_listen(const char *name)
{
  struct sockaddr_un a;
  socklen_t len = abstract(&a, name);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&a, len) < 0 || listen(s, 4) < 0)
    return result("listen", -1, "");
  printf("listening\n");
  alarm(20);
  return result("accept", accept(s, NULL, NULL), "accepted");
}

static int do_unix_connect(const char *name)
{
  struct sockaddr_un a;
  socklen_t len = abstract(&a, name);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return result("socket", -1, "");
  return result("connect", connect(s, (struct sockaddr *)&a, len), "connected");
}

static void try_call(const char *name, long rc)
{
  if (rc < 0)
    printf("%s: %s\n", name, strerror(errno));
  else
    printf("%s: ok\n", name);
}

static int do_denied(void)
{
  try_call("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
  try_call("bpf", syscall(SYS_bpf, 0, NULL, 8));
  try_call("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  try_call("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
  try_call("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
  try_call("userfaultfd", syscall(SYS_userfaultfd, 0));
  try_call("setns", syscall(SYS_setns, -1, 0));
  try_call("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IONBF, 0);
  if (argc < 2) return 2;
  const char *m = argv[1];
  if (strcmp(m, "listen") == 0 && argc == 3) return do_listen(argv[2]);
  if (strcmp(m, "connect") == 0 && argc == 4) return do_connect(argv[2], argv[3]);
  if (strcmp(m, "socket") == 0 && argc == 3) return do_socket(argv[2]);
  if (strcmp(m, "socket-highbits") == 0)
    return result("socket", syscall(SYS_socket, (1L << 32) | AF_INET, SOCK_STREAM, 0), "created");
  if (strcmp(m, "ptrace") == 0 && argc == 3)
    return result("ptrace", ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0), "attached");
  if (strcmp(m, "kill") == 0 && argc == 3)
    return result("kill", kill(atoi(argv[2]), SIGKILL), "killed");
  if (strcmp(m, "unshare") == 0) return do_unshare();
  if (strcmp(m, "mount") == 0)
    return result("mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL), "mounted");
  if (strcmp(m, "denied") == 0) return do_denied();
  if (strcmp(m, "nsids") == 0) return do_nsids();
  if (strcmp(m, "unix-listen") == 0 && argc == 3) return do_unix_listen(argv[2]);
  if (strcmp(m, "unix-connect") == 0 && argc == 3) return do_unix_connect(argv[2]);
  if (strcmp(m, "chmod") == 0 && argc == 3) return result("chmod", chmod(argv[2], 0), "changed");
  return 2;
}
