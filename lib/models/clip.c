/* models/clip.c — the `clip` kind; see clip.h for the contract. */
#include "models/clip.h"

#include "core/base64.h"
#include "core/json.h"
#include "image/resize.h"
#include "image/torch_resize.h"
#include "models/mlp.h"
#include "nn/bf16.h"
#include "nn/nn.h"
#include "tensor/safetensors.h"
#include "text/tokenizer.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds on config values (untrusted): generous for ViT-bigG-class models. */
#define CL_MAX_DIM (1 << 16)
#define CL_MAX_HEADS 1024
#define CL_MAX_LAYERS 256
#define CL_MAX_VOCAB (1 << 22)
#define CL_MAX_CTX 4096
#define CL_MAX_TOKENS 4096      /* vision tokens per image */
#define CL_MAX_HEADS_OPT 16     /* mlp heads */
#define CL_MLP_CHUNK 2048       /* rows per fc1/fc2 chunk (bounds scratch) */
#define CL_NAME_MAX 64

enum act { ACT_QUICK_GELU, ACT_GELU };
enum dim_kind { D_ALIGN, D_IMGSIM, D_EDIT, D_HEAD };

struct lin {
	const float *w, *b;
	const rwd_bf16_linear *bf; /* precision "bf16": the layer in rwd_clip.bf (fc1: act fused) */
};

struct layer {
	const float *ln1w, *ln1b, *ln2w, *ln2b; /* [H] */
	struct lin q, k, v, o;                  /* [H, H], [H] */
	struct lin fc1, fc2;                    /* [I, H], [I]; [H, I], [H] */
};

struct tower {
	size_t H, ffn, L, nH, hd;
	float eps;
	enum act act;
	struct layer *layers;
};

struct head {
	rwd_mlp *mlp;
	size_t n_out;
};

struct dim {
	enum dim_kind kind;
	size_t head, out; /* D_HEAD: which head and output */
	char *name;
};

struct rwd_clip {
	rwd_weights *weights;
	struct tower vt, tt;
	size_t proj;
	/* vision */
	size_t P, S, grid, n_patch, vtok, patch_k; /* patch_k = 3*P*P */
	const float *patch_w, *cls, *vpos, *pre_w, *pre_b, *post_w, *post_b, *vproj;
	/* text */
	size_t vocab, ctx;
	int64_t eos_id;
	const float *tok_emb, *tpos, *fin_w, *fin_b, *tproj;
	float scale; /* exp(logit_scale) */
	/* inputs */
	rwd_image_prep_params prep;
	rwd_image_decode_params decode;
	size_t max_image_bytes, max_string, max_text_bytes;
	rwd_tokenizer *tok;
	/* dimensions */
	int clipscore; /* 0 PickScore's scale * cos, 1 CLIPScore, 2 the cosine (HPSv2) */
	int align_set; /* text_alignment came from the served options */
	int openclip_aa; /* -1: CLIPImageProcessor; 0/1: OpenCLIP ResizeMaxSize, antialias */
	float clipscore_w;
	struct head heads[CL_MAX_HEADS_OPT];
	size_t n_heads;
	struct dim dims[RWD_MAX_DIMS];
	size_t n_dims;
	size_t cap; /* images / texts per encode call */
	size_t weight_bytes;
	int bf16;                   /* options.precision == "bf16" */
	rwd_bf16 *bf;               /* the towers' linears and patch embedding on oneDNN, or NULL */
	const rwd_bf16_linear *patch_bf;
};

typedef struct cl_scratch {
	float *x, *h, *qkv, *att, *mlp, *attn_s;
	float *img_emb, *txt_emb, *unit;   /* [2*cap, proj], [3*cap, proj], [2*cap, proj] */
	float *head_in, *head_out, *head_s;
	size_t *start, *len;
	const float **pix;                 /* [2 cap] */
	const int32_t **ids;               /* [3 cap] */
	size_t *ids_n;                     /* [3 cap] */
	uint64_t *pix_hash;                /* [2 cap] */
	void *block;
	rwd_bf16_scratch *bs;              /* precision "bf16": this worker's oneDNN scratch */
} cl_scratch;

/* What prepare() leaves in item->prep. */
enum { T_ALIGN, T_TARGET, T_SOURCE, N_TEXTS };
typedef struct cl_prep {
	float *pix[2];                  /* image, source image (or NULL): [3, S, S] */
	uint64_t pix_hash[2];           /* FNV-1a of the pixels, to find duplicates fast */
	const int32_t *ids[N_TEXTS];    /* token ids, NULL when absent */
	size_t n[N_TEXTS];
	size_t img_slot[2], txt_slot[N_TEXTS]; /* forward(): index of the distinct encoding */
} cl_prep;

static const char *const clip_inputs[] = {"image", "prompt", "source_image", "instruction",
	"source_caption", "target_caption", NULL};

/* ---- small JSON helpers ---- */

static int js_size(const json_t *o, const char *key, size_t def, size_t min, size_t max,
	size_t *out, rwd_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	rwd_error_where(err, NULL, key);
	if (!json_is_integer(v))
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < (json_int_t)min || (uint64_t)x > (uint64_t)max)
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is %lld, outside [%zu, %zu]", key,
			(long long)x, min, max);
	*out = (size_t)x;
	return 0;
}

