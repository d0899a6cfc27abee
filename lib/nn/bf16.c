/*
 * nn/bf16.c — see bf16.h. BF16 linear layers on oneDNN 2.6 matmul.
 *
 * Why oneDNN and these choices (issue 13): Debian's OpenBLAS 0.3.21 has no
 * sbgemm; oneDNN's brgemm matmul with BF16 inputs and reordered weights
 * reaches about twice OpenBLAS's sgemm rate on the models' shapes. brgemm is
 * chosen only for a fixed row count (DNNL_RUNTIME_DIM_VAL rows give
 * "gemm:jit" on plain weights), hence the row buckets.
 *
 * Thread rule, reasoning. oneDNN here is the OpenMP build (libgomp);
 * OpenBLAS is the pthread build with its own pool. Both are driven by the
 * same worker thread, one op after the other, so at any instant only one
 * pool computes; the overlap is at most the idle pool's spin-wait tail
 * (OpenBLAS pool threads and libgomp threads spin briefly before sleeping).
 * Using the same count for both (OpenBLAS's, set once at start-up by
 * rwd_nn_threading_init from the number of compute workers) keeps the
 * daemon's existing rule valid for both libraries: 1 worker -> every core,
 * K > 1 workers -> 1 thread each (a 1-thread primitive runs inline in the
 * caller, no OpenMP team). oneDNN fixes its work split when a primitive is
 * created from omp_get_max_threads(), so the count is applied around
 * primitive creation at load and again around execution (a per-thread
 * OpenMP setting, restored afterwards: lib/ keeps no process state).
 */
#include "nn/bf16.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Row buckets: one primitive per bucket per shape class. */
static const int64_t buckets[] = {1, 2, 4, 8, 16, 32, 64, 96, 128, 160, 192, 224, 256};
enum { NB = sizeof(buckets) / sizeof(buckets[0]), MB = 256 };

struct cls {
	int64_t k, n;
	int has_bias;
	rwd_bf16_act act;
	dnnl_primitive_t prim[NB];
	dnnl_memory_desc_t src_md[NB], dst_md[NB];
	dnnl_memory_desc_t wei_md; /* the blocked BF16 layout every bucket uses */
	dnnl_memory_desc_t bias_md;
	size_t scratchpad;         /* bytes, max over buckets */
};

struct rwd_bf16_linear {
	size_t cls;
	void *wei;      /* reordered BF16 weights, oneDNN's layout */
	float *bias;    /* [n] or NULL, own copy */
	size_t k, n;
};

struct rwd_bf16 {
	int threads;
	dnnl_engine_t eng;
	struct cls *cls;
	size_t n_cls, cap_cls;
	rwd_bf16_linear **lin;
	size_t n_lin, cap_lin;
	size_t weight_bytes;
};

/* Per (class, bucket) memory objects, their data handles set per call. */
struct smem {
	dnnl_memory_t src, dst, wei, bias;
};

struct rwd_bf16_scratch {
	const rwd_bf16 *b;
	dnnl_stream_t stream;
	size_t n_cls;
	struct smem *mem;  /* [n_cls * NB] */
	dnnl_memory_t pad; /* scratchpad, shared by every primitive */
	void *pad_buf;
	uint16_t *src;     /* [MB, max k] BF16 activations */
	float *dst;        /* [MB, max n] output block for padded / strided rows */
	int status;
};

static int dnnl_err(rwd_error *err, dnnl_status_t st, const char *what)
{
	if (st == dnnl_out_of_memory)
		return rwd_errorf(err, RWD_E_NOMEM, "oneDNN: out of memory (%s)", what);
	if (st == dnnl_unimplemented)
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "oneDNN has no implementation for %s on %s",
			what, rwd_bf16_isa_name());
	return rwd_errorf(err, RWD_E_INTERNAL, "oneDNN failed (status %d): %s", (int)st, what);
}

#define DN(call, what) do { \
		dnnl_status_t st_ = (call); \
		if (st_ != dnnl_success) { r = dnnl_err(err, st_, what); goto fail; } \
	} while (0)

uint16_t rwd_bf16_from_float(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40); /* quiet NaN, sign kept */
	u += 0x7fffu + ((u >> 16) & 1u);         /* round to nearest, ties to even */
	return (uint16_t)(u >> 16);
}

