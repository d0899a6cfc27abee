/* models/qwen_vision.c — see qwen_vision.h. */
#include "models/qwen_vision.h"

#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum act { ACT_QUICK_GELU, ACT_GELU, ACT_GELU_TANH, ACT_SILU };

struct lin {
	const float *w, *b;
	size_t out, in;
};

struct block {
	const float *n1w, *n1b, *n2w, *n2b;
	struct lin qkv, proj, fc1, fc2;  /* 2-VL */
	struct lin gate, up, down;       /* 2.5-VL */
	int full;                        /* 2.5-VL: attends over the whole frame */
};

struct rwd_qwen_vision {
	rwd_qwen_vision_info info;
	enum act act;
	const float *patch_w; /* [E, in_dim] */
	struct block *blocks;
	const float *ln_w, *ln_b;
	struct lin m0, m2;
	float inv_freq[64]; /* head_dim / 4 entries */
};

#define VISION_MAX_WIDTH 8192
#define VISION_MAX_DEPTH 128

static int cfg_int(const json_t *cfg, const char *key, int required, size_t def, size_t min,
	size_t max, size_t *out, rwd_error *err)
{
	json_t *v = json_object_get(cfg, key);
	if (!v || json_is_null(v)) {
		if (required) {
			rwd_error_where(err, NULL, key);
			return rwd_errorf(err, RWD_E_INVALID, "vision_config.%s is missing", key);
		}
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
		(uint64_t)json_integer_value(v) > (uint64_t)max) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "vision_config.%s must be an integer in [%zu, %zu]",
			key, min, max);
	}
	*out = (size_t)json_integer_value(v);
	return 0;
}

static int parse_act(const json_t *cfg, const char *def, enum act *out, rwd_error *err)
{
	const json_t *v = json_object_get(cfg, "hidden_act");
	const char *s = v && !json_is_null(v) ? json_string_value(v) : def;
	if (!s) {
		rwd_error_where(err, NULL, "hidden_act");
		return rwd_errorf(err, RWD_E_INVALID, "vision_config.hidden_act must be a string");
	}
	if (strcmp(s, "quick_gelu") == 0)
		*out = ACT_QUICK_GELU;
	else if (strcmp(s, "gelu") == 0)
		*out = ACT_GELU;
	else if (strcmp(s, "gelu_pytorch_tanh") == 0 || strcmp(s, "gelu_new") == 0)
		*out = ACT_GELU_TANH;
	else if (strcmp(s, "silu") == 0)
		*out = ACT_SILU;
	else {
		rwd_error_where(err, NULL, "hidden_act");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "vision_config.hidden_act \"%s\" is not supported", s);
	}
	return 0;
}

static int get_t(const rwd_weights *w, const char *name, int nd, int64_t d0, int64_t d1,
	const float **out, rwd_error *err)
{
	int64_t shape[2] = {d0, d1};
	return rwd_weights_get_f32(w, name, nd, shape, out, err);
}

static int get_lin(const rwd_weights *w, const char *pfx, const char *name, size_t out_f,
	size_t in_f, struct lin *l, rwd_error *err)
{
	char buf[256];
	int r;
	snprintf(buf, sizeof(buf), "%s.%s.weight", pfx, name);
	if ((r = get_t(w, buf, 2, (int64_t)out_f, (int64_t)in_f, &l->w, err)))
		return r;
	snprintf(buf, sizeof(buf), "%s.%s.bias", pfx, name);
	if ((r = get_t(w, buf, 1, (int64_t)out_f, 0, &l->b, err)))
		return r;
	l->out = out_f;
	l->in = in_f;
	return 0;
}

static int get_norm(const rwd_weights *w, const char *pfx, const char *name, size_t n, int bias,
	const float **g, const float **b, rwd_error *err)
{
	char buf[256];
	int r;
	snprintf(buf, sizeof(buf), "%s.%s.weight", pfx, name);
	if ((r = get_t(w, buf, 1, (int64_t)n, 0, g, err)))
		return r;
	*b = NULL;
	if (!bias)
		return 0;
	snprintf(buf, sizeof(buf), "%s.%s.bias", pfx, name);
	return get_t(w, buf, 1, (int64_t)n, 0, b, err);
}

