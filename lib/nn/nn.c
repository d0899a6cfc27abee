/*
 * nn/nn.c — see nn.h. The numeric ops every model kind is built from.
 *
 * GEMMs go to OpenBLAS's cblas_sgemm; everything else is plain C over
 * contiguous rows, written so the elementwise loops vectorise. Reductions
 * (norm statistics) accumulate in double: they are O(rows * cols) against
 * the GEMMs' O(rows * cols * k), so the cost is invisible and float32
 * parity with PyTorch stays well under 1e-5.
 *
 * ---------------------------------------------------------------------------
 * Compute threading model (the reasoning behind rwd_nn_threading_init)
 * ---------------------------------------------------------------------------
 * What OpenBLAS 0.3.21 (Debian, pthread variant) really does:
 *   - the BLAS thread count is one process-wide number (blas_cpu_number);
 *     it must not change while any thread is inside BLAS;
 *   - a GEMM with m*n*k <= ~262k multiply-adds runs single-threaded in the
 *     caller whatever that number is;
 *   - a larger GEMM takes a global mutex (level3_lock in level3_thread.c) for
 *     its whole multi-threaded run, so multi-threaded GEMMs issued by
 *     different caller threads at once are serialised, and while they wait
 *     the callers' own threads compete with BLAS's pool for the cores.
 *
 * Measured on this 2-core box (bench/blas_threads.c, Haswell kernels, same
 * total work per row; other builds were running, so +-15%):
 *
 *   GEMM [m x k] . [n x k]^T          model A: 1 worker,   model B: 2 workers,
 *                                     T = 2 BLAS threads  T = 1 BLAS thread
 *                                     GFLOP/s  latency    GFLOP/s  latency
 *   head, batch 1   1x768 -> 1024       9.0   0.17 ms       9.5   0.30 ms
 *   head, batch 32 32x768 -> 1024     111     0.45 ms     104     0.96 ms
 *   attention QK^T  77x64 . 77x64       60    0.013 ms     72    0.020 ms
 *   ViT-B qkv      197x768 -> 2304    133     5.2 ms      152     8.6 ms
 *   ViT-L mlp      257x1024 -> 4096   157    13.7 ms      159    25.7 ms
 *   LM mlp        1024x896 -> 4864    164    55 ms        110   148 ms
 *   (2 workers x 2 BLAS threads, the mix to avoid: 41 GFLOP/s on the small
 *    attention GEMM against A's 60 and B's 72, on large GEMMs no better than
 *    A within noise since the lock makes it A, and 1.5-3x A's latency.)
 *
 * So on an otherwise idle machine throughput is a wash for mid-sized GEMMs,
 * B wins a little on tiny ones (no thread hand-off), A wins clearly on large
 * ones (one weight stream in the shared cache instead of two) and A always
 * halves the latency of a forward pass. rewardd batches requests, which
 * turns many small GEMMs into one large one — exactly where A is strongest.
 *
 * The same run with the cores oversubscribed by other processes (load
 * average 8 on 2 cores) turns it round: A 1.5..31 GFLOP/s, B 1.9..32, the
 * mix 1.0..34, with B ahead on everything but the largest GEMM. OpenBLAS's
 * pool threads spin and hand work off, and a descheduled pool thread stalls
 * the whole GEMM. So A assumes the daemon's cores are its own (a dedicated
 * host, or a cpuset sized to match); on shared cores, choose B.
 *
 * The model:
 *   (i) default — one compute worker per model owns the stacked batch and
 *       runs with BLAS threads = cores (rwd_nn_threading_init(0, ...)).
 *       Applies whenever one model computes at a time: the usual deployment.
 *   (ii) K compute workers (K <= cores) with BLAS threads = 1: when several
 *       models must compute concurrently (each has its own worker), when a
 *       model's GEMMs are all below OpenBLAS's threading threshold (tiny
 *       MLP heads) so BLAS threads would idle anyway, or when the cores are
 *       shared with other busy processes.
 *   Never K > 1 workers with BLAS threads > 1: they serialise on
 *   level3_lock and oversubscribe (row "mix" above).
 * rwd_nn_blas_threads_for(workers) encodes the rule. On the OpenMP variant
 * (parallel=2) OpenBLAS warns that concurrent callers beyond NUM_PARALLEL
 * must not overlap, so there too K > 1 must run with 1 BLAS thread; the
 * sequential variant (parallel=0) ignores the setting and leaves only (ii)
 * to use more than one core.
 */
