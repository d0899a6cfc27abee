/* models/seqcls.c — the `seqcls` kind; see seqcls.h for the contract. */
#include "models/seqcls.h"

#include "core/json.h"
#include "nn/bf16.h"
#include "nn/nn.h"
#include "tensor/safetensors.h"
#include "text/chat.h"
#include "text/tokenizer.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds on config values (untrusted input): generous for 8B-class models. */
#define SC_MAX_DIM (1 << 20)      /* hidden, intermediate, head_dim*heads */
#define SC_MAX_HEADS 1024
#define SC_MAX_LAYERS 1024
#define SC_MAX_VOCAB (1 << 24)
#define SC_MAX_LABEL 64           /* bytes of a label name */
/* Query rows per attention block, and rows per MLP chunk (bounds scratch). */
#define SC_QBLOCK 256
#define SC_MLP_CHUNK 512

enum arch { ARCH_QWEN2, ARCH_QWEN3, ARCH_LLAMA };

/*
 * What reads the final hidden states: a sequence classifier's `score` at the
 * pooled token (HEAD_SEQ); a process reward model's score.0 -> ReLU ->
 * score.2 to 2 classes at every step separator (HEAD_PRM,
 * Qwen2ForProcessRewardModel); a token classifier's `score` (+ bias) at
 * every step separator (HEAD_TOKEN, *ForTokenClassification, 1 or 2 labels).
 */
enum head { HEAD_SEQ, HEAD_PRM, HEAD_TOKEN };

/* Qwen2.5-Math-PRM's step separator, "<extra_0>" (its model card; vLLM's default step_tag_id). */
#define SC_PRM_STEP_ID 151651
/* The PRM dimensions, over an item's step rewards. */
static const char *const prm_dims[] = {"prm_min", "prm_mean", "prm_last", "prm_product"};
#define SC_PRM_DIMS 4
/* Steps per item (a `steps` array) and bytes of a system prompt. */
#define SC_MAX_STEPS 4096
#define SC_MAX_SYSTEM (64 << 10)

/* A linear layer: weight [out, in] and optional bias [out], borrowed from the weights. */
struct lin {
	const float *w;
	const float *b;
	const rwd_bf16_linear *bf; /* precision "bf16": the same layer in m->bf */
};

struct layer {
	const float *ln1, *ln2;     /* [H] */
	struct lin q, k, v, o;      /* q [nH*hd, H], k/v [nKV*hd, H], o [H, nH*hd] */
	const float *q_norm, *k_norm; /* [hd], Qwen3 only */
	struct lin gate, up, down;  /* gate/up [I, H], down [H, I] */
};

typedef struct seqcls {
	rwd_weights *weights;
	enum arch arch;
	enum head head;
	size_t n_out;               /* head outputs per row: n_labels (SEQ), 2 (PRM), 1 or 2 (TOKEN) */
	int32_t step_id;            /* PRM/TOKEN: the separator token id */
	const char *step_text;      /* its text (borrowed from tok), NULL without a tokenizer */
	struct lin h0, h2;          /* PRM: score.0 [H, H] + bias, score.2 [2, H] + bias */
	const float *score_b;       /* TOKEN: score.bias [n_out] or NULL */
	char *system_prompt;        /* PRM/TOKEN `steps` items: the system turn, NULL = none */
	char warm[48];              /* PRM/TOKEN: {"input_ids": [step_id]}, the warm-up item */
	size_t vocab, H, inter, nH, nKV, hd, L, n_labels;
	size_t qd, kvd;             /* nH*hd, nKV*hd */
	float eps;
	int has_pad;
	int64_t pad_id;
	int truncate; /* enum trunc, or -1: unset (the endpoint's default applies) */
	int bf16;                   /* options.precision == "bf16" */
	rwd_bf16 *bf;               /* precision "bf16": q/k/v/o/gate/up/down on oneDNN; NULL = fp32 */
	float *inv_freq;            /* [hd/2] */
	const float *embed;         /* [vocab, H] */
	const float *norm;          /* [H] */
	const float *score;         /* [n_labels, H] */
	struct layer *layers;       /* [L] */
	char *names[RWD_MAX_DIMS];
	size_t max_tokens;          /* per item */
	size_t max_rows;            /* tokens per forward chunk = max(max_batch_tokens, max_tokens) */
	size_t max_items;           /* items per forward chunk */
	size_t weight_bytes;
	rwd_tokenizer *tok;         /* NULL: the folder has no tokenizer files */
	rwd_chat_template *chat;    /* NULL: see chat_err */
	rwd_error chat_err;         /* why `messages` cannot be rendered */
} seqcls;

/* Per-worker scratch, sized at load (see scratch_new). */
typedef struct sc_scratch {
	float *x, *n;               /* [max_rows, H] residual stream, normed input */
	float *q;                   /* [max_rows, qd] queries, then attention output in place */
	float *k, *v;               /* [max_rows, kvd] */
	float *gate, *up;           /* [SC_MLP_CHUNK, I] */
	float *tmp;                 /* [SC_MLP_CHUNK, H] */
	float *s;                   /* [SC_QBLOCK, max_tokens] attention probabilities */
	int32_t *pos;               /* [max_rows] position of each packed token */
	int32_t *posq;              /* [max_rows] position of each row the head reads */
	size_t *start, *len;        /* [max_items] each item's slice of the packed rows */
	size_t *qoff;               /* [max_items] each item's first row among the head's rows */
	float *logit;               /* [max_rows, 2] PRM/TOKEN head outputs */
	void *block;                /* the single allocation the above point into */
	rwd_bf16_scratch *bs;       /* precision "bf16": this worker's oneDNN scratch */
} sc_scratch;

/*
 * What prepare() leaves in item->prep: the ids to run (trailing pad, or what
 * follows the last step separator, dropped) and the positions the head reads:
 * the pooled token (SEQ), or every separator in ascending order (PRM/TOKEN).
 */
typedef struct sc_prep {
	const int32_t *ids;
	size_t n;
	const int32_t *sel;
	size_t n_sel;
} sc_prep;

static const char *const seqcls_inputs[] = {"input_ids", "text", "messages", "prompt", "response", NULL};
static const char *const prm_inputs[] = {"input_ids", "text", "messages", "prompt", "response", "steps",
	"system", NULL};

/* ---- config.json ---- */

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
	if (!json_is_integer(v)) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be an integer", key);
	}
	json_int_t x = json_integer_value(v);
	if (x < (json_int_t)min || (uint64_t)x > (uint64_t)max) {
		rwd_error_where(err, NULL, key);
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is %lld, outside [%zu, %zu]", key,
			(long long)x, min, max);
	}
	*out = (size_t)x;
	return 0;
}

/*
 * The head from `architectures` (a process-reward or token-classification
 * entry; anything else is a sequence classifier, as before).
 */
static enum head parse_head(const json_t *cfg)
{
	static const struct { const char *arch; enum head h; } t[] = {
		{"Qwen2ForProcessRewardModel", HEAD_PRM},
		{"Qwen2ForTokenClassification", HEAD_TOKEN},
		{"Qwen3ForTokenClassification", HEAD_TOKEN},
		{"LlamaForTokenClassification", HEAD_TOKEN},
	};
	size_t j;
	json_t *a;
	json_array_foreach(json_object_get(cfg, "architectures"), j, a)
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
			if (json_is_string(a) && strcmp(json_string_value(a), t[i].arch) == 0)
				return t[i].h;
	return HEAD_SEQ;
}

static int parse_arch(const json_t *cfg, enum arch *out, rwd_error *err)
{
	static const struct { const char *type, *arch; enum arch a; } t[] = {
		{"qwen2", "Qwen2ForSequenceClassification", ARCH_QWEN2},
		{"qwen3", "Qwen3ForSequenceClassification", ARCH_QWEN3},
		{"llama", "LlamaForSequenceClassification", ARCH_LLAMA},
		{"qwen2", "Qwen2ForProcessRewardModel", ARCH_QWEN2},
		{"qwen2", "Qwen2ForTokenClassification", ARCH_QWEN2},
		{"qwen3", "Qwen3ForTokenClassification", ARCH_QWEN3},
		{"llama", "LlamaForTokenClassification", ARCH_LLAMA},
	};
	const char *type = json_string_value(json_object_get(cfg, "model_type"));
	json_t *archs = json_object_get(cfg, "architectures");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (type && strcmp(type, t[i].type) == 0) {
			*out = t[i].a;
			return 0;
		}
		size_t j;
		json_t *a;
		json_array_foreach(archs, j, a) {
			if (!type && json_is_string(a) && strcmp(json_string_value(a), t[i].arch) == 0) {
				*out = t[i].a;
				return 0;
			}
		}
	}
	rwd_error_where(err, NULL, type ? "model_type" : "architectures");
	return rwd_errorf(err, RWD_E_UNSUPPORTED,
		"model_type '%s' is not supported by seqcls (qwen2, qwen3, llama)", type ? type : "(none)");
}

