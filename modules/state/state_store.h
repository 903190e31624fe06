/* state_store.h: the in-memory file store behind moonbox.state_backend (no Lua).
 *
 * Files are keyed by normalized virtual path. A hash table answers exact lookups in O(1); an
 * array of the same entries kept sorted by path (bytewise) answers prefix questions — is this a
 * directory, what lies below it — by binary search, so ls, glob and grep touch only the range
 * they need. New paths are appended unsorted and merged in on the next sorted query
 * (O(n + k log k)), so a burst of writes costs no re-sorting per write. Directories are implied
 * by the files below them. Entries are never removed (the protocol has no delete).
 * Single-threaded, except that contents may be read by worker threads under mb_store_hold. */
#ifndef MB_STATE_STORE_H
#define MB_STATE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *path; /* normalized, NUL-terminated, owned */
  size_t plen;
  char *data; /* content, owned (may be NULL when len is 0) */
  size_t len;
  int64_t ctime_us; /* created, microseconds since the epoch */
  int64_t mtime_us; /* modified */
  uint64_t hash;
} mb_entry;

typedef struct {
  mb_entry **slots; /* open addressing, linear probing; NULL = empty */
  size_t cap;       /* power of two */
  mb_entry **order; /* every entry; [0, nsorted) sorted by path */
  size_t count;
  size_t nsorted;
  size_t order_cap;
  int64_t last_us;  /* the store's clock never repeats: writes order strictly */
  size_t readers;   /* pending worker jobs reading contents (mb_store_hold) */
  char **graveyard; /* contents replaced while readers > 0, freed when the last one leaves */
  size_t ngrave, grave_cap;
} mb_store;

void mb_store_init(mb_store *s);
void mb_store_free(mb_store *s);

mb_entry *mb_store_get(const mb_store *s, const char *path, size_t plen);

/* Stores `data` (malloc'd; ownership passes to the store on success) as the content of path.
 * mtime_us < 0 means now; ctime_us < 0 means mtime (or, for an existing file, its own ctime).
 * Returns the entry, or NULL when out of memory (data then still belongs to the caller). */
mb_entry *mb_store_put(mb_store *s, const char *path, size_t plen, char *data, size_t len,
                       int64_t mtime_us, int64_t ctime_us);

/* The entries sorted by path (merging in new ones first); NULL with *n = 0 when out of memory. */
mb_entry **mb_store_sorted(mb_store *s, size_t *n);

/* Index of the first sorted entry whose path is >= key (call mb_store_sorted first). */
size_t mb_store_lower_bound(const mb_store *s, const char *key, size_t klen);

/* True for "/" and for any path that has a file below it. */
bool mb_store_is_dir(mb_store *s, const char *path, size_t plen);

/* The sorted range of entries strictly below directory `dir` ("/" = everything): returns the
 * first index and stores the end index. */
size_t mb_store_below(mb_store *s, const char *dir, size_t dlen, size_t *end);

/* A reader (a grep running on a worker thread) may keep reading the contents and paths it saw:
 * until it calls mb_store_release, replaced contents are kept aside instead of freed. Entries and
 * paths are never freed while the store lives. */
void mb_store_hold(mb_store *s);
void mb_store_release(mb_store *s);

/* Microseconds since the epoch, strictly greater than any value it returned before. */
int64_t mb_store_now(mb_store *s);

#endif