static json_t *load_json(const char *path, int required, rwd_error *err, int *r)
{
	struct stat sb;
	json_error_t jerr;
	*r = 0;
	if (stat(path, &sb) != 0) {
		if (required) {
			rwd_error_where(err, path, NULL);
			*r = rwd_errorf(err, RWD_E_NOTFOUND, "file not found");
		}
		return NULL;
	}
	if (sb.st_size > (16 << 20)) {
		rwd_error_where(err, path, NULL);
		*r = rwd_errorf(err, RWD_E_LIMIT, "%lld bytes, more than 16 MiB", (long long)sb.st_size);
		return NULL;
	}
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		rwd_error_where(err, path, NULL);
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		*r = rwd_errorf(err, RWD_E_FORMAT, "%s", j ? "not a JSON object" : jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---- config.json ---- */

/*
 * One tower's config: the class defaults, overridden by `<name>_config`,
 * overridden by the legacy `<name>_config_dict` (as CLIPConfig.__init__).
 */
static int parse_tower(const json_t *cfg, int vision, struct tower *t, size_t *proj,
	size_t *extra1, size_t *extra2, int64_t *eos, rwd_error *err)
{
	const char *name = vision ? "vision_config" : "text_config";
	char dname[32];
	snprintf(dname, sizeof(dname), "%s_dict", name);
	json_t *merged = json_object();
	if (!merged)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	const json_t *srcs[2] = {json_object_get(cfg, name), json_object_get(cfg, dname)};
	int r = 0;
	for (int i = 0; i < 2; i++) {
		if (!srcs[i] || json_is_null(srcs[i]))
			continue;
		if (!json_is_object(srcs[i])) {
			rwd_error_where(err, NULL, i ? dname : name);
			r = rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be an object", i ? dname : name);
			goto out;
		}
		json_object_update(merged, (json_t *)srcs[i]);
	}
	double eps;
	if ((r = js_size(merged, "hidden_size", vision ? 768 : 512, 1, CL_MAX_DIM, &t->H, err)) ||
	    (r = js_size(merged, "intermediate_size", vision ? 3072 : 2048, 1, CL_MAX_DIM, &t->ffn, err)) ||
	    (r = js_size(merged, "num_hidden_layers", 12, 1, CL_MAX_LAYERS, &t->L, err)) ||
	    (r = js_size(merged, "num_attention_heads", vision ? 12 : 8, 1, CL_MAX_HEADS, &t->nH, err)) ||
	    (r = js_size(merged, "projection_dim", 512, 1, CL_MAX_DIM, proj, err)) ||
	    (r = rwd_json_number(merged, "layer_norm_eps", 0, 1e-5, 0.0, 1.0, &eps, err)))
		goto out;
	if (t->H % t->nH) {
		rwd_error_where(err, NULL, "num_attention_heads");
		r = rwd_errorf(err, RWD_E_INVALID, "hidden_size %zu is not a multiple of %zu heads", t->H,
			t->nH);
		goto out;
	}
	t->hd = t->H / t->nH;
	t->eps = (float)eps;
	json_t *act = json_object_get(merged, "hidden_act");
	const char *a = act ? json_string_value(act) : "quick_gelu";
	if (a && strcmp(a, "quick_gelu") == 0) {
		t->act = ACT_QUICK_GELU;
	} else if (a && strcmp(a, "gelu") == 0) {
		t->act = ACT_GELU;
	} else {
		rwd_error_where(err, NULL, "hidden_act");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "hidden_act must be \"quick_gelu\" or \"gelu\"");
		goto out;
	}
	if (vision) {
		size_t ch;
		if ((r = js_size(merged, "image_size", 224, 1, 8192, extra1, err)) ||
		    (r = js_size(merged, "patch_size", 32, 1, 1024, extra2, err)) ||
		    (r = js_size(merged, "num_channels", 3, 1, 16, &ch, err)))
			goto out;
		if (ch != 3) {
			rwd_error_where(err, NULL, "num_channels");
			r = rwd_errorf(err, RWD_E_UNSUPPORTED, "num_channels must be 3 (RGB)");
			goto out;
		}
	} else {
		size_t e;
		if ((r = js_size(merged, "vocab_size", 49408, 1, CL_MAX_VOCAB, extra1, err)) ||
		    (r = js_size(merged, "max_position_embeddings", 77, 1, CL_MAX_CTX, extra2, err)) ||
		    (r = js_size(merged, "eos_token_id", 49407, 0, CL_MAX_VOCAB, &e, err)))
			goto out;
		*eos = (int64_t)e;
	}
out:
	if (r)
		rwd_error_where(err, NULL, NULL);
	json_decref(merged);
	return r;
}

/* ---- preprocessor_config.json ---- */

/* "size"/"crop_size": an int, {"shortest_edge"}, or {"height", "width"}. */
static int parse_size(const json_t *pc, const char *key, int *shortest, int *hh, int *ww,
	int square, rwd_error *err)
{
	json_t *v = json_object_get(pc, key);
	rwd_error_where(err, NULL, key);
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		if (x < 1 || x > RWD_IMAGE_MAX_SIDE)
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is out of range", key);
		/* transformers' get_size_dict: size -> shortest edge, crop -> square */
		if (square) {
			*hh = *ww = (int)x;
		} else {
			*shortest = (int)x;
		}
		return 0;
	}
	if (!json_is_object(v))
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be an integer or an object", key);
	size_t se, h, w;
	int r;
	if ((r = js_size(v, "shortest_edge", 0, 1, RWD_IMAGE_MAX_SIDE, &se, err)) ||
	    (r = js_size(v, "height", 0, 1, RWD_IMAGE_MAX_SIDE, &h, err)) ||
	    (r = js_size(v, "width", 0, 1, RWD_IMAGE_MAX_SIDE, &w, err)))
		return r;
	rwd_error_where(err, NULL, key);
	if (se && !square) {
		*shortest = (int)se;
		*hh = *ww = 0;
		return 0;
	}
	if (!h || !w)
		return rwd_errorf(err, RWD_E_UNSUPPORTED,
			"\"%s\" needs \"height\" and \"width\"%s", key, square ? "" : " or \"shortest_edge\"");
	if (shortest)
		*shortest = 0;
	*hh = (int)h;
	*ww = (int)w;
	return 0;
}

static int parse_triple(const json_t *pc, const char *key, float out[3], int positive,
	rwd_error *err)
{
	json_t *v = json_object_get(pc, key);
	if (!v || json_is_null(v))
		return 0;
	rwd_error_where(err, NULL, key);
	for (int c = 0; c < 3; c++) {
		json_t *e = json_is_array(v) ? json_array_get(v, (size_t)c) : v;
		if ((json_is_array(v) && json_array_size(v) != 3) || !json_is_number(e))
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be 3 numbers", key);
		double x = json_number_value(e);
		if (!isfinite(x) || (positive && !(x > 0)))
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" has a bad value", key);
		out[c] = (float)x; /* numpy casts the list to the float32 image's dtype */
	}
	return 0;
}

static int parse_preprocessor(rwd_clip *m, const char *dir, rwd_error *err)
{
	char path[PATH_MAX];
	int r;
	m->prep = rwd_image_clip_default_params();
	m->prep.shortest_edge = (int)m->S;
	m->prep.crop_height = m->prep.crop_width = (int)m->S;
	if (snprintf(path, sizeof(path), "%s/preprocessor_config.json", dir) >= (int)sizeof(path))
		return rwd_errorf(err, RWD_E_LIMIT, "model path is too long");
	json_t *pc = load_json(path, 0, err, &r);
	if (!pc)
		return r;
	rwd_image_prep_params *p = &m->prep;
	size_t resample;
	double factor;
	/*
	 * "rewardd_transform": "open_clip_resize_max_size" (written by
	 * tools/convert_checkpoint.py hpsv2): OpenCLIP's ResizeMaxSize on float
	 * tensors (image/torch_resize.h) at "size", with "antialias" (default
	 * true: torchvision >= 0.17) and image_mean/image_std; nothing else of
	 * CLIPImageProcessor applies.
	 */
	m->openclip_aa = -1;
	json_t *tf = json_object_get(pc, "rewardd_transform");
	if (tf) {
		size_t sz;
		int aa;
		rwd_error_where(err, NULL, "rewardd_transform");
		if (!json_is_string(tf) || strcmp(json_string_value(tf), "open_clip_resize_max_size")) {
			r = rwd_errorf(err, RWD_E_UNSUPPORTED, "rewardd_transform must be \"open_clip_resize_max_size\"");
			goto out;
		}
		if ((r = js_size(pc, "size", m->S, 1, 4096, &sz, err)) ||
		    (r = rwd_json_bool(pc, "antialias", 1, &aa, err)) ||
		    (r = parse_triple(pc, "image_mean", p->image_mean, 0, err)) ||
		    (r = parse_triple(pc, "image_std", p->image_std, 1, err)))
			goto out;
		if (sz != m->S) {
			rwd_error_where(err, NULL, "size");
			r = rwd_errorf(err, RWD_E_INVALID, "size %zu is not the vision tower's image_size %zu", sz, m->S);
			goto out;
		}
		m->openclip_aa = aa;
		goto out;
	}
	if ((r = rwd_json_bool(pc, "do_resize", 1, &p->do_resize, err)) ||
	    (r = rwd_json_bool(pc, "do_center_crop", 1, &p->do_center_crop, err)) ||
	    (r = rwd_json_bool(pc, "do_rescale", 1, &p->do_rescale, err)) ||
	    (r = rwd_json_bool(pc, "do_normalize", 1, &p->do_normalize, err)) ||
	    (r = js_size(pc, "resample", RWD_IMAGE_BICUBIC, 0, 5, &resample, err)) ||
	    (r = rwd_json_number(pc, "rescale_factor", 0, 1.0 / 255.0, 1e-12, 1e6, &factor, err)) ||
	    (r = parse_size(pc, "size", &p->shortest_edge, &p->resize_height, &p->resize_width, 0, err)) ||
	    (r = parse_size(pc, "crop_size", NULL, &p->crop_height, &p->crop_width, 1, err)) ||
	    (r = parse_triple(pc, "image_mean", p->image_mean, 0, err)) ||
	    (r = parse_triple(pc, "image_std", p->image_std, 1, err)))
		goto out;
	p->resample = (int)resample;
	p->rescale_factor = factor;
	if (resample == 0) {
		rwd_error_where(err, NULL, "resample");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "resample 0 (NEAREST) is not supported");
		goto out;
	}
	/* the tensor must come out S×S whatever the input's aspect */
	int ow, oh;
	int r2 = rwd_image_prep_output_size(p, 1000, 700, &ow, &oh);
	int r3 = r2 ? r2 : rwd_image_prep_output_size(p, 700, 1000, &ow, &oh);
	if (r3 || ow != (int)m->S || oh != (int)m->S || (!p->do_center_crop && p->shortest_edge)) {
		rwd_error_where(err, NULL, p->do_center_crop ? "crop_size" : "size");
		r = rwd_errorf(err, RWD_E_INVALID,
			"the preprocessing does not produce the %zux%zu pixels the vision tower takes",
			m->S, m->S);
		goto out;
	}
out:
	if (r)
		rwd_error_where(err, path, NULL);
	json_decref(pc);
	return r;
}