static int parse_config(rwd_qwen_vision *v, const json_t *cfg, int variant, rwd_error *err)
{
	rwd_qwen_vision_info *in = &v->info;
	size_t ratio = 4, in_ch = 3, ws = 0;
	int r;
	in->variant = variant;
	const char *wkey = variant == RWD_QWEN_VISION_2 ? "embed_dim" : "hidden_size";
	const char *okey = variant == RWD_QWEN_VISION_2 ? "hidden_size" : "out_hidden_size";
	if ((r = cfg_int(cfg, wkey, 1, 0, 1, VISION_MAX_WIDTH, &in->width, err)) ||
	    (r = cfg_int(cfg, okey, 1, 0, 1, 65536, &in->out_dim, err)) ||
	    (r = cfg_int(cfg, "num_heads", 1, 0, 1, 256, &in->heads, err)) ||
	    (r = cfg_int(cfg, "depth", 1, 0, 1, VISION_MAX_DEPTH, &in->depth, err)) ||
	    (r = cfg_int(cfg, "patch_size", 0, 14, 1, 64, &in->patch, err)) ||
	    (r = cfg_int(cfg, "temporal_patch_size", 0, 2, 1, 8, &in->temporal, err)) ||
	    (r = cfg_int(cfg, "spatial_merge_size", 0, 2, 1, 8, &in->merge, err)) ||
	    (r = cfg_int(cfg, "in_chans", 0, 3, 3, 3, &in_ch, err)))
		return r;
	if (variant == RWD_QWEN_VISION_2) {
		if ((r = cfg_int(cfg, "mlp_ratio", 0, 4, 1, 64, &ratio, err)))
			return r;
		in->mlp_dim = in->width * ratio;
		/* the hub config leaves hidden_act out: Qwen2VLVisionConfig's default */
		if ((r = parse_act(cfg, "quick_gelu", &v->act, err)))
			return r;
	} else {
		if ((r = cfg_int(cfg, "intermediate_size", 1, 0, 1, 65536, &in->mlp_dim, err)) ||
		    (r = cfg_int(cfg, "window_size", 0, 112, 1, 65536, &ws, err)) ||
		    (r = parse_act(cfg, "silu", &v->act, err)))
			return r;
		in->window = ws / in->merge / in->patch;
		if (in->window == 0) {
			rwd_error_where(err, NULL, "window_size");
			return rwd_errorf(err, RWD_E_INVALID, "vision_config.window_size %zu is under one merged cell", ws);
		}
	}
	if (in->width % in->heads || (in->width / in->heads) % 4 || in->width / in->heads > 256) {
		rwd_error_where(err, NULL, "num_heads");
		return rwd_errorf(err, RWD_E_INVALID,
			"vision head dim %zu / %zu must be a multiple of 4, at most 256", in->width, in->heads);
	}
	in->head_dim = in->width / in->heads;
	in->in_dim = 3 * in->temporal * in->patch * in->patch;
	return 0;
}

static int load_full_blocks(rwd_qwen_vision *v, const json_t *cfg, rwd_error *err)
{
	const json_t *a = json_object_get(cfg, "fullatt_block_indexes");
	size_t i;
	json_t *e;
	if (!a || json_is_null(a))
		return 0; /* none: every block attends within windows */
	if (!json_is_array(a)) {
		rwd_error_where(err, NULL, "fullatt_block_indexes");
		return rwd_errorf(err, RWD_E_INVALID, "vision_config.fullatt_block_indexes must be an array");
	}
	json_array_foreach(a, i, e) {
		json_int_t k = json_is_integer(e) ? json_integer_value(e) : -1;
		if (k < 0 || (size_t)k >= v->info.depth) {
			rwd_error_where(err, NULL, "fullatt_block_indexes");
			return rwd_errorf(err, RWD_E_INVALID,
				"vision_config.fullatt_block_indexes[%zu] is not a block index below %zu", i, v->info.depth);
		}
		v->blocks[k].full = 1;
	}
	return 0;
}

