/*
 * tests/unit/test_nn.c — lib/nn: every op against a plain-C reference
 * computed in double on random inputs (naive loops, no BLAS), with strided
 * views, grouped-query and causal attention, and in-place use. Each test
 * prints the worst error it saw. PyTorch parity lives in tests/parity/.
 */
#include "rwd_check.h"

#include "nn/nn.h"

#include <math.h>
#include <stdint.h>

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

/* uniform in [-1, 1) (xorshift64*) */
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

/* Worst error tracker: |got - want| / (1 + |want|), "relative for large values, absolute near 0". */
struct worst {
	double abs, norm;
};

static void track(struct worst *w, float got, double want)
{
	double a = fabs((double)got - want);
	if (!(a <= w->abs)) /* NaN counts as worst */
		w->abs = isnan(a) ? INFINITY : a;
	double n = a / (1.0 + fabs(want));
	if (!(n <= w->norm))
		w->norm = isnan(n) ? INFINITY : n;
}

static void report(const char *op, const struct worst *w, double tol)
{
	printf("nn %-22s worst abs err %.3g, worst |err|/(1+|ref|) %.3g (tol %.0e)\n",
		op, w->abs, w->norm, tol);
	fflush(stdout);
	ck_assert_msg(w->norm <= tol, "%s: error %.3g above %.0e", op, w->norm, tol);
}

#define SENTINEL 12345.0f

START_TEST(linear_matches_loops_with_strides_and_bias)
{
	static const size_t shapes[][3] = {
		{ 1, 1, 1 }, { 1, 768, 1024 }, { 7, 13, 5 }, { 33, 129, 65 }, { 64, 256, 300 },
	};
	struct worst w = { 0, 0 };
	rng_seed(1);
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		for (int variant = 0; variant < 3; variant++) {
			size_t m = shapes[si][0], k = shapes[si][1], n = shapes[si][2];
			/* variant 0: dense, no bias; 1: bias; 2: strided views + bias */
			size_t ldx = variant == 2 ? k + 3 : k, ldy = variant == 2 ? n + 5 : n;
			float *x = frand(m * ldx, 1.0f);
			float *wt = frand(n * k, 1.0f / sqrtf((float)k));
			float *b = variant ? frand(n, 1.0f) : NULL;
			float *y = malloc(m * ldy * sizeof(*y));
			for (size_t i = 0; i < m * ldy; i++)
				y[i] = SENTINEL;
			rwd_nn_linear(x, m, k, variant == 2 ? ldx : 0, wt, b, n, y,
				variant == 2 ? ldy : 0);
			for (size_t i = 0; i < m; i++) {
				for (size_t j = 0; j < n; j++) {
					double s = b ? b[j] : 0.0;
					for (size_t l = 0; l < k; l++)
						s += (double)x[i * ldx + l] * wt[j * k + l];
					track(&w, y[i * ldy + j], s);
				}
				for (size_t j = n; j < ldy; j++)
					ck_assert_float_eq(y[i * ldy + j], SENTINEL); /* padding untouched */
			}
			free(x);
			free(wt);
			free(b);
			free(y);
		}
	}
	/* k = 0: y = bias (or 0) without touching BLAS */
	float b0[3] = { 1, 2, 3 }, y0[6] = { 9, 9, 9, 9, 9, 9 };
	rwd_nn_linear(NULL, 2, 0, 0, NULL, b0, 3, y0, 0);
	ck_assert_float_eq(y0[4], 2.0f);
	rwd_nn_linear(NULL, 2, 0, 0, NULL, NULL, 3, y0, 0);
	ck_assert_float_eq(y0[5], 0.0f);
	report("linear", &w, 1e-5);
}
END_TEST

/*
 * Batch invariance: each row of rwd_nn_linear is the same bits whatever the
 * call's row count m, the row's position in it and the BLAS thread count.
 * The oracle is each row computed alone (m = 1, one thread); every call of m
 * rows (m = 1..160, the rows at a varying offset) at 1 and 2 threads must
 * reproduce it exactly. Shapes: the models' layers (CLIP ViT-B, the
 * aesthetic head, a seqcls block) and the small-matrix-kernel edge cases of
 * OpenBLAS 0.3.21 (nn.c), including every branch of the path choice.
 */