float rwd_bf16_to_float(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

const char *rwd_bf16_isa_name(void)
{
	switch (dnnl_get_effective_cpu_isa()) {
	case dnnl_cpu_isa_sse41: return "sse41";
	case dnnl_cpu_isa_avx: return "avx";
	case dnnl_cpu_isa_avx2: return "avx2";
	case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
	case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
	case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
	case dnnl_cpu_isa_avx512_core: return "avx512_core";
	case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
	case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
	case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
	default: return "unknown";
	}
}

int rwd_bf16_supported(rwd_error *err)
{
	const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
	const unsigned need = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
	/* the ISA values are bit sets; AMX includes the AVX512_BF16 bits */
	if ((isa & need) == need)
		return 0;
	return rwd_errorf(err, RWD_E_UNSUPPORTED,
		"precision \"bf16\" needs a CPU with AVX512_BF16 or AMX; oneDNN sees %s "
		"(use precision \"fp32\")", rwd_bf16_isa_name());
}

rwd_bf16_params rwd_bf16_default_params(void)
{
	rwd_bf16_params p = {0};
	return p;
}

int rwd_bf16_new(const rwd_bf16_params *p, rwd_bf16 **out, rwd_error *err)
{
	int r = rwd_bf16_supported(err);
	if (r)
		return r;
	rwd_bf16 *b = calloc(1, sizeof(*b));
	if (!b)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	b->threads = p && p->threads > 0 ? p->threads : openblas_get_num_threads();
	if (b->threads < 1)
		b->threads = 1;
	DN(dnnl_engine_create(&b->eng, dnnl_cpu, 0), "creating the CPU engine");
	*out = b;
	return 0;
fail:
	rwd_bf16_free(b);
	return r;
}

static void cls_free(struct cls *c)
{
	for (int j = 0; j < NB; j++)
		if (c->prim[j])
			dnnl_primitive_destroy(c->prim[j]);
}

void rwd_bf16_free(rwd_bf16 *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_lin; i++) {
		free(b->lin[i]->wei);
		free(b->lin[i]->bias);
		free(b->lin[i]);
	}
	free(b->lin);
	for (size_t i = 0; i < b->n_cls; i++)
		cls_free(&b->cls[i]);
	free(b->cls);
	if (b->eng)
		dnnl_engine_destroy(b->eng);
	free(b);
}

size_t rwd_bf16_num_linears(const rwd_bf16 *b) { return b->n_lin; }
size_t rwd_bf16_num_classes(const rwd_bf16 *b) { return b->n_cls; }
size_t rwd_bf16_weight_bytes(const rwd_bf16 *b) { return b->weight_bytes; }

static int post_ops(rwd_bf16_act act, dnnl_primitive_attr_t attr, rwd_error *err)
{
	dnnl_alg_kind_t alg;
	float alpha = 0.0f;
	int r = 0;
	dnnl_post_ops_t po = NULL;
	switch (act) {
	case RWD_BF16_ACT_NONE: return 0;
	case RWD_BF16_ACT_GELU_ERF: alg = dnnl_eltwise_gelu_erf; break;
	case RWD_BF16_ACT_GELU_TANH: alg = dnnl_eltwise_gelu_tanh; break;
	case RWD_BF16_ACT_QUICK_GELU: alg = dnnl_eltwise_swish; alpha = 1.702f; break;
	case RWD_BF16_ACT_SILU: alg = dnnl_eltwise_swish; alpha = 1.0f; break;
	default: return rwd_errorf(err, RWD_E_INVALID, "unknown activation %d", (int)act);
	}
	DN(dnnl_post_ops_create(&po), "post-ops");
	DN(dnnl_post_ops_append_eltwise(po, 1.0f, alg, alpha, 0.0f), "eltwise post-op");
	DN(dnnl_primitive_attr_set_post_ops(attr, po), "post-ops");
fail:
	if (po)
		dnnl_post_ops_destroy(po);
	return r;
}

