/* models/vlm.c — the `vlm` kind (Qwen2-VL / Qwen2.5-VL reward models); see vlm.h. */
#include "models/vlm.h"

#include "image/decode.h"
#include "image/qwen_vl.h"
#include "models/qwen_lm.h"
#include "models/qwen_vision.h"
#include "models/vlm_head.h"
#include "tensor/safetensors.h"
#include "text/tokenizer.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VLM_MAX_FIELDS 8
#define VLM_MAX_PROMPTS 8
#define VLM_MAX_IMAGES 8

typedef struct vlm_prompt {
	const char *name;
	const json_t *spec;
} vlm_prompt;

typedef struct vlm {
	json_t *cfg, *spec;
	rwd_weights *w;
	rwd_qwen_vision *vis;
	rwd_qwen_lm *lm;
	rwd_vlm_heads *heads;
	rwd_tokenizer *tok;
	rwd_qwen_vl_prep prep;
	rwd_image_decode_params decode;
	int variant, mrope;
	int32_t img_id, vid_id;
	size_t H, n_mu, n_dims;
	const char *dims[RWD_MAX_DIMS];
	int dim_src[RWD_MAX_DIMS];       /* reward dimension of dims[i] */
	int dim_sigma[RWD_MAX_DIMS];     /* 1: dims[i] is that dimension's σ */
	char sigma_names[RWD_MAX_DIMS][96];
	int32_t pool_id[RWD_MAX_DIMS];   /* -1: last token */
	size_t dim_prompt[RWD_MAX_DIMS]; /* index into prompts */
	vlm_prompt prompts[VLM_MAX_PROMPTS];
	size_t n_prompts;
	const char *fields[VLM_MAX_FIELDS + 1];
	int field_image[VLM_MAX_FIELDS];
	size_t n_fields;
	size_t max_image_bytes, max_text_bytes;
	size_t weight_bytes;
	char *warm; /* a JSON item with every field, for the daemon's warm-up */
} vlm;

/* A 56x56 RGB PNG: the processor refuses sides below 28, so a generic 16x16
 * warm-up image would fail (models without a fetch_image stage). */
static const char warm_png[] =
	"iVBORw0KGgoAAAANSUhEUgAAADgAAAA4CAIAAAAn5KxJAAAARklEQVR42u3OMQ0AMAgAMJgypCAF6VPBQdIqaE5XXPDiCFFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVHRbR/TFwGQmRNvBwAAAABJRU5ErkJggg==";

/* One decoded, preprocessed image of an item. */
typedef struct vlm_image {
	int32_t grid[3];
	float *rows;
} vlm_image;

typedef struct vlm_prep {
	vlm_image img[VLM_MAX_FIELDS]; /* by field index (image fields only) */
} vlm_prep;

int rwd__vlm_architecture(const char *arch)
{
	return strstr(arch, "Qwen2VL") != NULL || strstr(arch, "Qwen2_5_VL") != NULL;
}

static void vlm_free(vlm *m)
{
	if (!m)
		return;
	rwd_vlm_heads_free(m->heads);
	rwd_qwen_lm_free(m->lm);
	rwd_qwen_vision_free(m->vis);
	rwd_tokenizer_free(m->tok);
	rwd_weights_free(m->w);
	free(m->warm);
	json_decref(m->spec);
	json_decref(m->cfg);
	free(m);
}

static int add_field(vlm *m, const char *f, int image, rwd_error *err)
{
	for (size_t i = 0; i < m->n_fields; i++) {
		if (strcmp(m->fields[i], f) == 0) {
			if (m->field_image[i] != image)
				return rwd_errorf(err, RWD_E_INVALID, "field \"%s\" is used both as an image and as text", f);
			return 0;
		}
	}
	if (m->n_fields == VLM_MAX_FIELDS)
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "more than %d item fields in the prompts", VLM_MAX_FIELDS);
	m->field_image[m->n_fields] = image;
	m->fields[m->n_fields++] = f;
	m->fields[m->n_fields] = NULL;
	return 0;
}