/* rope_theta and rope_scaling, legacy keys or transformers' newer "rope_parameters". */
static int parse_rope(seqcls *m, const json_t *cfg, rwd_nn_rope_scaling *sc, double *theta,
	rwd_error *err)
{
	json_t *params = json_object_get(cfg, "rope_parameters");
	json_t *rs = json_object_get(cfg, "rope_scaling");
	const json_t *theta_src = cfg;
	int r;
	memset(sc, 0, sizeof(*sc));
	if (json_is_object(params)) {
		theta_src = json_object_get(params, "rope_theta") ? params : cfg;
		if (!rs || json_is_null(rs))
			rs = params;
	}
	r = rwd_json_number(theta_src, "rope_theta", 0, 10000.0, 1.0, 1e12, theta, err);
	if (r)
		return r;
	if (!rs || json_is_null(rs))
		return 0;
	if (!json_is_object(rs)) {
		rwd_error_where(err, NULL, "rope_scaling");
		return rwd_errorf(err, RWD_E_INVALID, "\"rope_scaling\" must be an object or null");
	}
	const char *type = json_string_value(json_object_get(rs, "rope_type"));
	if (!type)
		type = json_string_value(json_object_get(rs, "type"));
	if (!type || strcmp(type, "default") == 0)
		return 0;
	if (strcmp(type, "llama3") != 0) {
		rwd_error_where(err, NULL, "rope_scaling");
		return rwd_errorf(err, RWD_E_UNSUPPORTED,
			"rope_scaling type '%s' is not supported (default, llama3)", type);
	}
	double f, lo, hi, old;
	if ((r = rwd_json_number(rs, "factor", 1, 0, 1e-6, 1e6, &f, err)) ||
	    (r = rwd_json_number(rs, "low_freq_factor", 1, 0, 1e-6, 1e6, &lo, err)) ||
	    (r = rwd_json_number(rs, "high_freq_factor", 1, 0, 1e-6, 1e6, &hi, err)) ||
	    (r = rwd_json_number(rs, "original_max_position_embeddings", 1, 0, 1, 1e9, &old, err))) {
		rwd_error_where(err, NULL, "rope_scaling");
		return r;
	}
	if (!(hi > lo)) {
		rwd_error_where(err, NULL, "rope_scaling");
		return rwd_errorf(err, RWD_E_INVALID, "high_freq_factor must exceed low_freq_factor");
	}
	sc->factor = (float)f;
	sc->low_freq_factor = (float)lo;
	sc->high_freq_factor = (float)hi;
	sc->original_max_position = (int)old;
	(void)m;
	return 0;
}

static int parse_labels(seqcls *m, const json_t *cfg, size_t score_rows, rwd_error *err)
{
	json_t *id2label = json_object_get(cfg, "id2label");
	size_t n = score_rows;
	if (id2label && !json_is_null(id2label)) {
		if (!json_is_object(id2label) || json_object_size(id2label) == 0) {
			rwd_error_where(err, NULL, "id2label");
			return rwd_errorf(err, RWD_E_INVALID, "\"id2label\" must be a non-empty object");
		}
		n = json_object_size(id2label);
	}
	if (n == 0 || n > RWD_MAX_DIMS) {
		rwd_error_where(err, NULL, "id2label");
		return rwd_errorf(err, RWD_E_LIMIT, "%zu labels; 1 to %d supported", n, RWD_MAX_DIMS);
	}
	for (size_t i = 0; i < n; i++) {
		char key[32], buf[32];
		const char *name;
		snprintf(key, sizeof(key), "%zu", i);
		if (id2label && !json_is_null(id2label)) {
			name = json_string_value(json_object_get(id2label, key));
			if (!name) {
				rwd_error_where(err, NULL, "id2label");
				return rwd_errorf(err, RWD_E_INVALID,
					"id2label has %zu entries but no string for \"%s\"", n, key);
			}
		} else {
			snprintf(buf, sizeof(buf), "LABEL_%zu", i);
			name = buf;
		}
		if (n == 1 && strcmp(name, "LABEL_0") == 0)
			name = "score";
		if (!name[0] || strlen(name) > SC_MAX_LABEL) {
			rwd_error_where(err, NULL, "id2label");
			return rwd_errorf(err, RWD_E_INVALID, "label %zu needs a name of 1 to %d bytes", i,
				SC_MAX_LABEL);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->names[j], name) == 0) {
				rwd_error_where(err, NULL, "id2label");
				return rwd_errorf(err, RWD_E_INVALID, "label '%s' appears twice", name);
			}
		if (!(m->names[i] = strdup(name)))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	m->n_labels = n;
	return 0;
}

static int parse_config(seqcls *m, const json_t *cfg, rwd_nn_rope_scaling *rope_sc,
	double *theta, int *attn_bias, int *mlp_bias, rwd_error *err)
{
	int r;
	size_t hd_def;
	double eps;
	if ((r = parse_arch(cfg, &m->arch, err)))
		return r;
	if ((r = cfg_size(cfg, "vocab_size", 1, 0, 1, SC_MAX_VOCAB, &m->vocab, err)) ||
	    (r = cfg_size(cfg, "hidden_size", 1, 0, 1, SC_MAX_DIM, &m->H, err)) ||
	    (r = cfg_size(cfg, "intermediate_size", 1, 0, 1, SC_MAX_DIM, &m->inter, err)) ||
	    (r = cfg_size(cfg, "num_hidden_layers", 1, 0, 1, SC_MAX_LAYERS, &m->L, err)) ||
	    (r = cfg_size(cfg, "num_attention_heads", 1, 0, 1, SC_MAX_HEADS, &m->nH, err)) ||
	    (r = cfg_size(cfg, "num_key_value_heads", 0, m->nH, 1, SC_MAX_HEADS, &m->nKV, err)))
		return r;
	hd_def = m->H / m->nH;
	if ((r = cfg_size(cfg, "head_dim", 0, hd_def, 2, SC_MAX_DIM, &m->hd, err)))
		return r;
	if (m->hd % 2) {
		rwd_error_where(err, NULL, "head_dim");
		return rwd_errorf(err, RWD_E_INVALID, "head_dim %zu is odd (RoPE rotates pairs)", m->hd);
	}
	if (m->nH % m->nKV) {
		rwd_error_where(err, NULL, "num_key_value_heads");
		return rwd_errorf(err, RWD_E_INVALID, "num_attention_heads %zu is not a multiple of num_key_value_heads %zu",
			m->nH, m->nKV);
	}
	m->qd = m->nH * m->hd;
	m->kvd = m->nKV * m->hd;
	if (m->qd > SC_MAX_DIM) {
		rwd_error_where(err, NULL, "head_dim");
		return rwd_errorf(err, RWD_E_LIMIT, "num_attention_heads x head_dim = %zu, more than %d",
			m->qd, SC_MAX_DIM);
	}
	if ((r = rwd_json_number(cfg, "rms_norm_eps", 0, 1e-6, 0.0, 1.0, &eps, err)))
		return r;
	m->eps = (float)eps;
	const char *act = json_string_value(json_object_get(cfg, "hidden_act"));
	if (json_object_get(cfg, "hidden_act") && (!act || strcmp(act, "silu") != 0)) {
		rwd_error_where(err, NULL, "hidden_act");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "hidden_act must be \"silu\" (SwiGLU MLP)");
	}
	int sliding;
	if ((r = rwd_json_bool(cfg, "use_sliding_window", 0, &sliding, err)))
		return r;
	if (sliding) {
		rwd_error_where(err, NULL, "use_sliding_window");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "sliding-window attention is not supported");
	}
	double prf;
	if ((r = rwd_json_number(cfg, "partial_rotary_factor", 0, 1.0, 0.0, 1.0, &prf, err)))
		return r;
	if (prf != 1.0) {
		rwd_error_where(err, NULL, "partial_rotary_factor");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "partial rotary embeddings are not supported");
	}
	if ((r = rwd_json_bool(cfg, "attention_bias", 0, attn_bias, err)) ||
	    (r = rwd_json_bool(cfg, "mlp_bias", 0, mlp_bias, err)))
		return r;
	json_t *pad = json_object_get(cfg, "pad_token_id");
	if (pad && !json_is_null(pad)) {
		if (!json_is_integer(pad)) {
			rwd_error_where(err, NULL, "pad_token_id");
			return rwd_errorf(err, RWD_E_INVALID, "\"pad_token_id\" must be an integer or null");
		}
		m->has_pad = 1;
		m->pad_id = json_integer_value(pad);
	}
	return parse_rope(m, cfg, rope_sc, theta, err);
}

/* ---- weights ---- */

static int get2(const rwd_weights *w, const char *name, size_t d0, size_t d1, const float **out,
	rwd_error *err)
{
	int64_t shape[2] = {(int64_t)d0, (int64_t)d1};
	return rwd_weights_get_f32(w, name, 2, shape, out, err);
}

static int get1(const rwd_weights *w, const char *name, size_t d0, const float **out,
	rwd_error *err)
{
	int64_t shape[1] = {(int64_t)d0};
	return rwd_weights_get_f32(w, name, 1, shape, out, err);
}

/* "<prefix>.weight" [out, in] and, when has_bias, "<prefix>.bias" [out]. */
static int get_lin(const rwd_weights *w, const char *prefix, size_t out, size_t in, int has_bias,
	struct lin *l, rwd_error *err)
{
	char name[256];
	int r;
	snprintf(name, sizeof(name), "%s.weight", prefix);
	if ((r = get2(w, name, out, in, &l->w, err)))
		return r;
	l->b = NULL;
	if (!has_bias)
		return 0;
	snprintf(name, sizeof(name), "%s.bias", prefix);
	return get1(w, name, out, &l->b, err);
}