/* Create the primitives of one shape class (threads already applied). */
static int cls_init(rwd_bf16 *b, struct cls *c, rwd_error *err)
{
	int r = 0;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_primitive_desc_t pd = NULL;
	DN(dnnl_primitive_attr_create(&attr), "attributes");
	/* user scratchpad: each worker brings its own, primitives stay shared */
	DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
	if ((r = post_ops(c->act, attr, err)))
		goto fail;
	dnnl_dims_t bd = {1, c->n};
	DN(dnnl_memory_desc_init_by_tag(&c->bias_md, 2, bd, dnnl_f32, dnnl_ab), "bias desc");
	for (int j = 0; j < NB; j++) {
		dnnl_dims_t sd = {buckets[j], c->k}, wd = {c->k, c->n}, dd = {buckets[j], c->n};
		dnnl_memory_desc_t wmd;
		dnnl_matmul_desc_t mm;
		DN(dnnl_memory_desc_init_by_tag(&c->src_md[j], 2, sd, dnnl_bf16, dnnl_ab), "src desc");
		DN(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, dnnl_format_tag_any), "weights desc");
		DN(dnnl_memory_desc_init_by_tag(&c->dst_md[j], 2, dd, dnnl_f32, dnnl_ab), "dst desc");
		DN(dnnl_matmul_desc_init(&mm, &c->src_md[j], &wmd, c->has_bias ? &c->bias_md : NULL,
			&c->dst_md[j]), "matmul desc");
		DN(dnnl_primitive_desc_create(&pd, &mm, attr, b->eng, NULL), "BF16 matmul");
		const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
		const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
		if (j == 0) {
			c->wei_md = *w;
		} else if (!dnnl_memory_desc_equal(&c->wei_md, w)) {
			r = rwd_errorf(err, RWD_E_UNSUPPORTED,
				"oneDNN wants a different weight layout for %lld rows than for 1 (k %lld, n %lld)",
				(long long)buckets[j], (long long)c->k, (long long)c->n);
			goto fail;
		}
		size_t sps = sp ? dnnl_memory_desc_get_size(sp) : 0;
		if (sps > c->scratchpad)
			c->scratchpad = sps;
		DN(dnnl_primitive_create(&c->prim[j], pd), "BF16 matmul primitive");
		dnnl_primitive_desc_destroy(pd);
		pd = NULL;
	}
fail:
	if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (attr)
		dnnl_primitive_attr_destroy(attr);
	return r;
}

static int find_cls(rwd_bf16 *b, size_t k, size_t n, int has_bias, rwd_bf16_act act,
	size_t *idx, rwd_error *err)
{
	for (size_t i = 0; i < b->n_cls; i++) {
		const struct cls *c = &b->cls[i];
		if (c->k == (int64_t)k && c->n == (int64_t)n && c->has_bias == has_bias && c->act == act) {
			*idx = i;
			return 0;
		}
	}
	if (b->n_cls == b->cap_cls) {
		size_t cap = b->cap_cls ? 2 * b->cap_cls : 8;
		struct cls *nc = realloc(b->cls, cap * sizeof(*nc));
		if (!nc)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		b->cls = nc;
		b->cap_cls = cap;
	}
	struct cls *c = &b->cls[b->n_cls];
	memset(c, 0, sizeof(*c));
	c->k = (int64_t)k;
	c->n = (int64_t)n;
	c->has_bias = has_bias;
	c->act = act;
	int r = cls_init(b, c, err);
	if (r) {
		cls_free(c);
		return r;
	}
	*idx = b->n_cls++;
	return 0;
}

/* Reorder w [n, k] f32 (a [k, n] matrix in "ba" order) into BF16 in c's layout. */
static int reorder_weights(rwd_bf16 *b, const struct cls *c, const float *w, void *dst,
	rwd_error *err)
{
	int r = 0;
	dnnl_memory_desc_t umd;
	dnnl_memory_t um = NULL, dm = NULL;
	dnnl_primitive_desc_t rpd = NULL;
	dnnl_primitive_t rp = NULL;
	dnnl_stream_t st = NULL;
	dnnl_dims_t wd = {c->k, c->n};
	DN(dnnl_memory_desc_init_by_tag(&umd, 2, wd, dnnl_f32, dnnl_ba), "user weights desc");
	DN(dnnl_memory_create(&um, &umd, b->eng, (void *)w), "user weights");
	DN(dnnl_memory_create(&dm, &c->wei_md, b->eng, dst), "weights");
	/* f32 -> bf16 in a reorder rounds to nearest even, as rwd_bf16_from_float */
	DN(dnnl_reorder_primitive_desc_create(&rpd, &umd, b->eng, &c->wei_md, b->eng, NULL), "weights reorder");
	DN(dnnl_primitive_create(&rp, rpd), "weights reorder");
	DN(dnnl_stream_create(&st, b->eng, dnnl_stream_default_flags), "stream");
	dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, um}, {DNNL_ARG_TO, dm}};
	DN(dnnl_primitive_execute(rp, st, 2, args), "weights reorder");
	DN(dnnl_stream_wait(st), "weights reorder");
