/* proc_spawn.c: posix_spawn of a command in a new process group (see proc_spawn.h).
 *
 * Never fork: glibc's posix_spawn uses clone(CLONE_VM | CLONE_VFORK), whose cost does not grow
 * with the parent's memory. stdin is /dev/null or one end of a socketpair (so a write to a
 * command that stopped reading fails with EPIPE under MSG_NOSIGNAL instead of raising SIGPIPE
 * in the host); stdout and stderr are two pipes. Descriptors above 2 are closed in the child
 * (closefrom), so files the host opened without O_CLOEXEC do not leak into commands. */
#define _GNU_SOURCE
#include "proc_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

static void close_all(int *fds, int n)
{
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

int mb_spawn(const mb_spawn_req *req, mb_spawned *out)
{
  int fds[6] = {-1, -1, -1, -1, -1, -1}; /* in[parent, child], out[r, w], err[r, w] */
  int err = 0;
  if (req->stdin_pipe && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return errno;
  if (pipe2(fds + 2, O_CLOEXEC) != 0 || pipe2(fds + 4, O_CLOEXEC) != 0) {
    err = errno;
    close_all(fds, 6);
    return err;
  }
  if (req->stdin_pipe) {
    shutdown(fds[0], SHUT_RD);
    shutdown(fds[1], SHUT_WR);
  }

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  if (req->stdin_pipe)
    err = posix_spawn_file_actions_adddup2(&fa, fds[1], 0);
  else
    err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (!err) err = posix_spawn_file_actions_adddup2(&fa, fds[3], 1);
  if (!err) err = posix_spawn_file_actions_adddup2(&fa, fds[5], 2);
  if (!err) err = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (!err && req->cwd) err = posix_spawn_file_actions_addchdir_np(&fa, req->cwd);

  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (!err) err = posix_spawnattr_setpgroup(&attr, 0);
  if (!err) err = posix_spawnattr_setsigmask(&attr, &none);
  if (!err) err = posix_spawnattr_setsigdefault(&attr, &all);
  if (!err)
    err = posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  if (!err) {
    char *const *envp = req->envp ? req->envp : environ;
    if (req->argv[0][0] == '/')
      err = posix_spawn(&pid, req->argv[0], &fa, &attr, req->argv, envp);
    else
      err = posix_spawnp(&pid, req->argv[0], &fa, &attr, req->argv, envp);
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err) {
    close_all(fds, 6);
    return err;
  }
  /* the child's ends */
  if (fds[1] >= 0) close(fds[1]);
  close(fds[3]);
  close(fds[5]);
  out->pid = pid;
  out->in_fd = fds[0];
  out->out_fd = fds[2];
  out->err_fd = fds[4];
  for (int i = 0; i < 6; i += 2)
    if (fds[i] >= 0) fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
  return 0;
}
