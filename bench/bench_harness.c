/*
 * bench/bench_harness.c — the compute side of bench/: the machine's roofline
 * and the CLIP image tower at either precision. Not a test; every command
 * prints one JSON line for the Python benchmarks (bench/roofline.py,
 * bench/bench_clip_vision.py) and asserts nothing but result sanity.
 *
 *   bench-harness fma
 *       one core's vector FMA peak (AVX2 and AVX-512, 12 register-resident
 *       chains), and the same loop on every core at once.
 *   bench-harness gemm THREADS M N K ITERS
 *       y[M,N] = x[M,K] · w[N,K]^T three ways on the same data:
 *       OpenBLAS sgemm (rwd_nn_linear, the FP32 engine), oneDNN FP32 matmul
 *       (weights in the primitive's preferred layout, reordered once) and
 *       oneDNN BF16 (lib/nn/bf16.c, the opt-in engine; "null" without
 *       AVX512_BF16). GFLOP/s each, best of ITERS.
 *   bench-harness clip MODEL_DIR THREADS BATCH ITERS fp32|bf16
 *       images/s of the image tower (rwd_clip_encode_images) on random
 *       preprocessed pixels, mean of ITERS batches after a warm-up.
 *
 * THREADS goes to rwd_nn_threading_init (OpenBLAS) and, for oneDNN, to its
 * OpenMP team (omp_set_num_threads), the same rule the daemon uses.
 */
#include "core/error.h"
#include "core/thread.h"
#include "models/clip.h"
#include "models/model.h"
#include "nn/bf16.h"
#include "nn/nn.h"

#include <immintrin.h>
#include <jansson.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const rwd_error *e)
{
	char buf[512];
	fprintf(stderr, "bench-harness: %s: %s\n", what, e ? rwd_error_format(e, buf, sizeof(buf)) : "failed");
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory", NULL);
	return p;
}

/* ---- FMA peak ----------------------------------------------------------
 * 12 independent accumulators in named variables so they stay in registers
 * (an accumulator array compiles to load-FMA-store per step and measures
 * store forwarding, about half the peak). 12 chains cover a 4-cycle FMA
 * latency on 2 pipes with room to spare; the empty asm keeps every
 * accumulator opaque so nothing is folded. */
#define FMA_BODY(T, SET1, FMADD, ADD, STORE, LANES)                                      \
	const T b = SET1(0.999999f), c = SET1(1e-7f);                                     \
	T a0 = SET1(0.0f), a1 = SET1(1.0f), a2 = SET1(2.0f), a3 = SET1(3.0f);             \
	T a4 = SET1(4.0f), a5 = SET1(5.0f), a6 = SET1(6.0f), a7 = SET1(7.0f);             \
	T a8 = SET1(8.0f), a9 = SET1(9.0f), a10 = SET1(10.0f), a11 = SET1(11.0f);         \
	uint64_t t0 = rwd_now_ns();                                                        \
	for (size_t it = 0; it < iters; it++) {                                            \
		a0 = FMADD(a0, b, c); a1 = FMADD(a1, b, c); a2 = FMADD(a2, b, c);          \
		a3 = FMADD(a3, b, c); a4 = FMADD(a4, b, c); a5 = FMADD(a5, b, c);          \
		a6 = FMADD(a6, b, c); a7 = FMADD(a7, b, c); a8 = FMADD(a8, b, c);          \
		a9 = FMADD(a9, b, c); a10 = FMADD(a10, b, c); a11 = FMADD(a11, b, c);      \
		__asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4),    \
			"+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11)); \
	}                                                                                  \
	double sec = (double)(rwd_now_ns() - t0) / 1e9;                                    \
	T sum = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));         \
	sum = ADD(sum, ADD(ADD(a8, a9), ADD(a10, a11)));                                   \
	float sink[16];                                                                    \
	STORE(sink, sum);                                                                  \
	if (sink[0] == 12345.0f)                                                           \
		puts("");                                                                  \
	return (double)iters * 12 * (LANES) * 2 / sec / 1e9;

__attribute__((target("avx2,fma"))) static double fma_avx2(size_t iters)
{
	FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}

__attribute__((target("avx512f"))) static double fma_avx512(size_t iters)
{
	FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}