#include <cblas.h>

static size_t linear_bit_diffs(const float *x, size_t k, const float *wt, const float *b,
	size_t n, const float *ref, size_t m, size_t off, float *y)
{
	rwd_nn_linear(x + off * k, m, k, 0, wt, b, n, y, 0);
	size_t bad = 0;
	for (size_t i = 0; i < m * n; i++)
		bad += memcmp(&y[i], &ref[off * n + i], sizeof(float)) != 0;
	return bad;
}

START_TEST(linear_rows_are_batch_invariant)
{
	/* n, k, every m (1) or a sample (0) */
	static const size_t shapes[][3] = {
		{ 1, 768, 1 }, { 1, 16, 1 }, { 16, 64, 1 }, { 64, 128, 1 }, { 128, 1024, 1 },
		{ 32, 1024, 1 }, { 512, 768, 1 }, { 1024, 768, 1 }, { 768, 768, 1 }, { 1200, 800, 1 },
		{ 3072, 768, 0 }, { 768, 3072, 0 }, { 896, 896, 0 }, { 4864, 896, 0 },
	};
	static const size_t sample[] = { 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65,
		100, 127, 129, 160 };
	enum { MMAX = 160, ROWS = 2 * MMAX };
	rng_seed(11);
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const size_t n = shapes[si][0], k = shapes[si][1];
		float *x = frand(ROWS * k, 1.0f);
		float *wt = frand(n * k, 1.0f / sqrtf((float)k));
		float *b = frand(n, 1.0f);
		float *ref = malloc(ROWS * n * sizeof(*ref)), *y = malloc(MMAX * n * sizeof(*y));
		ck_assert_ptr_nonnull(ref);
		ck_assert_ptr_nonnull(y);
		openblas_set_num_threads(1);
		for (size_t r = 0; r < ROWS; r++)
			rwd_nn_linear(x + r * k, 1, k, 0, wt, b, n, ref + r * n, 0);
		size_t bad = 0, calls = 0, first = 0;
		for (int threads = 1; threads <= 2; threads++) {
			openblas_set_num_threads(threads);
			const size_t nm = shapes[si][2] ? MMAX : sizeof(sample) / sizeof(sample[0]);
			for (size_t mi = 0; mi < nm; mi++) {
				const size_t m = shapes[si][2] ? mi + 1 : sample[mi];
				const size_t off = (m * 37 + (size_t)threads * 11) % (ROWS - m + 1);
				size_t d = linear_bit_diffs(x, k, wt, b, n, ref, m, off, y);
				if (d && !bad)
					first = m * 10 + (size_t)threads;
				bad += d;
				calls++;
			}
		}
		printf("nn linear n %zu k %zu: %zu calls (m 1..160 at 1 and 2 threads), %zu values "
			"differ from the row alone\n", n, k, calls, bad);
		fflush(stdout);
		ck_assert_msg(bad == 0, "n %zu k %zu: rows depend on the batch (first at m %zu, %zu threads)",
			n, k, first / 10, first % 10);
		free(x);
		free(wt);
		free(b);
		free(ref);
		free(y);
	}
	openblas_set_num_threads(1);
}
END_TEST