/* Validate one prompt's messages and collect the fields it reads. */
static int check_prompt(vlm *m, const char *name, const json_t *p, rwd_error *err)
{
	const json_t *msgs = json_object_get(p, "messages");
	size_t i, j;
	const json_t *msg, *part;
	int r;
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return rwd_errorf(err, RWD_E_INVALID, "prompt \"%s\" needs a non-empty \"messages\" array", name);
	json_array_foreach(msgs, i, msg) {
		if (!json_is_string(json_object_get(msg, "role")))
			return rwd_errorf(err, RWD_E_INVALID, "prompt \"%s\" message %zu has no \"role\"", name, i);
		const json_t *content = json_object_get(msg, "content");
		if (json_is_string(content))
			continue;
		if (!json_is_array(content))
			return rwd_errorf(err, RWD_E_INVALID, "prompt \"%s\" message %zu: \"content\" must be a string or an array",
				name, i);
		json_array_foreach(content, j, part) {
			const char *type = json_string_value(json_object_get(part, "type"));
			if (type && strcmp(type, "image") == 0) {
				const char *f = json_string_value(json_object_get(part, "field"));
				if (!f)
					return rwd_errorf(err, RWD_E_INVALID, "prompt \"%s\": an image part needs \"field\"", name);
				if ((r = add_field(m, f, 1, err)))
					return r;
			} else if (type && strcmp(type, "text") == 0) {
				if (!json_is_string(json_object_get(part, "text")))
					return rwd_errorf(err, RWD_E_INVALID, "prompt \"%s\": a text part needs \"text\"", name);
				const char *f = json_string_value(json_object_get(part, "text_field"));
				if (f && (r = add_field(m, f, 0, err)))
					return r;
			} else {
				return rwd_errorf(err, RWD_E_UNSUPPORTED, "prompt \"%s\": part type \"%s\" (expected image or text)",
					name, type ? type : "(none)");
			}
		}
	}
	return 0;
}

static int32_t special_id(const vlm *m, const char *tok)
{
	const json_t *st = json_object_get(m->spec, "special_tokens");
	int32_t id = rwd_tokenizer_token_to_id(m->tok, tok);
	const json_t *v = json_object_get(st, tok);
	if (id < 0 && json_is_integer(v))
		id = (int32_t)json_integer_value(v);
	return id;
}

static int load_spec(vlm *m, const char *path, rwd_error *err)
{
	int r;
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s/reward_head.json", path);
	const json_t *prompts = json_object_get(m->spec, "prompts");
	rwd_error_where(err, file, "prompts");
	if (prompts && !json_is_object(prompts))
		return rwd_errorf(err, RWD_E_INVALID, "\"prompts\" must be an object");
	const char *pm = json_string_value(json_object_get(m->spec, "position_ids"));
	if (pm && strcmp(pm, "mrope") != 0 && strcmp(pm, "sequential") != 0) {
		rwd_error_where(err, file, "position_ids");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "position_ids \"%s\" (expected sequential or mrope)", pm);
	}
	m->mrope = pm && strcmp(pm, "mrope") == 0;
	if ((r = rwd_vlm_heads_load(path, m->spec, m->H, &m->heads, err)))
		return r;
	m->n_mu = rwd_vlm_heads_n_dims(m->heads);
	size_t k = 0;
	for (size_t d = 0; d < m->n_mu; d++) {
		const rwd_vlm_dim *dm = rwd_vlm_heads_dim(m->heads, d);
		rwd_error_where(err, file, "dimensions");
		const json_t *p = dm->prompt ? json_object_get(prompts, dm->prompt) : NULL;
		if (!p)
			return rwd_errorf(err, RWD_E_INVALID, "dimension \"%s\": prompt \"%s\" is not in \"prompts\"", dm->name,
				dm->prompt ? dm->prompt : "(none)");
		size_t pi = 0;
		while (pi < m->n_prompts && strcmp(m->prompts[pi].name, dm->prompt) != 0)
			pi++;
		if (pi == m->n_prompts) {
			if (pi == VLM_MAX_PROMPTS)
				return rwd_errorf(err, RWD_E_UNSUPPORTED, "more than %d prompts", VLM_MAX_PROMPTS);
			rwd_error_where(err, file, "prompts");
			if ((r = check_prompt(m, dm->prompt, p, err)))
				return r;
			m->prompts[pi].name = dm->prompt;
			m->prompts[pi].spec = p;
			m->n_prompts++;
		}
		int32_t pool = -1;
		if (dm->pool && strcmp(dm->pool, "last") != 0) {
			pool = special_id(m, dm->pool);
			if (pool < 0) {
				rwd_error_where(err, file, "dimensions");
				return rwd_errorf(err, RWD_E_INVALID, "dimension \"%s\": pool token %s is neither in the tokenizer nor in "
					"\"special_tokens\"", dm->name, dm->pool);
			}
		}
		m->dims[k] = dm->name;
		m->dim_src[k] = (int)d;
		m->dim_sigma[k] = 0;
		m->pool_id[k] = pool;
		m->dim_prompt[k] = pi;
		k++;
	}
	for (size_t d = 0; d < m->n_mu; d++) {
		const rwd_vlm_dim *dm = rwd_vlm_heads_dim(m->heads, d);
		if (dm->log_sigma < 0)
			continue;
		if (k == RWD_MAX_DIMS)
			return rwd_errorf(err, RWD_E_LIMIT, "more than %d dimensions", RWD_MAX_DIMS);
		snprintf(m->sigma_names[k], sizeof(m->sigma_names[k]), "%s_sigma", dm->name);
		m->dims[k] = m->sigma_names[k];
		m->dim_src[k] = (int)d;
		m->dim_sigma[k] = 1;
		m->pool_id[k] = m->pool_id[d];
		m->dim_prompt[k] = m->dim_prompt[d];
		k++;
	}
	m->n_dims = k;
	/* the reward model's own fetch_image resize */
	const json_t *mn = json_object_get(m->spec, "min_pixels"), *mx = json_object_get(m->spec, "max_pixels");
	if (json_is_integer(mn) && json_is_integer(mx)) {
		m->prep.fetch_min_pixels = json_integer_value(mn);
		m->prep.fetch_max_pixels = json_integer_value(mx);
	}
	rwd_error_where(err, NULL, "");
	return 0;
}

