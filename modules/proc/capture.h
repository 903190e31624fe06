/* capture.h: bounded output capture (no Lua).
 *
 * Keeps at most `max` bytes of a stream however much arrives: the first half as it came (head)
 * and the most recent half in a ring (tail). take() hands back what arrived since the previous
 * take — everything when it fits, else head + a marker naming how many bytes were dropped +
 * tail — and starts over. Buffers grow on demand up to the cap. */
#ifndef MOONBOX_CAPTURE_H
#define MOONBOX_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mb_capture {
  char *head;
  size_t head_len, head_alloc, head_cap;
  char *tail; /* ring of tail_cap bytes, allocated when the head is full */
  size_t tail_start, tail_len, tail_cap;
  uint64_t dropped;   /* since the last take */
  uint64_t total;     /* since the last take */
  int ever_truncated; /* dropped anything since init */
} mb_capture;

void mb_capture_init(mb_capture *c, size_t max);
/* Appends n bytes. Returns 0, or -1 when out of memory (the bytes are counted as dropped). */
int mb_capture_add(mb_capture *c, const char *p, size_t n);
/* Writes what arrived since the last take into a new malloc'd buffer (*out, *len; NUL-terminated)
 * and resets. Returns 0, or -1 when out of memory. *truncated tells whether bytes were dropped. */
int mb_capture_take(mb_capture *c, char **out, size_t *len, int *truncated);
/* Bytes waiting to be taken. */
uint64_t mb_capture_pending(const mb_capture *c);
void mb_capture_free(mb_capture *c);

#endif