START_TEST(norms_match_loops)
{
	static const size_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 5, 768 }, { 2, 1023 } };
	struct worst wl = { 0, 0 }, wr = { 0, 0 };
	rng_seed(2);
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		size_t m = shapes[si][0], n = shapes[si][1];
		for (int affine = 0; affine < 2; affine++) {
			/* an offset mean makes the variance a small difference of large terms */
			float *x = frand(m * n, 3.0f);
			for (size_t i = 0; i < m * n; i++)
				x[i] += 10.0f;
			float *g = affine ? frand(n, 1.0f) : NULL, *b = affine ? frand(n, 1.0f) : NULL;
			float *y = malloc(m * n * sizeof(*y)), *y2 = malloc(m * n * sizeof(*y));
			rwd_nn_layernorm(x, m, n, g, b, 1e-5f, y);
			rwd_nn_rmsnorm(x, m, n, g, 1e-6f, y2);
			for (size_t i = 0; i < m; i++) {
				const float *r = x + i * n;
				double mu = 0, var = 0, ms = 0;
				for (size_t j = 0; j < n; j++)
					mu += r[j];
				mu /= (double)n;
				for (size_t j = 0; j < n; j++) {
					var += (r[j] - mu) * (r[j] - mu);
					ms += (double)r[j] * r[j];
				}
				var /= (double)n;
				ms /= (double)n;
				for (size_t j = 0; j < n; j++) {
					double ln = (r[j] - mu) / sqrt(var + 1e-5);
					double rn = r[j] / sqrt(ms + 1e-6);
					if (affine) {
						ln = ln * g[j] + b[j];
						rn *= g[j];
					}
					track(&wl, y[i * n + j], ln);
					track(&wr, y2[i * n + j], rn);
				}
			}
			/* in place gives the same bits */
			float *z = malloc(m * n * sizeof(*z));
			memcpy(z, x, m * n * sizeof(*z));
			rwd_nn_layernorm(z, m, n, g, b, 1e-5f, z);
			ck_assert_mem_eq(z, y, m * n * sizeof(*z));
			memcpy(z, x, m * n * sizeof(*z));
			rwd_nn_rmsnorm(z, m, n, g, 1e-6f, z);
			ck_assert_mem_eq(z, y2, m * n * sizeof(*z));
			free(z);
			free(x);
			free(g);
			free(b);
			free(y);
			free(y2);
		}
	}
	report("layernorm", &wl, 1e-5);
	report("rmsnorm", &wr, 1e-5);
}
END_TEST

START_TEST(softmax_matches_loops_and_is_stable)
{
	struct worst w = { 0, 0 };
	rng_seed(3);
	static const size_t shapes[][2] = { { 1, 1 }, { 4, 5 }, { 3, 1000 }, { 16, 77 } };
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		size_t m = shapes[si][0], n = shapes[si][1];
		float *x = frand(m * n, 20.0f);
		x[0] += 1000.0f; /* exp would overflow without the max subtraction */
		float *y = malloc(m * n * sizeof(*y));
		memcpy(y, x, m * n * sizeof(*y));
		rwd_nn_softmax(y, m, n);
		for (size_t i = 0; i < m; i++) {
			double mx = -INFINITY, s = 0;
			for (size_t j = 0; j < n; j++)
				mx = fmax(mx, x[i * n + j]);
			for (size_t j = 0; j < n; j++)
				s += exp(x[i * n + j] - mx);
			for (size_t j = 0; j < n; j++)
				track(&w, y[i * n + j], exp(x[i * n + j] - mx) / s);
		}
		free(x);
		free(y);
	}
	report("softmax", &w, 1e-6);
}
END_TEST

static double ref_act(int which, double v)
{
	switch (which) {
	case 0: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
	case 1: return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
	case 2: return v / (1.0 + exp(-1.702 * v));
	case 3: return v / (1.0 + exp(-v));
	default: return v > 0 ? v : 0;
	}
}