static int vlm_load(const char *path, const json_t *opts, const rwd_batch_limits *lim, vlm **out,
	rwd_error *err)
{
	char file[PATH_MAX];
	json_error_t je;
	int r;
	(void)opts;
	if (!path)
		return rwd_errorf(err, RWD_E_INVALID, "the vlm kind needs a model folder");
	vlm *m = calloc(1, sizeof(*m));
	if (!m)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	m->max_image_bytes = 32u << 20;
	m->max_text_bytes = 16384;
	m->decode = rwd_image_decode_default_params();
	m->decode.max_pixels = lim->max_image_pixels;
	m->prep = rwd_qwen_vl_prep_default();

	snprintf(file, sizeof(file), "%s/config.json", path);
	if (!(m->cfg = json_load_file(file, JSON_REJECT_DUPLICATES, &je))) {
		rwd_error_where(err, file, NULL);
		r = rwd_errorf(err, RWD_E_NOTFOUND, "cannot read config.json: %s", je.text);
		goto fail;
	}
	const char *mt = json_string_value(json_object_get(m->cfg, "model_type"));
	if (!mt || (strcmp(mt, "qwen2_vl") != 0 && strcmp(mt, "qwen2_5_vl") != 0)) {
		rwd_error_where(err, file, "model_type");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED, "model_type \"%s\" (expected qwen2_vl or qwen2_5_vl)", mt ? mt : "(none)");
		goto fail;
	}
	m->variant = strcmp(mt, "qwen2_5_vl") == 0 ? RWD_QWEN_VISION_2_5 : RWD_QWEN_VISION_2;
	snprintf(file, sizeof(file), "%s/reward_head.json", path);
	if (!(m->spec = json_load_file(file, JSON_REJECT_DUPLICATES, &je))) {
		rwd_error_where(err, file, NULL);
		r = rwd_errorf(err, RWD_E_NOTFOUND, "cannot read reward_head.json: %s", je.text);
		goto fail;
	}
	rwd_tokenizer_params tp = rwd_tokenizer_default_params();
	if ((r = rwd_tokenizer_load_dir(path, RWD_TOKENIZER_QWEN2, &tp, &m->tok, err)))
		goto fail;
	rwd_weights_params wp = rwd_weights_default_params();
	wp.use_mmap = !lim->weights_in_memory;
	wp.convert_half = true;
	if ((r = rwd_weights_open(path, &wp, &m->w, err)))
		goto fail;
	int v452 = rwd_weights_find(m->w, "model.visual.patch_embed.proj.weight") != NULL;
	const json_t *tc = json_object_get(m->cfg, "text_config");
	if (!tc)
		tc = m->cfg;
	if ((r = rwd_qwen_vision_load(m->w, v452 ? "model.visual" : "visual", json_object_get(m->cfg, "vision_config"),
		     m->variant, &m->vis, err)))
		goto fail;
	if ((r = rwd_qwen_lm_load(m->w, v452 ? "model.language_model" : "model", tc, &m->lm, err)))
		goto fail;
	m->H = rwd_qwen_lm_get_info(m->lm)->hidden;
	m->img_id = rwd_tokenizer_token_to_id(m->tok, "<|image_pad|>");
	m->vid_id = rwd_tokenizer_token_to_id(m->tok, "<|video_pad|>");
	if (m->img_id < 0 || rwd_tokenizer_token_to_id(m->tok, "<|vision_start|>") < 0 ||
	    rwd_tokenizer_token_to_id(m->tok, "<|vision_end|>") < 0) {
		rwd_error_where(err, path, "tokenizer");
		r = rwd_errorf(err, RWD_E_INVALID, "the tokenizer lacks <|vision_start|>, <|image_pad|> or <|vision_end|>");
		goto fail;
	}
	rwd_error_where(err, file, NULL);
	if ((r = load_spec(m, path, err)))
		goto fail;
	m->weight_bytes = (size_t)rwd_weights_total_bytes(m->w);
	json_t *warm = json_object();
	for (size_t i = 0; warm && i < m->n_fields; i++)
		json_object_set_new(warm, m->fields[i], json_string(m->field_image[i] ? warm_png : "a photo"));
	m->warm = warm ? json_dumps(warm, JSON_COMPACT) : NULL;
	json_decref(warm);
	if (!m->warm) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	rwd_error_clear(err);
	*out = m;
	return 0;
