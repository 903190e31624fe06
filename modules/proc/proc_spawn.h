/* proc_spawn.h: starting a command in its own process group with posix_spawn (no Lua). */
#ifndef MOONBOX_PROC_SPAWN_H
#define MOONBOX_PROC_SPAWN_H

#include <sys/types.h>

typedef struct mb_spawn_req {
  char *const *argv; /* argv[0] is the program: an absolute path, or searched in PATH */
  char *const *envp; /* NULL: this process's environment */
  const char *cwd;   /* NULL: this process's working directory */
  int stdin_pipe;    /* 1: a socket the caller writes stdin into; 0: /dev/null */
} mb_spawn_req;

typedef struct mb_spawned {
  pid_t pid; /* also the process group id */
  int in_fd; /* -1 unless stdin_pipe; non-blocking, close-on-exec, write with MSG_NOSIGNAL */
  int out_fd, err_fd; /* non-blocking, close-on-exec read ends */
} mb_spawned;

/* Returns 0 or an errno value (nothing is left open on failure). The child gets default signal
 * dispositions, an empty signal mask, its own process group, and no descriptor but 0, 1, 2. */
int mb_spawn(const mb_spawn_req *req, mb_spawned *out);

#endif