fail:
	if (st)
		dnnl_stream_destroy(st);
	if (rp)
		dnnl_primitive_destroy(rp);
	if (rpd)
		dnnl_primitive_desc_destroy(rpd);
	if (dm)
		dnnl_memory_destroy(dm);
	if (um)
		dnnl_memory_destroy(um);
	return r;
}

int rwd_bf16_add_linear(rwd_bf16 *b, const float *w, const float *bias, size_t n, size_t k,
	rwd_bf16_act act, const rwd_bf16_linear **out, rwd_error *err)
{
	if (n == 0 || k == 0 || n > (1u << 24) || k > (1u << 24))
		return rwd_errorf(err, RWD_E_INVALID, "BF16 linear of %zu x %zu: each side 1 to 2^24", n, k);
	int r = 0;
	rwd_bf16_linear *l = NULL;
	const int saved = omp_get_max_threads();
	omp_set_num_threads(b->threads); /* oneDNN sizes its work split from this */
	if (b->n_lin == b->cap_lin) {
		size_t cap = b->cap_lin ? 2 * b->cap_lin : 16;
		rwd_bf16_linear **nl = realloc(b->lin, cap * sizeof(*nl));
		if (!nl) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		b->lin = nl;
		b->cap_lin = cap;
	}
	size_t ci = 0;
	if ((r = find_cls(b, k, n, bias != NULL, act, &ci, err)))
		goto fail;
	const struct cls *c = &b->cls[ci];
	l = calloc(1, sizeof(*l));
	if (!l) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	l->cls = ci;
	l->k = k;
	l->n = n;
	const size_t wb = dnnl_memory_desc_get_size(&c->wei_md);
	l->wei = aligned_alloc(64, (wb + 63) / 64 * 64);
	if (!l->wei) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory for %zu bytes of BF16 weights", wb);
		goto fail;
	}
	if (bias) {
		if (!(l->bias = malloc(n * sizeof(float)))) {
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			goto fail;
		}
		memcpy(l->bias, bias, n * sizeof(float));
	}
	if ((r = reorder_weights(b, c, w, l->wei, err)))
		goto fail;
	b->lin[b->n_lin++] = l;
	b->weight_bytes += wb;
	*out = l;
	omp_set_num_threads(saved);
	return 0;
fail:
	if (l) {
		free(l->wei);
		free(l->bias);
		free(l);
	}
	omp_set_num_threads(saved);
	return r;
}

void rwd_bf16_scratch_free(rwd_bf16_scratch *s)
{
	if (!s)
		return;
	if (s->mem) {
		for (size_t i = 0; i < s->n_cls * NB; i++) {
			struct smem *m = &s->mem[i];
			if (m->src) dnnl_memory_destroy(m->src);
			if (m->dst) dnnl_memory_destroy(m->dst);
			if (m->wei) dnnl_memory_destroy(m->wei);
			if (m->bias) dnnl_memory_destroy(m->bias);
		}
		free(s->mem);
	}
	if (s->pad)
		dnnl_memory_destroy(s->pad);
	if (s->stream)
		dnnl_stream_destroy(s->stream);
	free(s->pad_buf);
	free(s->src);
	free(s->dst);
	free(s);
}

int rwd_bf16_scratch_new(const rwd_bf16 *b, rwd_bf16_scratch **out, rwd_error *err)
{
	int r = 0;
	rwd_bf16_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	s->b = b;
	s->n_cls = b->n_cls;
	size_t kmax = 1, nmax = 1, pad = 64;
	for (size_t i = 0; i < b->n_cls; i++) {
		if ((size_t)b->cls[i].k > kmax)
			kmax = (size_t)b->cls[i].k;
		if ((size_t)b->cls[i].n > nmax)
			nmax = (size_t)b->cls[i].n;
		if (b->cls[i].scratchpad > pad)
			pad = b->cls[i].scratchpad;
	}
	pad = (pad + 63) / 64 * 64;
	/* zeroed once: padded rows hold finite values, and pad rows never mix into real rows */
	s->src = calloc((size_t)MB * kmax, sizeof(*s->src));
	s->dst = calloc((size_t)MB * nmax, sizeof(*s->dst));
	s->pad_buf = aligned_alloc(64, pad);
	s->mem = calloc(s->n_cls * NB + 1, sizeof(*s->mem));
	if (!s->src || !s->dst || !s->pad_buf || !s->mem) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory for BF16 scratch");
		goto fail;
	}
	DN(dnnl_stream_create(&s->stream, b->eng, dnnl_stream_default_flags), "stream");
	dnnl_memory_desc_t pmd;
	dnnl_dims_t pd = {(int64_t)pad};
	DN(dnnl_memory_desc_init_by_tag(&pmd, 1, pd, dnnl_u8, dnnl_a), "scratchpad desc");
	DN(dnnl_memory_create(&s->pad, &pmd, b->eng, s->pad_buf), "scratchpad");
	for (size_t i = 0; i < s->n_cls; i++) {
		const struct cls *c = &b->cls[i];
		for (int j = 0; j < NB; j++) {
			struct smem *m = &s->mem[i * NB + (size_t)j];
			DN(dnnl_memory_create(&m->src, &c->src_md[j], b->eng, s->src), "src memory");
			DN(dnnl_memory_create(&m->dst, &c->dst_md[j], b->eng, s->dst), "dst memory");
			DN(dnnl_memory_create(&m->wei, &c->wei_md, b->eng, DNNL_MEMORY_NONE), "weights memory");
			if (c->has_bias)
				DN(dnnl_memory_create(&m->bias, &c->bias_md, b->eng, DNNL_MEMORY_NONE), "bias memory");
		}
	}
	*out = s;
	return 0;
