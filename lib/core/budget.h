/*
 * core/budget.h — a shared byte budget: how much memory requests may hold
 * at once (buffered bodies, request arenas, parsed JSON), counted with
 * atomics so every thread charges and releases without a lock.
 *
 * A charge either fits under the limit or is refused (the caller answers
 * "retry later"); memory already taken is recorded with a forced charge that
 * may pass the limit. The budget also says when to give memory back to the
 * system: after its use rose above `trim_high` and fell back to `trim_low`
 * or below, rwd_budget_trim_due() returns 1, once (the caller then calls
 * malloc_trim, or whatever its allocator offers).
 *
 * Thread safety: every function may be called from any thread at once,
 * except create/destroy. The budget keeps no global state: the caller owns it.
 */
#ifndef RWD_CORE_BUDGET_H
#define RWD_CORE_BUDGET_H

#include <stddef.h>

typedef struct rwd_budget rwd_budget;

typedef struct rwd_budget_params {
	size_t limit;     /* bytes that charges may reach (0: no limit) */
	size_t trim_high; /* arm the trim signal when use passes this (0: never) */
	size_t trim_low;  /* and fire it when use falls to this or below */
} rwd_budget_params;

/* limit 1 GiB, trim_high 64 MiB, trim_low 8 MiB. */
rwd_budget_params rwd_budget_default_params(void);

/* A new budget; NULL when out of memory (p NULL: the defaults). */
rwd_budget *rwd_budget_create(const rwd_budget_params *p);

/* Free it. Accepts NULL. Nothing may be charged to it afterwards. */
void rwd_budget_destroy(rwd_budget *b);

/* Change the limit (any thread; charges already made stay). */
void rwd_budget_set_limit(rwd_budget *b, size_t limit);

/*
 * Charge n bytes if the use stays within the limit: 0, or RWD_E_FULL (then
 * nothing was charged; the caller should refuse the work and say when to
 * retry). n == 0 always fits.
 */
int rwd_budget_charge(rwd_budget *b, size_t n);

/* Charge n bytes whatever the limit (memory already taken, or that must be). */
void rwd_budget_force(rwd_budget *b, size_t n);

/* Give back n bytes charged before (charge or force); the use stops at 0. */
void rwd_budget_release(rwd_budget *b, size_t n);

/*
 * 1 when the use passed trim_high and is now at trim_low or below: memory
 * should go back to the system. The signal is claimed: one caller gets the
 * 1, the next 1 comes only after the use passes trim_high again.
 */
int rwd_budget_trim_due(rwd_budget *b);

/* Bytes charged now, the highest use seen, the limit, and charges refused. */
size_t rwd_budget_used(const rwd_budget *b);
size_t rwd_budget_peak(const rwd_budget *b);
size_t rwd_budget_limit(const rwd_budget *b);
unsigned long long rwd_budget_refused(const rwd_budget *b);

#endif
