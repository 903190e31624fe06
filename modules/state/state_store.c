/* state_store.c: the in-memory file store (see state_store.h). No Lua; the store owns every
 * entry, path and content. Failures are reported as NULL/false (out of memory only). */
#include "state/state_store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t hash_path(const char *p, size_t n)
{
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h;
}

static int cmp_key(const char *a, size_t an, const char *b, size_t bn)
{
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

static int cmp_entries(const void *x, const void *y)
{
  const mb_entry *a = *(mb_entry *const *)x, *b = *(mb_entry *const *)y;
  return cmp_key(a->path, a->plen, b->path, b->plen);
}

void mb_store_init(mb_store *s)
{
  memset(s, 0, sizeof *s);
}

void mb_store_free(mb_store *s)
{
  for (size_t i = 0; i < s->count; i++) {
    free(s->order[i]->path);
    free(s->order[i]->data);
    free(s->order[i]);
  }
  for (size_t i = 0; i < s->ngrave; i++) free(s->graveyard[i]);
  free(s->graveyard);
  free(s->order);
  free(s->slots);
  mb_store_init(s);
}

mb_entry *mb_store_get(const mb_store *s, const char *path, size_t plen)
{
  if (!s->cap) return NULL;
  uint64_t h = hash_path(path, plen);
  for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    mb_entry *e = s->slots[i];
    if (!e) return NULL;
    if (e->hash == h && e->plen == plen && memcmp(e->path, path, plen) == 0) return e;
  }
}

static void slot_insert(mb_entry **slots, size_t cap, mb_entry *e)
{
  size_t i = e->hash & (cap - 1);
  while (slots[i]) i = (i + 1) & (cap - 1);
  slots[i] = e;
}

static bool grow(mb_store *s)
{
  if (s->count + 1 > s->order_cap) {
    size_t cap = s->order_cap ? s->order_cap * 2 : 64;
    mb_entry **o = realloc(s->order, cap * sizeof *o);
    if (!o) return false;
    s->order = o;
    s->order_cap = cap;
  }
  if ((s->count + 1) * 4 > s->cap * 3) { /* keep the load under 3/4 */
    size_t cap = s->cap ? s->cap * 2 : 128;
    mb_entry **slots = calloc(cap, sizeof *slots);
    if (!slots) return false;
    for (size_t i = 0; i < s->count; i++) slot_insert(slots, cap, s->order[i]);
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  return true;
}

int64_t mb_store_now(mb_store *s)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  if (now <= s->last_us) now = s->last_us + 1;
  s->last_us = now;
  return now;
}

mb_entry *mb_store_put(mb_store *s, const char *path, size_t plen, char *data, size_t len,
                       int64_t mtime_us, int64_t ctime_us)
{
  if (mtime_us < 0) mtime_us = mb_store_now(s);
  if (mtime_us > s->last_us) s->last_us = mtime_us;
  mb_entry *e = mb_store_get(s, path, plen);
  if (e) {
    if (s->readers) { /* a worker may be reading the old content: keep it until it is done */
      if (s->ngrave == s->grave_cap) {
        size_t cap = s->grave_cap ? s->grave_cap * 2 : 16;
        char **g = realloc(s->graveyard, cap * sizeof *g);
        if (!g) return NULL;
        s->graveyard = g;
        s->grave_cap = cap;
      }
      s->graveyard[s->ngrave++] = e->data;
    } else {
      free(e->data);
    }
    e->data = data;
    e->len = len;
    e->mtime_us = mtime_us;
    if (ctime_us >= 0) e->ctime_us = ctime_us;
    return e;
  }
  if (!grow(s)) return NULL;
  e = malloc(sizeof *e);
  char *p = malloc(plen + 1);
  if (!e || !p) {
    free(e);
    free(p);
    return NULL;
  }
  memcpy(p, path, plen);
  p[plen] = '\0';
  *e = (mb_entry){
      p, plen, data, len, ctime_us >= 0 ? ctime_us : mtime_us, mtime_us, hash_path(path, plen)};
  slot_insert(s->slots, s->cap, e);
  s->order[s->count++] = e;
  return e;
}

mb_entry **mb_store_sorted(mb_store *s, size_t *n)
{
  size_t k = s->count - s->nsorted;
  if (k) {
    mb_entry **tail = s->order + s->nsorted;
    qsort(tail, k, sizeof *tail, cmp_entries);
    if (s->nsorted && cmp_entries(&s->order[s->nsorted - 1], &tail[0]) > 0) {
      /* Merge from the back into place, with the new tail copied aside. */
      mb_entry **aside = malloc(k * sizeof *aside);
      if (!aside) {
        *n = 0;
        return NULL;
      }
      memcpy(aside, tail, k * sizeof *aside);
      size_t i = s->nsorted, j = k, w = s->count;
      while (j > 0) {
        if (i > 0 && cmp_entries(&s->order[i - 1], &aside[j - 1]) > 0)
          s->order[--w] = s->order[--i];
        else
          s->order[--w] = aside[--j];
      }
      free(aside);
    }
    s->nsorted = s->count;
  }
  *n = s->count;
  return s->order;
}

size_t mb_store_lower_bound(const mb_store *s, const char *key, size_t klen)
{
  size_t lo = 0, hi = s->nsorted;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const mb_entry *e = s->order[mid];
    if (cmp_key(e->path, e->plen, key, klen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

size_t mb_store_below(mb_store *s, const char *dir, size_t dlen, size_t *end)
{
  size_t n;
  if (!mb_store_sorted(s, &n)) {
    *end = 0;
    return 0;
  }
  if (dlen == 1 && dir[0] == '/') {
    *end = n;
    return 0;
  }
  /* Paths below "/a" are those in ["/a/", "/a0"): '0' is the byte after '/'. */
  char stack[512], *key = dlen + 1 <= sizeof stack ? stack : malloc(dlen + 1);
  if (!key) {
    *end = 0;
    return 0;
  }
  memcpy(key, dir, dlen);
  key[dlen] = '/';
  size_t first = mb_store_lower_bound(s, key, dlen + 1);
  key[dlen] = '0';
  *end = mb_store_lower_bound(s, key, dlen + 1);
  if (key != stack) free(key);
  return first;
}

bool mb_store_is_dir(mb_store *s, const char *path, size_t plen)
{
  if (plen == 1 && path[0] == '/') return true;
  size_t end, first = mb_store_below(s, path, plen, &end);
  return first < end;
}

void mb_store_hold(mb_store *s)
{
  s->readers++;
}

void mb_store_release(mb_store *s)
{
  if (s->readers && --s->readers == 0) {
    for (size_t i = 0; i < s->ngrave; i++) free(s->graveyard[i]);
    s->ngrave = 0;
  }
}
