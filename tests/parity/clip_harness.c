/*
 * tests/parity/clip_harness.c — drives the clip kind for test_clip_torch.py.
 *
 *   clip_harness embed MODEL PIXELS N IDS OUT_IMG OUT_TXT [OPTIONS]
 *       PIXELS: N preprocessed images, float32 [N, 3, S, S]; IDS: one text per
 *       line, space-separated token ids. Writes the projected embeddings,
 *       float32 [N, D] and [texts, D]. Batch capacity = max(N, texts).
 *   clip_harness tokenize MODEL TEXTS OUT
 *       TEXTS: JSON array of strings; OUT: JSON array of id arrays (the
 *       model's tokenizer, truncated to the context length).
 *   clip_harness score MODEL OPTIONS ITEMS OUT
 *       OPTIONS: the kind options as JSON (or "null"); ITEMS: JSON array of
 *       items, run as ONE batch through rwd_model_run; OUT: JSON array of
 *       {"status": code, "error": msg, "scores": {dim: value}} per item.
 *   clip_harness bench MODEL THREADS BATCH ITERS   (bench/bench_clip_vision.py)
 *       image tower throughput on random pixels: prints one JSON line.
 *   clip_harness sgemm THREADS M N K ITERS
 *       GFLOP/s of rwd_nn_linear on [M, K] x [N, K]^T: prints one JSON line.
 *   clip_harness fma
 *       FMA peak (GFLOP/s): one core with AVX2 and with AVX-512 (0 when the CPU
 *       lacks it), and every core at once: one JSON line.
 * Exit 0, or 1 with a message on stderr.
 */
#include "core/arena.h"
#include "core/thread.h"
#include "models/clip.h"
#include "models/model.h"
#include "nn/nn.h"
#include "text/tokenizer.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const rwd_error *err)
{
	char buf[1024];
	fprintf(stderr, "%s: %s\n", what, err ? rwd_error_format(err, buf, sizeof(buf)) : "failed");
	exit(1);
}

static void *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)len + 1);
	if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		buf[len] = 0;
	*n = (size_t)len;
	return buf;
}

