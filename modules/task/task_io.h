/* task_io.h: shared by the files of moonbox.task. */
#ifndef MOONBOX_TASK_IO_H
#define MOONBOX_TASK_IO_H

#include <string.h>

#include "scheduler.h"

/* Pushes the moonbox.task.io table. */
void mb_task_io_open(lua_State *L);

#endif