#include "nn/nn.h"

#include "core/thread.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* cblas takes int dimensions; callers keep shapes below INT_MAX (checked at model load). */
#define BI(x) ((blasint)(x))

/*
 * Vectorisable elementwise maths. glibc's expf/erff are scalar calls (its
 * vector variants need -ffast-math), which made the activations cost up to
 * 14 ns/element, as much as half of the GEMM they follow in a ViT MLP. These
 * inline versions use only +, *, /, compares and integer bit moves, so the
 * loops below vectorise; RWD_NN_CLONES adds an AVX2 clone of each hot loop
 * (picked at load time), bit-identical to the SSE2 one since every lane does
 * the same roundings (no FMA contraction under -std=c11).
 */
/*
 * Not under ThreadSanitizer: GCC instruments the clones' ifunc resolver with
 * __tsan_func_entry, and ld.so runs that resolver while relocating the
 * executable, before libtsan is set up, so every program linking lib/nn
 * segfaulted at load (build-tsan). The default clone is bit-identical.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define RWD_NN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define RWD_NN_CLONES
#endif

/*
 * Batch invariance of the linear layer: row i of y must be the same bits
 * whatever the other rows of the call and however many there are, so the
 * kernel and its summation order are chosen from (n, k) only, never from m.
 *
 * What OpenBLAS 0.3.21 does with our x . w^T (column-major TN), measured in
 * test_nn.c (linear_rows_are_batch_invariant) and read in its x86_64
 * SMALL_MATRIX_OPT permit: calls with m*n*k <= 1e6, m*n <= 1200 and
 * k >= 32 go to a small-matrix kernel whose summation order differs from
 * the blocked kernel's and itself depends on m. Every other call runs the
 * blocked kernel, whose per-row result depends on neither m, the row's
 * position nor the BLAS thread count (threads split rows and columns, never
 * k). So, per shape class:
 *   - the small kernel never takes m = 1 (n > 1200, n*k > 1e6 or k < 32):
 *     plain sgemm for every m;
 *   - it would take calls below m_min rows, and m_min rows of x fit in
 *     PAD_IN floats: a call below m_min rows runs sgemm on m_min rows (the
 *     real ones, zeros after), from a stack buffer, keeping the real rows;
 *   - else (a narrow layer, n up to ~40 with a large m_min, e.g. a score
 *     head's n = 1): a fixed-order dot product for every m (linear_dots),
 *     row-independent by construction and cheap at that width.
 */
#define SMALL_MNK 1000000.0
#define SMALL_MN 1200
#define SMALL_K 32
enum { PAD_IN = 16384, PAD_OUT = 2 * SMALL_MN };

/* Fewest rows the blocked kernel takes for (n, k); 1 when it takes every call. */
static size_t blocked_min_rows(size_t n, size_t k)
{
	if (k < SMALL_K || n > SMALL_MN || (double)n * (double)k > SMALL_MNK)
		return 1;
	size_t by_mn = SMALL_MN / n + 1;
	size_t by_mnk = (size_t)(SMALL_MNK / ((double)n * (double)k)) + 1;
	return by_mn < by_mnk ? by_mn : by_mnk;
}

/*
 * GEMMs below RWD_NN_MT_MIN_MACS multiply-adds run on one BLAS thread
 * whatever the process-wide count: waking OpenBLAS's pool for them gains
 * nothing (nn.c's table: a 1x768 -> 1024 head 9.0 against 9.5 GFLOP/s,
 * attention 77x64x77 60 against 72), and a woken pool thread then spins
 * for OpenBLAS's thread timeout (2^28 cycles, ~0.1 s) on the core the HTTP
 * threads need. So a model whose GEMMs are all small (an MLP head at small
 * batches) never wakes the pool, and the default can give BLAS every core
 * for the heavy models (CLIP, seqcls: 25M+ MAC GEMMs, ~2x faster on 2
 * threads). The count is lowered around the call and restored from
 * OpenBLAS's own setting (rwd_nn_serial_begin/end), so lib/ keeps no
 * state. A count above 1 implies at most one worker that runs threaded
 * GEMMs (the threading model below); serial workers beside it (mlp heads)
 * lower and restore the count concurrently, which nn.h shows is benign.
 * Row results do not depend on the thread count (test_nn.c).
 */