static int load_layers(seqcls *m, int attn_bias, int mlp_bias, rwd_error *err)
{
	const rwd_weights *w = m->weights;
	char p[200], name[256];
	int r;
	int qkv_bias = m->arch == ARCH_QWEN2 || attn_bias;
	for (size_t l = 0; l < m->L; l++) {
		struct layer *ly = &m->layers[l];
		snprintf(p, sizeof(p), "model.layers.%zu.", l);
#define NAME(s) (snprintf(name, sizeof(name), "%s%s", p, s), name)
		if ((r = get1(w, NAME("input_layernorm.weight"), m->H, &ly->ln1, err)) ||
		    (r = get1(w, NAME("post_attention_layernorm.weight"), m->H, &ly->ln2, err)) ||
		    (r = get_lin(w, NAME("self_attn.q_proj"), m->qd, m->H, qkv_bias, &ly->q, err)) ||
		    (r = get_lin(w, NAME("self_attn.k_proj"), m->kvd, m->H, qkv_bias, &ly->k, err)) ||
		    (r = get_lin(w, NAME("self_attn.v_proj"), m->kvd, m->H, qkv_bias, &ly->v, err)) ||
		    (r = get_lin(w, NAME("self_attn.o_proj"), m->H, m->qd,
			    m->arch != ARCH_QWEN2 && attn_bias, &ly->o, err)) ||
		    (r = get_lin(w, NAME("mlp.gate_proj"), m->inter, m->H, mlp_bias, &ly->gate, err)) ||
		    (r = get_lin(w, NAME("mlp.up_proj"), m->inter, m->H, mlp_bias, &ly->up, err)) ||
		    (r = get_lin(w, NAME("mlp.down_proj"), m->H, m->inter, mlp_bias, &ly->down, err)))
			return r;
		if (m->arch == ARCH_QWEN3) {
			if ((r = get1(w, NAME("self_attn.q_norm.weight"), m->hd, &ly->q_norm, err)) ||
			    (r = get1(w, NAME("self_attn.k_norm.weight"), m->hd, &ly->k_norm, err)))
				return r;
		}
#undef NAME
	}
	return 0;
}

static void seqcls_free(void *state)
{
	seqcls *m = state;
	if (!m)
		return;
	rwd_bf16_free(m->bf);
	rwd_weights_free(m->weights);
	rwd_tokenizer_free(m->tok);
	rwd_chat_template_free(m->chat);
	free(m->inv_freq);
	free(m->layers);
	free(m->system_prompt);
	for (size_t i = 0; i < RWD_MAX_DIMS; i++)
		free(m->names[i]);
	free(m);
}

/* What an item over its token cap gets: refused (422), or cut to its last or first tokens. */
enum trunc { TRUNC_NONE, TRUNC_LEFT, TRUNC_RIGHT };

/* "left" | "right" | "none" into *out; anything else -1. */
static int trunc_name(const char *s)
{
	return !s ? -1 : !strcmp(s, "left") ? TRUNC_LEFT : !strcmp(s, "right") ? TRUNC_RIGHT
		: !strcmp(s, "none") ? TRUNC_NONE : -1;
}

static int parse_options(seqcls *m, const json_t *opts, rwd_error *err)
{
	m->truncate = -1;
	if (!opts || json_is_null(opts))
		return 0;
	if (!json_is_object(opts))
		return rwd_errorf(err, RWD_E_INVALID, "seqcls options must be an object");
	json_t *t = json_object_get(opts, "truncate");
	if (json_is_boolean(t))
		m->truncate = json_is_true(t) ? TRUNC_LEFT : TRUNC_NONE;
	else if (t && !json_is_null(t) && (m->truncate = trunc_name(json_string_value(t))) < 0) {
		rwd_error_where(err, NULL, "truncate");
		return rwd_errorf(err, RWD_E_INVALID,
			"seqcls option \"truncate\" must be true, false, \"left\", \"right\" or \"none\"");
	}
	json_t *p = json_object_get(opts, "precision");
	if (!p || json_is_null(p))
		return 0;
	const char *ps = json_string_value(p);
	if (!ps || (strcmp(ps, "fp32") && strcmp(ps, "bf16"))) {
		rwd_error_where(err, NULL, "precision");
		return rwd_errorf(err, RWD_E_INVALID, "\"precision\" must be \"fp32\" or \"bf16\"");
	}
	m->bf16 = strcmp(ps, "bf16") == 0;
	return 0;
}

/*
 * precision "bf16": every projection of every layer (q, k, v, o, gate with
 * its SiLU fused, up, down) becomes a oneDNN BF16 linear; layers of one
 * shape share primitives. Embeddings, norms, RoPE, attention and the score
 * head stay FP32. Refused (RWD_E_UNSUPPORTED) on a CPU without AVX512_BF16.
 */
static int load_bf16(seqcls *m, rwd_error *err)
{
	rwd_bf16_params bp = rwd_bf16_default_params();
	int r = rwd_bf16_new(&bp, &m->bf, err);
	if (r) {
		rwd_error_where(err, NULL, "precision");
		return r;
	}
	for (size_t l = 0; l < m->L; l++) {
		struct layer *ly = &m->layers[l];
		struct { struct lin *li; size_t n, k; rwd_bf16_act act; } t[] = {
			{&ly->q, m->qd, m->H, RWD_BF16_ACT_NONE}, {&ly->k, m->kvd, m->H, RWD_BF16_ACT_NONE},
			{&ly->v, m->kvd, m->H, RWD_BF16_ACT_NONE}, {&ly->o, m->H, m->qd, RWD_BF16_ACT_NONE},
			{&ly->gate, m->inter, m->H, RWD_BF16_ACT_SILU}, {&ly->up, m->inter, m->H, RWD_BF16_ACT_NONE},
			{&ly->down, m->H, m->inter, RWD_BF16_ACT_NONE},
		};
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
			if ((r = rwd_bf16_add_linear(m->bf, t[i].li->w, t[i].li->b, t[i].n, t[i].k, t[i].act,
				     &t[i].li->bf, err)))
				return r;
	}
	return 0;
}

/*
 * The tokenizer (tokenizer.json, or vocab.json + merges.txt with the
 * family's preset) and chat template, when the folder has them. No
 * tokenizer files: input_ids only. A broken tokenizer fails the load; a
 * missing or unrecognised chat template only fails the items that need it
 * (`messages`, `prompt` + `response`), with the recorded reason.
 */
static int load_text(seqcls *m, const char *path, rwd_error *err)
{
	rwd_error terr;
	rwd_error_clear(&terr);
	int r = rwd_tokenizer_load_dir(path, m->arch == ARCH_LLAMA ? RWD_TOKENIZER_LLAMA3 : RWD_TOKENIZER_QWEN2,
		NULL, &m->tok, &terr);
	if (r == RWD_E_NOTFOUND) {
		m->tok = NULL;
		return 0;
	}
	if (r) {
		if (err)
			*err = terr;
		return r;
	}
	rwd_error_clear(&m->chat_err);
	if (rwd_chat_template_load_dir(path, &m->chat, &m->chat_err))
		m->chat = NULL;
	return 0;
}


/*
 * The step separator's text, for joining `steps`: the configured string, or
 * the token's own text when encoding that text gives exactly this one id
 * (an added token such as "<extra_0>"); otherwise NULL (`steps` items are
 * then refused, and text must carry the separator already).
 */
static int step_text_ok(const seqcls *m, const char *text)
{
	if (!m->tok || !text || !text[0])
		return 0;
	rwd_arena *a = rwd_arena_create(0, 1 << 20);
	rwd_encode_params ep = rwd_encode_default_params();
	rwd_token_ids out;
	ep.add_special_tokens = 0;
	int ok = a && rwd_tokenizer_encode(m->tok, text, strlen(text), &ep, a, &out, NULL) == 0 &&
		out.n == 1 && out.ids[0] == m->step_id;
	rwd_arena_destroy(a);
	return ok;
}

/*
 * PRM and token-classification heads (HEAD_PRM, HEAD_TOKEN): their weights,
 * the separator and the four prm_* dimensions. The separator, first found
 * wins: options "step_tag_id" (int) or "step_separator" (a string that is
 * one token); config.json "step_tag_id" or "step_separator" (the names vLLM
 * and TRL use); Qwen2ForProcessRewardModel's documented "<extra_0>" (151651).
 * A token classifier without one is refused: there is no default to guess.
 */
