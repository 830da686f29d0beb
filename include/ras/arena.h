/*
 * arena: memory for the transient work of one payload, batch or cycle.
 *
 * Everything allocated from an arena is released together by
 * ras_arena_free().  Library objects (json_t, xmlDoc, PGresult) can be tied
 * to the arena with ras_arena_defer() so that they are released with it.
 * Allocation failure aborts only in the sense that it returns NULL; callers
 * check and return RAS_ENOMEM.
 */
#ifndef RAS_ARENA_H
#define RAS_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct ras_arena;

struct ras_arena *ras_arena_new(void);

/* Release every block and run every deferred cleanup (LIFO). NULL is fine. */
void ras_arena_free(struct ras_arena *a);

/* Zeroed memory aligned for any type; NULL on overflow or OOM. */
void *ras_arena_alloc(struct ras_arena *a, size_t size);

/* alloc(n * size) with overflow check. */
void *ras_arena_calloc(struct ras_arena *a, size_t n, size_t size);

/* As ras_arena_calloc, but the memory is NOT zeroed: for arrays the caller
 * writes before it reads (lists with a count of their own, copies). */
void *ras_arena_array(struct ras_arena *a, size_t n, size_t size);

char *ras_arena_strdup(struct ras_arena *a, const char *s);
char *ras_arena_strndup(struct ras_arena *a, const char *s, size_t n);
char *ras_arena_printf(struct ras_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *ras_arena_vprintf(struct ras_arena *a, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Run fn(ptr) when the arena is freed. Returns 0 or RAS_ENOMEM (in which
 * case fn(ptr) has already been called). */
int ras_arena_defer(struct ras_arena *a, void (*fn)(void *), void *ptr);

/* Bytes handed out so far (for tests and metrics). */
size_t ras_arena_used(const struct ras_arena *a);

/* Blocks of freed arenas are kept for the thread's next arena (up to
 * 1 MiB).  This gives the calling thread's back to malloc: for a thread
 * that ends, or one that should not hold memory between jobs (rasd's
 * intake workers: daemon/workers.c). */
void ras_arena_cache_release(void);
/* Bytes the calling thread keeps so (for tests). */
size_t ras_arena_cached(void);

#endif