struct fma_job {
	int avx512;
	size_t iters;
	double gflops;
};

static void *fma_thread(void *arg)
{
	struct fma_job *j = arg;
	j->gflops = j->avx512 ? fma_avx512(j->iters) : fma_avx2(j->iters);
	return NULL;
}

/* The loop on n threads at once: the all-cores peak is the sum of their rates. */
static double fma_all(int avx512, int n, size_t iters)
{
	pthread_t th[256];
	struct fma_job jobs[256];
	double sum = 0;
	if (n > 256)
		n = 256;
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct fma_job){avx512, iters, 0};
		if (pthread_create(&th[i], NULL, fma_thread, &jobs[i]))
			die("pthread_create", NULL);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		sum += jobs[i].gflops;
	}
	return sum;
}

static int cmd_fma(void)
{
	const size_t iters = 40u * 1000u * 1000u;
	__builtin_cpu_init();
	const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	const int avx512 = __builtin_cpu_supports("avx512f");
	const int cores = rwd_cpu_count();
	/* best of 7 runs of ~0.1 s each: a peak is the best rate seen, and the
	 * first runs pay for frequency ramp-up and the 512-bit units' wake-up
	 * (a single run gave 37 GFLOP/s AVX2 and 80 AVX-512 where the best of
	 * several gave 110 for both on this machine) */
	double g2 = 0, g5 = 0, all = 0;
	for (int rep = 0; rep < 7; rep++) {
		double a = avx2 ? fma_avx2(iters) : 0, b = avx512 ? fma_avx512(iters) : 0;
		double c = avx512 ? fma_all(1, cores, iters) : avx2 ? fma_all(0, cores, iters) : 0;
		g2 = a > g2 ? a : g2;
		g5 = b > g5 ? b : g5;
		all = c > all ? c : all;
	}
	printf("{\"fma_gflops_per_core\": %.2f, \"avx2_gflops_per_core\": %.2f, "
		"\"avx512_gflops_per_core\": %.2f, \"all_cores_gflops\": %.2f, \"cores\": %d}\n",
		g5 > g2 ? g5 : g2, g2, g5, all, cores);
	return 0;
}

/* ---- GEMM rates --------------------------------------------------------- */