/* ---- weights ---- */

static int get_f(const rwd_weights *w, const char *name, int ndim, size_t d0, size_t d1,
	const float **out, rwd_error *err)
{
	int64_t shape[2] = {(int64_t)d0, (int64_t)d1};
	return rwd_weights_get_f32(w, name, ndim, ndim ? shape : NULL, out, err);
}

static int get_lin(const rwd_weights *w, const char *prefix, size_t out, size_t in, int bias,
	struct lin *l, rwd_error *err)
{
	char name[256];
	int r;
	snprintf(name, sizeof(name), "%s.weight", prefix);
	if ((r = get_f(w, name, 2, out, in, &l->w, err)))
		return r;
	l->b = NULL;
	if (!bias)
		return 0;
	snprintf(name, sizeof(name), "%s.bias", prefix);
	return get_f(w, name, 1, out, 0, &l->b, err);
}

static int get_ln(const rwd_weights *w, const char *prefix, size_t n, const float **g,
	const float **b, rwd_error *err)
{
	char name[256];
	int r;
	snprintf(name, sizeof(name), "%s.weight", prefix);
	if ((r = get_f(w, name, 1, n, 0, g, err)))
		return r;
	snprintf(name, sizeof(name), "%s.bias", prefix);
	return get_f(w, name, 1, n, 0, b, err);
}

static int load_tower_layers(const rwd_weights *w, const char *prefix, struct tower *t,
	rwd_error *err)
{
	char p[160], name[224];
	int r;
	t->layers = calloc(t->L, sizeof(*t->layers));
	if (!t->layers)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	for (size_t l = 0; l < t->L; l++) {
		struct layer *ly = &t->layers[l];
		snprintf(p, sizeof(p), "%s.encoder.layers.%zu.", prefix, l);
#define NAME(s) (snprintf(name, sizeof(name), "%s%s", p, s), name)
		if ((r = get_ln(w, NAME("layer_norm1"), t->H, &ly->ln1w, &ly->ln1b, err)) ||
		    (r = get_ln(w, NAME("layer_norm2"), t->H, &ly->ln2w, &ly->ln2b, err)) ||
		    (r = get_lin(w, NAME("self_attn.q_proj"), t->H, t->H, 1, &ly->q, err)) ||
		    (r = get_lin(w, NAME("self_attn.k_proj"), t->H, t->H, 1, &ly->k, err)) ||
		    (r = get_lin(w, NAME("self_attn.v_proj"), t->H, t->H, 1, &ly->v, err)) ||
		    (r = get_lin(w, NAME("self_attn.out_proj"), t->H, t->H, 1, &ly->o, err)) ||
		    (r = get_lin(w, NAME("mlp.fc1"), t->ffn, t->H, 1, &ly->fc1, err)) ||
		    (r = get_lin(w, NAME("mlp.fc2"), t->H, t->ffn, 1, &ly->fc2, err)))
			return r;
#undef NAME
	}
	return 0;
}

static int load_weights(rwd_clip *m, const char *path, int in_memory, rwd_error *err)
{
	const rwd_weights *w;
	rwd_weights_params wp = rwd_weights_default_params();
	wp.use_mmap = !in_memory;
	int r = rwd_weights_open(path, &wp, &m->weights, err);
	if (r)
		return r;
	w = m->weights;
	const size_t Hv = m->vt.H, Ht = m->tt.H;
	const float *ls;
	int64_t pshape[4] = {(int64_t)Hv, 3, (int64_t)m->P, (int64_t)m->P};
	const rwd_tensor *pt;
	if ((r = rwd_weights_get(w, "vision_model.embeddings.patch_embedding.weight", 4, pshape, &pt,
		err)))
		return r;
	if (!pt->f32) {
		rwd_error_where(err, pt->file, pt->name);
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "the patch embedding is not a float tensor");
	}
	m->patch_w = pt->f32; /* [H, 3, P, P] is [H, 3*P*P] row-major: the im2col GEMM's weight */
	if ((r = get_f(w, "vision_model.embeddings.class_embedding", 1, Hv, 0, &m->cls, err)) ||
	    (r = get_f(w, "vision_model.embeddings.position_embedding.weight", 2, m->vtok, Hv,
		    &m->vpos, err)) ||
	    (r = get_ln(w, "vision_model.pre_layrnorm", Hv, &m->pre_w, &m->pre_b, err)) ||
	    (r = get_ln(w, "vision_model.post_layernorm", Hv, &m->post_w, &m->post_b, err)) ||
	    (r = get_f(w, "visual_projection.weight", 2, m->proj, Hv, &m->vproj, err)) ||
	    (r = get_f(w, "text_model.embeddings.token_embedding.weight", 2, m->vocab, Ht,
		    &m->tok_emb, err)) ||
	    (r = get_f(w, "text_model.embeddings.position_embedding.weight", 2, m->ctx, Ht, &m->tpos,
		    err)) ||
	    (r = get_ln(w, "text_model.final_layer_norm", Ht, &m->fin_w, &m->fin_b, err)) ||
	    (r = get_f(w, "text_projection.weight", 2, m->proj, Ht, &m->tproj, err)) ||
	    (r = load_tower_layers(w, "vision_model", &m->vt, err)) ||
	    (r = load_tower_layers(w, "text_model", &m->tt, err)))
		return r;
	/* logit_scale: a scalar (some writers store it as [1]) */
	const rwd_tensor *lt = rwd_weights_find(w, "logit_scale");
	if (!lt || lt->numel != 1 || !lt->f32 || lt->ndim > 1) {
		rwd_error_where(err, rwd_weights_path(w), "logit_scale");
		return rwd_errorf(err, lt ? RWD_E_INVALID : RWD_E_NOTFOUND,
			"logit_scale must be a float scalar");
	}
	ls = lt->f32;
	if (!isfinite(ls[0]) || ls[0] > 20.0f) {
		rwd_error_where(err, rwd_weights_path(w), "logit_scale");
		return rwd_errorf(err, RWD_E_INVALID, "logit_scale %g is not a sane log-scale", ls[0]);
	}
	m->scale = expf(ls[0]);
	m->weight_bytes = (size_t)rwd_weights_total_bytes(w);
	return 0;
}

/* ---- options, dimensions ---- */

static int add_dim(rwd_clip *m, enum dim_kind kind, size_t head, size_t out, const char *name,
	rwd_error *err)
{
	if (m->n_dims >= RWD_MAX_DIMS)
		return rwd_errorf(err, RWD_E_LIMIT, "more than %d dimensions", RWD_MAX_DIMS);
	for (size_t i = 0; i < m->n_dims; i++)
		if (strcmp(m->dims[i].name, name) == 0) {
			rwd_error_where(err, NULL, "heads");
			return rwd_errorf(err, RWD_E_INVALID, "dimension '%s' appears twice", name);
		}
	struct dim *d = &m->dims[m->n_dims];
	d->kind = kind;
	d->head = head;
	d->out = out;
	d->name = strdup(name);
	if (!d->name)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	m->n_dims++;
	return 0;
}

static int load_heads(rwd_clip *m, const json_t *heads, rwd_error *err)
{
	if (!heads || json_is_null(heads))
		return 0;
	if (!json_is_array(heads) || json_array_size(heads) > CL_MAX_HEADS_OPT) {
		rwd_error_where(err, NULL, "heads");
		return rwd_errorf(err, RWD_E_INVALID, "\"heads\" must be an array of at most %d heads",
			CL_MAX_HEADS_OPT);
	}
	size_t i;
	json_t *h;
	json_array_foreach(heads, i, h) {
		char where[32];
		snprintf(where, sizeof(where), "heads[%zu]", i);
		const char *name = json_string_value(json_object_get(h, "name"));
		const char *path = json_string_value(json_object_get(h, "path"));
		if (!json_is_object(h) || !name || !path || !name[0] || strlen(name) > CL_NAME_MAX) {
			rwd_error_where(err, NULL, where);
			return rwd_errorf(err, RWD_E_INVALID,
				"a head needs \"name\" (1 to %d bytes) and \"path\"", CL_NAME_MAX);
		}
		json_t *opts = json_deep_copy(h);
		if (!opts)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		json_object_del(opts, "name");
		json_object_del(opts, "path");
		int r = rwd_mlp_load(path, json_object_size(opts) ? opts : NULL, 2 * m->cap,
			&m->heads[i].mlp, err);
		json_decref(opts);
		if (r) {
			rwd_error_where(err, NULL, where);
			return r;
		}
		m->n_heads = i + 1;
		if (rwd_mlp_input_dim(m->heads[i].mlp) != m->proj) {
			rwd_error_where(err, path, where);
			return rwd_errorf(err, RWD_E_INVALID,
				"head '%s' takes %zu inputs but the image embedding has %zu", name,
				rwd_mlp_input_dim(m->heads[i].mlp), m->proj);
		}
		m->heads[i].n_out = rwd_mlp_output_dim(m->heads[i].mlp);
	}
	return 0;
}

