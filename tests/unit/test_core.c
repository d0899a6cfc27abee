/* tests/unit/test_core.c — lib/core: error records, arena, thread helpers. */
#include "rwd_check.h"

#include "core/arena.h"
#include "core/error.h"
#include "core/numparse.h"
#include "core/thread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

START_TEST(error_record_formats_where_and_what)
{
	rwd_error e;
	rwd_error_clear(&e);
	ck_assert_int_eq(e.code, 0);
	ck_assert_int_eq(e.offset, -1);
	int r = rwd_errorf(&e, RWD_E_FORMAT, "offsets %d..%d overlap", 4, 2);
	ck_assert_int_eq(r, RWD_E_FORMAT);
	rwd_error_where(&e, "model.safetensors", "layers.0.weight");
	char buf[512];
	ck_assert_str_eq(rwd_error_format(&e, buf, sizeof(buf)),
		"model.safetensors: layers.0.weight: offsets 4..2 overlap");
	rwd_error_at(&e, 3, 7, 41);
	ck_assert_str_eq(rwd_error_format(&e, buf, sizeof(buf)),
		"model.safetensors: layers.0.weight: offsets 4..2 overlap (line 3, column 7)");
	/* a NULL record is allowed everywhere */
	ck_assert_int_eq(rwd_errorf(NULL, RWD_E_LIMIT, "x"), RWD_E_LIMIT);
	rwd_error_where(NULL, "a", "b");
	/* truncation keeps the buffer terminated */
	char small[8];
	rwd_error_format(&e, small, sizeof(small));
	ck_assert_uint_eq(strlen(small), 7);
}
END_TEST

START_TEST(strerror_names_every_code)
{
	for (int c = 0; c > -RWD_E_COUNT_; c--)
		ck_assert_str_ne(rwd_strerror(c), "unknown error");
	ck_assert_str_eq(rwd_strerror(1), "unknown error");
	ck_assert_str_eq(rwd_strerror(-RWD_E_COUNT_), "unknown error");
}
END_TEST

START_TEST(arena_aligns_and_grows)
{
	rwd_arena *a = rwd_arena_create(256, 0);
	ck_assert_ptr_nonnull(a);
	for (int i = 0; i < 1000; i++) {
		size_t n = (size_t)(i * 37 % 300);
		unsigned char *p = rwd_arena_alloc(a, n);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % RWD_ARENA_ALIGN, 0);
		memset(p, 0xAB, n); /* ASan catches an overlap or overrun */
	}
	/* a large block after small ones keeps both usable */
	char *big = rwd_arena_alloc(a, 1 << 20);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 1 << 20);
	char *s = rwd_arena_strdup(a, "hello");
	ck_assert_str_eq(s, "hello");
	ck_assert_str_eq(rwd_arena_strndup(a, "hello", 3), "hel");
	ck_assert_str_eq(rwd_arena_sprintf(a, "%d-%s", 42, "x"), "42-x");
	rwd_arena_reset(a);
	ck_assert_uint_eq(rwd_arena_used(a), 0);
	ck_assert_ptr_nonnull(rwd_arena_alloc(a, 10));
	rwd_arena_destroy(a);
	rwd_arena_destroy(NULL);
}
END_TEST

START_TEST(arena_limit_and_overflow)
{
	rwd_arena *a = rwd_arena_create(0, 4096);
	ck_assert_ptr_nonnull(rwd_arena_alloc(a, 4000));
	ck_assert_int_eq(rwd_arena_over_limit(a), 0);
	ck_assert_ptr_null(rwd_arena_alloc(a, 200));
	ck_assert_int_ne(rwd_arena_over_limit(a), 0);
	ck_assert_ptr_null(rwd_arena_calloc(a, SIZE_MAX / 2, 4));
	ck_assert_ptr_null(rwd_arena_alloc(a, SIZE_MAX));
	rwd_arena_destroy(a);
}
END_TEST

static void count_cleanup(void *p)
{
	int *order = p;
	/* record the position of this call: newest-first means 2 runs before 1 */
	static int seq;
	*order = ++seq;
}

START_TEST(arena_cleanups_run_newest_first_once)
{
	int first = 0, second = 0;
	rwd_arena *a = rwd_arena_create(0, 0);
	ck_assert_int_eq(rwd_arena_add_cleanup(a, count_cleanup, &first), 0);
	ck_assert_int_eq(rwd_arena_add_cleanup(a, count_cleanup, &second), 0);
	rwd_arena_reset(a);
	ck_assert_int_eq(second, 1);
	ck_assert_int_eq(first, 2);
	rwd_arena_destroy(a); /* must not run them again */
	ck_assert_int_eq(second, 1);
	ck_assert_int_eq(first, 2);
}
END_TEST

START_TEST(monotonic_wait_times_out)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c;
	ck_assert_int_eq(rwd_cond_init_monotonic(&c), 0);
	uint64_t t0 = rwd_now_ns();
	pthread_mutex_lock(&m);
	int r = rwd_cond_wait_until(&c, &m, t0 + 20 * 1000000ull);
	pthread_mutex_unlock(&m);
	uint64_t dt = rwd_now_ns() - t0;
	ck_assert_int_eq(r, ETIMEDOUT);
	ck_assert_uint_ge(dt, 20 * 1000000ull);
	ck_assert_int_ge(rwd_cpu_count(), 1);
	pthread_cond_destroy(&c);
}
END_TEST