#define DNNL_OK(call)                                                                      \
	do {                                                                               \
		if ((call) != dnnl_success) {                                              \
			fprintf(stderr, "bench-harness: %s failed\n", #call);              \
			exit(1);                                                           \
		}                                                                          \
	} while (0)

/* oneDNN FP32 matmul y = x · w^T with w reordered once into the layout the
 * primitive prefers (format "any"): what an FP32 oneDNN engine would run. */
static double onednn_f32(const float *x, const float *w, float *y, size_t M, size_t N, size_t K,
	int iters)
{
	dnnl_engine_t eng;
	dnnl_stream_t st;
	DNNL_OK(dnnl_engine_create(&eng, dnnl_cpu, 0));
	DNNL_OK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
	dnnl_dims_t xd = {(dnnl_dim_t)M, (dnnl_dim_t)K}, wd = {(dnnl_dim_t)K, (dnnl_dim_t)N},
		    yd = {(dnnl_dim_t)M, (dnnl_dim_t)N};
	dnnl_dims_t ws = {1, (dnnl_dim_t)K}; /* w^T as a [K, N] view of the [N, K] rows */
	dnnl_memory_desc_t xm, wm_user, wm_any, ym;
	DNNL_OK(dnnl_memory_desc_init_by_tag(&xm, 2, xd, dnnl_f32, dnnl_ab));
	DNNL_OK(dnnl_memory_desc_init_by_strides(&wm_user, 2, wd, dnnl_f32, ws));
	DNNL_OK(dnnl_memory_desc_init_by_tag(&wm_any, 2, wd, dnnl_f32, dnnl_format_tag_any));
	DNNL_OK(dnnl_memory_desc_init_by_tag(&ym, 2, yd, dnnl_f32, dnnl_ab));
	dnnl_matmul_desc_t md;
	DNNL_OK(dnnl_matmul_desc_init(&md, &xm, &wm_any, NULL, &ym));
	dnnl_primitive_desc_t pd;
	DNNL_OK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
	const dnnl_memory_desc_t *wm_pref = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	dnnl_memory_t xmem, wu, wp, ymem;
	DNNL_OK(dnnl_memory_create(&xmem, &xm, eng, (void *)x));
	DNNL_OK(dnnl_memory_create(&wu, &wm_user, eng, (void *)w));
	DNNL_OK(dnnl_memory_create(&wp, wm_pref, eng, DNNL_MEMORY_ALLOCATE));
	DNNL_OK(dnnl_memory_create(&ymem, &ym, eng, y));
	dnnl_primitive_desc_t rpd;
	DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &wm_user, eng, wm_pref, eng, NULL));
	dnnl_primitive_t rp;
	DNNL_OK(dnnl_primitive_create(&rp, rpd));
	dnnl_exec_arg_t rargs[] = {{DNNL_ARG_FROM, wu}, {DNNL_ARG_TO, wp}};
	DNNL_OK(dnnl_primitive_execute(rp, st, 2, rargs));
	DNNL_OK(dnnl_stream_wait(st));
	dnnl_primitive_t mp;
	DNNL_OK(dnnl_primitive_create(&mp, pd));
	dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, xmem}, {DNNL_ARG_WEIGHTS, wp}, {DNNL_ARG_DST, ymem}};
	double best = 1e30;
	for (int it = -1; it < iters; it++) { /* it -1: warm-up */
		uint64_t t0 = rwd_now_ns();
		DNNL_OK(dnnl_primitive_execute(mp, st, 3, args));
		DNNL_OK(dnnl_stream_wait(st));
		double s = (double)(rwd_now_ns() - t0) / 1e9;
		if (it >= 0 && s < best)
			best = s;
	}
	dnnl_primitive_destroy(mp);
	dnnl_primitive_destroy(rp);
	dnnl_primitive_desc_destroy(rpd);
	dnnl_primitive_desc_destroy(pd);
	dnnl_memory_destroy(xmem);
	dnnl_memory_destroy(wu);
	dnnl_memory_destroy(wp);
	dnnl_memory_destroy(ymem);
	dnnl_stream_destroy(st);
	dnnl_engine_destroy(eng);
	return 2.0 * (double)M * (double)N * (double)K / best / 1e9;
}

static double bf16_rate(const float *x, const float *w, float *y, size_t M, size_t N, size_t K,
	int threads, int iters)
{
	rwd_error err;
	rwd_error_clear(&err);
	if (rwd_bf16_supported(&err))
		return -1;
	rwd_bf16_params p = rwd_bf16_default_params();
	p.threads = threads;
	rwd_bf16 *b = NULL;
	const rwd_bf16_linear *l = NULL;
	rwd_bf16_scratch *s = NULL;
	if (rwd_bf16_new(&p, &b, &err) || rwd_bf16_add_linear(b, w, NULL, N, K, RWD_BF16_ACT_NONE, &l, &err) ||
		rwd_bf16_scratch_new(b, &s, &err))
		die("bf16", &err);
	double best = 1e30;
	for (int it = -1; it < iters; it++) {
		uint64_t t0 = rwd_now_ns();
		if (rwd_bf16_linear_run(l, s, x, M, 0, y, 0))
			die("bf16 run", NULL);
		double sec = (double)(rwd_now_ns() - t0) / 1e9;
		if (it >= 0 && sec < best)
			best = sec;
	}
	rwd_bf16_scratch_free(s);
	rwd_bf16_free(b);
	return 2.0 * (double)M * (double)N * (double)K / best / 1e9;
}

