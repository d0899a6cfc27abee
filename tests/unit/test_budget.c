/* tests/unit/test_budget.c — lib/core/budget: charges, refusals, the trim signal, arenas charging it. */
#include "rwd_check.h"

#include "core/arena.h"
#include "core/budget.h"
#include "core/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

START_TEST(charge_refuses_past_the_limit)
{
	rwd_budget_params p = {1000, 0, 0};
	rwd_budget *b = rwd_budget_create(&p);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(rwd_budget_charge(b, 600), 0);
	ck_assert_int_eq(rwd_budget_charge(b, 400), 0); /* exactly the limit fits */
	ck_assert_uint_eq(rwd_budget_used(b), 1000);
	ck_assert_int_eq(rwd_budget_charge(b, 1), RWD_E_FULL);
	ck_assert_uint_eq(rwd_budget_used(b), 1000); /* a refusal charges nothing */
	ck_assert_int_eq(rwd_budget_charge(b, 0), 0);
	ck_assert_uint_eq(rwd_budget_refused(b), 1);
	rwd_budget_release(b, 400);
	ck_assert_int_eq(rwd_budget_charge(b, 400), 0);
	/* a huge charge cannot wrap past the test */
	rwd_budget_release(b, 1000);
	ck_assert_int_eq(rwd_budget_charge(b, SIZE_MAX), RWD_E_FULL);
	ck_assert_int_eq(rwd_budget_charge(b, SIZE_MAX - 5), RWD_E_FULL);
	ck_assert_uint_eq(rwd_budget_used(b), 0);
	ck_assert_uint_eq(rwd_budget_peak(b), 1000);
	ck_assert_uint_eq(rwd_budget_refused(b), 3);
	/* a lower limit refuses new charges, keeps the ones made */
	ck_assert_int_eq(rwd_budget_charge(b, 900), 0);
	rwd_budget_set_limit(b, 500);
	ck_assert_uint_eq(rwd_budget_limit(b), 500);
	ck_assert_int_eq(rwd_budget_charge(b, 1), RWD_E_FULL);
	ck_assert_uint_eq(rwd_budget_used(b), 900);
	rwd_budget_destroy(b);
	rwd_budget_destroy(NULL);
}
END_TEST

START_TEST(force_passes_the_limit_release_clamps)
{
	rwd_budget_params p = {100, 0, 0};
	rwd_budget *b = rwd_budget_create(&p);
	rwd_budget_force(b, 150);
	ck_assert_uint_eq(rwd_budget_used(b), 150);
	ck_assert_int_eq(rwd_budget_charge(b, 1), RWD_E_FULL);
	rwd_budget_release(b, 200); /* more than charged: stops at 0 */
	ck_assert_uint_eq(rwd_budget_used(b), 0);
	ck_assert_uint_eq(rwd_budget_peak(b), 150);
	rwd_budget_destroy(b);
	/* limit 0: no limit */
	p.limit = 0;
	b = rwd_budget_create(&p);
	ck_assert_int_eq(rwd_budget_charge(b, SIZE_MAX / 2), 0);
	rwd_budget_destroy(b);
	/* the defaults */
	rwd_budget_params d = rwd_budget_default_params();
	ck_assert_uint_eq(d.limit, (size_t)1 << 30);
	b = rwd_budget_create(NULL);
	ck_assert_uint_eq(rwd_budget_limit(b), (size_t)1 << 30);
	rwd_budget_destroy(b);
}
END_TEST

START_TEST(trim_fires_once_after_a_high_water_mark)
{
	rwd_budget_params p = {0, 1000, 100};
	rwd_budget *b = rwd_budget_create(&p);
	ck_assert_int_eq(rwd_budget_trim_due(b), 0); /* never high yet */
	rwd_budget_force(b, 900);
	rwd_budget_release(b, 900);
	ck_assert_int_eq(rwd_budget_trim_due(b), 0); /* 900 never passed 1000 */
	ck_assert_int_eq(rwd_budget_charge(b, 1500), 0);
	ck_assert_int_eq(rwd_budget_trim_due(b), 0); /* still high */
	rwd_budget_release(b, 1000);
	ck_assert_int_eq(rwd_budget_trim_due(b), 0); /* 500 > trim_low */
	rwd_budget_release(b, 420);
	ck_assert_int_eq(rwd_budget_trim_due(b), 1); /* 80 <= 100 */
	ck_assert_int_eq(rwd_budget_trim_due(b), 0); /* claimed */
	rwd_budget_release(b, 80);
	ck_assert_int_eq(rwd_budget_trim_due(b), 0);
	/* armed again by the next burst */
	rwd_budget_force(b, 2000);
	rwd_budget_release(b, 2000);
	ck_assert_int_eq(rwd_budget_trim_due(b), 1);
	rwd_budget_destroy(b);
}
END_TEST

/* Threads charging and releasing at once never see the use pass the limit. */
typedef struct race {
	rwd_budget *b;
	atomic_int over;
	atomic_long granted;
} race;

