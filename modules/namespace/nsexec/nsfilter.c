/* nsfilter.c: loads the system-call filter into the sandbox's init, which passes it to the
 * command. The program itself is written at build time by gen/nsfilter_gen.c (libseccomp),
 * where the rules and their reasons live; loading a finished program costs microseconds. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsexec.h"
#include "nsfilter_bpf.h"

int ns_load_filter(const struct ns_cfg *cfg)
{
  struct sock_fprog prog;
  if (cfg->net) {
    prog.len = sizeof ns_filter_network / sizeof *ns_filter_network;
    prog.filter = (struct sock_filter *)ns_filter_network;
  } else {
    prog.len = sizeof ns_filter_isolated / sizeof *ns_filter_isolated;
    prog.filter = (struct sock_filter *)ns_filter_isolated;
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    ns_report(errno, "no_new_privs");
    return -1;
  }
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
    ns_report(errno, "load the seccomp filter");
    return -1;
  }
  return 0;
}
