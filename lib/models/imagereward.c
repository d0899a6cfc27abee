/* models/imagereward.c — the `imagereward` kind; see imagereward.h for the contract. */
#include "models/imagereward.h"

#include "core/base64.h"
#include "image/resize.h"
#include "nn/nn.h"
#include "tensor/safetensors.h"
#include "text/wordpiece.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds on config values (untrusted). */
#define IR_MAX_DIM (1 << 14)
#define IR_MAX_HEADS 256
#define IR_MAX_LAYERS 128
#define IR_MAX_VOCAB (1 << 22)
#define IR_MAX_POS 4096
#define IR_MAX_TOKENS 4096 /* vision tokens per image */
#define IR_MAX_MLP 16      /* linears in the head */
#define IR_MAX_BATCH 4096
#define IR_CHUNK 2048      /* rows per feed-forward chunk (bounds scratch) */

struct lin {
	const float *w, *b; /* [out, in], [out] */
	size_t out, in;
};

struct vlayer {
	const float *n1w, *n1b, *n2w, *n2b;
	struct lin qkv, proj, fc1, fc2;
};

struct tlayer {
	struct lin q, k, v, o, cq, ck, cv, co, fi, fo;
	const float *l1w, *l1b, *l2w, *l2b, *l3w, *l3b; /* attention, cross, output LayerNorms */
};

struct rwd_imagereward {
	rwd_weights *weights;
	/* vision */
	size_t S, P, G, NP, T, D, Lv, nHv, Fv, K;
	float veps;
	const float *patch_w, *patch_b, *cls, *pos, *nw, *nb;
	struct vlayer *vl;
	/* text */
	size_t Ht, Lt, nHt, Ft, vocab, max_pos;
	float teps;
	const float *wemb, *pemb, *ew, *eb;
	struct tlayer *tl;
	/* head */
	struct lin mlp[IR_MAX_MLP];
	size_t n_mlp;
	double mean, std;
	/* inputs */
	float img_mean[3], img_std[3];
	size_t max_len;
	rwd_wordpiece *tok;
	rwd_image_decode_params decode;
	size_t max_image_bytes, max_string, max_text_bytes;
	size_t cap;
	size_t weight_bytes;
};

typedef struct ir_scratch {
	float *x, *h, *qkv, *att, *ff, *attn_s; /* vision */
	float *tx, *th, *tq, *tk, *tv, *ta, *tff, *ck, *cv, *cls, *m0, *m1; /* text, head */
	size_t *start, *len;
	void *block;
} ir_scratch;

typedef struct ir_prep {
	float *pix;
	int32_t *ids;
	size_t n;
} ir_prep;

static const char *const ir_inputs[] = {"image", "prompt", NULL};
static const char *const ir_dims[] = {"imagereward"};

/* ---- config ---- */

static int cfg_size(const json_t *o, const char *obj, const char *key, size_t def, size_t min,
	size_t max, size_t *out, rwd_error *err)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		if (def == 0) {
			rwd_error_where(err, NULL, key);
			return rwd_errorf(err, RWD_E_INVALID, "%s.%s is required", obj, key);
		}
		*out = def;
		return 0;
	}
	json_int_t x = json_integer_value(v);
	if (!json_is_integer(v) || x < (json_int_t)min || (uint64_t)x > (uint64_t)max) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "%s.%s must be an integer in [%zu, %zu]", obj, key,
			min, max);
	}
	*out = (size_t)x;
	return 0;
}

static int cfg_real(const json_t *o, const char *obj, const char *key, double def, double min,
	double max, double *out, rwd_error *err)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_number(v) || !(json_number_value(v) >= min && json_number_value(v) <= max)) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "%s.%s must be a number in [%g, %g]", obj, key, min, max);
	}
	*out = json_number_value(v);
	return 0;
}

static int cfg_triple(const json_t *o, const char *key, const float def[3], float out[3], int positive,
	rwd_error *err)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		memcpy(out, def, 3 * sizeof(float));
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) != 3)
		goto bad;
	for (size_t i = 0; i < 3; i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_number(e))
			goto bad;
		double x = json_number_value(e);
		if (!isfinite(x) || (positive && x <= 0) || fabs(x) > 1e6)
			goto bad;
		out[i] = (float)x;
	}
	return 0;
bad:
	rwd_error_where(err, NULL, key);
	return rwd_errorf(err, RWD_E_INVALID, "%s must be an array of 3 finite numbers%s", key,
		positive ? " > 0" : "");
}