static void *racer(void *arg)
{
	race *r = arg;
	for (int i = 0; i < 200000; i++) {
		size_t n = (size_t)(i % 97) + 1;
		if (rwd_budget_charge(r->b, n) == 0) {
			atomic_fetch_add(&r->granted, 1);
			if (rwd_budget_used(r->b) > rwd_budget_limit(r->b))
				atomic_store(&r->over, 1);
			rwd_budget_release(r->b, n);
		}
	}
	return NULL;
}

START_TEST(concurrent_charges_stay_within_the_limit)
{
	rwd_budget_params p = {500, 0, 0};
	race r = {rwd_budget_create(&p), 0, 0};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, racer, &r), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&r.over), 0);
	ck_assert_uint_eq(rwd_budget_used(r.b), 0); /* every grant was released */
	ck_assert_int_gt(atomic_load(&r.granted), 0);
	ck_assert_uint_le(rwd_budget_peak(r.b), 500);
	rwd_budget_destroy(r.b);
}
END_TEST

START_TEST(arena_charges_its_blocks)
{
	rwd_budget_params p = {256 * 1024, 0, 0};
	rwd_budget *b = rwd_budget_create(&p);
	rwd_arena *a = rwd_arena_create(16 * 1024, 0);
	ck_assert_ptr_nonnull(rwd_arena_alloc(a, 100)); /* before the budget: charged at set */
	size_t held = rwd_arena_held(a);
	ck_assert_uint_ge(held, 16 * 1024);
	rwd_arena_set_budget(a, b);
	ck_assert_uint_eq(rwd_budget_used(b), held);
	/* a big allocation gets its own block, charged */
	char *big = rwd_arena_alloc(a, 100 * 1024);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 100 * 1024);
	ck_assert_uint_eq(rwd_budget_used(b), rwd_arena_held(a));
	ck_assert_uint_gt(rwd_arena_held(a), held + 100 * 1024);
	/* one past the budget fails as "over budget", not "over limit" */
	ck_assert_ptr_null(rwd_arena_alloc(a, 200 * 1024));
	ck_assert_int_ne(rwd_arena_over_budget(a), 0);
	ck_assert_int_eq(rwd_arena_over_limit(a), 0);
	ck_assert_uint_eq(rwd_budget_used(b), rwd_arena_held(a));
	/* a reset keeps one block, and releases the rest */
	rwd_arena_reset(a);
	ck_assert_int_eq(rwd_arena_over_budget(a), 0);
	ck_assert_uint_eq(rwd_budget_used(b), rwd_arena_held(a));
	ck_assert_uint_lt(rwd_arena_held(a), 32 * 1024);
	/* a second arena shares the budget; destroy gives everything back */
	rwd_arena *a2 = rwd_arena_create(0, 0);
	rwd_arena_set_budget(a2, b);
	ck_assert_ptr_nonnull(rwd_arena_alloc(a2, 64 * 1024));
	ck_assert_uint_eq(rwd_budget_used(b), rwd_arena_held(a) + rwd_arena_held(a2));
	rwd_arena_destroy(a2);
	ck_assert_uint_eq(rwd_budget_used(b), rwd_arena_held(a));
	/* detaching releases its charge */
	rwd_arena_set_budget(a, NULL);
	ck_assert_uint_eq(rwd_budget_used(b), 0);
	rwd_arena_set_budget(a, b);
	rwd_arena_destroy(a);
	ck_assert_uint_eq(rwd_budget_used(b), 0);
	rwd_budget_destroy(b);
}
END_TEST

START_TEST(arena_limit_still_counts_bytes_handed_out)
{
	rwd_budget *b = rwd_budget_create(NULL);
	rwd_arena *a = rwd_arena_create(0, 4096);
	rwd_arena_set_budget(a, b);
	ck_assert_ptr_nonnull(rwd_arena_alloc(a, 4000));
	ck_assert_ptr_null(rwd_arena_alloc(a, 200));
	ck_assert_int_ne(rwd_arena_over_limit(a), 0);
	ck_assert_int_eq(rwd_arena_over_budget(a), 0);
	rwd_arena_destroy(a);
	ck_assert_uint_eq(rwd_budget_used(b), 0);
	rwd_budget_destroy(b);
}
END_TEST

static Suite *budget_suite(void)
{
	Suite *s = suite_create("budget");
	TCase *tc = tcase_create("budget");
	tcase_add_test(tc, charge_refuses_past_the_limit);
	tcase_add_test(tc, force_passes_the_limit_release_clamps);
	tcase_add_test(tc, trim_fires_once_after_a_high_water_mark);
	tcase_add_test(tc, concurrent_charges_stay_within_the_limit);
	tcase_add_test(tc, arena_charges_its_blocks);
	tcase_add_test(tc, arena_limit_still_counts_bytes_handed_out);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(budget_suite)
