/* arena: block allocator with deferred cleanups (see include/ras/arena.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"

#define ARENA_BLOCK_MIN (16u * 1024u)
#define ARENA_ALIGN     16u

/*
 * Standard blocks an arena gives back are kept for the next arena of the
 * thread, up to ARENA_CACHE_BLOCKS (1 MiB).  The stages make an arena per
 * chunk (~0.4 MiB for a triage chunk) and free it; glibc hands the top of
 * its heap back to the kernel once 128 KiB of it are free, so the next
 * chunk faulted every page in again: ~0.6 page faults per decision,
 * measured with perf stat on bench_triage (issue 14).  Under
 * AddressSanitizer nothing is kept: it must see every block freed.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_CACHE_BLOCKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_CACHE_BLOCKS 0
#endif
#endif
#ifndef ARENA_CACHE_BLOCKS
#define ARENA_CACHE_BLOCKS 64
#endif

struct block {
	struct block *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

struct cleanup {
	struct cleanup *next;
	void (*fn)(void *);
	void *ptr;
};

struct ras_arena {
	struct block *blocks;
	struct cleanup *cleanups;
	size_t total;
};

static _Thread_local struct block *cache;
static _Thread_local int cached;

static struct block *
block_take(size_t bsize)
{
	struct block *b;

	if (bsize == ARENA_BLOCK_MIN && cache != NULL) {
		b = cache;
		cache = b->next;
		cached--;
		return b;
	}
	return malloc(sizeof(*b) + bsize);
}

static void
block_give(struct block *b)
{
	if (b->size == ARENA_BLOCK_MIN && cached < ARENA_CACHE_BLOCKS) {
		b->next = cache;
		cache = b;
		cached++;
		return;
	}
	free(b);
}

void
ras_arena_cache_release(void)
{
	while (cache) {
		struct block *b = cache;

		cache = b->next;
		free(b);
	}
	cached = 0;
}

size_t
ras_arena_cached(void)
{
	return (size_t)cached * ARENA_BLOCK_MIN;
}

struct ras_arena *
ras_arena_new(void)
{
	return calloc(1, sizeof(struct ras_arena));
}

void
ras_arena_free(struct ras_arena *a)
{
	if (a == NULL)
		return;
	while (a->cleanups) {
		struct cleanup *c = a->cleanups;

		a->cleanups = c->next;
		c->fn(c->ptr);
		free(c);
	}
	while (a->blocks) {
		struct block *b = a->blocks;

		a->blocks = b->next;
		block_give(b);
	}
	free(a);
}

/* Memory from the current block (or a new one), not zeroed. */
static void *
take(struct ras_arena *a, size_t size)
{
	struct block *b = a->blocks;
	size_t need, off;

	if (size == 0)
		size = 1;
	if (size > SIZE_MAX - ARENA_ALIGN - sizeof(struct block))
		return NULL;
	need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (b == NULL || b->size - b->used < need) {
		size_t bsize = need > ARENA_BLOCK_MIN ? need : ARENA_BLOCK_MIN;

		b = block_take(bsize);
		if (b == NULL)
			return NULL;
		b->size = bsize;
		b->used = 0;
		/* A big one-off allocation goes behind the current block so the
		 * current block's free space is not wasted. */
		if (need > ARENA_BLOCK_MIN && a->blocks != NULL) {
			b->next = a->blocks->next;
			a->blocks->next = b;
		} else {
			b->next = a->blocks;
			a->blocks = b;
		}
	}
	off = b->used;
	b->used += need;
	a->total += need;
	return b->data + off;
}

void *
ras_arena_alloc(struct ras_arena *a, size_t size)
{
	void *p = take(a, size);

	if (p)
		memset(p, 0, size ? size : 1);
	return p;
}

void *
ras_arena_calloc(struct ras_arena *a, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	return ras_arena_alloc(a, n * size);
}

void *
ras_arena_array(struct ras_arena *a, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	return take(a, n * size);
}

char *
ras_arena_strndup(struct ras_arena *a, const char *s, size_t n)
{
	char *p;

	if (s == NULL)
		return NULL;
	if (n == SIZE_MAX)
		return NULL;
	p = take(a, n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
ras_arena_strdup(struct ras_arena *a, const char *s)
{
	if (s == NULL)
		return NULL;
	return ras_arena_strndup(a, s, strlen(s));
}

char *
ras_arena_vprintf(struct ras_arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	char *p;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	p = ras_arena_alloc(a, (size_t)n + 1);
	if (p == NULL)
		return NULL;
	if (vsnprintf(p, (size_t)n + 1, fmt, ap) != n)
		return NULL;
	return p;
}

char *
ras_arena_printf(struct ras_arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = ras_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

int
ras_arena_defer(struct ras_arena *a, void (*fn)(void *), void *ptr)
{
	struct cleanup *c = malloc(sizeof(*c));

	if (c == NULL) {
		fn(ptr);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	c->fn = fn;
	c->ptr = ptr;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}

size_t
ras_arena_used(const struct ras_arena *a)
{
	return a->total;
}
