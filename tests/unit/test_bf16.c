/*
 * tests/unit/test_bf16.c — lib/nn/bf16 (oneDNN BF16 linear layers) against
 * the exact oracle of "BF16 inputs, FP32 accumulation": a naive loop in
 * double over the BF16-rounded inputs (rounding by rwd_bf16_from_float,
 * itself checked against the definition on edge cases). What remains is the
 * FP32 accumulation error of oneDNN's kernels, bounded here by
 * TOL * sum_i |x_i w_i| (+ the activation's own error); every row bucket,
 * full and padded 256-row blocks, strides, bias and each fused epilogue are
 * covered. Each test prints the worst error it saw.
 *
 * On a CPU without AVX512_BF16/AMX the GEMM tests are skipped (exit 77 from
 * main) and only the refusal is checked; `bf16-refusal` (meson) runs this
 * binary with DNNL_MAX_CPU_ISA=AVX512_CORE to check the refusal everywhere.
 */
#include "rwd_check.h"

#include "nn/bf16.h"

#include <math.h>
#include <stdint.h>

/* FP32 accumulation error allowed, relative to sum |x w|: k <= 3072 terms,
 * each rounding ~6e-8, blocked sums grow ~sqrt(k): 2e-6 is ~4x the observed. */
#define TOL 2e-6

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static float urand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
	return (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *frand(size_t n, float scale)
{
	float *p = malloc((n ? n : 1) * sizeof(*p));
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = urand() * scale;
	return p;
}

static double bfr(float f)
{
	return (double)rwd_bf16_to_float(rwd_bf16_from_float(f));
}

static double act_ref(rwd_bf16_act a, double v)
{
	switch (a) {
	case RWD_BF16_ACT_GELU_ERF: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
	case RWD_BF16_ACT_GELU_TANH:
		return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
	case RWD_BF16_ACT_QUICK_GELU: return v / (1.0 + exp(-1.702 * v));
	case RWD_BF16_ACT_SILU: return v / (1.0 + exp(-v));
	default: return v;
	}
}

START_TEST(rounding_is_nearest_even)
{
	/* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even -> 1 */
	ck_assert_float_eq(rwd_bf16_to_float(rwd_bf16_from_float(1.0f + 0x1p-8f)), 1.0f);
	/* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: -> 1 + 2^-6 */
	ck_assert_float_eq(rwd_bf16_to_float(rwd_bf16_from_float(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
	ck_assert_float_eq(rwd_bf16_to_float(rwd_bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f)), 1.0f + 0x1p-7f);
	ck_assert_float_eq(rwd_bf16_to_float(rwd_bf16_from_float(-2.5f)), -2.5f);
	ck_assert(isnan(rwd_bf16_to_float(rwd_bf16_from_float(NAN))));
	ck_assert(isinf(rwd_bf16_to_float(rwd_bf16_from_float(INFINITY))));
	/* the largest float rounds up to infinity, as torch */
	ck_assert(isinf(rwd_bf16_to_float(rwd_bf16_from_float(3.4028235e38f))));
	/* every bf16 value survives the round trip */
	for (uint32_t h = 0; h < 65536; h++) {
		float f = rwd_bf16_to_float((uint16_t)h);
		if (!isnan(f))
			ck_assert_uint_eq(rwd_bf16_from_float(f), h);
	}
}
END_TEST

struct worst { double err; };

/* y vs the double oracle; err normalised by sum|x w| + |b| (+ |ref| for the activation). */
static void check_linear(rwd_bf16 *b, rwd_bf16_scratch **sp, size_t m, size_t k, size_t n,
	int bias, rwd_bf16_act act, int strided, struct worst *w)
{
	rwd_error err = {0};
	float *wt = frand(n * k, 1.0f / sqrtf((float)k));
	float *bb = bias ? frand(n, 0.5f) : NULL;
	const rwd_bf16_linear *l = NULL;
	ck_assert_msg(rwd_bf16_add_linear(b, wt, bb, n, k, act, &l, &err) == 0, "%s", err.msg);
	rwd_bf16_scratch_free(*sp);
	ck_assert_msg(rwd_bf16_scratch_new(b, sp, &err) == 0, "%s", err.msg);
	size_t ldx = strided ? k + 5 : k, ldy = strided ? n + 3 : n;
	float *x = frand(m * ldx, 2.0f);
	float *y = malloc(m * ldy * sizeof(*y));
	for (size_t i = 0; i < m * ldy; i++)
		y[i] = 12345.0f;
	ck_assert_int_eq(rwd_bf16_linear_run(l, *sp, x, m, strided ? ldx : 0, y, strided ? ldy : 0), 0);
	ck_assert_int_eq(rwd_bf16_scratch_status(*sp), 0);
	for (size_t i = 0; i < m; i++) {
		for (size_t j = 0; j < n; j++) {
			double s = 0, sa = 0;
			for (size_t t = 0; t < k; t++) {
				double p = bfr(x[i * ldx + t]) * bfr(wt[j * k + t]);
				s += p;
				sa += fabs(p);
			}
			if (bb) {
				s += bb[j];
				sa += fabs(bb[j]);
			}
			double ref = act_ref(act, s);
			/* the activation's slope is <= 1.13 and its own error ~1e-7 relative */
			double e = fabs(y[i * ldy + j] - ref) / (1.2 * sa + fabs(ref) + 1e-30);
			if (!(e <= w->err))
				w->err = isnan(e) ? INFINITY : e;
		}
		if (strided)
			for (size_t j = n; j < ldy; j++)
				ck_assert_float_eq(y[i * ldy + j], 12345.0f); /* padding untouched */
	}
	free(wt);
	free(bb);
	free(x);
	free(y);
}

static rwd_bf16 *engine(void)
{
	rwd_error err = {0};
	rwd_bf16 *b = NULL;
	rwd_bf16_params p = rwd_bf16_default_params();
	ck_assert_msg(rwd_bf16_new(&p, &b, &err) == 0, "%s", err.msg);
	return b;
}

START_TEST(linear_matches_bf16_oracle_every_bucket)
{
	rwd_bf16 *b = engine();
	rwd_bf16_scratch *s = NULL;
	struct worst w = {0};
	rng_seed(3);
	/* rows: every bucket size, padded tails, full 256 blocks, several blocks */
	static const size_t ms[] = {1, 2, 3, 5, 16, 31, 33, 64, 100, 255, 256, 257, 600};
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
		check_linear(b, &s, ms[i], 96, 40, (int)(i & 1), RWD_BF16_ACT_NONE, 0, &w);
	printf("bf16 linear, 13 row counts (k 96, n 40): worst err / sum|xw| %.3g (tol %.0e)\n", w.err, TOL);
	ck_assert_msg(w.err <= TOL, "error %.3g", w.err);
	ck_assert_uint_eq(rwd_bf16_num_classes(b), 2); /* with and without bias; rows share primitives */
	rwd_bf16_scratch_free(s);
	rwd_bf16_free(b);
}
END_TEST

START_TEST(linear_shapes_strides_and_epilogues)
{
	rwd_bf16 *b = engine();
	rwd_bf16_scratch *s = NULL;
	rng_seed(5);
	static const size_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {50, 768, 130}, {77, 512, 1}, {20, 3072, 64}};
	static const rwd_bf16_act acts[] = {RWD_BF16_ACT_NONE, RWD_BF16_ACT_GELU_ERF,
		RWD_BF16_ACT_GELU_TANH, RWD_BF16_ACT_QUICK_GELU, RWD_BF16_ACT_SILU};
	static const char *const names[] = {"none", "gelu_erf", "gelu_tanh", "quick_gelu", "silu"};
	for (size_t a = 0; a < 5; a++) {
		struct worst w = {0};
		for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
			check_linear(b, &s, shapes[i][0], shapes[i][1], shapes[i][2], 1, acts[a], (int)(i % 2), &w);
		printf("bf16 linear + bias + %-10s 5 shapes (strided too): worst err %.3g (tol %.0e)\n",
			names[a], w.err, TOL);
		ck_assert_msg(w.err <= TOL, "%s: error %.3g", names[a], w.err);
	}
	rwd_bf16_scratch_free(s);
	rwd_bf16_free(b);
}
END_TEST

/*
 * Batch invariance: each row of a BF16 linear is the same bits whatever the
 * call's row count, the row's position and the thread count. Oracle: each
 * row run alone on a 1-thread engine. Every call of m rows (a sample of
 * 1..300, across row buckets and 256-row blocks) on 1- and 2-thread
 * engines must reproduce it exactly.
 */
START_TEST(linear_rows_are_batch_invariant)
{
	static const size_t shapes[][3] = { /* n, k, act */
		{ 768, 768, RWD_BF16_ACT_NONE }, { 3072, 768, RWD_BF16_ACT_QUICK_GELU },
		{ 768, 3072, RWD_BF16_ACT_NONE }, { 1024, 1024, RWD_BF16_ACT_SILU }, { 40, 96, RWD_BF16_ACT_NONE },
		{ 896, 4864, RWD_BF16_ACT_NONE }, { 1, 1024, RWD_BF16_ACT_NONE },
	};
	static const size_t ms[] = { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 97,
		100, 129, 160, 255, 256, 257, 300 };
	enum { ROWS = 320 };
	rng_seed(13);
	rwd_error err = {0};
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const size_t n = shapes[si][0], k = shapes[si][1];
		float *x = frand(ROWS * k, 2.0f), *wt = frand(n * k, 1.0f / sqrtf((float)k));
		float *bb = frand(n, 0.5f);
		float *ref = malloc(ROWS * n * sizeof(*ref)), *y = malloc(ROWS * n * sizeof(*y));
		ck_assert_ptr_nonnull(ref);
		ck_assert_ptr_nonnull(y);
		size_t bad = 0, calls = 0, first = 0;
		for (int threads = 1; threads <= 2; threads++) {
			rwd_bf16_params p = rwd_bf16_default_params();
			p.threads = threads;
			rwd_bf16 *b = NULL;
			rwd_bf16_scratch *s = NULL;
			const rwd_bf16_linear *l = NULL;
			ck_assert_msg(rwd_bf16_new(&p, &b, &err) == 0, "%s", err.msg);
			ck_assert_msg(rwd_bf16_add_linear(b, wt, bb, n, k, (rwd_bf16_act)shapes[si][2], &l,
				&err) == 0, "%s", err.msg);
			ck_assert_msg(rwd_bf16_scratch_new(b, &s, &err) == 0, "%s", err.msg);
			if (threads == 1)
				for (size_t r = 0; r < ROWS; r++)
					ck_assert_int_eq(rwd_bf16_linear_run(l, s, x + r * k, 1, 0, ref + r * n, 0), 0);
			for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++) {
				const size_t m = ms[mi], off = (m * 37 + (size_t)threads * 11) % (ROWS - m + 1);
				ck_assert_int_eq(rwd_bf16_linear_run(l, s, x + off * k, m, 0, y, 0), 0);
				size_t d = 0;
				for (size_t i = 0; i < m * n; i++)
					d += memcmp(&y[i], &ref[off * n + i], sizeof(float)) != 0;
				if (d && !bad)
					first = m * 10 + (size_t)threads;
				bad += d;
				calls++;
			}
			rwd_bf16_scratch_free(s);
			rwd_bf16_free(b);
		}
		printf("bf16 linear n %zu k %zu: %zu calls (m 1..300, 1 and 2 threads), %zu values differ "
			"from the row alone\n", n, k, calls, bad);
		fflush(stdout);
		ck_assert_msg(bad == 0, "n %zu k %zu: rows depend on the batch (first at m %zu, %zu threads)",
			n, k, first / 10, first % 10);
		free(x);
		free(wt);
		free(bb);
		free(ref);
		free(y);
	}
}
END_TEST