static void clip_free_state(rwd_clip *m)
{
	if (!m)
		return;
	rwd_bf16_free(m->bf);
	rwd_weights_free(m->weights);
	free(m->vt.layers);
	free(m->tt.layers);
	rwd_tokenizer_free(m->tok);
	for (size_t i = 0; i < m->n_heads; i++)
		rwd_mlp_free(m->heads[i].mlp);
	for (size_t i = 0; i < m->n_dims; i++)
		free(m->dims[i].name);
	free(m);
}

void rwd_clip_free(rwd_clip *m)
{
	clip_free_state(m);
}

static int parse_options(rwd_clip *m, const json_t *opts, const json_t **heads,
	const json_t **subset, const char **tok_path, rwd_error *err)
{
	m->clipscore_w = 2.5f;
	m->max_image_bytes = (size_t)32 << 20;
	m->max_text_bytes = (size_t)64 << 10;
	*heads = *subset = NULL;
	*tok_path = NULL;
	if (!opts || json_is_null(opts))
		return 0;
	if (!json_is_object(opts))
		return rwd_errorf(err, RWD_E_INVALID, "clip options must be an object");
	const char *key;
	json_t *v;
	int r;
	json_object_foreach((json_t *)opts, key, v) {
		rwd_error_where(err, NULL, key);
		if (strcmp(key, "text_alignment") == 0) {
			const char *s = json_string_value(v);
			if (!s || (strcmp(s, "pickscore") && strcmp(s, "clipscore") && strcmp(s, "cosine")))
				return rwd_errorf(err, RWD_E_INVALID,
					"text_alignment must be \"pickscore\", \"clipscore\" or \"cosine\"");
			m->clipscore = strcmp(s, "clipscore") == 0 ? 1 : strcmp(s, "cosine") == 0 ? 2 : 0;
			m->align_set = 1;
		} else if (strcmp(key, "clipscore_weight") == 0) {
			double w;
			if ((r = rwd_json_number(opts, key, 0, 2.5, -1e6, 1e6, &w, err)))
				return r;
			m->clipscore_w = (float)w;
		} else if (strcmp(key, "heads") == 0) {
			*heads = v;
		} else if (strcmp(key, "dimensions") == 0) {
			if (!json_is_array(v) || json_array_size(v) == 0)
				return rwd_errorf(err, RWD_E_INVALID,
					"dimensions must be a non-empty array of names");
			*subset = v;
		} else if (strcmp(key, "tokenizer") == 0) {
			if (!(*tok_path = json_string_value(v)))
				return rwd_errorf(err, RWD_E_INVALID, "tokenizer must be a path");
		} else if (strcmp(key, "max_image_bytes") == 0) {
			if ((r = js_size(opts, key, 0, 64, (size_t)1 << 34, &m->max_image_bytes, err)))
				return r;
		} else if (strcmp(key, "max_text_bytes") == 0) {
			if ((r = js_size(opts, key, 0, 1, (size_t)1 << 24, &m->max_text_bytes, err)))
				return r;
		} else if (strcmp(key, "precision") == 0) {
			const char *s = json_string_value(v);
			if (!s || (strcmp(s, "fp32") && strcmp(s, "bf16")))
				return rwd_errorf(err, RWD_E_INVALID, "precision must be \"fp32\" or \"bf16\"");
			m->bf16 = strcmp(s, "bf16") == 0;
		} else {
			return rwd_errorf(err, RWD_E_INVALID,
				"unknown clip option (expected text_alignment, clipscore_weight, heads, dimensions, tokenizer, max_image_bytes, max_text_bytes, precision)");
		}
	}
	rwd_error_where(err, NULL, "");
	return 0;
}

/*
 * precision "bf16": both towers' q/k/v/out_proj/fc1 (activation fused)/fc2
 * and the patch embedding become oneDNN BF16 linears. Embeddings, layer
 * norms, attention, the projections and the heads stay FP32. Refused
 * (RWD_E_UNSUPPORTED) on a CPU without AVX512_BF16.
 */
static int load_bf16(rwd_clip *m, rwd_error *err)
{
	rwd_bf16_params bp = rwd_bf16_default_params();
	int r = rwd_bf16_new(&bp, &m->bf, err);
	if (r) {
		rwd_error_where(err, NULL, "precision");
		return r;
	}
	if ((r = rwd_bf16_add_linear(m->bf, m->patch_w, NULL, m->vt.H, m->patch_k, RWD_BF16_ACT_NONE,
		     &m->patch_bf, err)))
		return r;
	struct tower *tw[2] = {&m->vt, &m->tt};
	for (int ti = 0; ti < 2; ti++) {
		struct tower *t = tw[ti];
		const rwd_bf16_act act = t->act == ACT_GELU ? RWD_BF16_ACT_GELU_ERF : RWD_BF16_ACT_QUICK_GELU;
		for (size_t l = 0; l < t->L; l++) {
			struct layer *ly = &t->layers[l];
			struct { struct lin *li; size_t n, k; rwd_bf16_act a; } x[] = {
				{&ly->q, t->H, t->H, RWD_BF16_ACT_NONE}, {&ly->k, t->H, t->H, RWD_BF16_ACT_NONE},
				{&ly->v, t->H, t->H, RWD_BF16_ACT_NONE}, {&ly->o, t->H, t->H, RWD_BF16_ACT_NONE},
				{&ly->fc1, t->ffn, t->H, act}, {&ly->fc2, t->H, t->ffn, RWD_BF16_ACT_NONE},
			};
			for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
				if ((r = rwd_bf16_add_linear(m->bf, x[i].li->w, x[i].li->b, x[i].n, x[i].k, x[i].a,
					     &x[i].li->bf, err)))
					return r;
		}
	}
	return 0;
}

