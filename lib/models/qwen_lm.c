/* models/qwen_lm.c — see qwen_lm.h. */
#include "models/qwen_lm.h"

#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lin {
	const float *w, *b;
	size_t out, in;
};

struct layer {
	const float *ln1, *ln2;
	struct lin q, k, v, o, gate, up, down;
};

struct rwd_qwen_lm {
	rwd_qwen_lm_info info;
	const float *embed, *norm;
	struct layer *layers;
	float inv_freq[512];
};

static int cfg_size(const json_t *cfg, const char *key, int required, size_t def, size_t min,
	size_t max, size_t *out, rwd_error *err)
{
	json_t *v = json_object_get(cfg, key);
	if (!v || json_is_null(v)) {
		if (required) {
			rwd_error_where(err, NULL, key);
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is missing", key);
		}
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
		(uint64_t)json_integer_value(v) > (uint64_t)max) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be an integer in [%zu, %zu]", key, min, max);
	}
	*out = (size_t)json_integer_value(v);
	return 0;
}

static int cfg_num(const json_t *cfg, const char *key, double def, double *out, rwd_error *err)
{
	json_t *v = json_object_get(cfg, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_number(v) || !(json_number_value(v) > 0.0)) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a positive number", key);
	}
	*out = json_number_value(v);
	return 0;
}

static int parse_config(rwd_qwen_lm *m, const json_t *cfg, rwd_error *err)
{
	rwd_qwen_lm_info *in = &m->info;
	int r;
	if ((r = cfg_size(cfg, "hidden_size", 1, 0, 1, 65536, &in->hidden, err)) ||
	    (r = cfg_size(cfg, "vocab_size", 1, 0, 1, 1u << 22, &in->vocab, err)) ||
	    (r = cfg_size(cfg, "num_hidden_layers", 1, 0, 1, 512, &in->layers, err)) ||
	    (r = cfg_size(cfg, "num_attention_heads", 1, 0, 1, 1024, &in->heads, err)) ||
	    (r = cfg_size(cfg, "num_key_value_heads", 0, in->heads, 1, 1024, &in->kv_heads, err)) ||
	    (r = cfg_size(cfg, "intermediate_size", 1, 0, 1, 1u << 20, &in->inter, err)) ||
	    (r = cfg_num(cfg, "rope_theta", 1000000.0, &in->rope_theta, err)) ||
	    (r = cfg_num(cfg, "rms_norm_eps", 1e-6, &in->rms_eps, err)))
		return r;
	const json_t *act = json_object_get(cfg, "hidden_act");
	if (act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), "silu"))) {
		rwd_error_where(err, NULL, "hidden_act");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "text hidden_act must be \"silu\"");
	}
	if (in->hidden % in->heads || in->heads % in->kv_heads || (in->hidden / in->heads) % 2 ||
		in->hidden / in->heads > 1024) {
		rwd_error_where(err, NULL, "num_attention_heads");
		return rwd_errorf(err, RWD_E_INVALID, "hidden_size %zu, %zu heads, %zu kv heads do not fit",
			in->hidden, in->heads, in->kv_heads);
	}
	in->head_dim = in->hidden / in->heads;
	/* rope_scaling {"type"|"rope_type": "mrope"|"default", "mrope_section": [a, b, c]} */
	const json_t *rs = json_object_get(cfg, "rope_scaling");
	const json_t *sec = json_is_object(rs) ? json_object_get(rs, "mrope_section") : NULL;
	size_t half = in->head_dim / 2;
	if (!sec) {
		in->mrope_section[0] = half; /* no sections: every channel follows stream 0 */
		return 0;
	}
	size_t sum = 0;
	if (!json_is_array(sec) || json_array_size(sec) != 3)
		goto bad;
	for (size_t i = 0; i < 3; i++) {
		json_t *e = json_array_get(sec, i);
		if (!json_is_integer(e) || json_integer_value(e) < 0)
			goto bad;
		in->mrope_section[i] = (size_t)json_integer_value(e);
		sum += in->mrope_section[i];
	}
	if (sum != half)
		goto bad;
	return 0;