static int parse_config(rwd_imagereward *m, const char *dir, rwd_error *err)
{
	char path[PATH_MAX];
	json_error_t je;
	int r;
	if (snprintf(path, sizeof(path), "%s/config.json", dir) >= (int)sizeof(path))
		return rwd_errorf(err, RWD_E_LIMIT, "model path is too long");
	struct stat sb;
	if (stat(path, &sb) != 0) {
		rwd_error_where(err, path, NULL);
		return rwd_errorf(err, RWD_E_NOTFOUND, "file not found");
	}
	if (sb.st_size > (1 << 20)) {
		rwd_error_where(err, path, NULL);
		return rwd_errorf(err, RWD_E_LIMIT, "config.json is over 1 MiB");
	}
	json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!cfg || !json_is_object(cfg)) {
		rwd_error_where(err, path, NULL);
		rwd_error_at(err, je.line, je.column, je.position);
		r = rwd_errorf(err, RWD_E_FORMAT, "%s", cfg ? "not a JSON object" : je.text);
		json_decref(cfg);
		return r;
	}
	const json_t *vc = json_object_get(cfg, "vision_config");
	const json_t *tc = json_object_get(cfg, "text_config");
	double veps, teps;
	static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
	static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
	if (!json_is_object(vc) || !json_is_object(tc)) {
		rwd_error_where(err, path, !json_is_object(vc) ? "vision_config" : "text_config");
		r = rwd_errorf(err, RWD_E_INVALID, "vision_config and text_config objects are required");
		goto done;
	}
	if ((r = cfg_size(vc, "vision_config", "image_size", 224, 1, 4096, &m->S, err)) ||
	    (r = cfg_size(vc, "vision_config", "patch_size", 16, 1, 512, &m->P, err)) ||
	    (r = cfg_size(vc, "vision_config", "hidden_size", 1024, 1, IR_MAX_DIM, &m->D, err)) ||
	    (r = cfg_size(vc, "vision_config", "num_hidden_layers", 24, 1, IR_MAX_LAYERS, &m->Lv, err)) ||
	    (r = cfg_size(vc, "vision_config", "num_attention_heads", 16, 1, IR_MAX_HEADS, &m->nHv, err)) ||
	    (r = cfg_size(vc, "vision_config", "intermediate_size", 4 * m->D, 1, 4 * IR_MAX_DIM, &m->Fv, err)) ||
	    (r = cfg_real(vc, "vision_config", "layer_norm_eps", 1e-6, 0, 1, &veps, err)) ||
	    (r = cfg_size(tc, "text_config", "hidden_size", 768, 1, IR_MAX_DIM, &m->Ht, err)) ||
	    (r = cfg_size(tc, "text_config", "num_hidden_layers", 12, 1, IR_MAX_LAYERS, &m->Lt, err)) ||
	    (r = cfg_size(tc, "text_config", "num_attention_heads", 12, 1, IR_MAX_HEADS, &m->nHt, err)) ||
	    (r = cfg_size(tc, "text_config", "intermediate_size", 4 * m->Ht, 1, 4 * IR_MAX_DIM, &m->Ft, err)) ||
	    (r = cfg_size(tc, "text_config", "vocab_size", 30524, 1, IR_MAX_VOCAB, &m->vocab, err)) ||
	    (r = cfg_size(tc, "text_config", "max_position_embeddings", 512, 1, IR_MAX_POS, &m->max_pos, err)) ||
	    (r = cfg_real(tc, "text_config", "layer_norm_eps", 1e-12, 0, 1, &teps, err)) ||
	    (r = cfg_size(cfg, "config", "max_length", 35, 2, IR_MAX_POS, &m->max_len, err)) ||
	    (r = cfg_real(cfg, "config", "score_mean", 0.16717362830052426, -1e9, 1e9, &m->mean, err)) ||
	    (r = cfg_real(cfg, "config", "score_std", 1.0333394966054072, 1e-12, 1e9, &m->std, err)) ||
	    (r = cfg_triple(cfg, "image_mean", clip_mean, m->img_mean, 0, err)) ||
	    (r = cfg_triple(cfg, "image_std", clip_std, m->img_std, 1, err))) {
		rwd_error_where(err, path, NULL);
		goto done;
	}
	m->veps = (float)veps;
	m->teps = (float)teps;
	const char *act = json_string_value(json_object_get(tc, "hidden_act"));
	const json_t *ew = json_object_get(tc, "encoder_width");
	const char *pet = json_string_value(json_object_get(tc, "position_embedding_type"));
	rwd_error_where(err, path, NULL);
	if (act && strcmp(act, "gelu") != 0) {
		rwd_error_where(err, NULL, "text_config.hidden_act");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "hidden_act \"%s\" (only \"gelu\", as med_config.json)", act);
	} else if (pet && strcmp(pet, "absolute") != 0) {
		rwd_error_where(err, NULL, "text_config.position_embedding_type");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "only absolute position embeddings");
	} else if (ew && (!json_is_integer(ew) || (size_t)json_integer_value(ew) != m->D)) {
		rwd_error_where(err, NULL, "text_config.encoder_width");
		r = rwd_errorf(err, RWD_E_INVALID, "encoder_width must equal the vision hidden_size %zu", m->D);
	} else if (m->S % m->P || m->D % m->nHv || m->Ht % m->nHt) {
		r = rwd_errorf(err, RWD_E_INVALID,
			"image_size must be a multiple of patch_size and hidden sizes of the head counts");
	} else if (m->max_len > m->max_pos) {
		rwd_error_where(err, NULL, "max_length");
		r = rwd_errorf(err, RWD_E_INVALID, "max_length %zu exceeds max_position_embeddings %zu",
			m->max_len, m->max_pos);
	} else {
		m->G = m->S / m->P;
		m->NP = m->G * m->G;
		m->T = m->NP + 1;
		m->K = 3 * m->P * m->P;
		if (m->T > IR_MAX_TOKENS)
			r = rwd_errorf(err, RWD_E_LIMIT, "%zu vision tokens, over %d", m->T, IR_MAX_TOKENS);
	}