#define RWD_NN_MT_MIN_MACS (16.0 * 1024 * 1024)

static void sgemm_sized(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, size_t m, size_t n,
	size_t k, float alpha, const float *a, size_t lda, const float *b, size_t ldb, float beta,
	float *c, size_t ldc)
{
	const int small = (double)m * (double)n * (double)k < RWD_NN_MT_MIN_MACS;
	const int saved = small ? rwd_nn_serial_begin() : 0;
	cblas_sgemm(CblasRowMajor, ta, tb, BI(m), BI(n), BI(k), alpha, a, BI(lda), b, BI(ldb),
		beta, c, BI(ldc));
	if (small)
		rwd_nn_serial_end(saved);
}

static void gemm_rows(const float *x, size_t m, size_t k, size_t ldx,
	const float *w, const float *b, size_t n, float *y, size_t ldy)
{
	float beta = 0.0f;
	if (b) {
		/* y starts as the bias and the GEMM adds onto it (beta = 1), as addmm does */
		for (size_t i = 0; i < m; i++)
			memcpy(y + i * ldy, b, n * sizeof(*y));
		beta = 1.0f;
	}
	/* w is [n, k] row-major = w^T [k, n] read through CblasTrans: no copy */
	sgemm_sized(CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, ldx, w, k, beta, y, ldy);
}

/* m < mr rows through an mr-row sgemm; mr * k <= PAD_IN, mr * n <= PAD_OUT. */
__attribute__((noinline))
static void gemm_padded(const float *x, size_t m, size_t k, size_t ldx,
	const float *w, const float *b, size_t n, float *y, size_t ldy, size_t mr)
{
	float xp[PAD_IN], yp[PAD_OUT];
	for (size_t i = 0; i < m; i++)
		memcpy(xp + i * k, x + i * ldx, k * sizeof(*xp));
	memset(xp + m * k, 0, (mr - m) * k * sizeof(*xp));
	gemm_rows(xp, mr, k, k, w, b, n, yp, n);
	for (size_t i = 0; i < m; i++)
		memcpy(y + i * ldy, yp + i * n, n * sizeof(*y));
}

/* y[i, j] = b[j] + x_i . w_j, eight partial sums in a fixed order: no BLAS. */
RWD_NN_CLONES
static void linear_dots(const float *x, size_t m, size_t k, size_t ldx,
	const float *w, const float *b, size_t n, float *y, size_t ldy)
{
	for (size_t i = 0; i < m; i++) {
		const float *xr = x + i * ldx;
		for (size_t j = 0; j < n; j++) {
			const float *wr = w + j * k;
			float acc[8] = { 0 };
			size_t p = 0;
			for (; p + 8 <= k; p += 8)
				for (int l = 0; l < 8; l++)
					acc[l] += xr[p + l] * wr[p + l];
			float t = 0.0f;
			for (; p < k; p++)
				t += xr[p] * wr[p];
			const float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
				((acc[4] + acc[5]) + (acc[6] + acc[7])) + t;
			y[i * ldy + j] = b ? b[j] + s : s;
		}
	}
}

void rwd_nn_linear(const float *x, size_t m, size_t k, size_t ldx,
	const float *w, const float *b, size_t n, float *y, size_t ldy)
{
	if (!ldx)
		ldx = k;
	if (!ldy)
		ldy = n;
	if (m == 0 || n == 0)
		return;
	if (k == 0) {
		for (size_t i = 0; i < m; i++) {
			if (b)
				memcpy(y + i * ldy, b, n * sizeof(*y));
			else
				memset(y + i * ldy, 0, n * sizeof(*y));
		}
		return;
	}
	const size_t mr = blocked_min_rows(n, k);
	if (mr == 1 || m >= mr) {
		if (mr == 1 || mr * k <= PAD_IN)
			gemm_rows(x, m, k, ldx, w, b, n, y, ldy);
		else
			linear_dots(x, m, k, ldx, w, b, n, y, ldy);
	} else if (mr * k <= PAD_IN) {
		gemm_padded(x, m, k, ldx, w, b, n, y, ldy, mr);
	} else {
		linear_dots(x, m, k, ldx, w, b, n, y, ldy);
	}
}