static int select_dims(rwd_clip *m, const json_t *heads, const json_t *subset, rwd_error *err)
{
	/* every dimension, in order: the three fixed ones, then the heads' outputs */
	struct cand { enum dim_kind k; size_t head, out; char name[2 * CL_NAME_MAX + 8]; };
	struct cand *all = calloc(RWD_MAX_DIMS + 3, sizeof(*all));
	size_t n = 0;
	int r = 0;
	if (!all)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	static const char *const fixed[] = {"text_alignment", "image_similarity", "edit_direction"};
	for (int i = 0; i < 3; i++) {
		all[n].k = (enum dim_kind)i;
		snprintf(all[n].name, sizeof(all[n].name), "%s", fixed[i]);
		n++;
	}
	for (size_t h = 0; h < m->n_heads; h++) {
		const char *hn = json_string_value(json_object_get(json_array_get(heads, h), "name"));
		for (size_t o = 0; o < m->heads[h].n_out; o++) {
			if (n >= RWD_MAX_DIMS) {
				r = rwd_errorf(err, RWD_E_LIMIT, "more than %d dimensions", RWD_MAX_DIMS);
				goto out;
			}
			all[n].k = D_HEAD;
			all[n].head = h;
			all[n].out = o;
			if (m->heads[h].n_out == 1)
				snprintf(all[n].name, sizeof(all[n].name), "%s", hn);
			else
				snprintf(all[n].name, sizeof(all[n].name), "%s.%s", hn,
					rwd_mlp_output_name(m->heads[h].mlp, o));
			n++;
		}
	}
	if (!subset) {
		for (size_t i = 0; i < n && !r; i++)
			r = add_dim(m, all[i].k, all[i].head, all[i].out, all[i].name, err);
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(subset, i, v) {
		const char *s = json_string_value(v);
		size_t j = 0;
		while (s && j < n && strcmp(all[j].name, s) != 0)
			j++;
		if (!s || j == n) {
			rwd_error_where(err, NULL, "dimensions");
			r = rwd_errorf(err, RWD_E_INVALID, "unknown dimension '%s'", s ? s : "(not a string)");
			goto out;
		}
		if ((r = add_dim(m, all[j].k, all[j].head, all[j].out, all[j].name, err)))
			goto out;
	}
out:
	free(all);
	return r;
}

int rwd_clip_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	rwd_clip **out, rwd_error *err)
{
	char cfg_path[PATH_MAX];
	json_t *cfg = NULL;
	rwd_clip *m = NULL;
	const json_t *heads, *subset;
	const char *tok_path;
	int r;

	if (!path)
		return rwd_errorf(err, RWD_E_INVALID, "a clip model needs a folder");
	if (snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", path) >= (int)sizeof(cfg_path))
		return rwd_errorf(err, RWD_E_LIMIT, "model path is too long");
	m = calloc(1, sizeof(*m));
	if (!m)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if ((r = parse_options(m, opts, &heads, &subset, &tok_path, err)))
		goto fail;
	m->cap = lim && lim->max_batch_size ? lim->max_batch_size : 1;
	if (m->cap > 4096) {
		r = rwd_errorf(err, RWD_E_LIMIT, "max_batch_size %zu is too large for clip", m->cap);
		goto fail;
	}
	if (!(cfg = load_json(cfg_path, 1, err, &r)))
		goto fail;
	/* a converted folder's own scoring rule (HPSv2: "cosine"), unless the options set one */
	json_t *ta = json_object_get(cfg, "rewardd_text_alignment");
	if (ta && !m->align_set) {
		const char *t = json_string_value(ta);
		if (!t || (strcmp(t, "pickscore") && strcmp(t, "clipscore") && strcmp(t, "cosine"))) {
			rwd_error_where(err, cfg_path, "rewardd_text_alignment");
			r = rwd_errorf(err, RWD_E_INVALID, "must be \"pickscore\", \"clipscore\" or \"cosine\"");
			goto fail;
		}
		m->clipscore = strcmp(t, "clipscore") == 0 ? 1 : strcmp(t, "cosine") == 0 ? 2 : 0;
	}
	size_t vproj, tproj, top_proj;
	if ((r = parse_tower(cfg, 1, &m->vt, &vproj, &m->S, &m->P, NULL, err)) ||
	    (r = parse_tower(cfg, 0, &m->tt, &tproj, &m->vocab, &m->ctx, &m->eos_id, err)) ||
	    (r = js_size(cfg, "projection_dim", vproj, 1, CL_MAX_DIM, &top_proj, err))) {
		rwd_error_where(err, cfg_path, NULL);
		goto fail;
	}
	m->proj = top_proj;
	if (m->S % m->P) {
		rwd_error_where(err, cfg_path, "vision_config.patch_size");
		r = rwd_errorf(err, RWD_E_INVALID, "image_size %zu is not a multiple of patch_size %zu",
			m->S, m->P);
		goto fail;
	}
	m->grid = m->S / m->P;
	m->n_patch = m->grid * m->grid;
	m->vtok = m->n_patch + 1;
	m->patch_k = 3 * m->P * m->P;
	if (m->vtok > CL_MAX_TOKENS) {
		rwd_error_where(err, cfg_path, "vision_config.image_size");
		r = rwd_errorf(err, RWD_E_LIMIT, "%zu vision tokens, more than %d", m->vtok, CL_MAX_TOKENS);
		goto fail;
	}
	if ((r = parse_preprocessor(m, path, err)) || (r = load_weights(m, path, lim && lim->weights_in_memory, err)))
		goto fail;

	/* tokenizer: the option's file/folder, else the model folder's (optional) */
	const char *tp = tok_path ? tok_path : path;
	struct stat sb;
	if (tok_path && stat(tok_path, &sb) == 0 && S_ISREG(sb.st_mode)) {
		size_t n = strlen(tok_path);
		if (n > 3 && strcmp(tok_path + n - 3, ".gz") == 0)
			r = rwd_tokenizer_load_clip_bpe_gz(tok_path, NULL, &m->tok, err);
		else
			r = rwd_tokenizer_load_json(tok_path, NULL, &m->tok, err);
	} else {
		r = rwd_tokenizer_load_dir(tp, RWD_TOKENIZER_CLIP, NULL, &m->tok, err);
		if (r == RWD_E_NOTFOUND && !tok_path) {
			m->tok = NULL; /* image-only model */
			rwd_error_clear(err);
			r = 0;
		}
	}
	if (r)
		goto fail;

	m->decode = rwd_image_decode_default_params();
	if (lim && lim->max_image_pixels)
		m->decode.max_pixels = lim->max_image_pixels;
	size_t enc = (m->max_image_bytes + 2) / 3 * 4;
	m->max_string = enc + enc / 38 + 4096;

	if ((r = load_heads(m, heads, err)) || (r = select_dims(m, heads, subset, err)))
		goto fail;
	if (m->bf16 && (r = load_bf16(m, err)))
		goto fail;
	json_decref(cfg);
	*out = m;
	return 0;
fail:
	json_decref(cfg);
	clip_free_state(m);
	return r;
}

size_t rwd_clip_projection_dim(const rwd_clip *m)
{
	return m->proj;
}

int rwd_clip_image_size(const rwd_clip *m)
{
	return (int)m->S;
}

size_t rwd_clip_batch_capacity(const rwd_clip *m)
{
	return m->cap;
}

size_t rwd_clip_context_length(const rwd_clip *m)
{
	return m->ctx;
}

float rwd_clip_logit_scale(const rwd_clip *m)
{
	return m->scale;
}

/* ---- scratch ---- */

static size_t max2(size_t a, size_t b)
{
	return a > b ? a : b;
}

int rwd_clip_scratch_new(const rwd_clip *m, void **out, rwd_error *err)
{
	cl_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	const size_t C = m->cap;
	const size_t Rv = C * m->vtok, Rt = C * m->ctx;
	const size_t Hv = m->vt.H, Ht = m->tt.H;
	size_t mlp_rows_v = Rv < CL_MLP_CHUNK ? Rv : CL_MLP_CHUNK;
	size_t mlp_rows_t = Rt < CL_MLP_CHUNK ? Rt : CL_MLP_CHUNK;
	size_t head_s = 0, head_o = 0;
	for (size_t i = 0; i < m->n_heads; i++) {
		head_s = max2(head_s, rwd_mlp_scratch_floats(m->heads[i].mlp, 2 * C));
		head_o = max2(head_o, 2 * C * m->heads[i].n_out);
	}
	/* float counts of each buffer (size_t arrays and pointers counted in floats) */
	size_t sizes[] = {
		max2(Rv * Hv, Rt * Ht),                       /* x */
		max2(Rv * Hv, Rt * Ht),                       /* h */
		max2(Rv * 3 * Hv, Rt * 3 * Ht),               /* qkv */
		max2(Rv * Hv, Rt * Ht),                       /* att */
		max2(max2(mlp_rows_v * m->vt.ffn, mlp_rows_t * m->tt.ffn), C * m->n_patch * m->patch_k),
		max2(m->vtok * m->vtok, m->ctx * m->ctx),     /* attention scores */
		2 * C * m->proj, 3 * C * m->proj, 2 * C * m->proj,
		2 * C * m->proj, head_o, head_s,
		2 * C, 4 * C,                                 /* start [C], len [C] + pool [C] */
		4 * C, 6 * C, 6 * C, 4 * C,                   /* pix [2C], ids [3C], ids_n [3C], pix_hash [2C] */
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
	s->h = ptrs[1];
	s->qkv = ptrs[2];
	s->att = ptrs[3];
	s->mlp = ptrs[4];
	s->attn_s = ptrs[5];
	s->img_emb = ptrs[6];
	s->txt_emb = ptrs[7];
	s->unit = ptrs[8];
	s->head_in = ptrs[9];
	s->head_out = ptrs[10];
	s->head_s = ptrs[11];
	s->start = ptrs[12];
	s->len = ptrs[13];
	s->pix = ptrs[14];
	s->ids = ptrs[15];
	s->ids_n = ptrs[16];
	s->pix_hash = ptrs[17];
	if (m->bf && (rc = rwd_bf16_scratch_new(m->bf, &s->bs, err))) {
		free(s->block);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void rwd_clip_scratch_free(void *scratch)
{
	cl_scratch *s = scratch;
	if (!s)
		return;
	rwd_bf16_scratch_free(s->bs);
	free(s->block);
	free(s);
}

/* ---- the towers ---- */

/* y[rows, n] (row stride ldy) = x[rows, k] . l^T + b: FP32 (OpenBLAS) or BF16 (oneDNN, fc1 with
 * its activation fused). BF16 errors are kept in s->bs and checked once per forward pass. */
static void linear(const struct lin *l, cl_scratch *s, const float *x, size_t rows, size_t k,
	size_t n, float *y, size_t ldy)
{
	if (l->bf)
		rwd_bf16_linear_run(l->bf, s->bs, x, rows, 0, y, ldy);
	else
		rwd_nn_linear(x, rows, k, 0, l->w, l->b, n, y, ldy);
}

static void add_into(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

static void activate(enum act a, float *x, size_t n)
{
	if (a == ACT_GELU)
		rwd_nn_gelu_erf(x, n);
	else
		rwd_nn_quick_gelu(x, n);
}

/*
 * The last layer for the pooled rows only: keys and values come from every
 * row, but only row pool[i] of sequence i (which sees all of its sequence's
 * keys: the class token, or the last kept text token) needs its query,
 * attention output, out_proj and MLP. Leaves the n pooled residual rows in
 * x[0..n).
 */
static void last_layer_pooled(const struct tower *t, const struct layer *ly, cl_scratch *s,
	size_t n, size_t R, const size_t *pool)
{
	const size_t H = t->H, H3 = 3 * H, hd = t->hd;
	const float scale = 1.0f / sqrtf((float)hd);
	float *hq = s->mlp, *ao = s->mlp + n * H, *q = s->mlp + 2 * n * H;
	rwd_nn_layernorm(s->x, R, H, ly->ln1w, ly->ln1b, t->eps, s->h);
	linear(&ly->k, s, s->h, R, H, H, s->qkv + H, H3);
	linear(&ly->v, s, s->h, R, H, H, s->qkv + 2 * H, H3);
	for (size_t i = 0; i < n; i++)
		memcpy(hq + i * H, s->h + pool[i] * H, H * sizeof(float));
	linear(&ly->q, s, hq, n, H, H, q, 0);
	for (size_t i = 0; i < n; i++) {
		const size_t len = s->len[i];
		const float *k = s->qkv + s->start[i] * H3 + H, *v = k + H;
		for (size_t h = 0; h < t->nH; h++) {
			float *sc = s->attn_s;
			/* sc[len] = scale * K_h q_h; out_h = V_h^T softmax(sc) */
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)len, (blasint)hd, scale,
				k + h * hd, (blasint)H3, q + i * H + h * hd, 1, 0.0f, sc, 1);
			rwd_nn_softmax(sc, 1, len);
			cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)len, (blasint)hd, 1.0f,
				v + h * hd, (blasint)H3, sc, 1, 0.0f, ao + i * H + h * hd, 1);
		}
	}
	linear(&ly->o, s, ao, n, H, H, s->h, 0);
	/* compact: pool[i] >= i, so moving rows up in order never clobbers one unread */
	for (size_t i = 0; i < n; i++)
		memmove(s->x + i * H, s->x + pool[i] * H, H * sizeof(float));
	add_into(s->x, s->h, n * H);
	rwd_nn_layernorm(s->x, n, H, ly->ln2w, ly->ln2b, t->eps, s->h);
	linear(&ly->fc1, s, s->h, n, H, t->ffn, s->mlp, 0);
	if (!ly->fc1.bf)
		activate(t->act, s->mlp, n * t->ffn);
	linear(&ly->fc2, s, s->mlp, n, t->ffn, H, s->att, 0);
	add_into(s->x, s->att, n * H);
}

/*
 * The encoder over n packed sequences in s->x: sequence i is rows
 * start[i] .. start[i]+len[i]. Pre-LN blocks; causal for the text tower.
 * The last layer runs for the pooled rows pool[i] only and leaves them in
 * x[0..n).
 */
static void encoder(const struct tower *t, cl_scratch *s, size_t n, size_t R, int causal,
	const size_t *pool)
{
	const size_t H = t->H, H3 = 3 * H;
	const float scale = 1.0f / sqrtf((float)t->hd);
	for (size_t l = 0; l + 1 < t->L; l++) {
		const struct layer *ly = &t->layers[l];
		/* attention: q | k | v side by side in qkv [R, 3H] */
		rwd_nn_layernorm(s->x, R, H, ly->ln1w, ly->ln1b, t->eps, s->h);
		linear(&ly->q, s, s->h, R, H, H, s->qkv, H3);
		linear(&ly->k, s, s->h, R, H, H, s->qkv + H, H3);
		linear(&ly->v, s, s->h, R, H, H, s->qkv + 2 * H, H3);
		for (size_t i = 0; i < n; i++) {
			rwd_nn_attn p = {
				.t = s->len[i], .n_heads = t->nH, .n_kv_heads = t->nH, .head_dim = t->hd,
				.ldq = H3, .ldk = H3, .ldv = H3, .ldo = H, .causal = causal, .scale = scale,
			};
			const float *q = s->qkv + s->start[i] * H3;
			rwd_nn_attention(&p, q, q + H, q + 2 * H, s->att + s->start[i] * H, s->attn_s);
		}
		linear(&ly->o, s, s->att, R, H, H, s->h, 0);
		add_into(s->x, s->h, R * H);
		/* MLP in row chunks; att holds fc2's output */
		rwd_nn_layernorm(s->x, R, H, ly->ln2w, ly->ln2b, t->eps, s->h);
		for (size_t r0 = 0; r0 < R; r0 += CL_MLP_CHUNK) {
			const size_t nr = R - r0 < CL_MLP_CHUNK ? R - r0 : CL_MLP_CHUNK;
			linear(&ly->fc1, s, s->h + r0 * H, nr, H, t->ffn, s->mlp, 0);
			if (!ly->fc1.bf)
				activate(t->act, s->mlp, nr * t->ffn);
			linear(&ly->fc2, s, s->mlp, nr, t->ffn, H, s->att, 0);
			add_into(s->x + r0 * H, s->att, nr * H);
		}
	}
	last_layer_pooled(t, &t->layers[t->L - 1], s, n, R, pool);
}

void rwd_clip_encode_images(const rwd_clip *m, void *scratch, const float *const *pixels,
	size_t n, float *out)
{
	cl_scratch *s = scratch;
	const size_t H = m->vt.H, P = m->P, S = m->S, G = m->grid, K = m->patch_k;
	const size_t NP = m->n_patch, T = m->vtok;
	if (n == 0)
		return;
	/* im2col: row (b, gy, gx) = pixels[b][c][gy*P + py][gx*P + px] in (c, py, px)
	 * order, the conv weight's [H, 3, P, P] layout */
	for (size_t b = 0; b < n; b++) {
		for (size_t gy = 0; gy < G; gy++) {
			for (size_t gx = 0; gx < G; gx++) {
				float *row = s->mlp + ((b * NP) + gy * G + gx) * K;
				for (size_t c = 0; c < 3; c++)
					for (size_t py = 0; py < P; py++)
						memcpy(row + (c * P + py) * P,
							pixels[b] + (c * S + gy * P + py) * S + gx * P,
							P * sizeof(float));
			}
		}
	}
	/* the patch embedding of every image as one GEMM: h[n*NP, H] */
	if (m->patch_bf)
		rwd_bf16_linear_run(m->patch_bf, s->bs, s->mlp, n * NP, 0, s->h, 0);
	else
		rwd_nn_linear(s->mlp, n * NP, K, 0, m->patch_w, NULL, H, s->h, 0);
	for (size_t b = 0; b < n; b++) {
		float *x = s->x + b * T * H;
		for (size_t j = 0; j < H; j++)
			x[j] = m->cls[j] + m->vpos[j];
		for (size_t p = 0; p < NP; p++) {
			const float *e = s->h + (b * NP + p) * H;
			const float *pos = m->vpos + (p + 1) * H;
			float *xr = x + (p + 1) * H;
			for (size_t j = 0; j < H; j++)
				xr[j] = e[j] + pos[j];
		}
		s->start[b] = b * T;
		s->len[b] = T;
	}
	rwd_nn_layernorm(s->x, n * T, H, m->pre_w, m->pre_b, m->vt.eps, s->x);
	size_t *pool = s->len + n; /* the class token of each image; len has 2 cap slots */
	for (size_t b = 0; b < n; b++)
		pool[b] = b * T;
	encoder(&m->vt, s, n, n * T, 0, pool);
	/* post_layernorm on the class tokens (now x[0..n)), then the projection */
	rwd_nn_layernorm(s->x, n, H, m->post_w, m->post_b, m->vt.eps, s->h);
	rwd_nn_linear(s->h, n, H, 0, m->vproj, NULL, m->proj, out, 0);
}

size_t rwd_clip_pool_index(const rwd_clip *m, const int32_t *ids, size_t n)
{
	size_t best = 0;
	if (m->eos_id == 2) {
		/* legacy configs: argmax of the ids, the first maximum */
		for (size_t i = 1; i < n; i++)
			if (ids[i] > ids[best])
				best = i;
		return best;
	}
	for (size_t i = 0; i < n; i++)
		if (ids[i] == m->eos_id)
			return i;
	return 0;
}

int rwd_clip_encode_texts(const rwd_clip *m, void *scratch, const int32_t *const *ids,
	const size_t *lens, size_t n, float *out)
{
	cl_scratch *s = scratch;
	const size_t H = m->tt.H;
	size_t R = 0;
	if (n > m->cap)
		return RWD_E_INVALID;
	for (size_t i = 0; i < n; i++) {
		if (lens[i] < 1 || lens[i] > m->ctx)
			return RWD_E_INVALID;
		for (size_t t = 0; t < lens[i]; t++)
			if (ids[i][t] < 0 || (size_t)ids[i][t] >= m->vocab)
				return RWD_E_INVALID;
		/* causal: tokens after the pooled one cannot change it */
		size_t len = rwd_clip_pool_index(m, ids[i], lens[i]) + 1;
		s->start[i] = R;
		s->len[i] = len;
		for (size_t t = 0; t < len; t++) {
			const float *e = m->tok_emb + (size_t)ids[i][t] * H;
			const float *pos = m->tpos + t * H;
			float *x = s->x + (R + t) * H;
			for (size_t j = 0; j < H; j++)
				x[j] = e[j] + pos[j];
		}
		R += len;
	}
	if (n == 0)
		return 0;
	size_t *pool = s->len + n; /* the last kept token of each text */
	for (size_t i = 0; i < n; i++)
		pool[i] = s->start[i] + s->len[i] - 1;
	encoder(&m->tt, s, n, R, 1, pool);
	rwd_nn_layernorm(s->x, n, H, m->fin_w, m->fin_b, m->tt.eps, s->h);
	rwd_nn_linear(s->h, n, H, 0, m->tproj, NULL, m->proj, out, 0);
	return s->bs ? rwd_bf16_scratch_status(s->bs) : 0;
}

int rwd_clip_preprocess(const rwd_clip *m, const rwd_image *img, float *out)
{
	if (m->openclip_aa >= 0)
		return rwd_image_openclip_max_size(img->pixels, img->w, img->h, img->stride, (int)m->S,
			m->openclip_aa, m->prep.image_mean, m->prep.image_std, out);
	return rwd_image_prep_run(&m->prep, img->pixels, img->w, img->h, img->stride, out);
}

/* ---- the model kind ---- */

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	void **state, rwd_error *err)
{
	rwd_clip *m = NULL;
	int r = rwd_clip_load(path, opts, lim, &m, err);
	if (!r)
		*state = m;
	return r;
}