done:
	json_decref(cfg);
	return r;
}

/* ---- weights ---- */

static int get_f(const rwd_weights *w, const char *name, int ndim, const int64_t *shape,
	const float **out, rwd_error *err)
{
	return rwd_weights_get_f32(w, name, ndim, shape, out, err);
}

static int get_lin(const rwd_weights *w, const char *prefix, size_t out, size_t in, struct lin *l,
	rwd_error *err)
{
	char name[256];
	int r;
	int64_t ws[2] = {(int64_t)out, (int64_t)in}, bs[1] = {(int64_t)out};
	snprintf(name, sizeof(name), "%s.weight", prefix);
	if ((r = get_f(w, name, 2, ws, &l->w, err)))
		return r;
	snprintf(name, sizeof(name), "%s.bias", prefix);
	l->out = out;
	l->in = in;
	return get_f(w, name, 1, bs, &l->b, err);
}

static int get_ln(const rwd_weights *w, const char *prefix, size_t n, const float **g,
	const float **b, rwd_error *err)
{
	char name[256];
	int r;
	int64_t s[1] = {(int64_t)n};
	snprintf(name, sizeof(name), "%s.weight", prefix);
	if ((r = get_f(w, name, 1, s, g, err)))
		return r;
	snprintf(name, sizeof(name), "%s.bias", prefix);
	return get_f(w, name, 1, s, b, err);
}

static int load_weights(rwd_imagereward *m, const char *path, int in_memory, rwd_error *err)
{
	rwd_weights_params wp = rwd_weights_default_params();
	wp.use_mmap = !in_memory;
	int r = rwd_weights_open(path, &wp, &m->weights, err);
	if (r)
		return r;
	const rwd_weights *w = m->weights;
	const size_t D = m->D, H = m->Ht;
	char p[192], name[256];
	int64_t pshape[4] = {(int64_t)D, 3, (int64_t)m->P, (int64_t)m->P};
	int64_t cshape[3] = {1, 1, (int64_t)D}, posshape[3] = {1, (int64_t)m->T, (int64_t)D};
	int64_t pb[1] = {(int64_t)D};
	int64_t we[2] = {(int64_t)m->vocab, (int64_t)H}, pe[2] = {(int64_t)m->max_pos, (int64_t)H};
	if ((r = get_f(w, "blip.visual_encoder.patch_embed.proj.weight", 4, pshape, &m->patch_w, err)) ||
	    (r = get_f(w, "blip.visual_encoder.patch_embed.proj.bias", 1, pb, &m->patch_b, err)) ||
	    (r = get_f(w, "blip.visual_encoder.cls_token", 3, cshape, &m->cls, err)) ||
	    (r = get_f(w, "blip.visual_encoder.pos_embed", 3, posshape, &m->pos, err)) ||
	    (r = get_ln(w, "blip.visual_encoder.norm", D, &m->nw, &m->nb, err)) ||
	    (r = get_f(w, "blip.text_encoder.embeddings.word_embeddings.weight", 2, we, &m->wemb, err)) ||
	    (r = get_f(w, "blip.text_encoder.embeddings.position_embeddings.weight", 2, pe, &m->pemb, err)) ||
	    (r = get_ln(w, "blip.text_encoder.embeddings.LayerNorm", H, &m->ew, &m->eb, err)))
		return r;
	m->vl = calloc(m->Lv, sizeof(*m->vl));
	m->tl = calloc(m->Lt, sizeof(*m->tl));
	if (!m->vl || !m->tl)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
#define NAME(s) (snprintf(name, sizeof(name), "%s%s", p, s), name)
	for (size_t l = 0; l < m->Lv; l++) {
		struct vlayer *v = &m->vl[l];
		snprintf(p, sizeof(p), "blip.visual_encoder.blocks.%zu.", l);
		if ((r = get_ln(w, NAME("norm1"), D, &v->n1w, &v->n1b, err)) ||
		    (r = get_ln(w, NAME("norm2"), D, &v->n2w, &v->n2b, err)) ||
		    (r = get_lin(w, NAME("attn.qkv"), 3 * D, D, &v->qkv, err)) ||
		    (r = get_lin(w, NAME("attn.proj"), D, D, &v->proj, err)) ||
		    (r = get_lin(w, NAME("mlp.fc1"), m->Fv, D, &v->fc1, err)) ||
		    (r = get_lin(w, NAME("mlp.fc2"), D, m->Fv, &v->fc2, err)))
			return r;
	}
	for (size_t l = 0; l < m->Lt; l++) {
		struct tlayer *t = &m->tl[l];
		snprintf(p, sizeof(p), "blip.text_encoder.encoder.layer.%zu.", l);
		if ((r = get_lin(w, NAME("attention.self.query"), H, H, &t->q, err)) ||
		    (r = get_lin(w, NAME("attention.self.key"), H, H, &t->k, err)) ||
		    (r = get_lin(w, NAME("attention.self.value"), H, H, &t->v, err)) ||
		    (r = get_lin(w, NAME("attention.output.dense"), H, H, &t->o, err)) ||
		    (r = get_ln(w, NAME("attention.output.LayerNorm"), H, &t->l1w, &t->l1b, err)) ||
		    (r = get_lin(w, NAME("crossattention.self.query"), H, H, &t->cq, err)) ||
		    (r = get_lin(w, NAME("crossattention.self.key"), H, D, &t->ck, err)) ||
		    (r = get_lin(w, NAME("crossattention.self.value"), H, D, &t->cv, err)) ||
		    (r = get_lin(w, NAME("crossattention.output.dense"), H, H, &t->co, err)) ||
		    (r = get_ln(w, NAME("crossattention.output.LayerNorm"), H, &t->l2w, &t->l2b, err)) ||
		    (r = get_lin(w, NAME("intermediate.dense"), m->Ft, H, &t->fi, err)) ||
		    (r = get_lin(w, NAME("output.dense"), H, m->Ft, &t->fo, err)) ||
		    (r = get_ln(w, NAME("output.LayerNorm"), H, &t->l3w, &t->l3b, err)))
			return r;
	}
#undef NAME
	/* the head: mlp.layers.<i> Linears in index order (Dropouts have no
	 * tensors), chained from the text width down to one output */
	size_t in = H;
	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "mlp.layers.%d.weight", i);
		const rwd_tensor *t = rwd_weights_find(w, name);
		if (!t)
			continue;
		if (m->n_mlp == IR_MAX_MLP)
			return rwd_errorf(err, RWD_E_LIMIT, "more than %d linears in the head", IR_MAX_MLP);
		if (t->ndim != 2 || t->shape[1] != (int64_t)in || t->shape[0] < 1 || t->shape[0] > IR_MAX_DIM) {
			rwd_error_where(err, rwd_weights_path(w), name);
			return rwd_errorf(err, RWD_E_INVALID, "expected [out, %zu] (the previous layer's width)", in);
		}
		snprintf(p, sizeof(p), "mlp.layers.%d", i);
		if ((r = get_lin(w, p, (size_t)t->shape[0], in, &m->mlp[m->n_mlp], err)))
			return r;
		in = (size_t)t->shape[0];
		m->n_mlp++;
	}
	if (m->n_mlp == 0 || in != 1) {
		rwd_error_where(err, rwd_weights_path(w), "mlp.layers");
		return rwd_errorf(err, m->n_mlp ? RWD_E_INVALID : RWD_E_NOTFOUND,
			"the head (mlp.layers.<i>.weight) must end in one output");
	}
	m->weight_bytes = (size_t)rwd_weights_total_bytes(w);
	return 0;
}

