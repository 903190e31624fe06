/* docker.h: what docker.c needs from docker_tar.c (the tar codec for the archive API). */
#ifndef MOONBOX_DOCKER_H
#define MOONBOX_DOCKER_H

#include "moonbox.h"

int mb_docker_tar_encode(lua_State *L);
int mb_docker_tar_decode(lua_State *L);

#endif
