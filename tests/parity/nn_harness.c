/*
 * tests/parity/nn_harness.c — runs lib/nn ops for test_nn_torch.py.
 *
 *   nn-harness < requests > responses
 *
 * One process serves every case (a process per case cost most of the test's
 * time under ASan). Each request is a text line "OP ARGS...\n" followed by
 * the op's inputs as raw little-endian float32 (int32 for RoPE positions),
 * concatenated in the order listed below; the harness answers with a line
 * "OK <count>\n" and <count> raw float32 outputs. Output buffers wider than
 * the result (strided views) are pre-filled with SENTINEL so the script can
 * check the padding. End of input ends the process with status 0.
 *
 *   linear m k n bias ldx ldy      x[m*ldx] w[n*k] (b[n])          -> y[m*ldy]
 *   layernorm m n eps affine       x[m*n] (g[n] b[n])              -> y[m*n]
 *   rmsnorm m n eps weighted       x[m*n] (w[n])                   -> y[m*n]
 *   softmax m n                    x[m*n]                          -> x
 *   gelu_erf|gelu_tanh|quick_gelu|silu|relu n     x[n]             -> x
 *   swiglu n                       gate[n] up[n]                   -> gate
 *   attention t nh nkv d causal scale   qkv[t*ld], ld = (nh+2nkv)d+1 (fused
 *                                  projection with a pad column)   -> out[t*(nh*d+2)]
 *   rope t nh d ldx                x[t*ldx] pos[t] (int32) inv_freq[d/2] -> x
 *   inv_freq d theta factor low high orig   (none)                 -> inv_freq[d/2]
 *
 * A malformed request or short input ends the process with status 2 and a
 * message on stderr.
 */
#include "nn/nn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 12345.0f

static void *allocs[8]; /* one request's buffers, freed after it */
static size_t nallocs;

static void die(const char *msg)
{
	fprintf(stderr, "nn-harness: %s\n", msg);
	exit(2);
}

static void *alloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 4);
	if (!p || nallocs == sizeof(allocs) / sizeof(allocs[0]))
		die("out of memory");
	return allocs[nallocs++] = p;
}

/* The request's next n 4-byte values from stdin, in a fresh aligned buffer. */
static void *take(size_t n)
{
	void *p = alloc(n * 4);
	if (fread(p, 4, n, stdin) != n)
		die("input shorter than the shapes say");
	return p;
}

static void put(const float *y, size_t n)
{
	if (printf("OK %zu\n", n) < 0 || fwrite(y, sizeof(*y), n, stdout) != n || fflush(stdout))
		die("short write");
}

static size_t arg_size(int argc, char **argv, int i)
{
	if (i >= argc)
		die("missing argument");
	char *end;
	unsigned long long v = strtoull(argv[i], &end, 10);
	if (*end || v > (1ull << 30))
		die("bad size argument");
	return (size_t)v;
}

static float arg_float(int argc, char **argv, int i)
{
	if (i >= argc)
		die("missing argument");
	char *end;
	float v = strtof(argv[i], &end);
	if (*end)
		die("bad float argument");
	return v;
}

static float *filled(size_t n)
{
	float *y = alloc(n * sizeof(*y));
	for (size_t i = 0; i < n; i++)
		y[i] = SENTINEL;
	return y;
}