/*
 * exp(x): x = k ln2 + r with |r| <= ln2/2 (Cody–Waite split of ln2 so k*hi
 * is exact), exp(r) by its degree-7 Taylor polynomial (truncation < 6e-9),
 * 2^k written into the exponent bits. Within 2 ulp of expf. x is clamped to
 * [-87, 88]: exp(-87) ~ 1.6e-38 stands in for underflow, exp(88) ~ 1.7e38
 * for overflow — both vanish in the 1 / (1 + e) and sum-of-exp uses here.
 */
static inline float vexpf(float x)
{
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	const float round = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
	float kf = x * 1.44269504088896341f + round;
	kf -= round;
	float r = x - kf * 0.693145751953125f; /* ln2 high part: 15 bits, k * hi exact */
	r = r - kf * 1.42860682030941723e-6f;  /* ln2 - high */
	float p = 1.0f / 5040.0f;
	p = p * r + 1.0f / 720.0f;
	p = p * r + 1.0f / 120.0f;
	p = p * r + 1.0f / 24.0f;
	p = p * r + 1.0f / 6.0f;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	union { uint32_t u; float f; } scale = { .u = (uint32_t)((int32_t)kf + 127) << 23 };
	return p * scale.f;
}

/*
 * erfc(z) for z >= 0, relative error ~2e-7: erfc(z) = t exp(-z^2 + g(t)),
 * t = 1 / (1 + z/2), with g a degree-9 polynomial fitted for this file
 * (Chebyshev least squares of ln(erfc(z)) + z^2 - ln(t) over z in [0, 10],
 * relative error 4.8e-8 in double). Beyond z = 10 erfc < 3e-45: the clamp
 * returns ~1e-39, zero for any use here.
 */
static inline float verfcf_pos(float z)
{
	z = z > 10.0f ? 10.0f : z;
	const float t = 1.0f / (1.0f + 0.5f * z);
	float g = 0.14493021386719573f;
	g = g * t - 0.6808271785849919f;
	g = g * t + 1.1567337590214837f;
	g = g * t - 0.6962519014313759f;
	g = g * t - 0.08028043010779218f;
	g = g * t + 0.0012675852794274967f;
	g = g * t + 0.034602800367867115f;
	g = g * t + 0.38664041207488253f;
	g = g * t + 0.998632783346653f;
	g = g * t - 1.2654479969020647f;
	return t * vexpf(g - z * z);
}

/* Mean and biased variance of one row: two passes, eight double lanes. */
static void row_moments(const float *x, size_t n, double *mean, double *var)
{
	double acc[8] = { 0 };
	size_t j = 0;
	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += x[j + l];
	double s = 0;
	for (; j < n; j++)
		s += x[j];
	for (int l = 0; l < 8; l++)
		s += acc[l];
	const double mu = s / (double)n;
	for (int l = 0; l < 8; l++)
		acc[l] = 0;
	for (j = 0; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++) {
			double d = x[j + l] - mu;
			acc[l] += d * d;
		}
	s = 0;
	for (; j < n; j++) {
		double d = x[j] - mu;
		s += d * d;
	}
	for (int l = 0; l < 8; l++)
		s += acc[l];
	*mean = mu;
	*var = s / (double)n;
}

static double row_sumsq(const float *x, size_t n)
{
	double acc[8] = { 0 };
	size_t j = 0;
	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += (double)x[j + l] * x[j + l];
	double s = 0;
	for (; j < n; j++)
		s += (double)x[j] * x[j];
	for (int l = 0; l < 8; l++)
		s += acc[l];
	return s;
}