START_TEST(activations_match_formulas)
{
	static const char *const names[] = { "gelu_erf", "gelu_tanh", "quick_gelu", "silu", "relu" };
	void (*const fns[])(float *, size_t) = {
		rwd_nn_gelu_erf, rwd_nn_gelu_tanh, rwd_nn_quick_gelu, rwd_nn_silu, rwd_nn_relu,
	};
	rng_seed(4);
	const size_t n = 4099;
	float *x = frand(n, 12.0f);
	x[0] = 0.0f;
	x[1] = -100.0f; /* exp overflow in the sigmoid forms must give -0, not NaN */
	x[2] = 100.0f;
	float *y = malloc(n * sizeof(*y));
	for (int a = 0; a < 5; a++) {
		struct worst w = { 0, 0 };
		double rel = 0;
		memcpy(y, x, n * sizeof(*y));
		fns[a](y, n);
		for (size_t i = 0; i < n; i++) {
			double r = ref_act(a, x[i]);
			track(&w, y[i], r);
			/* relative too, down into the tails (|ref| >= 1e-6, e.g. gelu(-5)) */
			if (fabs(r) >= 1e-6)
				rel = fmax(rel, fabs(y[i] - r) / fabs(r));
		}
		report(names[a], &w, 1e-6);
		printf("nn %-22s worst relative err %.3g where |ref| >= 1e-6 (tol 1e-5)\n", names[a], rel);
		ck_assert_msg(rel <= 1e-5, "%s: relative error %.3g", names[a], rel);
	}
	/* swiglu: silu(gate) * up */
	struct worst w = { 0, 0 };
	float *up = frand(n, 2.0f);
	memcpy(y, x, n * sizeof(*y));
	rwd_nn_swiglu(y, up, n);
	for (size_t i = 0; i < n; i++)
		track(&w, y[i], ref_act(3, x[i]) * up[i]);
	report("swiglu", &w, 1e-6);
	free(up);
	free(x);
	free(y);
}
END_TEST

/* Triple-loop attention in double over a fused [t, (nh + 2 nkv) d] qkv buffer. */
static void ref_attention(const rwd_nn_attn *p, const float *q, const float *k, const float *v,
	double *out /* [t, nh * d] dense */)
{
	size_t t = p->t, d = p->head_dim, group = p->n_heads / p->n_kv_heads;
	double *s = malloc(t * sizeof(*s));
	for (size_t h = 0; h < p->n_heads; h++) {
		size_t g = h / group;
		for (size_t i = 0; i < t; i++) {
			size_t nk = p->causal ? i + 1 : t;
			double mx = -INFINITY, sum = 0;
			for (size_t j = 0; j < nk; j++) {
				double dot = 0;
				for (size_t c = 0; c < d; c++)
					dot += (double)q[i * p->ldq + h * d + c] * k[j * p->ldk + g * d + c];
				s[j] = dot * p->scale;
				mx = fmax(mx, s[j]);
			}
			for (size_t j = 0; j < nk; j++) {
				s[j] = exp(s[j] - mx);
				sum += s[j];
			}
			for (size_t c = 0; c < d; c++) {
				double o = 0;
				for (size_t j = 0; j < nk; j++)
					o += s[j] / sum * v[j * p->ldv + g * d + c];
				out[i * p->n_heads * d + h * d + c] = o;
			}
		}
	}
	free(s);
}

START_TEST(attention_matches_triple_loop_gqa_causal_strided)
{
	/* t, n_heads, n_kv_heads, head_dim */
	static const size_t cfg[][4] = {
		{ 1, 1, 1, 1 }, { 5, 2, 2, 3 }, { 17, 4, 2, 8 }, { 33, 6, 1, 16 }, { 77, 4, 4, 64 },
		{ 40, 8, 2, 32 }, { 300, 4, 2, 32 }, /* > 2 causal row blocks of 128 */
	};
	struct worst w = { 0, 0 };
	rng_seed(5);
	for (size_t ci = 0; ci < sizeof(cfg) / sizeof(cfg[0]); ci++) {
		for (int causal = 0; causal < 2; causal++) {
			size_t t = cfg[ci][0], nh = cfg[ci][1], nkv = cfg[ci][2], d = cfg[ci][3];
			size_t ld = (nh + 2 * nkv) * d + 1; /* fused qkv projection output, one pad column */
			size_t ldo = nh * d + 2;
			float *qkv = frand(t * ld, 2.0f);
			rwd_nn_attn p = {
				.t = t, .n_heads = nh, .n_kv_heads = nkv, .head_dim = d,
				.ldq = ld, .ldk = ld, .ldv = ld, .ldo = ldo,
				.causal = causal, .scale = 1.0f / sqrtf((float)d),
			};
			const float *q = qkv, *k = qkv + nh * d, *v = qkv + (nh + nkv) * d;
			float *out = malloc(t * ldo * sizeof(*out));
			for (size_t i = 0; i < t * ldo; i++)
				out[i] = SENTINEL;
			float *scratch = malloc(rwd_nn_attention_scratch(&p) * sizeof(*scratch));
			rwd_nn_attention(&p, q, k, v, out, scratch);
			double *ref = malloc(t * nh * d * sizeof(*ref));
			ref_attention(&p, q, k, v, ref);
			for (size_t i = 0; i < t; i++) {
				for (size_t c = 0; c < nh * d; c++)
					track(&w, out[i * ldo + c], ref[i * nh * d + c]);
				for (size_t c = nh * d; c < ldo; c++)
					ck_assert_float_eq(out[i * ldo + c], SENTINEL);
			}
			/* causal: the first query sees only the first key, so it copies v[0] */
			if (causal)
				for (size_t h = 0; h < nh; h++)
					ck_assert_float_eq_tol(out[h * d], v[(h / (nh / nkv)) * d], 1e-6);
			free(qkv);
			free(out);
			free(scratch);
			free(ref);
		}
	}
	report("attention", &w, 1e-5);
}
END_TEST