fail:
	rwd_bf16_scratch_free(s);
	return r;
}

int rwd_bf16_scratch_status(rwd_bf16_scratch *s)
{
	int r = s->status;
	s->status = 0;
	return r;
}

/* Rows of x (stride ldx) into dense BF16 rows of k. */
static void to_bf16(const float *x, size_t rows, size_t k, size_t ldx, uint16_t *out)
{
	for (size_t i = 0; i < rows; i++) {
		const float *xr = x + i * ldx;
		uint16_t *o = out + i * k;
		for (size_t j = 0; j < k; j++)
			o[j] = rwd_bf16_from_float(xr[j]);
	}
}

static int bucket_for(size_t rows)
{
	int j = 0;
	while (buckets[j] < (int64_t)rows)
		j++;
	return j;
}

int rwd_bf16_linear_run(const rwd_bf16_linear *l, rwd_bf16_scratch *s, const float *x,
	size_t m, size_t ldx, float *y, size_t ldy)
{
	const size_t k = l->k, n = l->n;
	if (!ldx)
		ldx = k;
	if (!ldy)
		ldy = n;
	if (l->cls >= s->n_cls) {
		/* a linear added after this scratch was made */
		if (!s->status)
			s->status = RWD_E_INTERNAL;
		return RWD_E_INTERNAL;
	}
	const struct cls *c = &s->b->cls[l->cls];
	const int saved = omp_get_max_threads();
	omp_set_num_threads(s->b->threads);
	int r = 0;
	for (size_t r0 = 0; r0 < m; r0 += MB) {
		const size_t rows = m - r0 < MB ? m - r0 : MB;
		const int j = bucket_for(rows);
		struct smem *mm = &s->mem[l->cls * NB + (size_t)j];
		/* full blocks of a dense y are written in place; others go through s->dst */
		const int direct = (size_t)buckets[j] == rows && ldy == n;
		float *dst = direct ? y + r0 * ldy : s->dst;
		to_bf16(x + r0 * ldx, rows, k, ldx, s->src);
		dnnl_exec_arg_t args[5] = {
			{DNNL_ARG_SRC, mm->src}, {DNNL_ARG_WEIGHTS, mm->wei}, {DNNL_ARG_DST, mm->dst},
			{DNNL_ARG_SCRATCHPAD, s->pad}, {DNNL_ARG_BIAS, mm->bias},
		};
		dnnl_status_t st = dnnl_memory_set_data_handle(mm->dst, dst);
		if (st == dnnl_success)
			st = dnnl_memory_set_data_handle(mm->wei, l->wei);
		if (st == dnnl_success && c->has_bias)
			st = dnnl_memory_set_data_handle(mm->bias, l->bias);
		if (st == dnnl_success)
			st = dnnl_primitive_execute(c->prim[j], s->stream, c->has_bias ? 5 : 4, args);
		if (st == dnnl_success)
			st = dnnl_stream_wait(s->stream);
		if (st != dnnl_success) {
			r = st == dnnl_out_of_memory ? RWD_E_NOMEM : RWD_E_INTERNAL;
			break;
		}
		if (!direct)
			for (size_t i = 0; i < rows; i++)
				memcpy(y + (r0 + i) * ldy, s->dst + i * n, n * sizeof(*y));
	}
	omp_set_num_threads(saved);
	if (r && !s->status)
		s->status = r;
	return r;
}