/* ---- load ---- */

void rwd_imagereward_free(rwd_imagereward *m)
{
	if (!m)
		return;
	rwd_weights_free(m->weights);
	rwd_wordpiece_free(m->tok);
	free(m->vl);
	free(m->tl);
	free(m);
}

static int parse_options(rwd_imagereward *m, const json_t *opts, rwd_error *err)
{
	m->max_image_bytes = (size_t)32 << 20;
	m->max_text_bytes = (size_t)64 << 10;
	if (!opts)
		return 0;
	if (!json_is_object(opts))
		return rwd_errorf(err, RWD_E_INVALID, "imagereward options must be an object");
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)opts, key, v) {
		int r;
		if (strcmp(key, "max_image_bytes") == 0)
			r = cfg_size(opts, "options", key, 0, 64, (size_t)1 << 34, &m->max_image_bytes, err);
		else if (strcmp(key, "max_text_bytes") == 0)
			r = cfg_size(opts, "options", key, 0, 1, (size_t)1 << 24, &m->max_text_bytes, err);
		else {
			rwd_error_where(err, NULL, key);
			r = rwd_errorf(err, RWD_E_INVALID,
				"unknown imagereward option (expected max_image_bytes, max_text_bytes)");
		}
		if (r)
			return r;
	}
	return 0;
}