static int cmd_embed(char **argv)
{
	const char *dir = argv[0];
	size_t n_img = (size_t)atol(argv[2]), nb;
	char *ids_txt = read_file(argv[3], &nb);
	if (!ids_txt)
		die("cannot read ids", NULL);
	/* parse the id lines */
	size_t n_txt = 0, cap_ids = 1024, n_all = 0;
	int32_t *all = malloc(cap_ids * sizeof(*all));
	size_t *lens = calloc(nb + 1, sizeof(*lens));
	char *save = NULL;
	for (char *line = strtok_r(ids_txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t len = 0;
		for (char *p = line; *p;) {
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (n_all == cap_ids)
				all = realloc(all, (cap_ids *= 2) * sizeof(*all));
			all[n_all++] = (int32_t)v;
			len++;
			p = end;
		}
		lens[n_txt++] = len;
	}
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = n_img > n_txt ? n_img : n_txt;
	if (!lim.max_batch_size)
		lim.max_batch_size = 1;
	rwd_error err;
	rwd_error_clear(&err);
	rwd_clip *m = NULL;
	json_error_t jerr;
	json_t *opts = argv[6] ? json_loads(argv[6], JSON_DECODE_ANY, &jerr) : NULL;
	if (argv[6] && !opts)
		die("bad OPTIONS json", NULL);
	if (rwd_clip_load(dir, json_is_object(opts) ? opts : NULL, &lim, &m, &err))
		die("load", &err);
	json_decref(opts);
	void *scratch = NULL;
	if (rwd_clip_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	const size_t S = (size_t)rwd_clip_image_size(m), D = rwd_clip_projection_dim(m);
	size_t px_bytes;
	float *px = read_file(argv[1], &px_bytes);
	if (!px || px_bytes != n_img * 3 * S * S * sizeof(float))
		die("pixel file has the wrong size", NULL);
	const float **pp = malloc((n_img + 1) * sizeof(*pp));
	for (size_t i = 0; i < n_img; i++)
		pp[i] = px + i * 3 * S * S;
	float *ie = malloc((n_img * D + 1) * sizeof(float));
	rwd_clip_encode_images(m, scratch, pp, n_img, ie);
	const int32_t **ip = malloc((n_txt + 1) * sizeof(*ip));
	for (size_t i = 0, off = 0; i < n_txt; off += lens[i], i++)
		ip[i] = all + off;
	float *te = malloc((n_txt * D + 1) * sizeof(float));
	if (rwd_clip_encode_texts(m, scratch, ip, lens, n_txt, te))
		die("encode_texts rejected the ids", NULL);
	FILE *f = fopen(argv[4], "wb");
	fwrite(ie, sizeof(float), n_img * D, f);
	fclose(f);
	f = fopen(argv[5], "wb");
	fwrite(te, sizeof(float), n_txt * D, f);
	fclose(f);
	free(te);
	free(ip);
	free(ie);
	free(pp);
	free(px);
	free(all);
	free(lens);
	free(ids_txt);
	rwd_clip_scratch_free(scratch);
	rwd_clip_free(m);
	return 0;
}

static int cmd_tokenize(char **argv)
{
	rwd_error err;
	rwd_error_clear(&err);
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = 1;
	rwd_clip *m = NULL;
	if (rwd_clip_load(argv[0], NULL, &lim, &m, &err))
		die("load", &err);
	rwd_tokenizer *tok = NULL;
	if (rwd_tokenizer_load_dir(argv[0], RWD_TOKENIZER_CLIP, NULL, &tok, &err))
		die("tokenizer", &err);
	json_error_t jerr;
	json_t *texts = json_load_file(argv[1], 0, &jerr);
	json_t *out = json_array();
	rwd_arena *a = rwd_arena_create(0, 0);
	size_t i;
	json_t *t;
	json_array_foreach(texts, i, t) {
		rwd_encode_params ep = rwd_encode_default_params();
		ep.max_length = rwd_clip_context_length(m);
		rwd_token_ids ids;
		if (rwd_tokenizer_encode(tok, json_string_value(t), json_string_length(t), &ep, a, &ids,
			&err))
			die("encode", &err);
		json_t *arr = json_array();
		for (size_t k = 0; k < ids.n; k++)
			json_array_append_new(arr, json_integer(ids.ids[k]));
		json_array_append_new(out, arr);
	}
	json_dump_file(out, argv[2], 0);
	rwd_arena_destroy(a);
	json_decref(out);
	json_decref(texts);
	rwd_tokenizer_free(tok);
	rwd_clip_free(m);
	return 0;
}

static int cmd_score(char **argv)
{
	rwd_error err;
	rwd_error_clear(&err);
	json_error_t jerr;
	json_t *opts = json_loads(argv[1], JSON_DECODE_ANY, &jerr);
	json_t *items = json_load_file(argv[2], 0, &jerr);
	if (!items || !json_is_array(items))
		die("items file", NULL);
	size_t n = json_array_size(items);
	rwd_model_params p = rwd_model_default_params();
	p.name = "clip";
	p.kind = "clip";
	p.path = argv[0];
	p.options = json_is_null(opts) ? NULL : opts;
	p.limits.max_batch_size = n ? n : 1;
	rwd_model *m = NULL;
	if (rwd_model_load(&p, &m, &err))
		die("load", &err);
	void *scratch = NULL;
	if (rwd_model_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	rwd_item *its = calloc(n + 1, sizeof(*its));
	rwd_item **ptrs = calloc(n + 1, sizeof(*ptrs));
	for (size_t i = 0; i < n; i++) {
		its[i].input = json_array_get(items, i);
		its[i].index = i;
		ptrs[i] = &its[i];
		size_t cost;
		rwd_error_clear(&its[i].err);
		int r = rwd_model_check(m, its[i].input, &cost, &its[i].err);
		if (r)
			its[i].status = r;
	}
	/* only checked items go to the batch */
	rwd_item **ok = calloc(n + 1, sizeof(*ok));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!its[i].status)
			ok[k++] = &its[i];
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_model_run(m, scratch, ok, k, a);
	const rwd_model_info *info = rwd_model_get_info(m);
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "status", json_integer(its[i].status));
		if (its[i].status) {
			char buf[1024];
			json_object_set_new(o, "error",
				json_string(rwd_error_format(&its[i].err, buf, sizeof(buf))));
		}
		json_t *sc = json_object();
		for (size_t d = 0; d < info->n_dims; d++)
			if (!its[i].status && its[i].present[d])
				json_object_set_new(sc, info->dims[d], json_real(its[i].scores[d]));
		json_object_set_new(o, "scores", sc);
		json_array_append_new(out, o);
	}
	json_t *dims = json_array();
	for (size_t d = 0; d < info->n_dims; d++)
		json_array_append_new(dims, json_string(info->dims[d]));
	json_t *doc = json_pack("{s:o, s:o}", "items", out, "dims", dims);
	json_dump_file(doc, argv[3], 0);
	json_decref(doc);
	rwd_arena_destroy(a);
	free(ok);
	free(ptrs);
	free(its);
	rwd_model_scratch_free(m, scratch);
	rwd_model_free(m);
	json_decref(items);
	json_decref(opts);
	return 0;
}