RWD_NN_CLONES
void rwd_nn_layernorm(const float *x, size_t m, size_t n, const float *g, const float *b,
	float eps, float *y)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < m; i++) {
		const float *xr = x + i * n;
		float *yr = y + i * n;
		double mu, var;
		row_moments(xr, n, &mu, &var);
		const float mean = (float)mu;
		const float rstd = (float)(1.0 / sqrt(var + (double)eps));
		if (g && b) {
			for (size_t j = 0; j < n; j++)
				yr[j] = (xr[j] - mean) * rstd * g[j] + b[j];
		} else {
			for (size_t j = 0; j < n; j++) {
				float v = (xr[j] - mean) * rstd;
				yr[j] = (g ? v * g[j] : v) + (b ? b[j] : 0.0f);
			}
		}
	}
}

RWD_NN_CLONES
void rwd_nn_rmsnorm(const float *x, size_t m, size_t n, const float *w, float eps, float *y)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < m; i++) {
		const float *xr = x + i * n;
		float *yr = y + i * n;
		const float r = (float)(1.0 / sqrt(row_sumsq(xr, n) / (double)n + (double)eps));
		/* HF order: w * (x * r), each product rounded to float */
		if (w)
			for (size_t j = 0; j < n; j++)
				yr[j] = w[j] * (xr[j] * r);
		else
			for (size_t j = 0; j < n; j++)
				yr[j] = xr[j] * r;
	}
}

/* Softmax of one row of n > 0 floats, in place. */
static inline void softmax_row(float *x, size_t n)
{
	float mx = x[0];
	for (size_t j = 1; j < n; j++)
		mx = x[j] > mx ? x[j] : mx;
	if (mx == -INFINITY) {
		/* every entry masked: torch yields NaN; give a uniform row instead of poison */
		for (size_t j = 0; j < n; j++)
			x[j] = 1.0f / (float)n;
		return;
	}
	for (size_t j = 0; j < n; j++)
		x[j] = vexpf(x[j] - mx);
	/* every term is in (0, 1]: eight float lanes, then double, lose < 1e-7 for rows < 1e5 */
	float acc[8] = { 0 };
	size_t j = 0;
	for (; j + 8 <= n; j += 8)
		for (int l = 0; l < 8; l++)
			acc[l] += x[j + l];
	double sum = 0;
	for (; j < n; j++)
		sum += x[j];
	for (int l = 0; l < 8; l++)
		sum += acc[l];
	const float inv = (float)(1.0 / sum);
	for (j = 0; j < n; j++)
		x[j] *= inv;
}

RWD_NN_CLONES
void rwd_nn_softmax(float *x, size_t m, size_t n)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < m; i++)
		softmax_row(x + i * n, n);
}

RWD_NN_CLONES
void rwd_nn_gelu_erf(float *x, size_t n)
{
	/* x Phi(x), Phi(x) = erfc(-x/sqrt2) / 2: for x < 0 straight from erfc (no
	 * 1 + erf cancellation in the tail), for x >= 0 as 1 - erfc(x/sqrt2) / 2 */
	for (size_t i = 0; i < n; i++) {
		const float v = x[i];
		const float e = 0.5f * verfcf_pos(fabsf(v) * (float)M_SQRT1_2);
		x[i] = v * (v < 0.0f ? e : 1.0f - e);
	}
}

RWD_NN_CLONES
void rwd_nn_gelu_tanh(float *x, size_t n)
{
	/* 0.5 x (1 + tanh(u)) == x / (1 + exp(-2u)): same value, no cancellation for x < 0 */
	const float c = (float)(2.0 * 0.7978845608028654); /* 2 sqrt(2/pi) */
	for (size_t i = 0; i < n; i++) {
		const float v = x[i];
		const float u = c * (v + 0.044715f * v * v * v);
		x[i] = v / (1.0f + vexpf(-u));
	}
}

RWD_NN_CLONES
void rwd_nn_quick_gelu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + vexpf(-1.702f * x[i]));
}

RWD_NN_CLONES
void rwd_nn_silu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] / (1.0f + vexpf(-x[i]));
}

void rwd_nn_relu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN passes through, as in torch */
}