int rwd_qwen_vision_load(const rwd_weights *w, const char *prefix, const json_t *vision_config,
	int variant, rwd_qwen_vision **out, rwd_error *err)
{
	rwd_qwen_vision *v = NULL;
	char pfx[200], buf[256];
	int r;
	if (variant != RWD_QWEN_VISION_2 && variant != RWD_QWEN_VISION_2_5)
		return rwd_errorf(err, RWD_E_INVALID, "unknown vision variant %d", variant);
	if (!json_is_object(vision_config))
		return rwd_errorf(err, RWD_E_INVALID, "config.json has no vision_config object");
	if (!(v = calloc(1, sizeof(*v))))
		return RWD_E_NOMEM;
	if ((r = parse_config(v, vision_config, variant, err)))
		goto fail;
	const rwd_qwen_vision_info *in = &v->info;
	const size_t E = in->width, I = in->mlp_dim, M = E * in->merge * in->merge;
	if (!(v->blocks = calloc(in->depth, sizeof(*v->blocks)))) {
		r = RWD_E_NOMEM;
		goto fail;
	}
	if (variant == RWD_QWEN_VISION_2_5 && (r = load_full_blocks(v, vision_config, err)))
		goto fail;
	{
		int64_t shape[5] = {(int64_t)E, 3, (int64_t)in->temporal, (int64_t)in->patch,
			(int64_t)in->patch};
		snprintf(buf, sizeof(buf), "%s.patch_embed.proj.weight", prefix);
		if ((r = rwd_weights_get_f32(w, buf, 5, shape, &v->patch_w, err)))
			goto fail;
	}
	const int ln_bias = variant == RWD_QWEN_VISION_2;
	for (size_t i = 0; i < in->depth; i++) {
		struct block *b = &v->blocks[i];
		snprintf(pfx, sizeof(pfx), "%s.blocks.%zu", prefix, i);
		if ((r = get_norm(w, pfx, "norm1", E, ln_bias, &b->n1w, &b->n1b, err)) ||
		    (r = get_norm(w, pfx, "norm2", E, ln_bias, &b->n2w, &b->n2b, err)) ||
		    (r = get_lin(w, pfx, "attn.qkv", 3 * E, E, &b->qkv, err)) ||
		    (r = get_lin(w, pfx, "attn.proj", E, E, &b->proj, err)))
			goto fail;
		if (variant == RWD_QWEN_VISION_2) {
			if ((r = get_lin(w, pfx, "mlp.fc1", I, E, &b->fc1, err)) ||
			    (r = get_lin(w, pfx, "mlp.fc2", E, I, &b->fc2, err)))
				goto fail;
		} else if ((r = get_lin(w, pfx, "mlp.gate_proj", I, E, &b->gate, err)) ||
			   (r = get_lin(w, pfx, "mlp.up_proj", I, E, &b->up, err)) ||
			   (r = get_lin(w, pfx, "mlp.down_proj", E, I, &b->down, err))) {
			goto fail;
		}
	}
	snprintf(pfx, sizeof(pfx), "%s.merger", prefix);
	if ((r = get_norm(w, pfx, "ln_q", E, ln_bias, &v->ln_w, &v->ln_b, err)) ||
	    (r = get_lin(w, pfx, "mlp.0", M, M, &v->m0, err)) ||
	    (r = get_lin(w, pfx, "mlp.2", in->out_dim, M, &v->m2, err)))
		goto fail;
	rwd_nn_rope_inv_freq(10000.0f, in->head_dim / 2, NULL, v->inv_freq);
	*out = v;
	return 0;
fail:
	rwd_qwen_vision_free(v);
	return r;
}

void rwd_qwen_vision_free(rwd_qwen_vision *v)
{
	if (!v)
		return;
	free(v->blocks);
	free(v);
}

const rwd_qwen_vision_info *rwd_qwen_vision_get_info(const rwd_qwen_vision *v)
{
	return &v->info;
}

/* ---- scratch ---- */

struct layout {
	size_t x, h, qkv, ao, g, u, cs, sc, mo, ints, total;
};

static int mul_add(size_t *acc, size_t a, size_t b)
{
	size_t p;
	if (__builtin_mul_overflow(a, b, &p) || __builtin_add_overflow(*acc, p, acc))
		return -1;
	return 0;
}

static int plan(const rwd_qwen_vision *v, size_t N, size_t S, struct layout *L)
{
	const rwd_qwen_vision_info *in = &v->info;
	const size_t E = in->width, I = in->mlp_dim > E ? in->mlp_dim : E;
	size_t o = 0;
	L->x = o;
	if (mul_add(&o, N, E))
		return -1;
	L->h = o;
	if (mul_add(&o, N, E))
		return -1;
	L->qkv = o;
	if (mul_add(&o, N, 3 * E))
		return -1;
	L->ao = o;
	if (mul_add(&o, N, E))
		return -1;
	L->g = o;
	if (mul_add(&o, N, I))
		return -1;
	L->u = o;
	if (in->variant == RWD_QWEN_VISION_2_5 && mul_add(&o, N, I))
		return -1;
	L->cs = o;
	if (mul_add(&o, N, in->head_dim))
		return -1;
	L->sc = o;
	if (mul_add(&o, S, S))
		return -1;
	L->mo = o; /* 2.5: merged rows in window order, before the inverse permutation */
	if (in->variant == RWD_QWEN_VISION_2_5 && mul_add(&o, N / (in->merge * in->merge), in->out_dim))
		return -1;
	L->ints = o; /* int32: perm N/4, two segment lists N/4 + 2 each, (row, col) 2N */
	if (mul_add(&o, N, 3) || mul_add(&o, 8, 1))
		return -1;
	L->total = o;
	return 0;
}