static int load_head(seqcls *m, const json_t *cfg, const json_t *opts, rwd_error *err)
{
	const rwd_weights *w = m->weights;
	int r;
	if (m->head == HEAD_PRM) {
		m->n_out = 2;
		if ((r = get_lin(w, "score.0", m->H, m->H, 1, &m->h0, err)) ||
		    (r = get_lin(w, "score.2", 2, m->H, 1, &m->h2, err)))
			return r;
	} else {
		const rwd_tensor *t = rwd_weights_find(w, "score.weight");
		json_t *id2 = json_object_get(cfg, "id2label");
		size_t n = json_is_object(id2) && json_object_size(id2) ? json_object_size(id2)
			: t && t->ndim == 2 ? (size_t)t->shape[0] : 0;
		if (n < 1 || n > 2) {
			rwd_error_where(err, NULL, "id2label");
			return rwd_errorf(err, RWD_E_UNSUPPORTED,
				"a token-classification reward model needs 1 label (the head's value) or 2 "
				"(the positive class's probability); this one has %zu", n);
		}
		m->n_out = n;
		if ((r = get2(w, "score.weight", n, m->H, &m->score, err)))
			return r;
		if (rwd_weights_find(w, "score.bias") && (r = get1(w, "score.bias", n, &m->score_b, err)))
			return r;
	}
	for (size_t i = 0; i < SC_PRM_DIMS; i++)
		if (!(m->names[i] = strdup(prm_dims[i])))
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	m->n_labels = SC_PRM_DIMS;

	const json_t *srcs[2] = {opts, cfg};
	const char *sep = NULL;
	int found = 0;
	for (size_t i = 0; i < 2 && !found; i++) {
		json_t *id = json_is_object(srcs[i]) ? json_object_get(srcs[i], "step_tag_id") : NULL;
		json_t *st = json_is_object(srcs[i]) ? json_object_get(srcs[i], "step_separator") : NULL;
		const char *where = i == 0 ? "options.step_tag_id" : "step_tag_id";
		if (id && !json_is_null(id)) {
			if (!json_is_integer(id) || json_integer_value(id) < 0 ||
			    (uint64_t)json_integer_value(id) >= m->vocab) {
				rwd_error_where(err, NULL, where);
				return rwd_errorf(err, RWD_E_INVALID, "\"step_tag_id\" must be a token id in [0, %zu)",
					m->vocab);
			}
			m->step_id = (int32_t)json_integer_value(id);
			found = 1;
		} else if (st && !json_is_null(st)) {
			sep = json_string_value(st);
			int32_t t = sep && m->tok ? rwd_tokenizer_token_to_id(m->tok, sep) : -1;
			if (t < 0 || (size_t)t >= m->vocab) {
				rwd_error_where(err, NULL, i == 0 ? "options.step_separator" : "step_separator");
				return rwd_errorf(err, RWD_E_INVALID, "\"step_separator\" %s",
					!sep ? "must be a string" : !m->tok ? "needs the folder's tokenizer (or give step_tag_id)"
					: "is not one token of the tokenizer's vocabulary");
			}
			m->step_id = t;
			found = 1;
		}
	}
	if (!found) {
		if (m->head != HEAD_PRM || (size_t)SC_PRM_STEP_ID >= m->vocab) {
			rwd_error_where(err, NULL, "step_tag_id");
			return rwd_errorf(err, RWD_E_INVALID,
				"no step separator: set \"step_tag_id\" or \"step_separator\" in config.json or the "
				"model's options");
		}
		m->step_id = SC_PRM_STEP_ID;
	}
	const char *text = sep ? sep : m->tok ? rwd_tokenizer_id_to_token(m->tok, m->step_id) : NULL;
	m->step_text = step_text_ok(m, text) ? text : NULL;
	if (sep && !m->step_text)
		m->step_text = sep; /* a configured separator joins steps as given */

	snprintf(m->warm, sizeof(m->warm), "{\"input_ids\": [%d]}", (int)m->step_id);
	json_t *sp = json_is_object(opts) ? json_object_get(opts, "system_prompt") : NULL;
	const char *sys = m->head == HEAD_PRM
		? "Please reason step by step, and put your final answer within \\boxed{}." : NULL;
	if (sp) {
		if (!json_is_null(sp) && (!json_is_string(sp) || json_string_length(sp) > SC_MAX_SYSTEM)) {
			rwd_error_where(err, NULL, "options.system_prompt");
			return rwd_errorf(err, RWD_E_INVALID, "\"system_prompt\" must be null or a string of at most %d bytes",
				SC_MAX_SYSTEM);
		}
		sys = json_string_value(sp);
	}
	if (sys && !(m->system_prompt = strdup(sys)))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

static int seqcls_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	void **state, rwd_error *err)
{
	char cfg_path[PATH_MAX];
	json_t *cfg = NULL;
	json_error_t jerr;
	seqcls *m = NULL;
	rwd_nn_rope_scaling rope_sc;
	double theta;
	int attn_bias = 0, mlp_bias = 0;
	int r;

	if (!path)
		return rwd_errorf(err, RWD_E_INVALID, "a seqcls model needs a folder");
	if (snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", path) >= (int)sizeof(cfg_path))
		return rwd_errorf(err, RWD_E_LIMIT, "model path is too long");
	m = calloc(1, sizeof(*m));
	if (!m)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if ((r = parse_options(m, opts, err)))
		goto fail;

	/* config.json is small; anything near this size is not a config */
	struct stat sb;
	if (stat(cfg_path, &sb) != 0) {
		rwd_error_where(err, cfg_path, NULL);
		r = rwd_errorf(err, RWD_E_NOTFOUND, "no config.json in the model folder");
		goto fail;
	}
	if (sb.st_size > (16 << 20)) {
		rwd_error_where(err, cfg_path, NULL);
		r = rwd_errorf(err, RWD_E_LIMIT, "config.json is %lld bytes, more than 16 MiB",
			(long long)sb.st_size);
		goto fail;
	}
	cfg = json_load_file(cfg_path, JSON_REJECT_DUPLICATES, &jerr);
	if (!cfg || !json_is_object(cfg)) {
		rwd_error_where(err, cfg_path, NULL);
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		r = rwd_errorf(err, RWD_E_FORMAT, "%s", cfg ? "config.json is not an object" : jerr.text);
		goto fail;
	}
	r = parse_config(m, cfg, &rope_sc, &theta, &attn_bias, &mlp_bias, err);
	if (r) {
		rwd_error_where(err, cfg_path, NULL);
		goto fail;
	}

	rwd_weights_params wp = rwd_weights_default_params();
	wp.use_mmap = !(lim && lim->weights_in_memory);
	r = rwd_weights_open(path, &wp, &m->weights, err);
	if (r)
		goto fail;
	/* num_labels comes from id2label; without it, from score.weight's rows */
	const rwd_tensor *score_t = rwd_weights_find(m->weights, "score.weight");
	size_t score_rows = score_t && score_t->ndim == 2 ? (size_t)score_t->shape[0] : 1;
	m->head = parse_head(cfg);
	if (m->head == HEAD_SEQ && (r = parse_labels(m, cfg, score_rows, err))) {
		rwd_error_where(err, cfg_path, NULL);
		goto fail;
	}
	m->n_out = m->n_labels;
	m->layers = calloc(m->L, sizeof(*m->layers));
	m->inv_freq = malloc(m->hd / 2 * sizeof(*m->inv_freq));
	if (!m->layers || !m->inv_freq) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	if ((r = get2(m->weights, "model.embed_tokens.weight", m->vocab, m->H, &m->embed, err)) ||
	    (r = get1(m->weights, "model.norm.weight", m->H, &m->norm, err)) ||
	    (m->head == HEAD_SEQ && (r = get2(m->weights, "score.weight", m->n_labels, m->H, &m->score, err))) ||
	    (r = load_layers(m, attn_bias, mlp_bias, err)))
		goto fail;
	rwd_nn_rope_inv_freq((float)theta, m->hd, rope_sc.factor > 0 ? &rope_sc : NULL, m->inv_freq);

	m->max_tokens = lim->max_tokens ? lim->max_tokens : 4096;
	m->max_rows = lim->max_batch_tokens > m->max_tokens ? lim->max_batch_tokens : m->max_tokens;
	m->max_items = lim->max_batch_size ? lim->max_batch_size : 1;
	if (m->max_rows > (size_t)INT_MAX / 2 || m->max_tokens > (size_t)1 << 24) {
		r = rwd_errorf(err, RWD_E_LIMIT, "max_batch_tokens/max_tokens too large");
		goto fail;
	}
	m->weight_bytes = (size_t)rwd_weights_total_bytes(m->weights);
	if ((r = load_text(m, path, err)))
		goto fail;
	if (m->head != HEAD_SEQ && (r = load_head(m, cfg, opts, err))) {
		if (!err || !err->file[0])
			rwd_error_where(err, cfg_path, NULL);
		goto fail;
	}
	if (m->bf16 && (r = load_bf16(m, err)))
		goto fail;
	json_decref(cfg);
	*state = m;
	return 0;
fail:
	json_decref(cfg);
	seqcls_free(m);
	return r;
}

static void seqcls_describe(const void *state, rwd_model_info *info)
{
	const seqcls *m = state;
	info->n_dims = m->n_labels;
	for (size_t i = 0; i < m->n_labels; i++)
		info->dims[i] = m->names[i];
	info->weight_bytes = m->weight_bytes;
	info->token_cost = 1;
	info->inputs = m->head == HEAD_SEQ ? seqcls_inputs : prm_inputs;
	info->warm_item = m->head == HEAD_SEQ ? NULL : m->warm;
}

/* ---- items ---- */

/*
 * An item's tokenisation options (vLLM's request fields, which the drop-in
 * endpoints copy to each item): "add_special_tokens" (bool; *add -1 when
 * absent) and "truncate_prompt_tokens" (-1: max_tokens, or 1..max_tokens:
 * keep the last k tokens; *limit 0 when absent). *side is what an item over
 * its cap gets (enum trunc), in this order: truncate_prompt_tokens (left);
 * the model's "truncate" option when configured; the item's
 * "truncation_side" ("left" | "right" | "none", the endpoint's default that
 * lib/compat writes, e.g. /get_reward's "right" as OpenRLHF's serve_rm);
 * else none (422).
 */
static int item_opts(const seqcls *m, const json_t *item, int *add, size_t *limit, int *side, rwd_error *err)
{
	json_t *a = json_object_get(item, "add_special_tokens");
	json_t *t = json_object_get(item, "truncate_prompt_tokens");
	json_t *ts = json_object_get(item, "truncation_side");
	*add = -1;
	*limit = 0;
	*side = m->truncate >= 0 ? m->truncate : TRUNC_NONE;
	if (ts && !json_is_null(ts)) {
		int v = trunc_name(json_string_value(ts));
		if (v < 0) {
			rwd_error_where(err, NULL, "truncation_side");
			return rwd_errorf(err, RWD_E_INVALID, "\"truncation_side\" must be \"left\", \"right\" or \"none\"");
		}
		if (m->truncate < 0)
			*side = v;
	}
	if (a && !json_is_null(a)) {
		if (!json_is_boolean(a)) {
			rwd_error_where(err, NULL, "add_special_tokens");
			return rwd_errorf(err, RWD_E_INVALID, "\"add_special_tokens\" must be true or false");
		}
		*add = json_is_true(a);
	}
	if (t && !json_is_null(t)) {
		json_int_t k = json_is_integer(t) ? json_integer_value(t) : 0;
		if (k != -1 && (k < 1 || (uint64_t)k > m->max_tokens)) {
			rwd_error_where(err, NULL, "truncate_prompt_tokens");
			return rwd_errorf(err, RWD_E_INVALID,
				"\"truncate_prompt_tokens\" must be -1 (max_tokens) or 1 to max_tokens %zu", m->max_tokens);
		}
		*limit = k == -1 ? m->max_tokens : (size_t)k;
		*side = TRUNC_LEFT;
	}
	return 0;
}

static int check_ids(const seqcls *m, const json_t *ids, size_t limit, int side, size_t *n_out, rwd_error *err)
{
	if (!json_is_array(ids)) {
		rwd_error_where(err, NULL, "input_ids");
		return rwd_errorf(err, RWD_E_INVALID, "\"input_ids\" must be an array of token ids");
	}
	size_t n = json_array_size(ids);
	if (n == 0) {
		rwd_error_where(err, NULL, "input_ids");
		return rwd_errorf(err, RWD_E_INVALID, "\"input_ids\" is empty");
	}
	if (n > m->max_tokens && side == TRUNC_NONE) {
		rwd_error_where(err, NULL, "input_ids");
		return rwd_errorf(err, RWD_E_UNPROCESSABLE,
			"%zu tokens, more than max_tokens %zu (the model is not configured to truncate)",
			n, m->max_tokens);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(ids, i);
		json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
		if (id < 0 || (uint64_t)id >= m->vocab) {
			char where[64];
			snprintf(where, sizeof(where), "input_ids[%zu]", i);
			rwd_error_where(err, NULL, where);
			if (!json_is_integer(v))
				return rwd_errorf(err, RWD_E_INVALID, "token ids must be integers");
			return rwd_errorf(err, RWD_E_INVALID, "token id %lld is outside the vocabulary [0, %zu)",
				(long long)id, m->vocab);
		}
	}
	size_t cap = limit ? limit : m->max_tokens;
	*n_out = n > cap ? cap : n;
	return 0;
}

/* Which input form an item uses; exactly one is allowed. */
enum form { FORM_IDS, FORM_TEXT, FORM_MESSAGES, FORM_PAIR, FORM_STEPS };

/*
 * A PRM's `steps` item: "prompt" (the question) and "steps" ([str], 1 to
 * SC_MAX_STEPS), optional "system" (a string, or null for none; absent: the
 * model's system_prompt). Rendered as the Qwen2.5-Math-PRM model card does:
 * [system?, user prompt, assistant sep.join(steps) + sep].
 */
static int check_steps(const seqcls *m, const json_t *item, rwd_error *err)
{
	json_t *st = json_object_get(item, "steps"), *sys = json_object_get(item, "system");
	if (m->head == HEAD_SEQ) {
		rwd_error_where(err, NULL, "steps");
		return rwd_errorf(err, RWD_E_INVALID, "\"steps\" is for process reward models; this is a sequence classifier");
	}
	if (json_object_get(item, "response")) {
		rwd_error_where(err, NULL, "response");
		return rwd_errorf(err, RWD_E_INVALID, "give \"steps\" or \"response\", not both");
	}
	if (!json_is_string(json_object_get(item, "prompt"))) {
		rwd_error_where(err, NULL, "prompt");
		return rwd_errorf(err, RWD_E_INVALID, "\"steps\" needs \"prompt\", a string");
	}
	if (!json_is_array(st) || json_array_size(st) == 0 || json_array_size(st) > SC_MAX_STEPS) {
		rwd_error_where(err, NULL, "steps");
		return rwd_errorf(err, RWD_E_INVALID, "\"steps\" must be an array of 1 to %d strings", SC_MAX_STEPS);
	}
	size_t i;
	json_t *e;
	json_array_foreach(st, i, e) {
		if (!json_is_string(e)) {
			char where[32];
			snprintf(where, sizeof(where), "steps[%zu]", i);
			rwd_error_where(err, NULL, where);
			return rwd_errorf(err, RWD_E_INVALID, "each step must be a string");
		}
	}
	if (sys && !json_is_null(sys) && !json_is_string(sys)) {
		rwd_error_where(err, NULL, "system");
		return rwd_errorf(err, RWD_E_INVALID, "\"system\" must be a string or null");
	}
	if (!m->step_text) {
		rwd_error_where(err, NULL, "steps");
		return rwd_errorf(err, RWD_E_UNSUPPORTED,
			"the step separator (id %d) has no text this tokenizer encodes as that one token: send "
			"\"input_ids\", or text that carries the separators", (int)m->step_id);
	}
	return 0;
}

static int item_form(const seqcls *m, const json_t *item, enum form *f, rwd_error *err)
{
	const int ids = json_object_get(item, "input_ids") != NULL;
	const int text = json_object_get(item, "text") != NULL;
	const int msgs = json_object_get(item, "messages") != NULL;
	const int prompt = json_object_get(item, "prompt") != NULL;
	const int resp = json_object_get(item, "response") != NULL;
	const int steps = json_object_get(item, "steps") != NULL;
	if (ids + text + msgs + (prompt || resp || steps) != 1)
		return rwd_errorf(err, RWD_E_INVALID, m->head == HEAD_SEQ
			? "an item needs exactly one of \"input_ids\", \"text\", \"messages\" or \"prompt\" + \"response\""
			: "an item needs exactly one of \"input_ids\", \"text\", \"messages\", \"prompt\" + \"response\" "
			  "or \"prompt\" + \"steps\"");
	if (json_object_get(item, "system") && !steps) {
		rwd_error_where(err, NULL, "system");
		return rwd_errorf(err, RWD_E_INVALID, "\"system\" goes with \"prompt\" + \"steps\" only");
	}
	if (steps && m->head == HEAD_SEQ)
		return check_steps(m, item, err); /* refused, naming "steps" */
	if (ids) {
		*f = FORM_IDS;
		return 0;
	}
	const char *field = text ? "text" : msgs ? "messages" : prompt ? "prompt" : "response";
	if (!m->tok) {
		rwd_error_where(err, NULL, field);
		return rwd_errorf(err, RWD_E_UNSUPPORTED,
			"the model folder has no tokenizer files: send \"input_ids\"");
	}
	if (text) {
		*f = FORM_TEXT;
		if (!json_is_string(json_object_get(item, "text"))) {
			rwd_error_where(err, NULL, "text");
			return rwd_errorf(err, RWD_E_INVALID, "\"text\" must be a string");
		}
		return 0;
	}
	if (!m->chat) {
		rwd_error_where(err, NULL, field);
		return rwd_errorf(err, m->chat_err.code ? m->chat_err.code : RWD_E_UNSUPPORTED,
			"cannot render chat messages for this model: %s",
			m->chat_err.msg[0] ? m->chat_err.msg : "no chat template");
	}
	if (steps) {
		*f = FORM_STEPS;
		return check_steps(m, item, err);
	}
	if (msgs) {
		*f = FORM_MESSAGES;
		json_t *v = json_object_get(item, "messages");
		if (!json_is_array(v) || json_array_size(v) == 0) {
			rwd_error_where(err, NULL, "messages");
			return rwd_errorf(err, RWD_E_INVALID, "\"messages\" must be a non-empty array");
		}
		return 0;
	}
	*f = FORM_PAIR;
	static const char *const pair[] = {"prompt", "response"};
	for (size_t i = 0; i < 2; i++) {
		if (!json_is_string(json_object_get(item, pair[i]))) {
			rwd_error_where(err, NULL, pair[i]);
			return rwd_errorf(err, RWD_E_INVALID, "\"prompt\" and \"response\" must both be strings");
		}
	}
	return 0;
}

/* Bytes of text an item carries (for the cost estimate). */
static size_t text_bytes(const json_t *v)
{
	if (json_is_string(v))
		return json_string_length(v);
	size_t n = 0, i;
	const char *k;
	json_t *e;
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			n += text_bytes(e) + 16;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e)
			n += text_bytes(e);
	}
	return n;
}

