/* daemon/mem.c — see mem.h. */
#include "mem.h"

#include "core/thread.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* The daemon's one budget: set once by rwd_mem_install, never freed (jansson
 * frees may come until exit). */
static rwd_budget *g_budget;
/* This thread parses a request body: refusals go to *tl_over. */
static _Thread_local int *tl_over;

#if defined(__GLIBC__)
/* malloc_usable_size on both sides, so charge and release always agree
 * (jansson's free gets no size). Text for the wire is written by
 * rwd_json_dumps (core/json.h) into plain malloc memory: a json_dumps
 * result freed with free() (MHD frees reply buffers) would never be released. */
static void *j_malloc(size_t n)
{
	void *p = malloc(n);
	if (!p || !g_budget)
		return p;
	size_t u = malloc_usable_size(p);
	if (tl_over) {
		if (rwd_budget_charge(g_budget, u) != 0) {
			*tl_over = 1;
			free(p);
			return NULL;
		}
	} else {
		rwd_budget_force(g_budget, u);
	}
	return p;
}

static void j_free(void *p)
{
	if (!p)
		return;
	if (g_budget)
		rwd_budget_release(g_budget, malloc_usable_size(p));
	free(p);
}
#endif

void rwd_mem_install(void)
{
	if (g_budget)
		return;
	rwd_budget_params p = rwd_budget_default_params();
	p.limit = 0;
	g_budget = rwd_budget_create(&p);
#if defined(__GLIBC__)
	/* large buffers (bodies, big arena blocks) are mapped and unmapped:
	 * a fixed threshold turns off glibc's moving one */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if (g_budget)
		json_set_alloc_funcs(j_malloc, j_free);
#endif
}

rwd_budget *rwd_mem_budget(void)
{
	return g_budget;
}

void rwd_mem_set_limit(size_t limit)
{
	if (g_budget)
		rwd_budget_set_limit(g_budget, limit);
}

void rwd_mem_parse_begin(int *over)
{
	tl_over = over;
}

void rwd_mem_parse_end(void)
{
	tl_over = NULL;
}

void rwd_mem_maybe_trim(void)
{
	if (!g_budget || !rwd_budget_trim_due(g_budget))
		return;
#if defined(__GLIBC__)
	uint64_t t0 = rwd_now_ns();
	int freed = malloc_trim(0);
	rwd_log(RWD_LOG_INFO, "memory: burst over (budget peak %zu MiB, now %zu KiB): malloc_trim %s "
		"in %.1f ms", rwd_budget_peak(g_budget) >> 20, rwd_budget_used(g_budget) >> 10,
		freed ? "gave memory back" : "found nothing to give back", (double)(rwd_now_ns() - t0) / 1e6);
#endif
}