fail:
	vlm_free(m);
	return r;
}

/* ---- the kind ---- */

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim, void **state,
	rwd_error *err)
{
	vlm *m = NULL;
	int r = vlm_load(path, opts, lim, &m, err);
	if (!r)
		*state = m;
	return r;
}

static void kind_free(void *state)
{
	vlm_free(state);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	const vlm *m = state;
	info->n_dims = m->n_dims;
	for (size_t i = 0; i < m->n_dims; i++)
		info->dims[i] = m->dims[i];
	info->inputs = m->fields;
	info->warm_item = m->warm;
	info->weight_bytes = m->weight_bytes;
	info->token_cost = 0;
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const vlm *m = state;
	*cost = 1;
	for (size_t i = 0; i < m->n_fields; i++) {
		const char *f = m->fields[i];
		const json_t *v = json_object_get(item, f);
		rwd_error_where(err, NULL, f);
		if (!v || json_is_null(v))
			return rwd_errorf(err, RWD_E_INVALID, "missing \"%s\"%s", f,
				m->field_image[i] ? " (a base64 PNG/JPEG or a data:image/...;base64, URL)" : "");
		if (!json_is_string(v))
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a string", f);
		size_t n = json_string_length(v);
		if (m->field_image[i] && n == 0)
			return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is empty", f);
		size_t lim = m->field_image[i] ? m->max_image_bytes / 3 * 4 + 4096 : m->max_text_bytes;
		if (n > lim)
			return rwd_errorf(err, RWD_E_LIMIT, "\"%s\" is %zu bytes, over the limit of %zu", f, n, lim);
	}
	rwd_error_where(err, NULL, "");
	return 0;
}