static int seqcls_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const seqcls *m = state;
	enum form f;
	int add, side;
	size_t limit;
	int r = item_form(m, item, &f, err);
	if (!r)
		r = item_opts(m, item, &add, &limit, &side, err);
	if (r)
		return r;
	if (f == FORM_IDS)
		return check_ids(m, json_object_get(item, "input_ids"), limit, side, cost, err);
	/*
	 * Tokenising is the worker's job (prepare), so the cost of text is an
	 * estimate: ~4 bytes per BPE token plus template overhead, at most
	 * max_tokens. forward() splits a batch whose real count is larger.
	 */
	size_t bytes = f == FORM_TEXT ? json_string_length(json_object_get(item, "text"))
		: f == FORM_MESSAGES ? text_bytes(json_object_get(item, "messages"))
		: f == FORM_STEPS ? text_bytes(json_object_get(item, "prompt")) + text_bytes(json_object_get(item, "steps"))
			+ (m->system_prompt ? strlen(m->system_prompt) : 0) + 32
		: text_bytes(json_object_get(item, "prompt")) + text_bytes(json_object_get(item, "response")) + 32;
	size_t est = bytes / 4 + 8;
	*cost = est < m->max_tokens ? est : m->max_tokens;
	return 0;
}

/*
 * Tokenise a text-form item into (*ids, *n) from the arena: `text` as the
 * tokenizer encodes it with its special tokens (a BOS the text already
 * starts with is not doubled, as Skywork's recipe strips it); `messages` and
 * `prompt` + `response` (a user turn and an assistant turn) rendered by the
 * chat template and encoded without added specials, as apply_chat_template.
 */