RWD_NN_CLONES
void rwd_nn_swiglu(float *gate, const float *up, size_t n)
{
	for (size_t i = 0; i < n; i++)
		gate[i] = gate[i] / (1.0f + vexpf(-gate[i])) * up[i];
}

size_t rwd_nn_attention_scratch(const rwd_nn_attn *p)
{
	return p->t * p->t;
}

RWD_NN_CLONES
void rwd_nn_attention(const rwd_nn_attn *p, const float *q, const float *k, const float *v,
	float *out, float *scratch)
{
	const size_t t = p->t, d = p->head_dim;
	if (t == 0 || d == 0 || p->n_heads == 0)
		return;
	const size_t n_kv = p->n_kv_heads ? p->n_kv_heads : p->n_heads;
	const size_t group = p->n_heads / n_kv;
	const size_t ldq = p->ldq ? p->ldq : p->n_heads * d;
	const size_t ldk = p->ldk ? p->ldk : n_kv * d;
	const size_t ldv = p->ldv ? p->ldv : n_kv * d;
	const size_t ldo = p->ldo ? p->ldo : p->n_heads * d;
	float *s = scratch; /* [t, t] scores, then probabilities, of one head */
	/*
	 * Causal attention goes in blocks of query rows: rows [r0, r1) need only
	 * keys [0, r1), so the masked upper triangle is mostly never computed
	 * (t = 1024: 56% of the multiply-adds); bidirectional is one block.
	 */
	const size_t block = p->causal ? 128 : t;

	for (size_t h = 0; h < p->n_heads; h++) {
		const size_t g = h / group; /* repeat_interleave: heads [g*group, (g+1)*group) share kv g */
		for (size_t r0 = 0; r0 < t; r0 += block) {
			const size_t r1 = t - r0 < block ? t : r0 + block, rows = r1 - r0;
			float *sb = s + r0 * t; /* [rows, r1] with row stride t */
			/* sb = scale * q_h[r0:r1, d] . k_g[0:r1, d]^T */
			sgemm_sized(CblasNoTrans, CblasTrans, rows, r1, d, p->scale,
				q + r0 * ldq + h * d, ldq, k + g * d, ldk, 0.0f, sb, t);
			for (size_t i = r0; i < r1; i++) {
				float *row = sb + (i - r0) * t;
				const size_t nk = p->causal ? i + 1 : r1;
				softmax_row(row, nk);
				memset(row + nk, 0, (r1 - nk) * sizeof(*row));
			}
			/* out_h[r0:r1, d] = sb[rows, r1] . v_g[0:r1, d] */
			sgemm_sized(CblasNoTrans, CblasNoTrans, rows, d, r1, 1.0f, sb, t, v + g * d, ldv,
				0.0f, out + r0 * ldo + h * d, ldo);
		}
	}
}

void rwd_nn_rope_inv_freq(float theta, size_t head_dim, const rwd_nn_rope_scaling *scaling,
	float *inv_freq)
{
	const size_t half = head_dim / 2;
	for (size_t i = 0; i < half; i++) {
		/* as HF: exponent 2i/d rounded to float, theta^e, then 1/x in float */
		float e = (float)(2 * i) / (float)head_dim;
		float f = 1.0f / (float)pow((double)theta, (double)e);
		inv_freq[i] = f;
	}
	if (!scaling || !(scaling->factor > 0.0f))
		return;
	/*
	 * Llama 3 scaling (transformers' rope_type "llama3"): wavelengths longer
	 * than original_max / low_freq_factor are divided by `factor`, shorter
	 * than original_max / high_freq_factor kept, and in between blended
	 * linearly in original_max / wavelen.
	 */
	const double factor = scaling->factor;
	const double lo = scaling->low_freq_factor, hi = scaling->high_freq_factor;
	const double old_ctx = scaling->original_max_position;
	const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
	for (size_t i = 0; i < half; i++) {
		const double f = inv_freq[i];
		const double wavelen = 2.0 * M_PI / f;
		double r;
		if (wavelen < hi_wavelen) {
			r = f;
		} else if (wavelen > lo_wavelen) {
			r = f / factor;
		} else {
			double smooth = (old_ctx / wavelen - lo) / (hi - lo);
			r = (1.0 - smooth) * f / factor + smooth * f;
		}
		inv_freq[i] = (float)r;
	}
}