START_TEST(linear_added_after_scratch_is_an_error)
{
	rwd_bf16 *b = engine();
	rwd_bf16_scratch *s = NULL;
	rwd_error err = {0};
	ck_assert_int_eq(rwd_bf16_scratch_new(b, &s, &err), 0);
	float w[6] = {1, 2, 3, 4, 5, 6}, x[3] = {1, 1, 1}, y[2];
	const rwd_bf16_linear *l = NULL;
	ck_assert_int_eq(rwd_bf16_add_linear(b, w, NULL, 2, 3, RWD_BF16_ACT_NONE, &l, &err), 0);
	ck_assert_int_eq(rwd_bf16_linear_run(l, s, x, 1, 0, y, 0), RWD_E_INTERNAL);
	ck_assert_int_eq(rwd_bf16_scratch_status(s), RWD_E_INTERNAL);
	ck_assert_int_eq(rwd_bf16_scratch_status(s), 0);
	ck_assert_int_eq(rwd_bf16_add_linear(b, w, NULL, 0, 3, RWD_BF16_ACT_NONE, &l, &err), RWD_E_INVALID);
	rwd_bf16_scratch_free(s);
	rwd_bf16_free(b);
	rwd_bf16_free(NULL);
	rwd_bf16_scratch_free(NULL);
}
END_TEST