START_TEST(rope_inv_freq_follows_llama3_rule)
{
	struct worst w = { 0, 0 };
	const size_t d = 128;
	float f[64];
	rwd_nn_rope_inv_freq(10000.0f, d, NULL, f);
	for (size_t i = 0; i < d / 2; i++) /* relative error: got/ref against 1 */
		track(&w, (float)(f[i] / pow(10000.0, -(double)(2 * i) / (double)d)), 1.0);
	report("rope_inv_freq (rel)", &w, 1e-6);

	/* Llama 3.1: factor 8, low 1, high 4, original context 8192, theta 500000 */
	rwd_nn_rope_scaling sc = { 8.0f, 1.0f, 4.0f, 8192 };
	float base[64], scaled[64];
	rwd_nn_rope_inv_freq(500000.0f, d, NULL, base);
	rwd_nn_rope_inv_freq(500000.0f, d, &sc, scaled);
	int kept = 0, divided = 0, blended = 0;
	for (size_t i = 0; i < d / 2; i++) {
		double wavelen = 2 * M_PI / base[i];
		if (wavelen < 8192.0 / 4) {
			ck_assert_float_eq(scaled[i], base[i]);
			kept++;
		} else if (wavelen > 8192.0 / 1) {
			ck_assert_float_eq_tol(scaled[i], base[i] / 8.0f, 1e-6 * base[i]);
			divided++;
		} else {
			/* strictly between the two limits, monotone in the smooth factor */
			ck_assert(scaled[i] <= base[i] && scaled[i] >= base[i] / 8.0f * (1 - 1e-6));
			blended++;
		}
	}
	ck_assert(kept > 0 && divided > 0 && blended > 0);
	/* factor <= 0 disables scaling */
	sc.factor = 0.0f;
	rwd_nn_rope_inv_freq(500000.0f, d, &sc, scaled);
	ck_assert_mem_eq(scaled, base, sizeof(base));
}
END_TEST