static void kind_free(void *state)
{
	clip_free_state(state);
}

static int kind_scratch_new(const void *state, void **scratch, rwd_error *err)
{
	return rwd_clip_scratch_new(state, scratch, err);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	const rwd_clip *m = state;
	info->n_dims = m->n_dims;
	for (size_t i = 0; i < m->n_dims; i++)
		info->dims[i] = m->dims[i].name;
	info->weight_bytes = m->weight_bytes;
	info->token_cost = 0;
}

static const char *const text_fields[] = {"prompt", "instruction", "source_caption",
	"target_caption"};

static int check_image(const rwd_clip *m, const json_t *item, const char *field, int required,
	rwd_error *err)
{
	json_t *v = json_object_get(item, field);
	rwd_error_where(err, NULL, field);
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		return rwd_errorf(err, RWD_E_INVALID,
			"missing \"%s\" (a base64 PNG/JPEG or a data:image/...;base64, URL)", field);
	}
	if (!json_is_string(v))
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a string (base64 or data URL)", field);
	size_t n = json_string_length(v);
	if (n == 0)
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is empty", field);
	if (n > m->max_string)
		return rwd_errorf(err, RWD_E_LIMIT, "\"%s\" is %zu characters, over the limit of %zu",
			field, n, m->max_string);
	return 0;
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const rwd_clip *m = state;
	int r;
	*cost = 1;
	if ((r = check_image(m, item, "image", 1, err)) ||
	    (r = check_image(m, item, "source_image", 0, err)))
		return r;
	for (size_t i = 0; i < sizeof(text_fields) / sizeof(text_fields[0]); i++) {
		json_t *v = json_object_get(item, text_fields[i]);
		if (!v || json_is_null(v))
			continue;
		rwd_error_where(err, NULL, text_fields[i]);
		if (!json_is_string(v))
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a string", text_fields[i]);
		if (json_string_length(v) > m->max_text_bytes)
			return rwd_errorf(err, RWD_E_LIMIT, "\"%s\" is longer than %zu bytes",
				text_fields[i], m->max_text_bytes);
		if (!m->tok)
			return rwd_errorf(err, RWD_E_UNPROCESSABLE,
				"this clip model has no tokenizer files: text inputs cannot be scored");
	}
	rwd_error_where(err, NULL, "");
	return 0;
}