int rwd_imagereward_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	rwd_imagereward **out, rwd_error *err)
{
	*out = NULL;
	if (!path)
		return rwd_errorf(err, RWD_E_INVALID, "the imagereward kind needs a model folder");
	rwd_imagereward *m = calloc(1, sizeof(*m));
	if (!m)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	int r;
	m->cap = lim && lim->max_batch_size ? lim->max_batch_size : 1;
	if (m->cap > IR_MAX_BATCH) {
		r = rwd_errorf(err, RWD_E_LIMIT, "max_batch_size %zu is too large for imagereward", m->cap);
		goto fail;
	}
	if ((r = parse_options(m, opts, err)) || (r = parse_config(m, path, err)) ||
	    (r = load_weights(m, path, lim ? lim->weights_in_memory : 0, err)))
		goto fail;
	/* BertTokenizer.from_pretrained('bert-base-uncased') + [DEC] + [ENC] (blip.py init_tokenizer) */
	if ((r = rwd_wordpiece_load_dir(path, NULL, &m->tok, err)) ||
	    (r = rwd_wordpiece_add_special(m->tok, "[DEC]", NULL, err)) ||
	    (r = rwd_wordpiece_add_special(m->tok, "[ENC]", NULL, err)))
		goto fail;
	if (rwd_wordpiece_vocab_size(m->tok) > m->vocab) {
		rwd_error_where(err, path, "vocab.txt");
		r = rwd_errorf(err, RWD_E_INVALID, "the tokenizer has %zu ids, the embedding %zu rows",
			rwd_wordpiece_vocab_size(m->tok), m->vocab);
		goto fail;
	}
	m->decode = rwd_image_decode_default_params();
	if (lim && lim->max_image_pixels)
		m->decode.max_pixels = lim->max_image_pixels;
	size_t enc = (m->max_image_bytes + 2) / 3 * 4;
	m->max_string = enc + enc / 38 + 4096;
	*out = m;
	return 0;
fail:
	rwd_imagereward_free(m);
	return r;
}

int rwd_imagereward_image_size(const rwd_imagereward *m)
{
	return (int)m->S;
}

/* ---- preprocessing ---- */

/* Python's round() of k / 2 for an integer k >= 0: half to even. */
static int round_half_even_div2(int k)
{
	int q = k / 2;
	if (k % 2 && q % 2)
		q++;
	return q;
}

int rwd_imagereward_preprocess(const rwd_imagereward *m, const rwd_image *img, float *out)
{
	const int S = (int)m->S, w = img->w, h = img->h;
	if (w < 1 || h < 1)
		return RWD_E_INVALID;
	/* torchvision _compute_resized_output_size: the short side to S, the long one truncated */
	int nw, nh;
	if (w <= h) {
		nw = S;
		nh = (int)((double)S * h / w);
	} else {
		nh = S;
		nw = (int)((double)S * w / h);
	}
	if (nw < S || nh < S || nw > RWD_IMAGE_MAX_SIDE || nh > RWD_IMAGE_MAX_SIDE)
		return RWD_E_LIMIT;
	const int top = round_half_even_div2(nh - S), left = round_half_even_div2(nw - S);
	uint8_t *win = malloc((size_t)S * S * 3);
	if (!win)
		return RWD_E_NOMEM;
	int r = 0;
	if (nw == w && nh == h) {
		/* F.resize returns the image untouched when the size is already right */
		for (int y = 0; y < S; y++)
			memcpy(win + (size_t)y * S * 3, img->pixels + (size_t)(top + y) * img->stride + (size_t)left * 3,
				(size_t)S * 3);
	} else {
		r = rwd_image_resize_window(img->pixels, w, h, img->stride, 3, nw, nh, left, top, S, S, win, 0,
			RWD_IMAGE_BICUBIC);
	}
	if (!r) {
		const size_t plane = (size_t)S * S;
		for (size_t i = 0; i < plane; i++)
			for (int c = 0; c < 3; c++)
				out[c * plane + i] = ((float)win[i * 3 + c] / 255.0f - m->img_mean[c]) / m->img_std[c];
	}
	free(win);
	return r;
}

/* ---- scratch ---- */

int rwd_imagereward_scratch_new(const rwd_imagereward *m, void **out, rwd_error *err)
{
	*out = NULL;
	const size_t n = m->cap, R = n * m->T, Rt = n * m->max_len;
	const size_t ffr = R < IR_CHUNK ? R : IR_CHUNK;
	const size_t ff = ffr * m->Fv > n * m->NP * m->K ? ffr * m->Fv : n * m->NP * m->K;
	const size_t L = m->max_len > m->T ? m->max_len : m->T;
	const size_t att_s = L * L; /* vision T x T, text self max_len², cross max_len x T */
	size_t maxw = m->Ht;
	for (size_t i = 0; i < m->n_mlp; i++)
		if (m->mlp[i].out > maxw)
			maxw = m->mlp[i].out;
	const size_t sizes[] = {
		R * m->D, R * m->D, R * 3 * m->D, R * m->D, ff, att_s,
		Rt * m->Ht, Rt * m->Ht, Rt * m->Ht, Rt * m->Ht, Rt * m->Ht, Rt * m->Ht, Rt * m->Ft,
		R * m->Ht, R * m->Ht, n * m->Ht, n * maxw, n * maxw,
	};
	const size_t nb = sizeof(sizes) / sizeof(sizes[0]);
	size_t total = 0;
	for (size_t i = 0; i < nb; i++) {
		size_t a = (sizes[i] + 15) & ~(size_t)15;
		if (a < sizes[i] || total + a < total || total + a > ((size_t)1 << 40) / sizeof(float))
			return rwd_errorf(err, RWD_E_LIMIT, "imagereward scratch too large for the batch capacity");
		total += a;
	}
	ir_scratch *s = calloc(1, sizeof(*s));
	float *block = s ? aligned_alloc(64, ((total * sizeof(float)) + 63) & ~(size_t)63) : NULL;
	size_t *idx = s ? calloc(2 * n, sizeof(size_t)) : NULL;
	if (!s || !block || !idx) {
		free(s);
		free(block);
		free(idx);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for the imagereward scratch (%zu floats)", total);
	}
	float **ptr[] = {&s->x, &s->h, &s->qkv, &s->att, &s->ff, &s->attn_s, &s->tx, &s->th, &s->tq, &s->tk,
		&s->tv, &s->ta, &s->tff, &s->ck, &s->cv, &s->cls, &s->m0, &s->m1};
	size_t off = 0;
	for (size_t i = 0; i < nb; i++) {
		*ptr[i] = block + off;
		off += (sizes[i] + 15) & ~(size_t)15;
	}
	s->block = block;
	s->start = idx;
	s->len = idx + n;
	*out = s;
	return 0;
}