static int tokenize_item(const seqcls *m, const json_t *item, enum form f, int add, rwd_arena *arena,
	int32_t **ids, size_t *n, rwd_error *err)
{
	char *text;
	size_t len;
	int r;
	rwd_encode_params ep = rwd_encode_default_params();
	if (f == FORM_TEXT) {
		json_t *t = json_object_get(item, "text");
		text = (char *)json_string_value(t);
		len = json_string_length(t);
	} else if (f == FORM_MESSAGES) {
		r = rwd_chat_render_json(m->chat, json_object_get(item, "messages"), NULL, arena, &text,
			&len, err);
		if (r)
			return r;
		ep.add_special_tokens = 0;
	} else if (f == FORM_STEPS) {
		/* the model card's format: steps joined by the separator, one after the last */
		json_t *st = json_object_get(item, "steps"), *p = json_object_get(item, "prompt");
		json_t *sys = json_object_get(item, "system");
		const size_t sl = strlen(m->step_text);
		size_t total = 0, i;
		json_t *e;
		json_array_foreach(st, i, e)
			total += json_string_length(e) + sl;
		char *content = rwd_arena_alloc(arena, total + 1), *w = content;
		if (!content)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory for the item's steps");
		json_array_foreach(st, i, e) {
			memcpy(w, json_string_value(e), json_string_length(e));
			w += json_string_length(e);
			memcpy(w, m->step_text, sl);
			w += sl;
		}
		*w = 0;
		const char *system = sys ? json_string_value(sys) : m->system_prompt;
		size_t system_len = sys ? json_string_length(sys) : system ? strlen(system) : 0;
		rwd_chat_message msgs[3] = {
			{"system", 6, system, system_len, NULL, 0},
			{"user", 4, json_string_value(p), json_string_length(p), NULL, 0},
			{"assistant", 9, content, total, NULL, 0},
		};
		r = system ? rwd_chat_render(m->chat, msgs, 3, NULL, arena, &text, &len, err)
			: rwd_chat_render(m->chat, msgs + 1, 2, NULL, arena, &text, &len, err);
		if (r)
			return r;
		ep.add_special_tokens = 0;
	} else {
		json_t *p = json_object_get(item, "prompt"), *a = json_object_get(item, "response");
		rwd_chat_message msgs[2] = {
			{"user", 4, json_string_value(p), json_string_length(p), NULL, 0},
			{"assistant", 9, json_string_value(a), json_string_length(a), NULL, 0},
		};
		r = rwd_chat_render(m->chat, msgs, 2, NULL, arena, &text, &len, err);
		if (r)
			return r;
		ep.add_special_tokens = 0;
	}
	if (add >= 0)
		ep.add_special_tokens = add; /* the item's add_special_tokens over the form's default */
	rwd_token_ids out;
	r = rwd_tokenizer_encode(m->tok, text, len, &ep, arena, &out, err);
	if (r)
		return r;
	*ids = out.ids;
	*n = out.n;
	if (f == FORM_TEXT && out.n >= 2 && out.ids[0] == out.ids[1] &&
	    rwd_tokenizer_num_special_added(m->tok) > 0) {
		int32_t bos = -1;
		rwd_token_ids probe;
		/* the id the post-processor puts first (encoding "" gives only the specials) */
		if (rwd_tokenizer_encode(m->tok, "", 0, &ep, arena, &probe, NULL) == 0 && probe.n > 0)
			bos = probe.ids[0];
		if (out.ids[0] == bos) {
			(*ids)++;
			(*n)--;
		}
	}
	return 0;
}

static int seqcls_prepare(const void *state, void *scratch, rwd_item *item, rwd_arena *arena,
	rwd_error *err)
{
	const seqcls *m = state;
	enum form f;
	size_t n_full = 0, limit;
	int32_t *buf = NULL;
	int r, add, side;
	if ((r = item_form(m, item->input, &f, err)) || (r = item_opts(m, item->input, &add, &limit, &side, err)))
		return r;
	if (f == FORM_IDS) {
		json_t *ids = json_object_get(item->input, "input_ids");
		if ((r = check_ids(m, ids, limit, side, &n_full, err)))
			return r;
		n_full = json_array_size(ids);
		buf = rwd_arena_alloc(arena, n_full * sizeof(*buf));
		if (!buf)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory for the item's token ids");
		for (size_t i = 0; i < n_full; i++)
			buf[i] = (int32_t)json_integer_value(json_array_get(ids, i));
	} else {
		const char *field = f == FORM_TEXT ? "text" : f == FORM_MESSAGES ? "messages"
			: f == FORM_STEPS ? "steps" : "response";
		if ((r = tokenize_item(m, item->input, f, add, arena, &buf, &n_full, err))) {
			if (!err || !err->object[0])
				rwd_error_where(err, NULL, field);
			return r;
		}
		if (n_full == 0) {
			rwd_error_where(err, NULL, field);
			return rwd_errorf(err, RWD_E_INVALID, "the text has no tokens");
		}
		if (n_full > m->max_tokens && side == TRUNC_NONE) {
			rwd_error_where(err, NULL, field);
			return rwd_errorf(err, RWD_E_UNPROCESSABLE,
				"%zu tokens, more than max_tokens %zu (the model is not configured to truncate)",
				n_full, m->max_tokens);
		}
		for (size_t i = 0; i < n_full; i++)
			if (buf[i] < 0 || (size_t)buf[i] >= m->vocab) {
				rwd_error_where(err, NULL, field);
				return rwd_errorf(err, RWD_E_INVALID,
					"the tokenizer produced id %d, outside the model's vocabulary [0, %zu)",
					(int)buf[i], m->vocab);
			}
	}
	/*
	 * Left truncation keeps the last max_tokens (or truncate_prompt_tokens)
	 * ids; right keeps the first max_tokens, as a HF tokenizer with
	 * truncation=True, max_length does by default (serve_rm).
	 */
	size_t cap = limit ? limit : m->max_tokens;
	size_t first = n_full > cap && side == TRUNC_LEFT ? n_full - cap : 0;
	size_t end = n_full - first > cap ? first + cap : n_full;
	if (m->head != HEAD_SEQ && (first > 0 || end < n_full)) {
		/*
		 * A process reward model scores the steps its separators mark:
		 * truncation that cuts a separator off would give step rewards for
		 * only some of the steps (prm_last, prm_min of other steps), so it is
		 * refused. Cutting only text without separators (the prompt's start,
		 * what follows the last step) is the endpoint's truncation as usual.
		 */
		size_t all = 0, kept = 0;
		for (size_t t = 0; t < n_full; t++)
			if (buf[t] == m->step_id) {
				all++;
				kept += t >= first && t < end;
			}
		if (kept != all) {
			const char *field = f == FORM_IDS ? "input_ids" : f == FORM_TEXT ? "text"
				: f == FORM_MESSAGES ? "messages" : f == FORM_STEPS ? "steps" : "response";
			rwd_error_where(err, NULL, field);
			return rwd_errorf(err, RWD_E_UNPROCESSABLE,
				"%zu tokens, more than the %zu kept (max_tokens or truncate_prompt_tokens), and truncating "
				"would cut %zu of the %zu step separators off: step rewards would not cover every step",
				n_full, cap, all - kept, all);
		}
	}
	n_full = end;
	size_t n = n_full - first;
	buf += first;
	sc_prep *p = rwd_arena_alloc(arena, sizeof(*p));
	if (!p)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	/*
	 * Pool at the rightmost id != pad_token_id (position 0 if all are pad).
	 * Later tokens cannot influence it through causal attention: drop them.
	 */
	size_t keep = n;
	if (m->head == HEAD_SEQ) {
		if (m->has_pad) {
			while (keep > 1 && buf[keep - 1] == m->pad_id)
				keep--;
		}
		int32_t *sel = rwd_arena_alloc(arena, sizeof(*sel));
		if (!sel)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		sel[0] = (int32_t)(keep - 1);
		p->sel = sel;
		p->n_sel = 1;
	} else {
		/*
		 * PRM/TOKEN: the head reads every separator; what follows the last
		 * one cannot change them (causal attention) and is dropped.
		 */
		size_t k = 0;
		for (size_t t = 0; t < n; t++)
			k += buf[t] == m->step_id;
		const char *field = f == FORM_IDS ? "input_ids" : f == FORM_TEXT ? "text"
			: f == FORM_MESSAGES ? "messages" : f == FORM_STEPS ? "steps" : "response";
		if (k == 0) {
			rwd_error_where(err, NULL, field);
			return rwd_errorf(err, RWD_E_UNPROCESSABLE,
				"no step separator (token id %d%s%s%s) in the item%s: a process reward model scores the "
				"steps it marks", (int)m->step_id, m->step_text ? ", \"" : "",
				m->step_text ? m->step_text : "", m->step_text ? "\"" : "",
				first ? " after truncation" : "");
		}
		if (f == FORM_STEPS && k != json_array_size(json_object_get(item->input, "steps"))) {
			rwd_error_where(err, NULL, "steps");
			return rwd_errorf(err, RWD_E_UNPROCESSABLE,
				"%zu steps but %zu separators in the tokenised item (a step contains the separator, or "
				"truncation cut steps off): step rewards would not line up", json_array_size(
				json_object_get(item->input, "steps")), k);
		}
		int32_t *sel = rwd_arena_alloc(arena, k * sizeof(*sel));
		if (!sel)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		k = 0;
		for (size_t t = 0; t < n; t++)
			if (buf[t] == m->step_id)
				sel[k++] = (int32_t)t;
		keep = (size_t)sel[k - 1] + 1;
		p->sel = sel;
		p->n_sel = k;
	}
	p->ids = buf;
	p->n = keep;
	item->prep = p;
	return 0;
}