bad:
	rwd_error_where(err, NULL, "rope_scaling");
	return rwd_errorf(err, RWD_E_INVALID, "rope_scaling.mrope_section must be 3 integers summing to head_dim/2 = %zu",
		half);
}

static int get_t(const rwd_weights *w, const char *name, int nd, size_t d0, size_t d1,
	const float **out, rwd_error *err)
{
	int64_t shape[2] = {(int64_t)d0, (int64_t)d1};
	return rwd_weights_get_f32(w, name, nd, shape, out, err);
}

static int get_lin(const rwd_weights *w, const char *pfx, const char *name, size_t out_f,
	size_t in_f, int bias, struct lin *l, rwd_error *err)
{
	char buf[300];
	int r;
	snprintf(buf, sizeof(buf), "%s%s.weight", pfx, name);
	if ((r = get_t(w, buf, 2, out_f, in_f, &l->w, err)))
		return r;
	l->b = NULL;
	l->out = out_f;
	l->in = in_f;
	if (!bias)
		return 0;
	snprintf(buf, sizeof(buf), "%s%s.bias", pfx, name);
	return get_t(w, buf, 1, out_f, 0, &l->b, err);
}

int rwd_qwen_lm_load(const rwd_weights *w, const char *prefix, const json_t *text_config,
	rwd_qwen_lm **out, rwd_error *err)
{
	rwd_qwen_lm *m = calloc(1, sizeof(*m));
	char pfx[256], buf[300];
	int r;
	if (!m)
		return RWD_E_NOMEM;
	if ((r = parse_config(m, text_config, err)))
		goto fail;
	const rwd_qwen_lm_info *in = &m->info;
	const size_t H = in->hidden, qd = in->heads * in->head_dim, kvd = in->kv_heads * in->head_dim;
	if (!(m->layers = calloc(in->layers, sizeof(*m->layers)))) {
		r = RWD_E_NOMEM;
		goto fail;
	}
	snprintf(buf, sizeof(buf), "%s.embed_tokens.weight", prefix);
	if ((r = get_t(w, buf, 2, in->vocab, H, &m->embed, err)))
		goto fail;
	snprintf(buf, sizeof(buf), "%s.norm.weight", prefix);
	if ((r = get_t(w, buf, 1, H, 0, &m->norm, err)))
		goto fail;
	for (size_t l = 0; l < in->layers; l++) {
		struct layer *ly = &m->layers[l];
		snprintf(pfx, sizeof(pfx), "%s.layers.%zu.", prefix, l);
		snprintf(buf, sizeof(buf), "%sinput_layernorm.weight", pfx);
		if ((r = get_t(w, buf, 1, H, 0, &ly->ln1, err)))
			goto fail;
		snprintf(buf, sizeof(buf), "%spost_attention_layernorm.weight", pfx);
		if ((r = get_t(w, buf, 1, H, 0, &ly->ln2, err)) ||
		    (r = get_lin(w, pfx, "self_attn.q_proj", qd, H, 1, &ly->q, err)) ||
		    (r = get_lin(w, pfx, "self_attn.k_proj", kvd, H, 1, &ly->k, err)) ||
		    (r = get_lin(w, pfx, "self_attn.v_proj", kvd, H, 1, &ly->v, err)) ||
		    (r = get_lin(w, pfx, "self_attn.o_proj", H, qd, 0, &ly->o, err)) ||
		    (r = get_lin(w, pfx, "mlp.gate_proj", in->inter, H, 0, &ly->gate, err)) ||
		    (r = get_lin(w, pfx, "mlp.up_proj", in->inter, H, 0, &ly->up, err)) ||
		    (r = get_lin(w, pfx, "mlp.down_proj", H, in->inter, 0, &ly->down, err)))
			goto fail;
	}
	rwd_nn_rope_inv_freq((float)in->rope_theta, in->head_dim, NULL, m->inv_freq);
	*out = m;
	return 0;
fail:
	rwd_qwen_lm_free(m);
	return r;
}