void rwd_imagereward_scratch_free(void *scratch)
{
	ir_scratch *s = scratch;
	if (!s)
		return;
	free(s->block);
	free(s->start);
	free(s);
}

/* ---- forward ---- */

static void linear(const struct lin *l, const float *x, size_t rows, size_t ldx, float *y, size_t ldy)
{
	rwd_nn_linear(x, rows, l->in, ldx, l->w, l->b, l->out, y, ldy);
}

static void add_into(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

/* The image tokens after the final norm, in s->x [n * T, D]. */
static void vision(const rwd_imagereward *m, ir_scratch *s, const float *const *pixels, size_t n)
{
	const size_t D = m->D, D3 = 3 * D, P = m->P, S = m->S, G = m->G, K = m->K, NP = m->NP, T = m->T;
	const size_t R = n * T;
	for (size_t b = 0; b < n; b++)
		for (size_t gy = 0; gy < G; gy++)
			for (size_t gx = 0; gx < G; gx++) {
				float *row = s->ff + (b * NP + gy * G + gx) * K;
				for (size_t c = 0; c < 3; c++)
					for (size_t py = 0; py < P; py++)
						memcpy(row + (c * P + py) * P, pixels[b] + (c * S + gy * P + py) * S + gx * P,
							P * sizeof(float));
			}
	rwd_nn_linear(s->ff, n * NP, K, 0, m->patch_w, m->patch_b, D, s->h, 0);
	for (size_t b = 0; b < n; b++) {
		float *x = s->x + b * T * D;
		for (size_t j = 0; j < D; j++)
			x[j] = m->cls[j] + m->pos[j];
		for (size_t p = 0; p < NP; p++) {
			const float *e = s->h + (b * NP + p) * D, *pos = m->pos + (p + 1) * D;
			float *xr = x + (p + 1) * D;
			for (size_t j = 0; j < D; j++)
				xr[j] = e[j] + pos[j];
		}
	}
	const float scale = 1.0f / sqrtf((float)(D / m->nHv));
	for (size_t l = 0; l < m->Lv; l++) {
		const struct vlayer *v = &m->vl[l];
		rwd_nn_layernorm(s->x, R, D, v->n1w, v->n1b, m->veps, s->h);
		linear(&v->qkv, s->h, R, 0, s->qkv, 0);
		for (size_t b = 0; b < n; b++) {
			/* qkv rows are [q | k | v], each [heads, head_dim] (vit.py reshape(B, N, 3, heads, hd)) */
			rwd_nn_attn p = {.t = T, .n_heads = m->nHv, .n_kv_heads = m->nHv, .head_dim = D / m->nHv,
				.ldq = D3, .ldk = D3, .ldv = D3, .ldo = D, .causal = 0, .scale = scale};
			const float *q = s->qkv + b * T * D3;
			rwd_nn_attention(&p, q, q + D, q + 2 * D, s->att + b * T * D, s->attn_s);
		}
		linear(&v->proj, s->att, R, 0, s->h, 0);
		add_into(s->x, s->h, R * D);
		rwd_nn_layernorm(s->x, R, D, v->n2w, v->n2b, m->veps, s->h);
		for (size_t r0 = 0; r0 < R; r0 += IR_CHUNK) {
			const size_t nr = R - r0 < IR_CHUNK ? R - r0 : IR_CHUNK;
			linear(&v->fc1, s->h + r0 * D, nr, 0, s->ff, 0);
			rwd_nn_gelu_erf(s->ff, nr * m->Fv);
			linear(&v->fc2, s->ff, nr, 0, s->att, 0);
			add_into(s->x + r0 * D, s->att, nr * D);
		}
	}
	rwd_nn_layernorm(s->x, R, D, m->nw, m->nb, m->veps, s->x);
}

/* Cross-attention of one item's nq text rows to its T image rows, all heads. */
static void cross_attention(const rwd_imagereward *m, const float *q, size_t nq, const float *k,
	const float *v, float *out, float *sc)
{
	const size_t H = m->Ht, hd = H / m->nHt, T = m->T;
	const float scale = 1.0f / sqrtf((float)hd);
	for (size_t h = 0; h < m->nHt; h++) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)T, (int)hd, scale,
			q + h * hd, (int)H, k + h * hd, (int)H, 0.0f, sc, (int)T);
		rwd_nn_softmax(sc, nq, T);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)hd, (int)T, 1.0f, sc, (int)T,
			v + h * hd, (int)H, 0.0f, out + h * hd, (int)H);
	}
}