/* ---- scratch ---- */

static int seqcls_scratch_new(const void *state, void **out, rwd_error *err)
{
	const seqcls *m = state;
	sc_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	/* float counts of each buffer, each rounded up to a 64-byte multiple */
	const size_t R = m->max_rows, B = m->max_items;
	size_t sizes[] = {
		R * m->H, R * m->H, R * m->qd, R * m->kvd, R * m->kvd,
		(size_t)SC_MLP_CHUNK * m->inter, (size_t)SC_MLP_CHUNK * m->inter, (size_t)SC_MLP_CHUNK * m->H,
		(size_t)SC_QBLOCK * m->max_tokens,
		R, R, B * 2, B * 2, B * 2, /* pos, posq (int32); start, len, qoff (size_t: 2 floats each) */
		R * 2,
	};
	enum { NBUF = sizeof(sizes) / sizeof(sizes[0]) };
	void *ptrs[NBUF];
	float *base = NULL;
	int rc = rwd_carve_floats(sizes, NBUF, ptrs, &base, err);
	if (rc) {
		free(s);
		return rc;
	}
	s->block = base;
	s->x = ptrs[0];
	s->n = ptrs[1];
	s->q = ptrs[2];
	s->k = ptrs[3];
	s->v = ptrs[4];
	s->gate = ptrs[5];
	s->up = ptrs[6];
	s->tmp = ptrs[7];
	s->s = ptrs[8];
	s->pos = ptrs[9];
	s->posq = ptrs[10];
	s->start = ptrs[11];
	s->len = ptrs[12];
	s->qoff = ptrs[13];
	s->logit = ptrs[14];
	if (m->bf && (rc = rwd_bf16_scratch_new(m->bf, &s->bs, err))) {
		free(s->block);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static void seqcls_scratch_free(void *scratch)
{
	sc_scratch *s = scratch;
	if (!s)
		return;
	rwd_bf16_scratch_free(s->bs);
	free(s->block);
	free(s);
}

/* ---- forward ---- */

/*
 * Causal GQA attention of one item, in place: the queries q [nq, qd] (row
 * stride ldq) at positions q0 .. q0+nq-1 become the attention output.
 * k, v: [q0+nq, kvd] (dense) of the item's positions 0 .. q0+nq-1.
 * s: SC_QBLOCK * (q0+nq) floats. Query blocks see only the keys up to their
 * last position, so a causal pass costs about half of the full square.
 * In place is safe: head h's output block is written after its scores were
 * computed, and no other head reads those columns.
 */
static void attend(const seqcls *m, float *q, size_t ldq, size_t nq, size_t q0,
	const float *k, const float *v, float *s)
{
	const size_t hd = m->hd, group = m->nH / m->nKV;
	const float scale = 1.0f / sqrtf((float)hd);
	for (size_t b0 = 0; b0 < nq; b0 += SC_QBLOCK) {
		const size_t nb = nq - b0 < SC_QBLOCK ? nq - b0 : SC_QBLOCK;
		const size_t nk = q0 + b0 + nb; /* keys visible to the block's last query */
		float *qb = q + b0 * ldq;
		for (size_t h = 0; h < m->nH; h++) {
			const size_t g = h / group;
			/* s[nb, nk] = scale * q_h[nb, hd] . k_g[nk, hd]^T */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nb, (blasint)nk,
				(blasint)hd, scale, qb + h * hd, (blasint)ldq, k + g * hd, (blasint)m->kvd,
				0.0f, s, (blasint)nk);
			for (size_t i = 0; i < nb; i++) {
				float *row = s + i * nk;
				const size_t valid = q0 + b0 + i + 1;
				float mx = row[0];
				for (size_t j = 1; j < valid; j++)
					mx = row[j] > mx ? row[j] : mx;
				float sum = 0.0f;
				for (size_t j = 0; j < valid; j++) {
					row[j] = expf(row[j] - mx);
					sum += row[j];
				}
				const float inv = 1.0f / sum;
				for (size_t j = 0; j < valid; j++)
					row[j] *= inv;
				for (size_t j = valid; j < nk; j++)
					row[j] = 0.0f;
			}
			/* out_h[nb, hd] = s[nb, nk] . v_g[nk, hd], over q_h's columns */
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)nb, (blasint)hd,
				(blasint)nk, 1.0f, s, (blasint)nk, v + g * hd, (blasint)m->kvd, 0.0f,
				qb + h * hd, (blasint)ldq);
		}
	}
}

/* y[rows, n] = x[rows, k] . l^T (+ bias), FP32 (OpenBLAS) or BF16 (oneDNN) by precision. */
static void linear(const struct lin *l, sc_scratch *s, const float *x, size_t rows, size_t k,
	size_t n, float *y)
{
	if (l->bf)
		rwd_bf16_linear_run(l->bf, s->bs, x, rows, 0, y, 0); /* errors: rwd_bf16_scratch_status */
	else
		rwd_nn_linear(x, rows, k, 0, l->w, l->b, n, y, 0);
}

static void mul_rows(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] *= y[i];
}