/* cos and sin of the angle pos * inv_freq, the angle rounded to float as HF's
 * float32 inv_freq @ positions; libm in double, so both are correctly rounded
 * (torch's float kernels are within an ulp). */
static inline void rope_cs(int32_t pos, float inv_freq, float *c, float *s)
{
	const float a = (float)pos * inv_freq;
	*c = (float)cos((double)a);
	*s = (float)sin((double)a);
}

/* rotate_half on one head: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) over n pairs. */
static inline void rope_rotate(float *x1, float *x2, const float *c, const float *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const float a1 = x1[i], a2 = x2[i];
		x1[i] = a1 * c[i] - a2 * s[i];
		x2[i] = a2 * c[i] + a1 * s[i];
	}
}

RWD_NN_CLONES
void rwd_nn_rope(float *x, size_t t, size_t n_heads, size_t head_dim, size_t ldx,
	const int32_t *pos, const float *inv_freq)
{
	enum { CHUNK = 64 };
	const size_t half = head_dim / 2;
	if (!ldx)
		ldx = n_heads * head_dim;
	float c[CHUNK], s[CHUNK];
	for (size_t r = 0; r < t; r++) {
		float *row = x + r * ldx;
		/* cos/sin once per (token, frequency), applied to every head */
		for (size_t i0 = 0; i0 < half; i0 += CHUNK) {
			const size_t nc = half - i0 < CHUNK ? half - i0 : CHUNK;
			for (size_t i = 0; i < nc; i++)
				rope_cs(pos[r], inv_freq[i0 + i], &c[i], &s[i]);
			for (size_t h = 0; h < n_heads; h++)
				rope_rotate(row + h * head_dim + i0, row + h * head_dim + i0 + half, c, s, nc);
		}
	}
}

void rwd_nn_rope_table(size_t t, size_t head_dim, const int32_t *pos, const float *inv_freq,
	float *cs)
{
	const size_t half = head_dim / 2;
	for (size_t r = 0; r < t; r++)
		for (size_t i = 0; i < half; i++)
			rope_cs(pos[r], inv_freq[i], &cs[r * head_dim + i], &cs[r * head_dim + half + i]);
}

RWD_NN_CLONES
void rwd_nn_rope_apply(float *x, size_t t, size_t n_heads, size_t head_dim, size_t ldx,
	const float *cs)
{
	const size_t half = head_dim / 2;
	if (!ldx)
		ldx = n_heads * head_dim;
	for (size_t r = 0; r < t; r++) {
		const float *c = cs + r * head_dim, *s = c + half;
		for (size_t h = 0; h < n_heads; h++) {
			float *x1 = x + r * ldx + h * head_dim;
			rope_rotate(x1, x1 + half, c, s, half);
		}
	}
}

int rwd_nn_serial_begin(void)
{
	const int saved = openblas_get_num_threads();
	if (saved > 1)
		openblas_set_num_threads(1);
	return saved;
}

void rwd_nn_serial_end(int saved)
{
	if (saved > 1)
		openblas_set_num_threads(saved);
}

int rwd_nn_blas_threads_for(int compute_workers)
{
	return compute_workers <= 1 ? rwd_cpu_count() : 1;
}

int rwd_nn_threading_init(int blas_threads, char *desc, size_t desc_size)
{
	if (blas_threads <= 0)
		blas_threads = rwd_cpu_count();
	openblas_set_num_threads(blas_threads);
	const int n = openblas_get_num_threads();
	if (desc && desc_size) {
		static const char *const modes[] = { "sequential", "pthread", "openmp" };
		const int par = openblas_get_parallel();
		const char *cfg = openblas_get_config(), *core = openblas_get_corename();
		snprintf(desc, desc_size, "%s; core %s; parallel %s; threads %d",
			cfg ? cfg : "OpenBLAS (no config)", core ? core : "unknown",
			par >= 0 && par <= 2 ? modes[par] : "unknown", n);
	}
	return n;
}