START_TEST(rope_matches_rotation_loops)
{
	struct worst w = { 0, 0 };
	rng_seed(6);
	static const size_t cfg[][3] = { { 1, 1, 2 }, { 9, 3, 8 }, { 20, 4, 64 }, { 5, 2, 256 } };
	for (size_t ci = 0; ci < sizeof(cfg) / sizeof(cfg[0]); ci++) {
		size_t t = cfg[ci][0], nh = cfg[ci][1], d = cfg[ci][2], half = d / 2;
		size_t ldx = nh * d + 4;
		float *x = frand(t * ldx, 1.0f), *y = malloc(t * ldx * sizeof(*y));
		float *inv = malloc(half * sizeof(*inv));
		int32_t *pos = malloc(t * sizeof(*pos));
		for (size_t i = 0; i < t; i++)
			pos[i] = (int32_t)(i * 37 % 2048);
		rwd_nn_rope_inv_freq(10000.0f, d, NULL, inv);
		memcpy(y, x, t * ldx * sizeof(*y));
		rwd_nn_rope(y, t, nh, d, ldx, pos, inv);
		/* the table form gives the same bits */
		float *y2 = malloc(t * ldx * sizeof(*y2)), *cs = malloc(t * d * sizeof(*cs));
		memcpy(y2, x, t * ldx * sizeof(*y2));
		rwd_nn_rope_table(t, d, pos, inv, cs);
		rwd_nn_rope_apply(y2, t, nh, d, ldx, cs);
		ck_assert_mem_eq(y2, y, t * ldx * sizeof(*y));
		free(y2);
		free(cs);
		for (size_t r = 0; r < t; r++) {
			for (size_t h = 0; h < nh; h++) {
				for (size_t i = 0; i < half; i++) {
					double a = (double)(float)((float)pos[r] * inv[i]);
					double x1 = x[r * ldx + h * d + i], x2 = x[r * ldx + h * d + i + half];
					track(&w, y[r * ldx + h * d + i], x1 * cos(a) - x2 * sin(a));
					track(&w, y[r * ldx + h * d + i + half], x2 * cos(a) + x1 * sin(a));
				}
			}
			for (size_t c = nh * d; c < ldx; c++) /* padding untouched */
				ck_assert_float_eq(y[r * ldx + c], x[r * ldx + c]);
		}
		free(x);
		free(y);
		free(inv);
		free(pos);
	}
	report("rope", &w, 1e-6);
}
END_TEST

START_TEST(threading_init_describes_openblas)
{
	char desc[512];
	int n = rwd_nn_threading_init(1, desc, sizeof(desc));
	printf("nn threading: %s\n", desc);
	ck_assert_int_eq(n, 1);
	ck_assert_ptr_nonnull(strstr(desc, "OpenBLAS"));
	ck_assert_ptr_nonnull(strstr(desc, "; parallel "));
	ck_assert_ptr_nonnull(strstr(desc, "; threads 1"));
	n = rwd_nn_threading_init(0, NULL, 0);
	ck_assert_int_ge(n, 1);
	ck_assert_int_eq(rwd_nn_blas_threads_for(2), 1);
	ck_assert_int_ge(rwd_nn_blas_threads_for(1), 1);
	ck_assert_int_eq(rwd_nn_blas_threads_for(0), rwd_nn_blas_threads_for(1));
}
END_TEST

/* rwd_nn_serial_begin lowers OpenBLAS's count to 1, nests, and end restores it. */
START_TEST(serial_section_lowers_and_restores)
{
	ck_assert_int_eq(rwd_nn_threading_init(2, NULL, 0), 2);
	int outer = rwd_nn_serial_begin();
	ck_assert_int_eq(outer, 2);
	ck_assert_int_eq(openblas_get_num_threads(), 1);
	int inner = rwd_nn_serial_begin();
	ck_assert_int_eq(inner, 1);
	rwd_nn_serial_end(inner);
	ck_assert_int_eq(openblas_get_num_threads(), 1);
	rwd_nn_serial_end(outer);
	ck_assert_int_eq(openblas_get_num_threads(), 2);
	rwd_nn_threading_init(1, NULL, 0);
	ck_assert_int_eq(rwd_nn_serial_begin(), 1);
	rwd_nn_serial_end(1);
	ck_assert_int_eq(openblas_get_num_threads(), 1);
}
END_TEST

static Suite *nn_suite(void)
{
	Suite *s = suite_create("nn");
	TCase *tc = tcase_create("nn");
	tcase_add_test(tc, linear_matches_loops_with_strides_and_bias);
	tcase_add_test(tc, linear_rows_are_batch_invariant);
	tcase_add_test(tc, norms_match_loops);
	tcase_add_test(tc, softmax_matches_loops_and_is_stable);
	tcase_add_test(tc, activations_match_formulas);
	tcase_add_test(tc, attention_matches_triple_loop_gqa_causal_strided);
	tcase_add_test(tc, rope_inv_freq_follows_llama3_rule);
	tcase_add_test(tc, rope_matches_rotation_loops);
	tcase_add_test(tc, threading_init_describes_openblas);
	tcase_add_test(tc, serial_section_lowers_and_restores);
	suite_add_tcase(s, tc);
	return s;
}

RWD_CHECK_MAIN(nn_suite)