void rwd_qwen_lm_free(rwd_qwen_lm *m)
{
	if (!m)
		return;
	free(m->layers);
	free(m);
}

const rwd_qwen_lm_info *rwd_qwen_lm_get_info(const rwd_qwen_lm *m)
{
	return &m->info;
}

int rwd_qwen_lm_embed(const rwd_qwen_lm *m, int64_t id, float *dst)
{
	if (id < 0 || (uint64_t)id >= m->info.vocab)
		return RWD_E_INVALID;
	memcpy(dst, m->embed + (size_t)id * m->info.hidden, m->info.hidden * sizeof(float));
	return 0;
}

int rwd_qwen_lm_rope_index(const int32_t *ids, size_t n, int32_t image_token, int32_t video_token,
	const int32_t *grids, const double *t_step, size_t n_blocks, size_t merge, int32_t *pos)
{
	int64_t next = 0; /* the position the next text token takes */
	size_t i = 0, b = 0;
	while (i < n) {
		if (ids[i] != image_token && ids[i] != video_token) {
			for (int s = 0; s < 3; s++)
				pos[s * n + i] = (int32_t)next;
			next++;
			i++;
			continue;
		}
		if (b >= n_blocks || merge == 0)
			return RWD_E_INVALID;
		size_t t = (size_t)grids[3 * b], lh = (size_t)grids[3 * b + 1] / merge,
		       lw = (size_t)grids[3 * b + 2] / merge, len = t * lh * lw;
		if (len == 0 || i + len > n)
			return RWD_E_INVALID;
		int64_t mx = next - 1;
		for (size_t k = 0; k < len; k++) {
			if (ids[i + k] != ids[i])
				return RWD_E_INVALID;
			size_t ti = k / (lh * lw), rr = k / lw % lh, cc = k % lw;
			int64_t p[3] = {next + (int64_t)floor((double)ti * t_step[b]), next + (int64_t)rr,
				next + (int64_t)cc};
			for (int s = 0; s < 3; s++) {
				pos[s * n + i + k] = (int32_t)p[s];
				if (p[s] > mx)
					mx = p[s];
			}
		}
		if (i + len < n && ids[i + len] == ids[i])
			return RWD_E_INVALID; /* a run longer than its grid */
		next = mx + 1;
		i += len;
		b++;
	}
	return b == n_blocks ? 0 : RWD_E_INVALID;
}

/* ---- forward ---- */

struct layout {
	size_t h, q, k, v, ao, g, u, cs, sc, total;
};

static int mul_add(size_t *acc, size_t a, size_t b)
{
	size_t p;
	if (__builtin_mul_overflow(a, b, &p) || __builtin_add_overflow(*acc, p, acc))
		return -1;
	return 0;
}

static int plan(const rwd_qwen_lm *m, size_t T, size_t S, struct layout *L)
{
	const rwd_qwen_lm_info *in = &m->info;
	const size_t qd = in->heads * in->head_dim, kvd = in->kv_heads * in->head_dim;
	size_t o = 0;
	L->h = o;
	if (mul_add(&o, T, in->hidden))
		return -1;
	L->q = o;
	if (mul_add(&o, T, qd))
		return -1;
	L->k = o;
	if (mul_add(&o, T, kvd))
		return -1;
	L->v = o;
	if (mul_add(&o, T, kvd))
		return -1;
	L->ao = o;
	if (mul_add(&o, T, qd > in->hidden ? qd : in->hidden))
		return -1;
	L->g = o;
	if (mul_add(&o, T, in->inter))
		return -1;
	L->u = o;
	if (mul_add(&o, T, in->inter))
		return -1;
	L->cs = o;
	if (mul_add(&o, T, in->head_dim))
		return -1;
	L->sc = o;
	if (mul_add(&o, S, S))
		return -1;
	L->total = o;
	return 0;
}

size_t rwd_qwen_lm_scratch(const rwd_qwen_lm *m, size_t max_tokens, size_t max_seq)
{
	struct layout L;
	return plan(m, max_tokens, max_seq, &L) ? 0 : L.total;
}