static void add_rows(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

/* x[rows, H] += down(silu(gate(n)) * up(n)) with n = rmsnorm(x), in row chunks. */
static void mlp(const seqcls *m, const struct layer *ly, sc_scratch *s, float *x, size_t rows)
{
	rwd_nn_rmsnorm(x, rows, m->H, ly->ln2, m->eps, s->n);
	for (size_t r0 = 0; r0 < rows; r0 += SC_MLP_CHUNK) {
		const size_t nr = rows - r0 < SC_MLP_CHUNK ? rows - r0 : SC_MLP_CHUNK;
		const float *nn = s->n + r0 * m->H;
		linear(&ly->gate, s, nn, nr, m->H, m->inter, s->gate);
		linear(&ly->up, s, nn, nr, m->H, m->inter, s->up);
		if (ly->gate.bf)
			mul_rows(s->gate, s->up, nr * m->inter); /* SiLU already fused into the gate GEMM */
		else
			rwd_nn_swiglu(s->gate, s->up, nr * m->inter);
		linear(&ly->down, s, s->gate, nr, m->inter, m->H, s->tmp);
		add_rows(x + r0 * m->H, s->tmp, nr * m->H);
	}
}

/*
 * The four prm_* dimensions and the per-step outputs of one item from its k
 * head rows `logit` [k, n_out]: the step reward is the positive class's
 * probability (column 1 of 2) or the head's value (1 output). min, mean and
 * product are taken in double over the float step rewards.
 */
#define STEP_VALUE(lg, j) (m->n_out == 2 ? (lg)[(j) * 2 + 1] : (lg)[j])
static int prm_outputs(const seqcls *m, rwd_item *it, const float *logit, size_t k)
{
	double mn = STEP_VALUE(logit, 0), sum = 0.0, prod = 1.0;
	for (size_t j = 0; j < k; j++) {
		const double v = STEP_VALUE(logit, j);
		mn = v < mn ? v : mn;
		sum += v;
		prod *= v;
	}
	it->scores[0] = (float)mn;
	it->scores[1] = (float)(sum / (double)k);
	it->scores[2] = STEP_VALUE(logit, k - 1);
	it->scores[3] = (float)prod;
	json_t *steps = json_array(), *probs = m->n_out == 2 ? json_array() : NULL;
	json_t *o = json_object();
	int bad = !steps || !o || (m->n_out == 2 && !probs);
	for (size_t j = 0; j < k && !bad; j++) {
		bad |= json_array_append_new(steps, json_real((double)STEP_VALUE(logit, j))) != 0;
		if (probs) {
			/* vLLM's token_classify data: both classes' probabilities per separator */
			json_t *pr = json_pack("[ff]", (double)logit[j * 2], (double)logit[j * 2 + 1]);
			bad |= !pr || json_array_append_new(probs, pr) != 0;
		}
	}
	if (!bad)
		bad = json_object_set_new(o, "step_rewards", steps) != 0;
	else
		json_decref(steps);
	if (probs && !bad)
		bad = json_object_set_new(o, "step_probs", probs) != 0;
	else if (probs)
		json_decref(probs);
	if (bad) {
		json_decref(o);
		it->status = RWD_E_NOMEM;
		rwd_errorf(&it->err, RWD_E_NOMEM, "out of memory for the step rewards");
		return RWD_E_NOMEM;
	}
	it->extra = o;
	for (size_t d = 0; d < SC_PRM_DIMS; d++)
		it->present[d] = 1;
	return 0;
}

/*
 * PRM/TOKEN heads over the Q normed rows in s->n: s->logit [Q, n_out] holds
 * the positive class's probability in column 1 and the negative's in 0 after
 * a 2-way softmax, or the raw value (1 output). PRM: score.2(ReLU(score.0 x)),
 * in row chunks through s->tmp [SC_MLP_CHUNK, H].
 */
static void head_rows(const seqcls *m, sc_scratch *s, size_t Q)
{
	const size_t H = m->H;
	if (m->head == HEAD_PRM) {
		for (size_t r0 = 0; r0 < Q; r0 += SC_MLP_CHUNK) {
			const size_t nr = Q - r0 < SC_MLP_CHUNK ? Q - r0 : SC_MLP_CHUNK;
			rwd_nn_linear(s->n + r0 * H, nr, H, 0, m->h0.w, m->h0.b, H, s->tmp, 0);
			rwd_nn_relu(s->tmp, nr * H);
			rwd_nn_linear(s->tmp, nr, H, 0, m->h2.w, m->h2.b, 2, s->logit + r0 * 2, 0);
		}
	} else {
		rwd_nn_linear(s->n, Q, H, 0, m->score, m->score_b, m->n_out, s->logit, 0);
	}
	if (m->n_out == 2)
		rwd_nn_softmax(s->logit, Q, 2);
}

/*
 * One chunk of items packed into s->x: T rows, items described by
 * s->start/s->len (n of them). The last layer runs queries, attention output
 * and MLP only for the rows the head reads (each item's prep->sel: its pooled
 * token, or every step separator), compacted to the front. Leaves each item's
 * pooled logits, or its prm_* dimensions and step rewards, in the item.
 */
static void forward_chunk(const seqcls *m, sc_scratch *s, rwd_item *const *items, size_t n,
	size_t T)
{
	const size_t H = m->H;
	size_t Qs = 0; /* the head's rows */
	for (size_t i = 0; i < n; i++) {
		s->qoff[i] = Qs;
		Qs += ((const sc_prep *)items[i]->prep)->n_sel;
	}
	for (size_t l = 0; l < m->L; l++) {
		const struct layer *ly = &m->layers[l];
		const int last = l + 1 == m->L;
		/* rows whose queries matter: all tokens, or in the last layer only the head's */
		const size_t Q = last ? Qs : T;

		rwd_nn_rmsnorm(s->x, T, H, ly->ln1, m->eps, s->n);
		linear(&ly->k, s, s->n, T, H, m->kvd, s->k);
		linear(&ly->v, s, s->n, T, H, m->kvd, s->v);
		if (m->arch == ARCH_QWEN3)
			rwd_nn_rmsnorm(s->k, T * m->nKV, m->hd, ly->k_norm, m->eps, s->k);
		rwd_nn_rope(s->k, T, m->nKV, m->hd, 0, s->pos, m->inv_freq);
		if (last) {
			/*
			 * Compact the head's rows to the front of x and n. Rows are
			 * distinct and ascending across the chunk, so destination q <=
			 * source row: a row never overwrites one still unread.
			 */
			for (size_t i = 0; i < n; i++) {
				const sc_prep *p = items[i]->prep;
				for (size_t j = 0; j < p->n_sel; j++) {
					const size_t q = s->qoff[i] + j, row = s->start[i] + (size_t)p->sel[j];
					memmove(s->x + q * H, s->x + row * H, H * sizeof(float));
					memmove(s->n + q * H, s->n + row * H, H * sizeof(float));
					s->posq[q] = p->sel[j];
				}
			}
		}
		linear(&ly->q, s, s->n, Q, H, m->qd, s->q);
		if (m->arch == ARCH_QWEN3)
			rwd_nn_rmsnorm(s->q, Q * m->nH, m->hd, ly->q_norm, m->eps, s->q);
		rwd_nn_rope(s->q, Q, m->nH, m->hd, 0, last ? s->posq : s->pos, m->inv_freq);
		for (size_t i = 0; i < n; i++) {
			const float *k = s->k + s->start[i] * m->kvd;
			const float *v = s->v + s->start[i] * m->kvd;
			if (last) {
				const sc_prep *p = items[i]->prep;
				for (size_t j = 0; j < p->n_sel; j++)
					attend(m, s->q + (s->qoff[i] + j) * m->qd, m->qd, 1, (size_t)p->sel[j], k, v, s->s);
			} else {
				attend(m, s->q + s->start[i] * m->qd, m->qd, s->len[i], 0, k, v, s->s);
			}
		}
		/* x += o_proj(attn); n is free as the output buffer */
		linear(&ly->o, s, s->q, Q, m->qd, H, s->n);
		add_rows(s->x, s->n, Q * H);
		mlp(m, ly, s, s->x, Q);
	}
	/* x[0..Qs) now holds the head's rows */
	rwd_nn_rmsnorm(s->x, Qs, H, m->norm, m->eps, s->n);
	if (m->head == HEAD_SEQ) {
		float logits[RWD_MAX_DIMS];
		for (size_t i = 0; i < n; i++) {
			rwd_nn_linear(s->n + s->qoff[i] * H, 1, H, 0, m->score, NULL, m->n_labels, logits, 0);
			for (size_t j = 0; j < m->n_labels; j++) {
				items[i]->scores[j] = logits[j];
				items[i]->present[j] = 1;
			}
		}
		return;
	}
	head_rows(m, s, Qs);
	for (size_t i = 0; i < n; i++) {
		const sc_prep *p = items[i]->prep;
		prm_outputs(m, items[i], s->logit + s->qoff[i] * m->n_out, p->n_sel);
	}
}
#undef STEP_VALUE

static int seqcls_forward(const void *state, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	const seqcls *m = state;
	sc_scratch *s = scratch;
	(void)arena;
	if (!s)
		return RWD_E_INTERNAL;
	size_t i = 0;
	while (i < n) {
		/* a chunk: as many items as fit max_rows tokens and max_items */
		size_t T = 0, c = 0;
		while (i + c < n && c < m->max_items) {
			const sc_prep *p = items[i + c]->prep;
			if (T + p->n > m->max_rows)
				break;
			s->start[c] = T;
			s->len[c] = p->n;
			for (size_t t = 0; t < p->n; t++) {
				memcpy(s->x + (T + t) * m->H, m->embed + (size_t)p->ids[t] * m->H,
					m->H * sizeof(float));
				s->pos[T + t] = (int32_t)t;
			}
			T += p->n;
			c++;
		}
		if (c == 0)
			return RWD_E_INTERNAL; /* an item longer than max_rows: prepare() prevents it */
		forward_chunk(m, s, items + i, c, T);
		i += c;
	}
	/* a failed oneDNN call fails the batch, never a made-up score */
	return s->bs ? rwd_bf16_scratch_status(s->bs) : 0;
}

const rwd_model_ops rwd__seqcls_ops = {
	.kind = "seqcls",
	.inputs = seqcls_inputs,
	.load = seqcls_load,
	.free = seqcls_free,
	.describe = seqcls_describe,
	.check = seqcls_check,
	.scratch_new = seqcls_scratch_new,
	.scratch_free = seqcls_scratch_free,
	.prepare = seqcls_prepare,
	.forward = seqcls_forward,
};