static int kind_prepare(const void *state, void *scratch, rwd_item *item, rwd_arena *arena, rwd_error *err)
{
	const vlm *m = state;
	(void)scratch;
	vlm_prep *p = rwd_arena_calloc(arena, 1, sizeof(*p));
	if (!p)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	for (size_t i = 0; i < m->n_fields; i++) {
		if (!m->field_image[i])
			continue;
		const char *f = m->fields[i];
		const json_t *v = json_object_get(item->input, f);
		rwd_image img;
		int r;
		rwd_error_where(err, NULL, f);
		if ((r = rwd_image_decode_base64(json_string_value(v), json_string_length(v), m->max_image_bytes,
			     &m->decode, NULL, &img, err))) {
			if (r == RWD_E_LIMIT && !strstr(err->msg, f)) {
				char msg[sizeof(err->msg)];
				snprintf(msg, sizeof(msg), "%s", err->msg);
				rwd_errorf(err, r, "\"%s\": %.200s", f, msg);
			}
			rwd_error_where(err, NULL, f);
			return r;
		}
		int gt, gh, gw;
		r = rwd_qwen_vl_prep_grid(&m->prep, img.w, img.h, 1, &gt, &gh, &gw);
		if (r) {
			rwd_errorf(err, r, "\"%s\": a %dx%d image cannot be resized for the model", f, img.w, img.h);
			rwd_image_free(&img);
			return r;
		}
		size_t in_dim = rwd_qwen_vision_get_info(m->vis)->in_dim;
		size_t rows = (size_t)gt * gh * gw;
		float *out = rwd_arena_alloc(arena, rows * in_dim * sizeof(float));
		if (!out) {
			rwd_image_free(&img);
			return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
				"out of memory for the preprocessed \"%s\"", f);
		}
		const uint8_t *fr = img.pixels;
		r = rwd_qwen_vl_prep_run(&m->prep, &fr, 1, img.w, img.h, 0, out);
		rwd_image_free(&img);
		if (r)
			return rwd_errorf(err, r, "cannot preprocess \"%s\"", f);
		p->img[i].grid[0] = gt;
		p->img[i].grid[1] = gh;
		p->img[i].grid[2] = gw;
		p->img[i].rows = out;
	}
	rwd_error_where(err, NULL, "");
	item->prep = p;
	return 0;
}