size_t rwd_qwen_vision_scratch(const rwd_qwen_vision *v, size_t max_patches,
	size_t max_frame_patches)
{
	struct layout L;
	return plan(v, max_patches, max_frame_patches, &L) ? 0 : L.total;
}

/* ---- forward ---- */

static void act_apply(enum act a, float *x, size_t n)
{
	switch (a) {
	case ACT_QUICK_GELU: rwd_nn_quick_gelu(x, n); break;
	case ACT_GELU: rwd_nn_gelu_erf(x, n); break;
	case ACT_GELU_TANH: rwd_nn_gelu_tanh(x, n); break;
	case ACT_SILU: rwd_nn_silu(x, n); break;
	}
}

static void lin_run(const struct lin *l, const float *x, size_t rows, float *y)
{
	rwd_nn_linear(x, rows, l->in, 0, l->w, l->b, l->out, y, 0);
}

static void norm_run(const rwd_qwen_vision *v, const float *g, const float *b, const float *x,
	size_t rows, float *y)
{
	if (v->info.variant == RWD_QWEN_VISION_2)
		rwd_nn_layernorm(x, rows, v->info.width, g, b, 1e-6f, y);
	else
		rwd_nn_rmsnorm(x, rows, v->info.width, g, 1e-6f, y);
}

/* Bidirectional attention over each segment [seg[i], seg[i+1]) of qkv. */
static void attend(const rwd_qwen_vision *v, const float *qkv, const int32_t *seg, size_t nseg,
	float *ao, float *sc)
{
	const size_t E = v->info.width;
	for (size_t i = 0; i < nseg; i++) {
		size_t s0 = (size_t)seg[i], len = (size_t)seg[i + 1] - s0;
		if (!len)
			continue;
		rwd_nn_attn p = {
			.t = len, .n_heads = v->info.heads, .n_kv_heads = v->info.heads,
			.head_dim = v->info.head_dim, .ldq = 3 * E, .ldk = 3 * E, .ldv = 3 * E,
			.ldo = E, .causal = 0, .scale = 1.0f / sqrtf((float)v->info.head_dim),
		};
		const float *q = qkv + s0 * 3 * E;
		rwd_nn_attention(&p, q, q + E, q + 2 * E, ao + s0 * E, sc);
	}
}