/* base64 / data URL → bytes (malloc) → pixels (arena) → [3, S, S] (arena). */
static int prepare_image(const rwd_clip *m, const json_t *item, const char *field,
	rwd_arena *arena, float **out, rwd_error *err)
{
	const char *str = json_string_value(json_object_get(item, field));
	size_t n = json_string_length(json_object_get(item, field));
	const char *payload;
	size_t pn;
	rwd_error_where(err, NULL, field);
	int r = rwd_base64_strip_data_url(str, n, 1, &payload, &pn, NULL, 0, err);
	if (r)
		return r;
	rwd_base64_params bp = rwd_base64_default_params();
	bp.max_out = m->max_image_bytes;
	uint8_t *bytes = NULL;
	size_t nb = 0;
	r = rwd_base64_decode(payload, pn, &bp, NULL, &bytes, &nb, err);
	if (r) {
		if (err && err->offset >= 0)
			err->offset += payload - str;
		return r;
	}
	rwd_image img;
	r = rwd_image_decode(bytes, nb, &m->decode, NULL, &img, err);
	free(bytes);
	if (r)
		return r;
	float *px = rwd_arena_alloc(arena, 3 * m->S * m->S * sizeof(float));
	if (!px) {
		rwd_image_free(&img);
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
			"out of memory for the preprocessed image");
	}
	r = rwd_clip_preprocess(m, &img, px);
	rwd_image_free(&img);
	if (r)
		return rwd_errorf(err, r, "cannot preprocess the %dx%d image", img.w, img.h);
	*out = px;
	return 0;
}

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static int prepare_text(const rwd_clip *m, const char *field, const char *text,
	rwd_arena *arena, const int32_t **ids, size_t *n, rwd_error *err)
{
	rwd_encode_params ep = rwd_encode_default_params();
	ep.max_length = m->ctx; /* bos + first ctx-2 tokens + eos, as CLIP truncates */
	rwd_token_ids t;
	rwd_error_where(err, NULL, field);
	int r = rwd_tokenizer_encode(m->tok, text, strlen(text), &ep, arena, &t, err);
	if (r)
		return r;
	if (t.n == 0)
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" encodes to no tokens", field);
	for (size_t i = 0; i < t.n; i++)
		if (t.ids[i] < 0 || (size_t)t.ids[i] >= m->vocab)
			return rwd_errorf(err, RWD_E_INVALID,
				"the tokenizer gave id %d, outside the model's vocabulary of %zu",
				(int)t.ids[i], m->vocab);
	*ids = t.ids;
	*n = t.n;
	return 0;
}

