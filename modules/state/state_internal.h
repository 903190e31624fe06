/* state_internal.h: what state.c (the backend type) shares with state_grep.c (its grep). */
#ifndef MB_STATE_INTERNAL_H
#define MB_STATE_INTERNAL_H

#include "backend/backend_lua.h"
#include "state/state_store.h"

#define STATE_TYPE "moonbox.state.Backend"

typedef struct {
  mb_store store;
  bool closed;
  bool free_pending; /* closed while a worker grep still reads the store */
} state;

/* The backend at index 1, raising when it is closed. */
state *state_check(lua_State *L);

/* Ends one mb_store_hold; frees the store if it was closed meanwhile. */
void state_unhold(state *st);

/* backend:grep(pattern [, opts]) (state_grep.c). */
int state_grep(lua_State *L);

#endif