START_TEST(carve_floats_aligns_and_checks_overflow)
{
	size_t sizes[] = {1, 0, 17, 64, 3};
	void *ptrs[5];
	float *block = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	ck_assert_int_eq(rwd_carve_floats(sizes, 5, ptrs, &block, &err), 0);
	ck_assert_ptr_eq(ptrs[0], block);
	for (int i = 0; i < 5; i++) {
		ck_assert_uint_eq((uintptr_t)ptrs[i] % 64, 0);
		memset(ptrs[i], 0x7f, sizes[i] * sizeof(float)); /* ASan: each buffer is whole */
		if (i > 0)
			ck_assert((char *)ptrs[i] >= (char *)ptrs[i - 1] + sizes[i - 1] * sizeof(float));
	}
	free(block);
	size_t huge[] = {SIZE_MAX - 3, 8};
	block = NULL;
	ck_assert_int_eq(rwd_carve_floats(huge, 2, ptrs, &block, &err), RWD_E_OVERFLOW);
	ck_assert_ptr_null(block);
	size_t too_big[] = {SIZE_MAX / 2}; /* more floats than bytes can address */
	ck_assert_int_eq(rwd_carve_floats(too_big, 1, ptrs, &block, &err), RWD_E_NOMEM);
	ck_assert_ptr_null(block);
#ifndef __SANITIZE_ADDRESS__
	/* a real allocation failure; ASan aborts on such a request instead of returning NULL */
	size_t big[] = {SIZE_MAX / 8};
	ck_assert_int_eq(rwd_carve_floats(big, 1, ptrs, &block, &err), RWD_E_NOMEM);
	ck_assert_ptr_null(block);
#endif
}
END_TEST

/* numparse against libc: reals bit-equal to strtod, integers to (double)strtoll,
 * the token length as JSON's grammar reads it, and jansson's refusals. */
START_TEST(numparse_matches_strtod_and_json_grammar)
{
	static const char *const reals[] = {
		"0.0", "-0.0", "1e-45", "7.006492321624086e-46", "0.10000000149011612", "-0.012345679104328156",
		"1.2345678901234567e-05", "3.4028235677973366e38", "2.2250738585072011e-308", "4.9e-324",
		"1e-400", "9007199254740993.0", "1234567890123456789e19", "12345678901234567890123e-3",
		"0.000000000000000000000000000000000000000000001401298464324817", "1E+2", "5e-1",
	};
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		double d = 42, want = strtod(reals[i], NULL);
		size_t used = 0;
		ck_assert_int_eq(rwd_numparse_json(reals[i], strlen(reals[i]), &d, &used), 0);
		ck_assert_uint_eq(used, strlen(reals[i]));
		ck_assert_msg(memcmp(&d, &want, sizeof(d)) == 0, "%s: %a, strtod %a", reals[i], d, want);
	}
	static const char *const ints[] = {"0", "-0", "7", "-9007199254740993", "9223372036854775807",
		"-9223372036854775808"};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		double d = 42, want = (double)strtoll(ints[i], NULL, 10);
		size_t used = 0;
		ck_assert_int_eq(rwd_numparse_json(ints[i], strlen(ints[i]), &d, &used), 0);
		ck_assert_msg(memcmp(&d, &want, sizeof(d)) == 0, "%s: %a, strtoll %a", ints[i], d, want);
	}
	double d;
	size_t used;
	/* the longest number, whatever follows */
	ck_assert_int_eq(rwd_numparse_json("1.5,2", 5, &d, &used), 0);
	ck_assert_uint_eq(used, 3);
	ck_assert_int_eq(rwd_numparse_json("-3]", 3, &d, &used), 0);
	ck_assert_uint_eq(used, 2);
	/* n bounds the read: "12" of "123" */
	ck_assert_int_eq(rwd_numparse_json("123", 2, &d, &used), 0);
	ck_assert(d == 12.0 && used == 2);
	static const char *const bad[] = {"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "-x", "Infinity", "NaN"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(rwd_numparse_json(bad[i], strlen(bad[i]), &d, &used) == RWD_E_FORMAT, "%s", bad[i]);
	ck_assert_int_eq(rwd_numparse_json("9223372036854775808", 19, &d, &used), RWD_E_LIMIT);
	ck_assert_int_eq(rwd_numparse_json("-9223372036854775809", 20, &d, &used), RWD_E_LIMIT);
	ck_assert_int_eq(rwd_numparse_json("1e309", 5, &d, &used), RWD_E_LIMIT);
	ck_assert_int_eq(rwd_numparse_json("-1.8e308", 8, &d, &used), RWD_E_LIMIT);
}
END_TEST

static Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, error_record_formats_where_and_what);
	tcase_add_test(tc, strerror_names_every_code);
	tcase_add_test(tc, arena_aligns_and_grows);
	tcase_add_test(tc, arena_limit_and_overflow);
	tcase_add_test(tc, arena_cleanups_run_newest_first_once);
	tcase_add_test(tc, monotonic_wait_times_out);
	tcase_add_test(tc, carve_floats_aligns_and_checks_overflow);
	tcase_add_test(tc, numparse_matches_strtod_and_json_grammar);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(core_suite)