START_TEST(refusal_names_the_isa)
{
	rwd_error err = {0};
	rwd_bf16 *b = NULL;
	rwd_bf16_params p = rwd_bf16_default_params();
	ck_assert_int_eq(rwd_bf16_new(&p, &b, &err), RWD_E_UNSUPPORTED);
	ck_assert_ptr_null(b);
	printf("bf16 refused on %s: %s\n", rwd_bf16_isa_name(), err.msg);
	ck_assert_ptr_nonnull(strstr(err.msg, "AVX512_BF16"));
	ck_assert_ptr_nonnull(strstr(err.msg, rwd_bf16_isa_name()));
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("bf16");
	TCase *tc = tcase_create("bf16");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, rounding_is_nearest_even);
	if (rwd_bf16_supported(NULL) == 0) {
		tcase_add_test(tc, linear_matches_bf16_oracle_every_bucket);
		tcase_add_test(tc, linear_shapes_strides_and_epilogues);
		tcase_add_test(tc, linear_added_after_scratch_is_an_error);
		tcase_add_test(tc, linear_rows_are_batch_invariant);
	} else {
		tcase_add_test(tc, refusal_names_the_isa);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *want = getenv("RWD_BF16_EXPECT_REFUSAL");
	const int supported = rwd_bf16_supported(NULL) == 0;
	printf("oneDNN ISA: %s\n", rwd_bf16_isa_name());
	if (want && *want == '1' && supported) {
		printf("FAIL: DNNL_MAX_CPU_ISA did not cap oneDNN below AVX512_BF16\n");
		return EXIT_FAILURE;
	}
	SRunner *sr = srunner_create(make_suite());
	srunner_run_all(sr, CK_ENV);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (nf)
		return EXIT_FAILURE;
	if (!supported && !(want && *want == '1')) {
		printf("SKIP: this CPU has no AVX512_BF16/AMX (%s): only the refusal was tested\n",
			rwd_bf16_isa_name());
		return 77;
	}
	return EXIT_SUCCESS;
}