/* BertSelfOutput / BertOutput: x = LayerNorm(y + x). */
static void residual_ln(float *x, const float *y, size_t rows, size_t n, const float *g, const float *b,
	float eps)
{
	add_into(x, y, rows * n);
	rwd_nn_layernorm(x, rows, n, g, b, eps, x);
}

int rwd_imagereward_score(const rwd_imagereward *m, void *scratch, const float *const *pixels,
	const int32_t *const *ids, const size_t *n_ids, size_t n, float *out)
{
	ir_scratch *s = scratch;
	const size_t H = m->Ht, T = m->T;
	if (n == 0)
		return 0;
	if (n > m->cap)
		return RWD_E_LIMIT;
	size_t Rt = 0;
	for (size_t i = 0; i < n; i++) {
		if (n_ids[i] == 0 || n_ids[i] > m->max_len)
			return RWD_E_INVALID;
		for (size_t j = 0; j < n_ids[i]; j++)
			if (ids[i][j] < 0 || (size_t)ids[i][j] >= m->vocab)
				return RWD_E_INVALID;
		s->start[i] = Rt;
		s->len[i] = n_ids[i];
		Rt += n_ids[i];
	}
	vision(m, s, pixels, n);
	/* text embeddings */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n_ids[i]; j++) {
			float *x = s->tx + (s->start[i] + j) * H;
			const float *we = m->wemb + (size_t)ids[i][j] * H, *pe = m->pemb + j * H;
			for (size_t c = 0; c < H; c++)
				x[c] = we[c] + pe[c];
		}
	rwd_nn_layernorm(s->tx, Rt, H, m->ew, m->eb, m->teps, s->tx);
	const float scale = 1.0f / sqrtf((float)(H / m->nHt));
	for (size_t l = 0; l < m->Lt; l++) {
		const struct tlayer *t = &m->tl[l];
		/* self-attention over the real tokens (padding keys weigh exactly 0) */
		linear(&t->q, s->tx, Rt, 0, s->tq, 0);
		linear(&t->k, s->tx, Rt, 0, s->tk, 0);
		linear(&t->v, s->tx, Rt, 0, s->tv, 0);
		for (size_t i = 0; i < n; i++) {
			rwd_nn_attn p = {.t = s->len[i], .n_heads = m->nHt, .n_kv_heads = m->nHt, .head_dim = H / m->nHt,
				.ldq = H, .ldk = H, .ldv = H, .ldo = H, .causal = 0, .scale = scale};
			const size_t o = s->start[i] * H;
			rwd_nn_attention(&p, s->tq + o, s->tk + o, s->tv + o, s->ta + o, s->attn_s);
		}
		linear(&t->o, s->ta, Rt, 0, s->th, 0);
		residual_ln(s->tx, s->th, Rt, H, t->l1w, t->l1b, m->teps);
		/* cross-attention to every image token (encoder_attention_mask all ones) */
		linear(&t->cq, s->tx, Rt, 0, s->tq, 0);
		linear(&t->ck, s->x, n * T, 0, s->ck, 0);
		linear(&t->cv, s->x, n * T, 0, s->cv, 0);
		for (size_t i = 0; i < n; i++) {
			const size_t o = s->start[i] * H;
			cross_attention(m, s->tq + o, s->len[i], s->ck + i * T * H, s->cv + i * T * H, s->ta + o,
				s->attn_s);
		}
		linear(&t->co, s->ta, Rt, 0, s->th, 0);
		residual_ln(s->tx, s->th, Rt, H, t->l2w, t->l2b, m->teps);
		/* feed-forward */
		linear(&t->fi, s->tx, Rt, 0, s->tff, 0);
		rwd_nn_gelu_erf(s->tff, Rt * m->Ft);
		linear(&t->fo, s->tff, Rt, 0, s->th, 0);
		residual_ln(s->tx, s->th, Rt, H, t->l3w, t->l3b, m->teps);
	}
	/* [CLS] rows → the head (Linears only) → z-score */
	for (size_t i = 0; i < n; i++)
		memcpy(s->cls + i * H, s->tx + s->start[i] * H, H * sizeof(float));
	const float *x = s->cls;
	float *y = s->m0;
	for (size_t k = 0; k < m->n_mlp; k++) {
		linear(&m->mlp[k], x, n, 0, y, 0);
		x = y;
		y = y == s->m0 ? s->m1 : s->m0;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (float)(((double)x[i] - m->mean) / m->std);
	return 0;
}

/* ---- the model kind ---- */

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim, void **state,
	rwd_error *err)
{
	rwd_imagereward *m = NULL;
	int r = rwd_imagereward_load(path, opts, lim, &m, err);
	if (!r)
		*state = m;
	return r;
}

