/* proc.h: shared by the files of moonbox.proc. */
#ifndef MOONBOX_PROC_H
#define MOONBOX_PROC_H

#include <sys/types.h>

#include "capture.h"
#include "proc_spawn.h"
#include "scheduler.h"

typedef struct proc proc;
struct proc {
  mb_loop *loop;
  pid_t pgid; /* the leader's pid; kept after it is reaped, for sweeping and pid() */
  mb_child child;
  mb_io out_io, err_io, in_io;
  int out_fd, err_fd, in_fd;
  mb_capture output, out, err;
  char *in_buf;
  size_t in_len, in_off;
  mb_timer deadline, killer, drain;
  double started, ended, grace;
  int status; /* wait status of the leader, -1 if unknown */
  int in_hold; /* stdin = true: in_fd stays open between Process:send calls */
  int exited, finished, timed_out, closed;
  mb_wait wait;
};

/* Options of spawn/run, read from the stack; the arrays live in userdata left on the stack. */
typedef struct mb_spawn_opts {
  char **argv;
  char **envp; /* NULL: inherit */
  const char *cwd;
  const char *stdin_data;
  size_t stdin_len;
  int has_stdin;
  int hold_stdin; /* stdin = true */
  double timeout; /* < 0: none */
  double grace;
  size_t max_output;
} mb_spawn_opts;

/* Reads argv (a list of strings) at argv_idx and the options table (or nil) at opts_idx.
 * Raises on misuse. Pushes the userdata/tables the pointers refer to. */
void mb_proc_read_opts(lua_State *L, int argv_idx, int opts_idx, mb_spawn_opts *o);

/* The sweeper: finished groups are killed again and their orphans reaped for a few seconds. */
void mb_proc_sweeper(lua_State *L, mb_loop *loop);
void mb_proc_sweep_add(mb_loop *loop, pid_t pgid);

/* mkdir -p; returns 0 or an errno value. */
int mb_proc_mkdirs(const char *path, mode_t mode);

#endif
