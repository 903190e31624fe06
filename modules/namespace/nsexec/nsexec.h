/* nsexec.h: what the parts of moonbox-nsexec share (the parsed configuration, the sandbox user,
 * the failure reporter). No Lua here: moonbox-nsexec is a standalone executable. */
#ifndef MB_NSEXEC_H
#define MB_NSEXEC_H

#include <stddef.h>

#define NS_MAX_PATHS 64
#define NS_UID 1000 /* the unprivileged user every command runs as, inside */
#define NS_GID 1000
#define NS_EXIT_SETUP 125 /* the helper itself failed (as env(1) and docker use it) */

struct ns_cfg {
  const char *root; /* host directory bound read-write at /workspace */
  const char *cwd;  /* working directory inside (default /workspace) */
  int net;          /* 1: share the host network (no net namespace, inet sockets allowed) */
  int deny_userns;  /* test hook: behave as if user namespaces were refused */
  const char *ro[NS_MAX_PATHS];
  int nro;
  const char *rw[NS_MAX_PATHS];
  int nrw;
  const char *cgroups[8]; /* cgroup directories to join (their cgroup.procs) */
  int ncgroups;
  long long cpu, nofile, as, nproc, fsize; /* rlimits; 0 = leave as inherited */
  long long tmp_size;                      /* bytes of the private /tmp; 0 = tmpfs default */
  const char *join;                        /* "pid:starttime" of the holder */
  int caller_is_root;                      /* euid 0 outside: the sandbox user is root's uid */
  char **argv; /* the command (after "--"); NULL: a spare, the command comes on stdin */
};

/* Prints "moonbox-nsexec: <what>: <strerror(err)>" (err 0: no suffix) on stderr. */
void ns_report(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes text to a /proc file; returns 0 or -1 with errno set. */
int ns_write_proc(const char *path, const char *text);

/* --join: one command in fresh namespaces (nsrun.c). Returns the exit status to exit with. */
int ns_run(const struct ns_cfg *cfg);

/* Builds the sandbox root in the current (fresh, private) mount namespace and pivots into it.
 * Leaves the host's /proc bound at /proc, for ns_mount_proc to replace. Returns 0 or -1. */
int ns_build_root(const struct ns_cfg *cfg);

/* In a process that is pid 1 of a fresh pid namespace, inside a fresh copy of the holder's
 * mount namespace: mounts this namespace's proc, read-only, over the host's at /proc. */
int ns_mount_proc(int caller_is_root);

/* Loads the system-call filter (sets no_new_privs). Returns 0 or -1. */
int ns_load_filter(const struct ns_cfg *cfg);

#endif