static void kind_free(void *state)
{
	rwd_imagereward_free(state);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	const rwd_imagereward *m = state;
	info->n_dims = 1;
	info->dims[0] = ir_dims[0];
	info->weight_bytes = m->weight_bytes;
	info->token_cost = 0;
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const rwd_imagereward *m = state;
	*cost = 1;
	const json_t *img = json_object_get(item, "image");
	const json_t *pr = json_object_get(item, "prompt");
	rwd_error_where(err, NULL, "image");
	if (!img || json_is_null(img))
		return rwd_errorf(err, RWD_E_INVALID, "missing \"image\" (a base64 PNG/JPEG or a data:image/...;base64, URL)");
	if (!json_is_string(img))
		return rwd_errorf(err, RWD_E_INVALID, "\"image\" must be a string (base64 or data URL)");
	if (json_string_length(img) == 0)
		return rwd_errorf(err, RWD_E_INVALID, "\"image\" is empty");
	if (json_string_length(img) > m->max_string)
		return rwd_errorf(err, RWD_E_LIMIT, "\"image\" is %zu characters, over the limit of %zu",
			json_string_length(img), m->max_string);
	rwd_error_where(err, NULL, "prompt");
	if (!pr || json_is_null(pr))
		return rwd_errorf(err, RWD_E_INVALID, "missing \"prompt\" (ImageReward scores a prompt with an image)");
	if (!json_is_string(pr))
		return rwd_errorf(err, RWD_E_INVALID, "\"prompt\" must be a string");
	if (json_string_length(pr) > m->max_text_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "\"prompt\" is longer than %zu bytes", m->max_text_bytes);
	rwd_error_where(err, NULL, "");
	return 0;
}

static int kind_scratch_new(const void *state, void **scratch, rwd_error *err)
{
	return rwd_imagereward_scratch_new(state, scratch, err);
}

static int kind_prepare(const void *state, void *scratch, rwd_item *item, rwd_arena *arena, rwd_error *err)
{
	const rwd_imagereward *m = state;
	(void)scratch;
	const json_t *jimg = json_object_get(item->input, "image");
	const json_t *jpr = json_object_get(item->input, "prompt");
	const char *str = json_string_value(jimg);
	const char *payload;
	size_t pn;
	int r;
	ir_prep *p = rwd_arena_calloc(arena, 1, sizeof(*p));
	if (!p)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	/* the prompt: [CLS] ... [SEP], truncated to max_length (padding is not computed, see the header) */
	rwd_wordpiece_encode_params ep = rwd_wordpiece_encode_default_params();
	ep.max_length = m->max_len;
	rwd_wordpiece_ids ids;
	rwd_error_where(err, NULL, "prompt");
	if ((r = rwd_wordpiece_encode(m->tok, json_string_value(jpr), json_string_length(jpr), &ep, arena, &ids, err)))
		return r;
	p->ids = ids.ids;
	p->n = ids.n;
	/* the image */
	rwd_error_where(err, NULL, "image");
	if ((r = rwd_base64_strip_data_url(str, json_string_length(jimg), 1, &payload, &pn, NULL, 0, err)))
		return r;
	rwd_base64_params bp = rwd_base64_default_params();
	bp.max_out = m->max_image_bytes;
	uint8_t *bytes = NULL;
	size_t nb = 0;
	if ((r = rwd_base64_decode(payload, pn, &bp, NULL, &bytes, &nb, err))) {
		if (err && err->offset >= 0)
			err->offset += payload - str;
		return r;
	}
	rwd_image img;
	r = rwd_image_decode(bytes, nb, &m->decode, NULL, &img, err);
	free(bytes);
	if (r)
		return r;
	p->pix = rwd_arena_alloc(arena, 3 * m->S * m->S * sizeof(float));
	if (!p->pix) {
		rwd_image_free(&img);
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
			"out of memory for the preprocessed image");
	}
	const int iw = img.w, ih = img.h;
	r = rwd_imagereward_preprocess(m, &img, p->pix);
	rwd_image_free(&img);
	if (r)
		return rwd_errorf(err, r, "cannot preprocess the %dx%d image", iw, ih);
	rwd_error_where(err, NULL, "");
	item->prep = p;
	return 0;
}

static int kind_forward(const void *state, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	const rwd_imagereward *m = state;
	const float **pix = rwd_arena_alloc(arena, (n + 1) * sizeof(*pix));
	const int32_t **ids = rwd_arena_alloc(arena, (n + 1) * sizeof(*ids));
	size_t *nid = rwd_arena_alloc(arena, (n + 1) * sizeof(*nid));
	float *out = rwd_arena_alloc(arena, (n + 1) * sizeof(*out));
	if (!pix || !ids || !nid || !out)
		return RWD_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		const ir_prep *p = items[i]->prep;
		pix[i] = p->pix;
		ids[i] = p->ids;
		nid[i] = p->n;
	}
	int r = rwd_imagereward_score(m, scratch, pix, ids, nid, n, out);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		items[i]->scores[0] = out[i];
		items[i]->present[0] = 1;
	}
	return 0;
}

const rwd_model_ops rwd__imagereward_ops = {
	.kind = "imagereward",
	.inputs = ir_inputs,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.scratch_new = kind_scratch_new,
	.scratch_free = rwd_imagereward_scratch_free,
	.prepare = kind_prepare,
	.forward = kind_forward,
};