static void lin_run(const struct lin *l, const float *x, size_t rows, float *y)
{
	rwd_nn_linear(x, rows, l->in, 0, l->w, l->b, l->out, y, 0);
}

int rwd_qwen_lm_forward(const rwd_qwen_lm *m, float *x, const size_t *starts, size_t n,
	const int32_t *pos, const size_t *pick, size_t n_pick, float *out, float *scratch,
	size_t scratch_floats)
{
	const rwd_qwen_lm_info *in = &m->info;
	const size_t H = in->hidden, hd = in->head_dim, half = hd / 2, I = in->inter;
	const size_t qd = in->heads * hd, kvd = in->kv_heads * hd;
	if (n == 0)
		return 0;
	size_t T = starts[n], S = 0;
	for (size_t i = 0; i < n; i++) {
		if (starts[i + 1] < starts[i])
			return RWD_E_INVALID;
		if (starts[i + 1] - starts[i] > S)
			S = starts[i + 1] - starts[i];
	}
	for (size_t i = 0; i < n_pick; i++)
		if (pick[i] >= T)
			return RWD_E_INVALID;
	struct layout L;
	if (plan(m, T, S, &L) || L.total > scratch_floats)
		return RWD_E_INVALID;
	float *h = scratch + L.h, *q = scratch + L.q, *k = scratch + L.k, *v = scratch + L.v;
	float *ao = scratch + L.ao, *g = scratch + L.g, *u = scratch + L.u, *cs = scratch + L.cs;
	float *sc = scratch + L.sc;

	/* the M-RoPE table: channel i follows the stream of its mrope section */
	const size_t s0 = in->mrope_section[0], s1 = s0 + in->mrope_section[1];
	for (size_t r = 0; r < T; r++) {
		float *c = cs + r * hd, *s = c + half;
		for (size_t i = 0; i < half; i++) {
			size_t st = i < s0 ? 0 : i < s1 ? 1 : 2;
			float a = (float)pos[st * T + r] * m->inv_freq[i];
			c[i] = (float)cos((double)a);
			s[i] = (float)sin((double)a);
		}
	}

	for (size_t l = 0; l < in->layers; l++) {
		const struct layer *ly = &m->layers[l];
		rwd_nn_rmsnorm(x, T, H, ly->ln1, (float)in->rms_eps, h);
		lin_run(&ly->q, h, T, q);
		lin_run(&ly->k, h, T, k);
		lin_run(&ly->v, h, T, v);
		rwd_nn_rope_apply(q, T, in->heads, hd, qd, cs);
		rwd_nn_rope_apply(k, T, in->kv_heads, hd, kvd, cs);
		for (size_t i = 0; i < n; i++) {
			size_t a = starts[i], len = starts[i + 1] - a;
			if (!len)
				continue;
			rwd_nn_attn p = {
				.t = len, .n_heads = in->heads, .n_kv_heads = in->kv_heads, .head_dim = hd,
				.ldq = qd, .ldk = kvd, .ldv = kvd, .ldo = qd, .causal = 1,
				.scale = 1.0f / sqrtf((float)hd),
			};
			rwd_nn_attention(&p, q + a * qd, k + a * kvd, v + a * kvd, ao + a * qd, sc);
		}
		lin_run(&ly->o, ao, T, h);
		for (size_t j = 0; j < T * H; j++)
			x[j] += h[j];
		rwd_nn_rmsnorm(x, T, H, ly->ln2, (float)in->rms_eps, h);
		lin_run(&ly->gate, h, T, g);
		lin_run(&ly->up, h, T, u);
		rwd_nn_swiglu(g, u, T * I);
		lin_run(&ly->down, g, T, ao);
		for (size_t j = 0; j < T * H; j++)
			x[j] += ao[j];
	}
	for (size_t i = 0; i < n_pick; i++)
		rwd_nn_rmsnorm(x + pick[i] * H, 1, H, m->norm, (float)in->rms_eps, out + i * H);
	return 0;
}