static int cmd_gemm(char **argv)
{
	char desc[256];
	int threads = rwd_nn_threading_init(atoi(argv[0]), desc, sizeof(desc));
	omp_set_num_threads(threads);
	size_t M = (size_t)atol(argv[1]), N = (size_t)atol(argv[2]), K = (size_t)atol(argv[3]);
	int iters = atoi(argv[4]);
	float *x = xmalloc(M * K * sizeof(float)), *w = xmalloc(N * K * sizeof(float));
	float *y = xmalloc(M * N * sizeof(float));
	unsigned seed = 7;
	for (size_t i = 0; i < M * K; i++) {
		seed = seed * 1103515245u + 12345u;
		x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	for (size_t i = 0; i < N * K; i++) {
		seed = seed * 1103515245u + 12345u;
		w[i] = ((float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f) * 0.05f;
	}
	double best = 1e30;
	for (int it = -1; it < iters; it++) {
		uint64_t t0 = rwd_now_ns();
		rwd_nn_linear(x, M, K, 0, w, NULL, N, y, 0);
		double s = (double)(rwd_now_ns() - t0) / 1e9;
		if (it >= 0 && s < best)
			best = s;
	}
	double sg = 2.0 * (double)M * (double)N * (double)K / best / 1e9;
	double f32 = onednn_f32(x, w, y, M, N, K, iters);
	double bf = bf16_rate(x, w, y, M, N, K, threads, iters);
	char bfs[32];
	if (bf < 0)
		snprintf(bfs, sizeof(bfs), "null");
	else
		snprintf(bfs, sizeof(bfs), "%.2f", bf);
	printf("{\"m\": %zu, \"n\": %zu, \"k\": %zu, \"threads\": %d, \"sgemm_gflops\": %.2f, "
		"\"onednn_f32_gflops\": %.2f, \"onednn_bf16_gflops\": %s, \"bf16_isa\": \"%s\", "
		"\"blas\": \"%s\"}\n",
		M, N, K, threads, sg, f32, bfs, rwd_bf16_isa_name(), desc);
	free(x);
	free(w);
	free(y);
	return 0;
}

/* ---- CLIP image tower ---------------------------------------------------- */

static int cmd_clip(char **argv)
{
	char desc[256];
	int threads = rwd_nn_threading_init(atoi(argv[1]), desc, sizeof(desc));
	omp_set_num_threads(threads);
	size_t batch = (size_t)atol(argv[2]), iters = (size_t)atol(argv[3]);
	const char *precision = argv[4];
	rwd_error err;
	rwd_error_clear(&err);
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = batch;
	json_t *opts = json_pack("{s:s}", "precision", precision);
	rwd_clip *m = NULL;
	void *scratch = NULL;
	if (!opts || rwd_clip_load(argv[0], opts, &lim, &m, &err))
		die("load", &err);
	json_decref(opts);
	if (rwd_clip_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	const size_t S = (size_t)rwd_clip_image_size(m), D = rwd_clip_projection_dim(m);
	float *px = xmalloc(batch * 3 * S * S * sizeof(float));
	float *out = xmalloc(batch * D * sizeof(float));
	const float **pp = xmalloc(batch * sizeof(*pp));
	unsigned seed = 1;
	for (size_t i = 0; i < batch * 3 * S * S; i++) {
		seed = seed * 1103515245u + 12345u;
		px[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	for (size_t i = 0; i < batch; i++)
		pp[i] = px + i * 3 * S * S;
	rwd_clip_encode_images(m, scratch, pp, batch, out); /* warm-up */
	uint64_t t0 = rwd_now_ns();
	for (size_t it = 0; it < iters; it++)
		rwd_clip_encode_images(m, scratch, pp, batch, out);
	double sec = (double)(rwd_now_ns() - t0) / 1e9 / (double)iters;
	for (size_t i = 0; i < batch * D; i++)
		if (out[i] != out[i])
			die("NaN in the image embeddings", NULL);
	printf("{\"batch\": %zu, \"threads\": %d, \"precision\": \"%s\", \"images_per_s\": %.3f, "
		"\"blas\": \"%s\"}\n",
		batch, threads, precision, (double)batch / sec, desc);
	free(px);
	free(out);
	free(pp);
	rwd_clip_scratch_free(scratch);
	rwd_clip_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "fma") == 0)
		return cmd_fma();
	if (argc == 7 && strcmp(argv[1], "gemm") == 0)
		return cmd_gemm(argv + 2);
	if (argc == 7 && strcmp(argv[1], "clip") == 0)
		return cmd_clip(argv + 2);
	fprintf(stderr, "usage: bench-harness fma | gemm THREADS M N K ITERS | "
			"clip MODEL_DIR THREADS BATCH ITERS fp32|bf16\n");
	return 2;
}
