/* core/budget.c — see budget.h. */
#include "core/budget.h"

#include "core/error.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

struct rwd_budget {
	atomic_size_t used;
	atomic_size_t peak;
	atomic_size_t limit;        /* 0: none */
	atomic_int armed;           /* use passed trim_high since the last trim signal */
	atomic_ullong refused;
	size_t trim_high, trim_low; /* fixed at create */
};

rwd_budget_params rwd_budget_default_params(void)
{
	rwd_budget_params p = {(size_t)1 << 30, (size_t)64 << 20, (size_t)8 << 20};
	return p;
}

rwd_budget *rwd_budget_create(const rwd_budget_params *p)
{
	rwd_budget_params d = rwd_budget_default_params();
	if (!p)
		p = &d;
	rwd_budget *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	atomic_init(&b->used, 0);
	atomic_init(&b->peak, 0);
	atomic_init(&b->limit, p->limit);
	atomic_init(&b->armed, 0);
	atomic_init(&b->refused, 0);
	b->trim_high = p->trim_high;
	b->trim_low = p->trim_low < p->trim_high ? p->trim_low : p->trim_high;
	return b;
}

void rwd_budget_destroy(rwd_budget *b)
{
	free(b);
}

void rwd_budget_set_limit(rwd_budget *b, size_t limit)
{
	atomic_store(&b->limit, limit);
}

/* After the use rose to `now`: the peak, and the trim signal's arming. */
static void rose_to(rwd_budget *b, size_t now)
{
	size_t pk = atomic_load_explicit(&b->peak, memory_order_relaxed);
	while (now > pk && !atomic_compare_exchange_weak_explicit(&b->peak, &pk, now,
		memory_order_relaxed, memory_order_relaxed))
		;
	if (b->trim_high && now > b->trim_high && !atomic_load_explicit(&b->armed, memory_order_relaxed))
		atomic_store(&b->armed, 1);
}

int rwd_budget_charge(rwd_budget *b, size_t n)
{
	if (n == 0)
		return 0;
	size_t lim = atomic_load_explicit(&b->limit, memory_order_relaxed);
	size_t cur = atomic_load_explicit(&b->used, memory_order_relaxed);
	for (;;) {
		/* written as a subtraction so a huge n cannot wrap past the test */
		if (lim && (n > lim || cur > lim - n)) {
			atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
			return RWD_E_FULL;
		}
		if (atomic_compare_exchange_weak_explicit(&b->used, &cur, cur + n,
			memory_order_relaxed, memory_order_relaxed))
			break;
	}
	rose_to(b, cur + n);
	return 0;
}

void rwd_budget_force(rwd_budget *b, size_t n)
{
	if (n == 0)
		return;
	size_t cur = atomic_fetch_add_explicit(&b->used, n, memory_order_relaxed);
	/* saturate rather than wrap (a forced charge of SIZE_MAX is a caller's bug) */
	if (cur + n < cur)
		atomic_store(&b->used, SIZE_MAX);
	rose_to(b, cur + n < cur ? SIZE_MAX : cur + n);
}

void rwd_budget_release(rwd_budget *b, size_t n)
{
	if (n == 0)
		return;
	size_t cur = atomic_load_explicit(&b->used, memory_order_relaxed), next;
	do
		next = cur > n ? cur - n : 0;
	while (!atomic_compare_exchange_weak_explicit(&b->used, &cur, next,
		memory_order_relaxed, memory_order_relaxed));
}

int rwd_budget_trim_due(rwd_budget *b)
{
	if (!atomic_load_explicit(&b->armed, memory_order_relaxed) ||
		atomic_load_explicit(&b->used, memory_order_relaxed) > b->trim_low)
		return 0;
	/* exactly one caller wins the signal */
	int one = 1;
	return atomic_compare_exchange_strong(&b->armed, &one, 0);
}

size_t rwd_budget_used(const rwd_budget *b)
{
	return atomic_load(&((rwd_budget *)b)->used);
}

size_t rwd_budget_peak(const rwd_budget *b)
{
	return atomic_load(&((rwd_budget *)b)->peak);
}

size_t rwd_budget_limit(const rwd_budget *b)
{
	return atomic_load(&((rwd_budget *)b)->limit);
}

unsigned long long rwd_budget_refused(const rwd_budget *b)
{
	return atomic_load(&((rwd_budget *)b)->refused);
}