/* A growing string (malloc). */
typedef struct sbuf {
	char *s;
	size_t n, cap;
	int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *t = realloc(b->s, cap);
		if (!t) {
			b->oom = 1;
			return;
		}
		b->s = t;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static size_t field_index(const vlm *m, const char *f)
{
	for (size_t i = 0; i < m->n_fields; i++)
		if (strcmp(m->fields[i], f) == 0)
			return i;
	return 0; /* not reached: check_prompt collected every field */
}

/*
 * Render prompt `pi` for item `it` with the Qwen2-VL chat template into b;
 * order[0..*n_img) = the field indexes of its images, in order.
 */
static void render(const vlm *m, size_t pi, const rwd_item *it, const vlm_prep *p, sbuf *b, size_t *order,
	size_t *n_img)
{
	const json_t *spec = m->prompts[pi].spec, *msgs = json_object_get(spec, "messages"), *msg, *part;
	size_t i, j;
	const size_t merge2 = 4;
	*n_img = 0;
	json_array_foreach(msgs, i, msg) {
		const char *role = json_string_value(json_object_get(msg, "role"));
		if (i == 0 && strcmp(role, "system") != 0)
			sb_str(b, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n");
		sb_str(b, "<|im_start|>");
		sb_str(b, role);
		sb_str(b, "\n");
		const json_t *content = json_object_get(msg, "content");
		if (json_is_string(content))
			sb_add(b, json_string_value(content), json_string_length(content));
		json_array_foreach(content, j, part) {
			const char *type = json_string_value(json_object_get(part, "type"));
			if (strcmp(type, "image") == 0) {
				size_t fi = field_index(m, json_string_value(json_object_get(part, "field")));
				const int32_t *g = p->img[fi].grid;
				size_t n = (size_t)g[0] * g[1] * g[2] / merge2;
				sb_str(b, "<|vision_start|>");
				for (size_t k = 0; k < n; k++)
					sb_str(b, "<|image_pad|>");
				sb_str(b, "<|vision_end|>");
				if (*n_img < VLM_MAX_IMAGES)
					order[(*n_img)++] = fi;
				continue;
			}
			const char *t = json_string_value(json_object_get(part, "text"));
			const char *tf = json_string_value(json_object_get(part, "text_field"));
			const char *hole = tf ? strstr(t, "{text_prompt}") : NULL;
			if (!hole) {
				sb_str(b, t);
				continue;
			}
			const json_t *v = json_object_get(it->input, tf);
			sb_add(b, t, (size_t)(hole - t));
			sb_add(b, json_string_value(v), json_string_length(v));
			sb_str(b, hole + strlen("{text_prompt}"));
		}
		sb_str(b, "<|im_end|>\n");
	}
	if (json_is_true(json_object_get(spec, "add_generation_prompt")))
		sb_str(b, "<|im_start|>assistant\n");
}

/* One sequence of a batch: prompt pi of item `item`, rendered and tokenised. */
typedef struct vlm_seq {
	size_t item, pi;
	int32_t *ids, *pos; /* pos: [3][n], stream-major */
	size_t n, start, slot0;
	size_t order[VLM_MAX_IMAGES], n_img; /* field index of each image, in order */
} vlm_seq;

/*
 * Render and tokenise prompt pi of item it into s (memory from arena), check
 * its placeholders, ids and pool tokens, and give its positions. A failure
 * is the item's (its err filled).
 */
static int seq_prepare(const vlm *m, rwd_item *it, size_t pi, rwd_arena *arena, vlm_seq *s)
{
	const vlm_prep *p = it->prep;
	const rwd_qwen_vision_info *vi = rwd_qwen_vision_get_info(m->vis);
	const size_t merge2 = vi->merge * vi->merge, vocab = rwd_qwen_lm_get_info(m->lm)->vocab;
	sbuf b = {0};
	int r;
	render(m, pi, it, p, &b, s->order, &s->n_img);
	if (b.oom) {
		free(b.s);
		return rwd_errorf(&it->err, RWD_E_NOMEM, "out of memory for the prompt");
	}
	rwd_encode_params ep = rwd_encode_default_params();
	ep.add_special_tokens = 0;
	rwd_token_ids ids;
	r = rwd_tokenizer_encode(m->tok, b.s, b.n, &ep, arena, &ids, &it->err);
	free(b.s);
	if (r)
		return r;
	s->ids = ids.ids;
	s->n = ids.n;
	s->pi = pi;
	size_t C = 0, pads = 0;
	int32_t grids[3 * VLM_MAX_IMAGES];
	double ts[VLM_MAX_IMAGES];
	for (size_t k = 0; k < s->n_img; k++) {
		const int32_t *g = p->img[s->order[k]].grid;
		memcpy(grids + 3 * k, g, sizeof(int32_t) * 3);
		ts[k] = m->variant == RWD_QWEN_VISION_2 ? 1.0 : 0.0;
		C += (size_t)g[0] * g[1] * g[2] / merge2;
	}
	for (size_t i = 0; i < s->n; i++) {
		pads += s->ids[i] == m->img_id || s->ids[i] == m->vid_id;
		if (s->ids[i] < 0 || (size_t)s->ids[i] >= vocab)
			return rwd_errorf(&it->err, RWD_E_INVALID, "token id %d is outside the model's vocabulary of %zu",
				s->ids[i], vocab);
	}
	if (pads != C || s->n == 0)
		/* the item's text held vision placeholders of its own (HF's processor refuses them too) */
		return rwd_errorf(&it->err, RWD_E_INVALID, "%zu image placeholder tokens for %zu image features: the text "
			"must not contain <|image_pad|> or <|video_pad|>", pads, C);
	for (size_t d = 0; d < m->n_mu; d++) {
		if (m->dim_prompt[d] != pi || m->pool_id[d] < 0)
			continue;
		size_t hits = 0;
		for (size_t i = 0; i < s->n; i++)
			hits += s->ids[i] == m->pool_id[d];
		if (hits != 1)
			return rwd_errorf(&it->err, RWD_E_INVALID, "dimension \"%s\": its pool token (id %d) occurs %zu times in "
				"the sequence, not once", m->dims[d], m->pool_id[d], hits);
	}
	if (!(s->pos = rwd_arena_alloc(arena, 3 * s->n * sizeof(int32_t))))
		return rwd_errorf(&it->err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM, "out of memory");
	if (m->mrope) {
		if ((r = rwd_qwen_lm_rope_index(s->ids, s->n, m->img_id, m->vid_id, grids, ts, s->n_img, vi->merge, s->pos)))
			return rwd_errorf(&it->err, r, "the image placeholders do not match the images");
	} else {
		for (size_t i = 0; i < 3 * s->n; i++)
			s->pos[i] = (int32_t)(i % s->n);
	}
	return 0;
}

/*
 * Score a batch: every prompt of every item is one sequence; the vision tower
 * runs once over all the items' images (each image once, whichever prompts
 * use it), the decoder once over all sequences packed back to back, then
 * each dimension's head at its pool row.
 */
static int kind_forward(const void *state, void *scratch, rwd_item *const *items, size_t n, rwd_arena *arena)
{
	const vlm *m = state;
	const rwd_qwen_vision_info *vi = rwd_qwen_vision_get_info(m->vis);
	const size_t H = m->H, merge2 = vi->merge * vi->merge, MF = VLM_MAX_FIELDS;
	(void)scratch;
	vlm_seq *seqs = rwd_arena_calloc(arena, n * m->n_prompts + 1, sizeof(*seqs));
	size_t *img_off = rwd_arena_calloc(arena, n * MF + 1, sizeof(*img_off));
	int32_t *grids = rwd_arena_alloc(arena, (3 * n * MF + 1) * sizeof(int32_t));
	const float **rowp = rwd_arena_alloc(arena, (n * MF + 1) * sizeof(*rowp));
	float *mu = rwd_arena_alloc(arena, (n * m->n_mu + 1) * sizeof(float));
	float *sigma = rwd_arena_alloc(arena, (n * m->n_mu + 1) * sizeof(float));
	if (!seqs || !img_off || !grids || !rowp || !mu || !sigma)
		return rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM;
	size_t nseq = 0;
	for (size_t i = 0; i < n; i++) {
		size_t first = nseq;
		int r = 0;
		for (size_t pi = 0; pi < m->n_prompts && !r; pi++) {
			seqs[nseq].item = i;
			if (!(r = seq_prepare(m, items[i], pi, arena, &seqs[nseq])))
				nseq++;
		}
		if (r) {
			items[i]->status = r;
			nseq = first;
		}
	}
	if (!nseq)
		return 0;
	/* the tower's inputs: each image of each item still in the batch, once */
	size_t N = 0, S = 0, nimg = 0, C = 0;
	for (size_t i = 0; i < n; i++) {
		const vlm_prep *p = items[i]->prep;
		if (items[i]->status)
			continue;
		for (size_t f = 0; f < m->n_fields; f++) {
			if (!m->field_image[f])
				continue;
			const int32_t *g = p->img[f].grid;
			const json_t *js = json_object_get(items[i]->input, m->fields[f]);
			int dup = 0;
			/* an image given again (same text) in this batch is encoded once */
			for (size_t i2 = 0; i2 <= i && !dup; i2++) {
				if (items[i2]->status)
					continue;
				for (size_t f2 = 0; f2 < (i2 == i ? f : m->n_fields) && !dup; f2++) {
					const json_t *j2 = m->field_image[f2] ? json_object_get(items[i2]->input, m->fields[f2]) : NULL;
					if (j2 && json_string_length(j2) == json_string_length(js) &&
					    memcmp(json_string_value(j2), json_string_value(js), json_string_length(js)) == 0) {
						img_off[i * MF + f] = img_off[i2 * MF + f2];
						dup = 1;
					}
				}
			}
			if (dup)
				continue;
			memcpy(grids + 3 * nimg, g, 3 * sizeof(int32_t));
			rowp[nimg++] = p->img[f].rows;
			img_off[i * MF + f] = C;
			C += (size_t)g[0] * g[1] * g[2] / merge2;
			N += (size_t)g[0] * g[1] * g[2];
			if ((size_t)g[1] * g[2] > S)
				S = (size_t)g[1] * g[2];
		}
	}
	float *rows = NULL, *vs = NULL, *vis = NULL, *x = NULL, *ls = NULL, *hid = NULL, *hsc = NULL, *ho = NULL;
	int32_t *pos = NULL;
	size_t *starts = NULL, *pick = NULL;
	int r = RWD_E_NOMEM;
	if (N) {
		size_t ns = rwd_qwen_vision_scratch(m->vis, N, S), off = 0;
		rows = malloc(N * vi->in_dim * sizeof(float));
		vs = malloc((ns + 1) * sizeof(float));
		vis = malloc((C + 1) * H * sizeof(float));
		if (!ns || !rows || !vs || !vis)
			goto done;
		for (size_t k = 0; k < nimg; k++) {
			const int32_t *g = grids + 3 * k;
			size_t nr = (size_t)g[0] * g[1] * g[2] * vi->in_dim;
			memcpy(rows + off, rowp[k], nr * sizeof(float));
			off += nr;
		}
		if ((r = rwd_qwen_vision_forward(m->vis, rows, grids, nimg, vis, vs, ns)))
			goto done;
		r = RWD_E_NOMEM;
	}
	/* the decoder's inputs: all sequences back to back */
	size_t T = 0, maxn = 0, np = 0;
	for (size_t j = 0; j < nseq; j++) {
		seqs[j].start = T;
		T += seqs[j].n;
		maxn = seqs[j].n > maxn ? seqs[j].n : maxn;
	}
	size_t lsn = rwd_qwen_lm_scratch(m->lm, T, maxn);
	x = malloc(T * H * sizeof(float));
	pos = malloc(3 * T * sizeof(int32_t));
	starts = malloc((nseq + 1) * sizeof(size_t));
	pick = malloc((nseq * m->n_mu + 1) * sizeof(size_t));
	ls = malloc((lsn + 1) * sizeof(float));
	hid = malloc((nseq * m->n_mu + 1) * H * sizeof(float));
	hsc = malloc((rwd_vlm_heads_scratch(m->heads) + 1) * sizeof(float));
	size_t od = 1;
	for (size_t h = 0; h < rwd_vlm_heads_n_heads(m->heads); h++)
		od = rwd_vlm_heads_out_dim(m->heads, h) > od ? rwd_vlm_heads_out_dim(m->heads, h) : od;
	ho = malloc(od * sizeof(float));
	if (!lsn || !x || !pos || !starts || !pick || !ls || !hid || !hsc || !ho)
		goto done;
	for (size_t j = 0; j < nseq; j++) {
		const vlm_seq *sq = &seqs[j];
		const vlm_prep *p = items[sq->item]->prep;
		size_t k = 0, in_k = 0;
		for (size_t i = 0; i < sq->n; i++) {
			float *dst = x + (sq->start + i) * H;
			if (sq->ids[i] == m->img_id && k < sq->n_img) {
				const int32_t *g = p->img[sq->order[k]].grid;
				size_t ck = (size_t)g[0] * g[1] * g[2] / merge2;
				size_t row = img_off[sq->item * MF + sq->order[k]] + in_k;
				memcpy(dst, vis + row * H, H * sizeof(float));
				if (++in_k == ck) {
					k++;
					in_k = 0;
				}
			} else if ((r = rwd_qwen_lm_embed(m->lm, sq->ids[i], dst))) {
				goto done; /* not reached: seq_prepare checked the ids */
			}
			for (int st = 0; st < 3; st++)
				pos[(size_t)st * T + sq->start + i] = sq->pos[(size_t)st * sq->n + i];
		}
		starts[j] = sq->start;
		seqs[j].slot0 = np;
		for (size_t d = 0; d < m->n_mu; d++) {
			if (m->dim_prompt[d] != sq->pi)
				continue;
			size_t at = sq->n - 1;
			if (m->pool_id[d] >= 0)
				for (size_t i = 0; i < sq->n; i++)
					if (sq->ids[i] == m->pool_id[d])
						at = i;
			pick[np++] = sq->start + at;
		}
	}
	starts[nseq] = T;
	if ((r = rwd_qwen_lm_forward(m->lm, x, starts, nseq, pos, pick, np, hid, ls, lsn)))
		goto done;
	for (size_t j = 0; j < nseq; j++) {
		const vlm_seq *sq = &seqs[j];
		size_t slot = sq->slot0;
		for (size_t d = 0; d < m->n_mu; d++) {
			if (m->dim_prompt[d] != sq->pi)
				continue;
			const rwd_vlm_dim *dm = rwd_vlm_heads_dim(m->heads, d);
			rwd_vlm_head_run(m->heads, dm->head, hid + slot++ * H, ho, hsc);
			rwd_vlm_dim_values(m->heads, d, ho, &mu[sq->item * m->n_mu + d], &sigma[sq->item * m->n_mu + d]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = items[i];
		if (it->status)
			continue;
		const float *mi = mu + i * m->n_mu, *si = sigma + i * m->n_mu;
		json_t *sg = json_object();
		for (size_t k = 0; k < m->n_dims; k++) {
			int d = m->dim_src[k];
			it->scores[k] = m->dim_sigma[k] ? si[d] : mi[d];
			it->present[k] = 1;
			if (m->dim_sigma[k] && sg)
				json_object_set_new(sg, m->dims[d], json_real(si[d]));
		}
		if (sg && json_object_size(sg))
			it->extra = json_pack("{s:o}", "sigma", sg);
		else
			json_decref(sg);
	}
	r = 0;
done:
	free(rows);
	free(vs);
	free(vis);
	free(x);
	free(pos);
	free(starts);
	free(pick);
	free(ls);
	free(hid);
	free(hsc);
	free(ho);
	return r;
}

const rwd_model_ops rwd__vlm_ops = {
	.kind = "vlm",
	.inputs = NULL,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.prepare = kind_prepare,
	.forward = kind_forward,
};
