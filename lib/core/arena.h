/*
 * core/arena.h — a bump allocator for per-request and per-load memory.
 *
 * Every HTTP request owns one arena: its parsed inputs, decoded pixels and
 * token buffers come from it, and it is destroyed in exactly one place (the
 * request-completed callback). Non-memory resources (jansson references,
 * file descriptors) are tied to it with rwd_arena_add_cleanup().
 *
 * Allocations are 64-byte aligned (a cache line, and enough for AVX-512
 * loads), never freed individually, and counted against an optional byte
 * limit so a hostile request cannot grow without bound.
 *
 * Thread safety: an arena belongs to one thread at a time; hand it over
 * with a happens-before edge (a queue's mutex), never share it concurrently.
 */
#ifndef RWD_CORE_ARENA_H
#define RWD_CORE_ARENA_H

#include "core/budget.h"
#include "core/error.h"

#include <stddef.h>

typedef struct rwd_arena rwd_arena;

#define RWD_ARENA_ALIGN 64

/*
 * Create an arena that grows in blocks of at least `block_size` bytes
 * (0 = 16 KiB) and refuses to hold more than `limit` bytes in total
 * (0 = no limit). Returns NULL on OOM.
 */
rwd_arena *rwd_arena_create(size_t block_size, size_t limit);

/* Run the cleanups (newest first) and free everything. Accepts NULL. */
void rwd_arena_destroy(rwd_arena *a);

/* Run the cleanups and forget all allocations, keeping one block for reuse. */
void rwd_arena_reset(rwd_arena *a);

/*
 * n bytes, 64-byte aligned, uninitialised. NULL when out of memory or over
 * the limit (rwd_arena_over_limit() tells which). n == 0 gives a valid
 * unique pointer.
 */
void *rwd_arena_alloc(rwd_arena *a, size_t n);

/* count*size zeroed bytes, with the multiplication overflow-checked. */
void *rwd_arena_calloc(rwd_arena *a, size_t count, size_t size);

/* Copies of strings, NUL-terminated. strndup copies at most n bytes. */
char *rwd_arena_strdup(rwd_arena *a, const char *s);
char *rwd_arena_strndup(rwd_arena *a, const char *s, size_t n);

/* printf into the arena. */
char *rwd_arena_sprintf(rwd_arena *a, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/*
 * Register fn(ptr) to run when the arena is reset or destroyed (newest
 * first). Returns 0, or RWD_E_NOMEM (then fn has NOT been called: the caller
 * still owns ptr).
 */
int rwd_arena_add_cleanup(rwd_arena *a, void (*fn)(void *), void *ptr);

/* Bytes handed out so far (including alignment padding). */
size_t rwd_arena_used(const rwd_arena *a);

/* Non-zero if the last failed allocation failed because of the limit. */
int rwd_arena_over_limit(const rwd_arena *a);

/*
 * Charge the arena's blocks to a shared budget (core/budget.h) from now on:
 * the blocks it holds already are charged at once (forced), every new block
 * is charged before it is allocated, and the blocks' bytes are released
 * when they are freed (reset, destroy). A block the budget refuses makes the
 * allocation fail with rwd_arena_over_budget() set (not over_limit: the
 * request is not too large, the server is busy). `b` must outlive the arena;
 * NULL stops charging (what was charged is released).
 */
void rwd_arena_set_budget(rwd_arena *a, rwd_budget *b);

/* Non-zero if the last failed allocation failed because the budget was full. */
int rwd_arena_over_budget(const rwd_arena *a);

/* Bytes of blocks the arena holds (what it charges to its budget). */
size_t rwd_arena_held(const rwd_arena *a);

/*
 * Reserve one block for a model's per-worker scratch: n float buffers of
 * sizes[i] floats, each rounded up to 16 floats so every buffer starts on a
 * 64-byte boundary. ptrs[i] points at buffer i; *block owns the memory
 * (free() it). Returns 0, RWD_E_OVERFLOW when the sizes overflow, or
 * RWD_E_NOMEM (err says how much was asked); nothing is allocated on failure.
 */
int rwd_carve_floats(const size_t *sizes, size_t n, void **ptrs, float **block,
	rwd_error *err);

#endif
