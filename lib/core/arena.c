/* core/arena.c — see arena.h. */
#include "core/arena.h"

#include "core/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block {
	struct block *next;
	size_t size; /* usable bytes after the header */
	size_t used;
	/* data follows, starting at an RWD_ARENA_ALIGN boundary */
};

struct cleanup {
	struct cleanup *next;
	void (*fn)(void *);
	void *ptr;
};

struct rwd_arena {
	struct block *head;     /* current block (newest) */
	struct cleanup *cleanups;
	size_t block_size;
	size_t limit;
	size_t total;           /* bytes handed out, padding included */
	int over_limit;
	int over_budget;
	rwd_budget *budget;     /* or NULL */
	size_t held;            /* bytes of blocks allocated (charged to budget) */
};

#define HDR_SIZE ((sizeof(struct block) + RWD_ARENA_ALIGN - 1) & ~(size_t)(RWD_ARENA_ALIGN - 1))

static unsigned char *block_data(struct block *b)
{
	return (unsigned char *)b + HDR_SIZE;
}

/* The bytes a block of `size` usable bytes takes (what the budget is charged). */
static size_t block_bytes(size_t size)
{
	return (HDR_SIZE + size + RWD_ARENA_ALIGN - 1) & ~(size_t)(RWD_ARENA_ALIGN - 1);
}

static struct block *block_new(rwd_arena *a, size_t size)
{
	if (size > SIZE_MAX - HDR_SIZE - RWD_ARENA_ALIGN)
		return NULL;
	size_t bytes = block_bytes(size);
	if (a->budget && rwd_budget_charge(a->budget, bytes) != 0) {
		a->over_budget = 1;
		return NULL;
	}
	struct block *b = aligned_alloc(RWD_ARENA_ALIGN, bytes);
	if (!b) {
		if (a->budget)
			rwd_budget_release(a->budget, bytes);
		return NULL;
	}
	a->held += bytes;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

static void block_free(rwd_arena *a, struct block *b)
{
	size_t bytes = block_bytes(b->size);
	a->held -= bytes;
	if (a->budget)
		rwd_budget_release(a->budget, bytes);
	free(b);
}

rwd_arena *rwd_arena_create(size_t block_size, size_t limit)
{
	rwd_arena *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->block_size = block_size ? block_size : 16 * 1024;
	a->limit = limit;
	return a;
}

static void run_cleanups(rwd_arena *a)
{
	while (a->cleanups) {
		struct cleanup *c = a->cleanups;
		a->cleanups = c->next;
		c->fn(c->ptr);
		free(c);
	}
}

void rwd_arena_destroy(rwd_arena *a)
{
	if (!a)
		return;
	run_cleanups(a);
	struct block *b = a->head;
	while (b) {
		struct block *next = b->next;
		block_free(a, b);
		b = next;
	}
	free(a);
}

void rwd_arena_reset(rwd_arena *a)
{
	if (!a)
		return;
	run_cleanups(a);
	/* Keep the smallest block: one of the configured size, where the others
	 * may be huge (a large allocation's own block sits behind the current one,
	 * so the list's order does not tell). */
	struct block *b = a->head, *keep = NULL;
	for (; b; b = b->next)
		if (!keep || b->size < keep->size)
			keep = b;
	b = a->head;
	while (b) {
		struct block *next = b->next;
		if (b != keep)
			block_free(a, b);
		b = next;
	}
	if (keep)
		keep->next = NULL;
	a->head = keep;
	if (keep)
		keep->used = 0;
	a->total = 0;
	a->over_limit = 0;
	a->over_budget = 0;
}

void *rwd_arena_alloc(rwd_arena *a, size_t n)
{
	if (n > SIZE_MAX / 2)
		return NULL;
	size_t need = (n + RWD_ARENA_ALIGN - 1) & ~(size_t)(RWD_ARENA_ALIGN - 1);
	if (need == 0)
		need = RWD_ARENA_ALIGN;
	if (a->limit && (need > a->limit || a->total > a->limit - need)) {
		a->over_limit = 1;
		return NULL;
	}
	struct block *b = a->head;
	if (!b || b->size - b->used < need) {
		/* Large requests get a block of their own so the spare room of the
		 * current block is not wasted. */
		size_t size = need > a->block_size ? need : a->block_size;
		struct block *nb = block_new(a, size);
		if (!nb)
			return NULL;
		if (b && need > a->block_size) {
			/* insert behind the current block: keep filling the current one */
			nb->next = b->next;
			b->next = nb;
			nb->used = need;
			a->total += need;
			return block_data(nb);
		}
		nb->next = b;
		a->head = b = nb;
	}
	void *p = block_data(b) + b->used;
	b->used += need;
	a->total += need;
	return p;
}

void *rwd_arena_calloc(rwd_arena *a, size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		return NULL;
	void *p = rwd_arena_alloc(a, count * size);
	if (p)
		memset(p, 0, count * size);
	return p;
}

char *rwd_arena_strndup(rwd_arena *a, const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = rwd_arena_alloc(a, len + 1);
	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *rwd_arena_strdup(rwd_arena *a, const char *s)
{
	return rwd_arena_strndup(a, s, SIZE_MAX);
}

char *rwd_arena_sprintf(rwd_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *p = rwd_arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int rwd_arena_add_cleanup(rwd_arena *a, void (*fn)(void *), void *ptr)
{
	/* Cleanup records come from malloc, not the arena: they must survive
	 * the limit, or a full arena could leak the resource it guards. */
	struct cleanup *c = malloc(sizeof(*c));
	if (!c)
		return RWD_E_NOMEM;
	c->fn = fn;
	c->ptr = ptr;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}

size_t rwd_arena_used(const rwd_arena *a)
{
	return a->total;
}

int rwd_arena_over_limit(const rwd_arena *a)
{
	return a->over_limit;
}

void rwd_arena_set_budget(rwd_arena *a, rwd_budget *b)
{
	if (a->budget)
		rwd_budget_release(a->budget, a->held);
	a->budget = b;
	if (b)
		rwd_budget_force(b, a->held);
}

int rwd_arena_over_budget(const rwd_arena *a)
{
	return a->over_budget;
}

size_t rwd_arena_held(const rwd_arena *a)
{
	return a->held;
}

int rwd_carve_floats(const size_t *sizes, size_t n, void **ptrs, float **block, rwd_error *err)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		size_t a = (sizes[i] + 15) & ~(size_t)15;
		if (a < sizes[i] || total + a < total)
			return rwd_errorf(err, RWD_E_OVERFLOW, "scratch size overflows");
		total += a;
	}
	float *base = NULL;
	if (total > SIZE_MAX / sizeof(float) ||
	    posix_memalign((void **)&base, RWD_ARENA_ALIGN, (total ? total : 1) * sizeof(float)) != 0)
		return rwd_errorf(err, RWD_E_NOMEM, "cannot reserve %zu MiB of scratch",
			total * sizeof(float) >> 20);
	float *p = base;
	for (size_t i = 0; i < n; i++) {
		ptrs[i] = p;
		p += (sizes[i] + 15) & ~(size_t)15;
	}
	*block = base;
	return 0;
}