static int cmd_bench(char **argv)
{
	char desc[256];
	int threads = rwd_nn_threading_init(atoi(argv[1]), desc, sizeof(desc));
	size_t batch = (size_t)atol(argv[2]), iters = (size_t)atol(argv[3]);
	rwd_error err;
	rwd_error_clear(&err);
	rwd_batch_limits lim = rwd_model_default_params().limits;
	lim.max_batch_size = batch;
	rwd_clip *m = NULL;
	void *scratch = NULL;
	if (rwd_clip_load(argv[0], NULL, &lim, &m, &err))
		die("load", &err);
	if (rwd_clip_scratch_new(m, &scratch, &err))
		die("scratch", &err);
	const size_t S = (size_t)rwd_clip_image_size(m), D = rwd_clip_projection_dim(m);
	float *px = malloc(batch * 3 * S * S * sizeof(float));
	float *out = malloc(batch * D * sizeof(float));
	const float **pp = malloc(batch * sizeof(*pp));
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
	printf("{\"batch\": %zu, \"threads\": %d, \"seconds_per_batch\": %.6f, \"images_per_s\": %.3f, \"blas\": \"%s\"}\n",
		batch, threads, sec, (double)batch / sec, desc);
	free(pp);
	free(out);
	free(px);
	rwd_clip_scratch_free(scratch);
	rwd_clip_free(m);
	return 0;
}

static int cmd_sgemm(char **argv)
{
	char desc[256];
	int threads = rwd_nn_threading_init(atoi(argv[0]), desc, sizeof(desc));
	size_t M = (size_t)atol(argv[1]), N = (size_t)atol(argv[2]), K = (size_t)atol(argv[3]);
	size_t iters = (size_t)atol(argv[4]);
	float *x = calloc(M * K, sizeof(float)), *w = calloc(N * K, sizeof(float));
	float *y = calloc(M * N, sizeof(float));
	for (size_t i = 0; i < M * K; i++)
		x[i] = (float)(i % 7) * 0.1f;
	for (size_t i = 0; i < N * K; i++)
		w[i] = (float)(i % 5) * 0.1f;
	rwd_nn_linear(x, M, K, 0, w, NULL, N, y, 0);
	uint64_t t0 = rwd_now_ns();
	for (size_t it = 0; it < iters; it++)
		rwd_nn_linear(x, M, K, 0, w, NULL, N, y, 0);
	double sec = (double)(rwd_now_ns() - t0) / 1e9 / (double)iters;
	printf("{\"m\": %zu, \"n\": %zu, \"k\": %zu, \"threads\": %d, \"gflops\": %.2f}\n", M, N,
		K, threads, 2.0 * (double)M * (double)N * (double)K / sec / 1e9);
	free(x);
	free(w);
	free(y);
	return 0;
}

/* 10 independent 8-lane FMA chains: enough to cover latency x ports on
 * Haswell..Zen; the result is one core's sustained FMA throughput. */
/*
 * FMA peak: 12 independent accumulator chains held in named variables, so
 * they live in registers (an array of accumulators was compiled to a load,
 * FMA and store per chain per step: store-forwarding latency, not the FMA
 * ports, set the rate, and the result read ~half the real peak). 12 chains
 * cover 4-cycle FMA latency x 2 FMA pipes with room to spare. The
 * empty asm makes each accumulator opaque so no step is folded.
 */
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

__attribute__((target("avx2,fma"))) static double fma_gflops_avx2(size_t iters)
{
	FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}

__attribute__((target("avx512f"))) static double fma_gflops_avx512(size_t iters)
{
	FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}

struct fma_job { int avx512; size_t iters; double gflops; };

static void *fma_thread(void *arg)
{
	struct fma_job *j = arg;
	j->gflops = j->avx512 ? fma_gflops_avx512(j->iters) : fma_gflops_avx2(j->iters);
	return NULL;
}

/* The same loop on `n` threads at once: the all-cores peak (sum of their rates). */
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
	const size_t iters = 20u * 1000u * 1000u;
	__builtin_cpu_init();
	const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	const int avx512 = __builtin_cpu_supports("avx512f");
	const int cores = rwd_cpu_count();
	double g2 = avx2 ? fma_gflops_avx2(iters) : 0, g5 = avx512 ? fma_gflops_avx512(iters) : 0;
	double all = avx512 ? fma_all(1, cores, iters) : avx2 ? fma_all(0, cores, iters) : 0;
	/* fma_gflops_per_core: the widest vector FMA this CPU has (the one sgemm uses) */
	printf("{\"fma_gflops_per_core\": %.2f, \"avx2_gflops_per_core\": %.2f, "
		"\"avx512_gflops_per_core\": %.2f, \"all_cores_gflops\": %.2f, \"cores\": %d}\n",
		g5 > g2 ? g5 : g2, g2, g5, all, cores);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 8 || argc == 9) && strcmp(argv[1], "embed") == 0)
		return cmd_embed(argv + 2);
	if (argc == 5 && strcmp(argv[1], "tokenize") == 0)
		return cmd_tokenize(argv + 2);
	if (argc == 6 && strcmp(argv[1], "score") == 0)
		return cmd_score(argv + 2);
	if (argc == 6 && strcmp(argv[1], "bench") == 0)
		return cmd_bench(argv + 2);
	if (argc == 2 && strcmp(argv[1], "fma") == 0)
		return cmd_fma();
	if (argc == 7 && strcmp(argv[1], "sgemm") == 0)
		return cmd_sgemm(argv + 2);
	fprintf(stderr, "usage: see tests/parity/clip_harness.c\n");
	return 2;
}