static const char *text_of(const json_t *item, const char *const *fields, size_t n,
	const char **which)
{
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_object_get(item, fields[i]));
		if (s) {
			*which = fields[i];
			return s;
		}
	}
	return NULL;
}

static int kind_prepare(const void *state, void *scratch, rwd_item *item, rwd_arena *arena,
	rwd_error *err)
{
	const rwd_clip *m = state;
	(void)scratch;
	cl_prep *p = rwd_arena_calloc(arena, 1, sizeof(*p));
	if (!p)
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
			"out of memory for the item");
	int r = prepare_image(m, item->input, "image", arena, &p->pix[0], err);
	if (r)
		return r;
	json_t *src = json_object_get(item->input, "source_image");
	if (src && !json_is_null(src) &&
	    (r = prepare_image(m, item->input, "source_image", arena, &p->pix[1], err)))
		return r;
	for (int k = 0; k < 2; k++)
		if (p->pix[k])
			p->pix_hash[k] = fnv1a(p->pix[k], 3 * m->S * m->S * sizeof(float));
	if (m->tok) {
		static const char *const align[] = {"prompt", "target_caption"};
		static const char *const target[] = {"target_caption", "instruction", "prompt"};
		const char *which = NULL, *s;
		if ((s = text_of(item->input, align, 2, &which)) &&
		    (r = prepare_text(m, which, s, arena, &p->ids[T_ALIGN], &p->n[T_ALIGN], err)))
			return r;
		if (p->pix[1] && (s = text_of(item->input, target, 3, &which))) {
			if ((r = prepare_text(m, which, s, arena, &p->ids[T_TARGET], &p->n[T_TARGET], err)))
				return r;
			const char *srcs[] = {"source_caption"};
			if (!(s = text_of(item->input, srcs, 1, &which))) {
				s = "";
				which = "source_caption";
			}
			if ((r = prepare_text(m, which, s, arena, &p->ids[T_SOURCE], &p->n[T_SOURCE], err)))
				return r;
		}
	}
	rwd_error_where(err, NULL, "");
	item->prep = p;
	return 0;
}

/* ---- forward: dedupe, encode, score ---- */

/* a / ||a|| into out (zero stays zero). */
static void unit(const float *a, size_t n, float *out)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * a[i];
	double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
	for (size_t i = 0; i < n; i++)
		out[i] = (float)(a[i] * inv);
}

/* cos(a, b) in double. */
static double cosine(const float *a, const float *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;
	for (size_t i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa > 0 && bb > 0 ? ab / (sqrt(aa) * sqrt(bb)) : 0.0;
}

static int kind_forward(const void *state, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	const rwd_clip *m = state;
	cl_scratch *s = scratch;
	const size_t D = m->proj, PX = 3 * m->S * m->S;
	(void)arena;
	if (!s || n > m->cap)
		return RWD_E_INTERNAL;

	/* the distinct images (up to 2 per item) and texts (up to 3 per item) */
	size_t n_img = 0, n_txt = 0;
	const float **ulist = s->pix;
	const int32_t **tlist = s->ids;
	size_t *tlen = s->ids_n;
	uint64_t *uhash = s->pix_hash;
	for (size_t i = 0; i < n; i++) {
		cl_prep *p = items[i]->prep;
		for (int k = 0; k < 2; k++) {
			if (!p->pix[k])
				continue;
			size_t j = 0;
			while (j < n_img && !(uhash[j] == p->pix_hash[k] &&
				memcmp(ulist[j], p->pix[k], PX * sizeof(float)) == 0))
				j++;
			if (j == n_img) {
				uhash[n_img] = p->pix_hash[k];
				ulist[n_img++] = p->pix[k];
			}
			p->img_slot[k] = j;
		}
		for (int k = 0; k < N_TEXTS; k++) {
			if (!p->ids[k])
				continue;
			size_t j = 0;
			while (j < n_txt && !(tlen[j] == p->n[k] &&
				memcmp(tlist[j], p->ids[k], p->n[k] * sizeof(int32_t)) == 0))
				j++;
			if (j == n_txt) {
				tlist[n_txt] = p->ids[k];
				tlen[n_txt++] = p->n[k];
			}
			p->txt_slot[k] = j;
		}
	}
	/* encode in chunks of the scratch's capacity */
	for (size_t i = 0; i < n_img; i += m->cap) {
		size_t c = n_img - i < m->cap ? n_img - i : m->cap;
		rwd_clip_encode_images(m, s, ulist + i, c, s->img_emb + i * D);
	}
	/* a failed oneDNN call fails the batch, never a made-up score */
	int r = s->bs ? rwd_bf16_scratch_status(s->bs) : 0;
	if (r)
		return r;
	for (size_t i = 0; i < n_txt && !r; i += m->cap) {
		size_t c = n_txt - i < m->cap ? n_txt - i : m->cap;
		r = rwd_clip_encode_texts(m, s, tlist + i, tlen + i, c, s->txt_emb + i * D);
	}
	if (r)
		return r;
	/* unit image embeddings (the heads' input) */
	for (size_t j = 0; j < n_img; j++)
		unit(s->img_emb + j * D, D, s->unit + j * D);
	for (size_t h = 0; h < m->n_heads; h++) {
		int used = 0;
		for (size_t d = 0; d < m->n_dims; d++)
			used |= m->dims[d].kind == D_HEAD && m->dims[d].head == h;
		if (used && n_img)
			rwd_mlp_forward(m->heads[h].mlp, s->unit, n_img,
				s->head_out, s->head_s);
		for (size_t d = 0; d < m->n_dims; d++) {
			if (m->dims[d].kind != D_HEAD || m->dims[d].head != h)
				continue;
			for (size_t i = 0; i < n; i++) {
				const cl_prep *p = items[i]->prep;
				items[i]->scores[d] =
					s->head_out[p->img_slot[0] * m->heads[h].n_out + m->dims[d].out];
				items[i]->present[d] = 1;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		const cl_prep *p = items[i]->prep;
		const float *img = s->img_emb + p->img_slot[0] * D;
		for (size_t d = 0; d < m->n_dims; d++) {
			double v;
			switch (m->dims[d].kind) {
			case D_ALIGN:
				if (!p->ids[T_ALIGN])
					continue;
				v = cosine(s->txt_emb + p->txt_slot[T_ALIGN] * D, img, D);
				v = m->clipscore == 1 ? m->clipscore_w * (v > 0 ? v : 0) : m->clipscore == 2 ? v : m->scale * v;
				break;
			case D_IMGSIM:
				if (!p->pix[1])
					continue;
				v = cosine(s->img_emb + p->img_slot[1] * D, img, D);
				break;
			case D_EDIT: {
				if (!p->pix[1] || !p->ids[T_TARGET])
					continue;
				/* cos(unit(img) - unit(src), unit(txt_t) - unit(txt_s)) */
				const float *ui = s->unit + p->img_slot[0] * D;
				const float *us = s->unit + p->img_slot[1] * D;
				float *tt = s->head_in, *ts = s->head_in + D;
				unit(s->txt_emb + p->txt_slot[T_TARGET] * D, D, tt);
				unit(s->txt_emb + p->txt_slot[T_SOURCE] * D, D, ts);
				double ab = 0, aa = 0, bb = 0;
				for (size_t j = 0; j < D; j++) {
					double a = (double)ui[j] - us[j], b = (double)tt[j] - ts[j];
					ab += a * b;
					aa += a * a;
					bb += b * b;
				}
				v = aa > 0 && bb > 0 ? ab / (sqrt(aa) * sqrt(bb)) : 0.0;
				break;
			}
			default:
				continue;
			}
			items[i]->scores[d] = (float)v;
			items[i]->present[d] = 1;
		}
	}
	return 0;
}

const rwd_model_ops rwd__clip_ops = {
	.kind = "clip",
	.inputs = clip_inputs,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.scratch_new = kind_scratch_new,
	.scratch_free = rwd_clip_scratch_free,
	.prepare = kind_prepare,
	.forward = kind_forward,
};