static void run_op(int argc, char **argv)
{
	const char *op = argv[1];
	if (!strcmp(op, "linear")) {
		size_t m = arg_size(argc, argv, 2), k = arg_size(argc, argv, 3), n = arg_size(argc, argv, 4);
		size_t bias = arg_size(argc, argv, 5), ldx = arg_size(argc, argv, 6), ldy = arg_size(argc, argv, 7);
		ldx = ldx ? ldx : k; /* 0 = dense, as rwd_nn_linear */
		ldy = ldy ? ldy : n;
		float *x = take(m * ldx), *w = take(n * k), *b = bias ? take(n) : NULL;
		float *y = filled(m * ldy);
		rwd_nn_linear(x, m, k, ldx, w, b, n, y, ldy);
		put(y, m * ldy);
	} else if (!strcmp(op, "layernorm") || !strcmp(op, "rmsnorm")) {
		size_t m = arg_size(argc, argv, 2), n = arg_size(argc, argv, 3);
		float eps = arg_float(argc, argv, 4);
		size_t affine = arg_size(argc, argv, 5);
		float *x = take(m * n), *g = affine ? take(n) : NULL;
		float *y = filled(m * n);
		if (op[0] == 'l')
			rwd_nn_layernorm(x, m, n, g, affine ? take(n) : NULL, eps, y);
		else
			rwd_nn_rmsnorm(x, m, n, g, eps, y);
		put(y, m * n);
	} else if (!strcmp(op, "softmax")) {
		size_t m = arg_size(argc, argv, 2), n = arg_size(argc, argv, 3);
		float *x = take(m * n);
		rwd_nn_softmax(x, m, n);
		put(x, m * n);
	} else if (!strcmp(op, "swiglu")) {
		size_t n = arg_size(argc, argv, 2);
		float *g = take(n), *u = take(n);
		rwd_nn_swiglu(g, u, n);
		put(g, n);
	} else if (!strcmp(op, "attention")) {
		rwd_nn_attn p = {
			.t = arg_size(argc, argv, 2), .n_heads = arg_size(argc, argv, 3),
			.n_kv_heads = arg_size(argc, argv, 4), .head_dim = arg_size(argc, argv, 5),
			.causal = (int)arg_size(argc, argv, 6), .scale = arg_float(argc, argv, 7),
		};
		if (!p.n_kv_heads || p.n_heads % p.n_kv_heads)
			die("n_heads must be a multiple of n_kv_heads");
		size_t d = p.head_dim, ld = (p.n_heads + 2 * p.n_kv_heads) * d + 1;
		p.ldq = p.ldk = p.ldv = ld;
		p.ldo = p.n_heads * d + 2;
		float *qkv = take(p.t * ld);
		float *out = filled(p.t * p.ldo);
		float *scratch = alloc(rwd_nn_attention_scratch(&p) * sizeof(float));
		rwd_nn_attention(&p, qkv, qkv + p.n_heads * d, qkv + (p.n_heads + p.n_kv_heads) * d,
			out, scratch);
		put(out, p.t * p.ldo);
	} else if (!strcmp(op, "rope")) {
		size_t t = arg_size(argc, argv, 2), nh = arg_size(argc, argv, 3);
		size_t d = arg_size(argc, argv, 4), ldx = arg_size(argc, argv, 5);
		ldx = ldx ? ldx : nh * d;
		float *x = take(t * ldx);
		int32_t *pos = take(t);
		float *inv = take(d / 2);
		rwd_nn_rope(x, t, nh, d, ldx, pos, inv);
		put(x, t * ldx);
	} else if (!strcmp(op, "inv_freq")) {
		size_t d = arg_size(argc, argv, 2);
		float theta = arg_float(argc, argv, 3);
		rwd_nn_rope_scaling sc = {
			.factor = arg_float(argc, argv, 4),
			.low_freq_factor = arg_float(argc, argv, 5),
			.high_freq_factor = arg_float(argc, argv, 6),
			.original_max_position = (int)arg_size(argc, argv, 7),
		};
		float *inv = filled(d / 2);
		rwd_nn_rope_inv_freq(theta, d, &sc, inv);
		put(inv, d / 2);
	} else {
		static const struct {
			const char *name;
			void (*fn)(float *, size_t);
		} acts[] = {
			{ "gelu_erf", rwd_nn_gelu_erf }, { "gelu_tanh", rwd_nn_gelu_tanh },
			{ "quick_gelu", rwd_nn_quick_gelu }, { "silu", rwd_nn_silu }, { "relu", rwd_nn_relu },
		};
		size_t a = 0;
		while (a < sizeof(acts) / sizeof(acts[0]) && strcmp(op, acts[a].name))
			a++;
		if (a == sizeof(acts) / sizeof(acts[0]))
			die("unknown op");
		size_t n = arg_size(argc, argv, 2);
		float *x = take(n);
		acts[a].fn(x, n);
		put(x, n);
	}
}

int main(void)
{
	char line[1024];
	while (fgets(line, sizeof(line), stdin)) {
		/* argv[0] unused, as a command line: argv[1] is the op */
		char *argv[16] = { "nn-harness" };
		int argc = 1;
		for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
			if (argc == 16)
				die("too many arguments");
			argv[argc++] = tok;
		}
		if (argc < 2)
			die("empty request");
		run_op(argc, argv);
		while (nallocs)
			free(allocs[--nallocs]);
	}
	return ferror(stdin) ? 2 : 0;
}