int rwd_qwen_vision_forward(const rwd_qwen_vision *v, const float *rows, const int32_t *grids,
	size_t n, float *out, float *scratch, size_t scratch_floats)
{
	const rwd_qwen_vision_info *in = &v->info;
	const size_t E = in->width, I = in->mlp_dim, mg = in->merge, unit = mg * mg;
	const size_t hd = in->head_dim, q4 = hd / 4;
	const int win = in->variant == RWD_QWEN_VISION_2_5;
	size_t N = 0, S = 0;
	for (size_t i = 0; i < n; i++) {
		int32_t t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
		if (t < 1 || h < 1 || w < 1 || h % (int32_t)mg || w % (int32_t)mg || h > 65536 || w > 65536)
			return RWD_E_INVALID;
		size_t fr = (size_t)h * (size_t)w;
		N += (size_t)t * fr;
		if (fr > S)
			S = fr;
	}
	if (N == 0)
		return 0;
	struct layout L;
	if (plan(v, N, S, &L) || L.total > scratch_floats)
		return RWD_E_INVALID;
	float *x = scratch + L.x, *h = scratch + L.h, *qkv = scratch + L.qkv, *ao = scratch + L.ao;
	float *g = scratch + L.g, *u = scratch + L.u, *cs = scratch + L.cs, *sc = scratch + L.sc;
	int32_t *perm = (int32_t *)(scratch + L.ints);   /* [N / unit] merged cell order */
	int32_t *wseg = perm + N / unit;                 /* window segments */
	int32_t *fseg = wseg + N / unit + 2;             /* frame segments */
	int32_t *pos = fseg + N / unit + 2;              /* [N][2] (row, col) */
	size_t nw = 0, nf = 0;

	/* positions (in the processor's merge-cell order) and frame segments */
	size_t r = 0, cell = 0;
	fseg[0] = 0;
	wseg[0] = 0;
	for (size_t i = 0; i < n; i++) {
		size_t t = (size_t)grids[3 * i], gh = (size_t)grids[3 * i + 1], gw = (size_t)grids[3 * i + 2];
		size_t lh = gh / mg, lw = gw / mg;
		for (size_t f = 0; f < t; f++) {
			for (size_t bh = 0; bh < lh; bh++)
				for (size_t bw = 0; bw < lw; bw++)
					for (size_t mh = 0; mh < mg; mh++)
						for (size_t mw = 0; mw < mg; mw++, r++) {
							pos[2 * r] = (int32_t)(bh * mg + mh);
							pos[2 * r + 1] = (int32_t)(bw * mg + mw);
						}
			fseg[++nf] = (int32_t)r;
			if (!win)
				continue;
			/* get_window_index: windows tiled from the top-left */
			size_t ws = in->window, base = cell + f * lh * lw;
			for (size_t wy = 0; wy < lh; wy += ws)
				for (size_t wx = 0; wx < lw; wx += ws) {
					size_t k0 = (size_t)wseg[nw] / unit;
					size_t k = k0;
					for (size_t y = wy; y < wy + ws && y < lh; y++)
						for (size_t xx = wx; xx < wx + ws && xx < lw; xx++)
							perm[k++] = (int32_t)(base + y * lw + xx);
					wseg[nw + 1] = (int32_t)(k * unit);
					nw++;
				}
		}
		cell += t * lh * lw;
	}

	/* patch embedding: one GEMM; Qwen2.5-VL reorders cells into windows */
	if (win) {
		rwd_nn_linear(rows, N, in->in_dim, 0, v->patch_w, NULL, E, h, 0);
		for (size_t j = 0; j < N / unit; j++)
			memcpy(x + j * unit * E, h + (size_t)perm[j] * unit * E, unit * E * sizeof(float));
	} else {
		rwd_nn_linear(rows, N, in->in_dim, 0, v->patch_w, NULL, E, x, 0);
	}

	/* the rotary table: [N, hd], cos in [0, hd/2), sin in [hd/2, hd) */
	for (size_t j = 0; j < N; j++) {
		size_t src = win ? (size_t)perm[j / unit] * unit + j % unit : j;
		float *c = cs + j * hd, *s = c + hd / 2;
		for (size_t i = 0; i < hd / 2; i++) {
			int32_t p = i < q4 ? pos[2 * src] : pos[2 * src + 1];
			float a = (float)p * v->inv_freq[i < q4 ? i : i - q4];
			c[i] = (float)cos((double)a);
			s[i] = (float)sin((double)a);
		}
	}

	for (size_t l = 0; l < in->depth; l++) {
		const struct block *b = &v->blocks[l];
		norm_run(v, b->n1w, b->n1b, x, N, h);
		lin_run(&b->qkv, h, N, qkv);
		rwd_nn_rope_apply(qkv, N, in->heads, hd, 3 * E, cs);
		rwd_nn_rope_apply(qkv + E, N, in->heads, hd, 3 * E, cs);
		if (win && !b->full)
			attend(v, qkv, wseg, nw, ao, sc);
		else
			attend(v, qkv, fseg, nf, ao, sc);
		lin_run(&b->proj, ao, N, h);
		for (size_t k = 0; k < N * E; k++)
			x[k] += h[k];
		norm_run(v, b->n2w, b->n2b, x, N, h);
		if (!win) {
			lin_run(&b->fc1, h, N, g);
			act_apply(v->act, g, N * I);
			lin_run(&b->fc2, g, N, ao);
		} else {
			lin_run(&b->gate, h, N, g);
			lin_run(&b->up, h, N, u);
			act_apply(v->act, g, N * I);
			for (size_t k = 0; k < N * I; k++)
				g[k] *= u[k];
			lin_run(&b->down, g, N, ao);
		}
		for (size_t k = 0; k < N * E; k++)
			x[k] += ao[k];
	}

	/* merger: norm per patch, four patches as one row, Linear-GELU-Linear */
	norm_run(v, v->ln_w, v->ln_b, x, N, h);
	const size_t C = N / unit;
	lin_run(&v->m0, h, C, g);
	rwd_nn_gelu_erf(g, C * unit * E);
	if (!win) {
		lin_run(&v->m2, g, C, out);
		return 0;
	}
	float *mo = scratch + L.mo;
	lin_run(&v->m2, g, C, mo);
	for (size_t j = 0; j < C; j++)
		memcpy(out + (size_t)perm[j] * in->out_dim, mo + j * in->out_dim,
			in->out_dim * sizeof(float));
	return 0;
}
