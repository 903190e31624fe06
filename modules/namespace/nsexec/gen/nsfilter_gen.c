/* nsfilter_gen.c: a build-time tool that writes the system-call filter every sandboxed command
 * runs under as BPF (a C header, one program with and one without network), using libseccomp.
 * Compiling the filter with libseccomp costs 0.3-0.7 ms, more than the rest of a command's
 * set-up; done once at build time, moonbox-nsexec only loads the finished program (nsfilter.c).
 * Usage: moonbox-nsfilter-gen OUTPUT.h
 *
 * Default allow with a deny list: the user, pid, mount and net namespaces already bound what a
 * command can name, so the filter removes the kernel interfaces that would let it change those
 * walls or attack the kernel directly — ptrace and process_vm_*, mount and the new mount API,
 * pivot_root/chroot, namespace creation and joining (unshare, setns, clone with CLONE_NEW*;
 * clone3 answers ENOSYS so libc falls back to clone, whose flags the filter can see), bpf,
 * kernel keyrings, perf_event_open, io_uring, userfaultfd, kexec, modules, reboot, swap, acct,
 * quotactl, open_by_handle_at. Sockets: AF_UNIX always (shells, socketpair, local tools; with a
 * private net namespace and no host socket paths mounted nothing outside is reachable), netlink
 * (getaddrinfo's interface probe; it sees only the sandbox's own namespace), AF_INET/AF_INET6
 * only when the sandbox has network = true; every other family (AF_VSOCK reaches a VM's host,
 * AF_PACKET, AF_ALG, ...) is refused. Denied calls fail with EPERM; a syscall of another ABI
 * (i386 int 0x80, x32) kills the process. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const denied[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "umount",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "bpf",
    "add_key",
    "request_key",
    "keyctl",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "fanotify_init",
    "nfsservctl",
};

static int family_allowed(unsigned af, int net)
{
  return af == AF_UNIX || af == AF_NETLINK || (net && (af == AF_INET || af == AF_INET6));
}

static int range_allowed(unsigned from, unsigned to, int net)
{
  for (unsigned af = from; af < to; af++)
    if (family_allowed(af, net)) return 1;
  return 0;
}

static scmp_filter_ctx build(int net)
{
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) {
    fprintf(stderr, "moonbox-nsfilter-gen: seccomp_init failed\n");
    return NULL;
  }
  /* a binary tree of syscall numbers instead of a list: fewer instructions per call */
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  /* a system call of another ABI (i386 int 0x80, x32) on this filter: the whole process dies */
  seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  const char *what = "";
  int rc = 0;
  for (size_t i = 0; i < sizeof denied / sizeof *denied && rc == 0; i++) {
    int nr = seccomp_syscall_resolve_name(denied[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
    what = denied[i];
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  }
  if (rc == 0) {
    what = "clone";
    static const unsigned long ns_flags[] = {CLONE_NEWNS,     CLONE_NEWUTS, CLONE_NEWIPC,
                                             CLONE_NEWUSER,   CLONE_NEWPID, CLONE_NEWNET,
                                             CLONE_NEWCGROUP, CLONE_NEWTIME};
    for (size_t i = 0; i < sizeof ns_flags / sizeof *ns_flags && rc == 0; i++)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                            SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
  }
  if (rc == 0) {
    what = "clone3";
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  }
  /* socket families: refuse every family but the allowed ones. The kernel reads the family as
   * an int, so the rules compare the low 32 bits (masked) — high garbage cannot slip a family
   * past — and cover the refused values below 64 with aligned power-of-two blocks (a short
   * program: the kernel emulates it for every syscall number when it is loaded); everything
   * at or above 64, in any bits, is refused by one rule. */
  what = "socket";
  for (unsigned v = 0; v < 64 && rc == 0;) {
    if (family_allowed(v, net)) {
      v++;
      continue;
    }
    unsigned size = 1;
    while (v % (size * 2) == 0 && v + size * 2 <= 64 && !range_allowed(v, v + size * 2, net))
      size *= 2;
    rc = seccomp_rule_add(
        ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
        SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL & ~(scmp_datum_t)(size - 1), (scmp_datum_t)v));
    v += size;
  }
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)64));
  if (rc == 0) {
    what = "socketpair";
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketpair), 1,
                          SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)AF_UNIX));
  }
  if (rc != 0) {
    fprintf(stderr, "moonbox-nsfilter-gen: rule for %s: error %d\n", what, rc);
    seccomp_release(ctx);
    return NULL;
  }
  return ctx;
}

/* Appends one filter as `static const struct sock_filter NAME[]`. */
static int emit(FILE *out, const char *name, int net)
{
  scmp_filter_ctx ctx = build(net);
  if (!ctx) return -1;
  FILE *tmp = tmpfile();
  int rc = tmp ? seccomp_export_bpf(ctx, fileno(tmp)) : -1;
  seccomp_release(ctx);
  if (rc != 0) {
    fprintf(stderr, "moonbox-nsfilter-gen: export failed (%d)\n", rc);
    if (tmp) fclose(tmp);
    return -1;
  }
  rewind(tmp);
  fprintf(out, "static const struct sock_filter %s[] = {\n", name);
  struct sock_filter insn; /* exported in host order: this tool runs where it builds */
  while (fread(&insn, sizeof insn, 1, tmp) == 1)
    fprintf(out, "    {0x%04x, %u, %u, 0x%08xU},\n", insn.code, insn.jt, insn.jf, insn.k);
  fputs("};\n", out);
  fclose(tmp);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: moonbox-nsfilter-gen OUTPUT.h\n");
    return 2;
  }
  FILE *out = fopen(argv[1], "w");
  if (!out) {
    perror(argv[1]);
    return 1;
  }
  fputs(
      "/* generated by moonbox-nsfilter-gen (modules/namespace/nsexec/gen): do not edit */\n"
      "#include <linux/filter.h>\n",
      out);
  int rc = emit(out, "ns_filter_isolated", 0) | emit(out, "ns_filter_network", 1);
  if (fclose(out) != 0 || rc != 0) {
    unlink(argv[1]);
    return 1;
  }
  return 0;
}
