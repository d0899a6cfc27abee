/*
 * compat/imgrl.c — the image-RL trainers' bodies → native items, and our
 * results → their replies (see imgrl.h for the protocols and citations).
 */
#include "compat/imgrl.h"

#include "compat/compat.h"
#include "core/base64.h"
#include "core/json.h"

#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GenEval's six tags (yifan123/reward-server reward_server/gen_eval.py): always in the group dicts. */
static const char *const geneval_tags[] = {"single_object", "two_object", "counting", "colors", "position",
	"color_attr"};

const char *rwd_imgrl_proto_name(int proto)
{
	switch (proto) {
	case RWD_IMGRL_DEQA: return "flow_grpo deqa";
	case RWD_IMGRL_GENEVAL: return "flow_grpo geneval";
	case RWD_IMGRL_UNIFIED: return "flow_grpo unifiedreward";
	case RWD_IMGRL_SCORES: return "verl-omni scorer";
	case RWD_IMGRL_EDITSCORE: return "EditScore proxy";
	case RWD_IMGRL_EDITSCORE_WORKER: return "EditScore worker";
	case RWD_IMGRL_COMPUTE: return "Flow-Factory /compute";
	default: return "?";
	}
}

uint32_t rwd_imgrl_client_timeout_ms(int proto)
{
	switch (proto) {
	case RWD_IMGRL_EDITSCORE:
	case RWD_IMGRL_EDITSCORE_WORKER:
		return 600000;
	case RWD_IMGRL_COMPUTE:
		return 60000;
	default:
		return 120000;
	}
}

void rwd_imgrl_req_clear(rwd_imgrl_req *req)
{
	if (!req)
		return;
	json_decref(req->echo);
	req->echo = NULL;
}

json_t *rwd_imgrl_error_body(const char *message)
{
	return json_pack("{ss}", "error", message ? message : "error");
}

/* ---- what a kind takes --------------------------------------------------- */

typedef struct kind_map {
	const char *text;    /* field of a text-to-image prompt, or NULL (dropped) */
	int edit;            /* takes "source_image" */
	const char *instr;   /* field of an edit instruction, or NULL (dropped) */
} kind_map;

static int map_kind(const char *kind, kind_map *m, rwd_error *err)
{
	if (strcmp(kind, "clip") == 0) {
		*m = (kind_map){"prompt", 1, "instruction"};
		return 0;
	}
	if (strcmp(kind, "image_metrics") == 0) {
		*m = (kind_map){NULL, 1, NULL};
		return 0;
	}
	/* ocr: the prompt carries the quoted target (flow_grpo's ocr_score reads prompt.split('"')[1]) */
	if (strcmp(kind, "imagereward") == 0 || strcmp(kind, "ocr") == 0) {
		*m = (kind_map){"prompt", 0, NULL};
		return 0;
	}
	return rwd_errorf(err, RWD_E_INVALID, "a model of kind '%s' scores no images (use a clip, imagereward, ocr "
		"or image_metrics model)", kind);
}

static int where(rwd_error *err, int code, const char *fmt, ...) RWD_PRINTF(3, 4);

/* Set err->object from a printf format; returns code (err's message already set). */
static int where(rwd_error *err, int code, const char *fmt, ...)
{
	char f[RWD_ERROR_OBJECT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f, sizeof(f), fmt, ap);
	va_end(ap);
	rwd_error_where(err, NULL, f);
	return code;
}

/* ---- images ----------------------------------------------------------------- */

static json_t *b64_json(const uint8_t *d, size_t n)
{
	size_t cap = rwd_base64_encoded_len(n, 0);
	char *s = malloc(cap + 1);
	if (!s)
		return NULL;
	size_t len = rwd_base64_encode(d, n, 0, s);
	json_t *j = json_stringn_nocheck(s, len);
	free(s);
	return j;
}

int rwd_imgrl_image_rgb(const rwd_pickle_value *im, uint8_t *out, rwd_error *err)
{
	size_t w = im->width, h = im->height, np = w * h;
	const uint8_t *s = im->data;
	const char *m = im->mode;
	if (strcmp(m, "RGB") == 0) {
		memcpy(out, s, 3 * np);
	} else if (strcmp(m, "RGBA") == 0 || strcmp(m, "RGBX") == 0) {
		for (size_t i = 0; i < np; i++)
			memcpy(out + 3 * i, s + 4 * i, 3);
	} else if (strcmp(m, "L") == 0 || strcmp(m, "LA") == 0) {
		size_t step = m[1] ? 2 : 1;
		for (size_t i = 0; i < np; i++)
			memset(out + 3 * i, s[step * i], 3);
	} else if (strcmp(m, "P") == 0 || strcmp(m, "PA") == 0) {
		size_t step = m[1] ? 2 : 1;
		size_t entries = im->palette ? im->palette->n / 3 : 0;
		for (size_t i = 0; i < np; i++) {
			size_t k = s[step * i];
			for (int c = 0; c < 3; c++)
				out[3 * i + (size_t)c] = k < entries ? (uint8_t)im->palette->items[3 * k + (size_t)c]->i :
					(uint8_t)k;
		}
	} else if (strcmp(m, "1") == 0) {
		size_t row = (w + 7) / 8;
		for (size_t y = 0; y < h; y++)
			for (size_t x = 0; x < w; x++)
				memset(out + 3 * (y * w + x), (s[y * row + x / 8] >> (7 - x % 8)) & 1 ? 255 : 0, 3);
	} else {
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "a PIL image of mode '%s' (RGB, RGBA, RGBX, L, LA, P, PA "
			"and 1 are converted to RGB; convert it before sending)", m);
	}
	return 0;
}

int rwd_imgrl_image_png(const rwd_pickle_value *im, uint8_t **png, size_t *len, rwd_error *err)
{
	*png = NULL;
	*len = 0;
	if (!im->width || !im->height)
		return rwd_errorf(err, RWD_E_INVALID, "a PIL image of %ux%u pixels", im->width, im->height);
	png_image pi;
	memset(&pi, 0, sizeof(pi));
	size_t np = (size_t)im->width * im->height;
	uint8_t *rgb = malloc(3 * np);
	if (!rgb)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	int r = rwd_imgrl_image_rgb(im, rgb, err);
	if (r)
		goto fail;
	pi.version = PNG_IMAGE_VERSION;
	pi.width = im->width;
	pi.height = im->height;
	pi.format = PNG_FORMAT_RGB;
	pi.flags = PNG_IMAGE_FLAG_FAST;
	png_alloc_size_t size = 0;
	if (!png_image_write_to_memory(&pi, NULL, &size, 0, rgb, 0, NULL) || !size) {
		r = rwd_errorf(err, RWD_E_INTERNAL, "PNG encoding failed: %s", pi.message);
		goto fail;
	}
	*png = malloc(size);
	if (!*png) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	if (!png_image_write_to_memory(&pi, *png, &size, 0, rgb, 0, NULL)) {
		r = rwd_errorf(err, RWD_E_INTERNAL, "PNG encoding failed: %s", pi.message);
		free(*png);
		*png = NULL;
		goto fail;
	}
	*len = size;
fail:
	png_image_free(&pi);
	free(rgb);
	return r;
}

/*
 * The last few images encoded, by pickle value: a source image shared by a
 * GRPO group reaches us as one memoized object (EditScore's sanity check
 * sends one source for 576 items) and is converted and encoded once.
 */
#define IMG_CACHE 8
typedef struct img_cache {
	const rwd_pickle_value *key[IMG_CACHE];
	json_t *val[IMG_CACHE];
	size_t next;
} img_cache;

static void cache_clear(img_cache *c)
{
	for (size_t i = 0; i < IMG_CACHE; i++)
		json_decref(c->val[i]);
	memset(c, 0, sizeof(*c));
}

/* An image value (JPEG/PNG bytes, or a PIL image) as the base64 of an image item field. */
static int image_field(const rwd_pickle_value *v, json_t *item, const char *key, img_cache *cache, rwd_error *err)
{
	json_t *j = NULL;
	for (size_t i = 0; cache && i < IMG_CACHE; i++)
		if (cache->key[i] == v && cache->val[i]) {
			if (json_object_set(item, key, cache->val[i]))
				return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
			return 0;
		}
	if (v->type == RWD_PICKLE_BYTES) {
		if (!v->len)
			return rwd_errorf(err, RWD_E_INVALID, "an empty image");
		j = b64_json(v->data, v->len);
	} else if (v->type == RWD_PICKLE_IMAGE) {
		uint8_t *png;
		size_t len;
		int r = rwd_imgrl_image_png(v, &png, &len, err);
		if (r)
			return r;
		j = b64_json(png, len);
		free(png);
	} else {
		return rwd_errorf(err, RWD_E_INVALID, "an image must be JPEG/PNG bytes or a PIL image, not a %s",
			rwd_pickle_type_name(v));
	}
	if (!j || json_object_set(item, key, j)) {
		json_decref(j);
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	}
	if (cache) {
		size_t k = cache->next++ % IMG_CACHE;
		json_decref(cache->val[k]);
		cache->key[k] = v;
		cache->val[k] = j; /* the cache's reference */
	} else {
		json_decref(j);
	}
	return 0;
}

/* ---- texts ------------------------------------------------------------------- */

static int text_field(json_t *item, const char *key, const char *s, size_t n, const rwd_imgrl_limits *lim,
	rwd_error *err)
{
	if (n > lim->max_text_bytes)
		return rwd_errorf(err, RWD_E_LIMIT, "a text of %zu bytes, over the limit of %zu", n, lim->max_text_bytes);
	if (!key)
		return 0;
	json_t *j = json_stringn(s, n);
	if (!j || json_object_set_new(item, key, j))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

static int pickle_text(json_t *item, const char *key, const rwd_pickle_value *v, const rwd_imgrl_limits *lim,
	rwd_error *err)
{
	if (v->type != RWD_PICKLE_STR)
		return rwd_errorf(err, RWD_E_INVALID, "must be a str, not a %s", rwd_pickle_type_name(v));
	return text_field(item, key, (const char *)v->data, v->len, lim, err);
}

static const rwd_pickle_value *list_arg(const rwd_pickle_value *root, const char *key, rwd_error *err)
{
	const rwd_pickle_value *v = rwd_pickle_dict_get(root, key);
	if (!v || (v->type != RWD_PICKLE_LIST && v->type != RWD_PICKLE_TUPLE)) {
		rwd_errorf(err, RWD_E_INVALID, v ? "must be a list, not a %s" : "is required", v ? rwd_pickle_type_name(v) : "");
		rwd_error_where(err, NULL, key);
		return NULL;
	}
	return v;
}

static int count_ok(size_t n, const rwd_imgrl_limits *lim, const char *key, rwd_error *err)
{
	if (n > lim->max_items) {
		rwd_errorf(err, RWD_E_LIMIT, "%zu images, over the limit of %zu items per request", n, lim->max_items);
		return where(err, RWD_E_LIMIT, "%s", key);
	}
	return 0;
}

static int same_len(size_t n, size_t m, const char *a, const char *b, rwd_error *err)
{
	if (n == m)
		return 0;
	rwd_errorf(err, RWD_E_INVALID, "%zu entries, but %s has %zu", m, a, n);
	return where(err, RWD_E_INVALID, "%s", b);
}

static int append_item(json_t *items, json_t *item, rwd_error *err)
{
	if (json_array_append_new(items, item))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

/* flow_grpo / verl-omni text-to-image: images[i] (+ a text from text_of). */
static int t2i_items(const rwd_pickle_value *imgs, const kind_map *km, json_t *items, rwd_error *err,
	int (*text_of)(void *ctx, size_t i, json_t *item, const char *key, rwd_error *err), void *ctx)
{
	for (size_t i = 0; i < imgs->n; i++) {
		json_t *item = json_object();
		if (!item)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		int r = image_field(imgs->items[i], item, "image", NULL, err);
		if (r) {
			json_decref(item);
			return where(err, r, "images[%zu]", i);
		}
		if (text_of && (r = text_of(ctx, i, item, km->text, err))) {
			json_decref(item);
			return r;
		}
		if ((r = append_item(items, item, err)))
			return r;
	}
	return 0;
}

typedef struct text_ctx {
	const rwd_pickle_value *v;
	const rwd_imgrl_limits *lim;
	json_t *echo;
} text_ctx;

static int text_from_list(void *c, size_t i, json_t *item, const char *key, rwd_error *err)
{
	text_ctx *t = c;
	int r = pickle_text(item, key, t->v->items[i], t->lim, err);
	return r ? where(err, r, "prompts[%zu]", i) : 0;
}

static int text_from_ndarray(void *c, size_t i, json_t *item, const char *key, rwd_error *err)
{
	text_ctx *t = c;
	/* UTF-8 takes at most 4 bytes per UCS-4 code point: the element's own size bounds it */
	size_t cap = (t->v->itemsize < t->lim->max_text_bytes ? t->v->itemsize : t->lim->max_text_bytes) + 1;
	char *buf = malloc(cap);
	if (!buf)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	long n = rwd_pickle_ndarray_str(t->v, i, buf, cap);
	int r;
	if (n < 0)
		r = rwd_errorf(err, (int)n, n == RWD_E_LIMIT ? "a prompt over the limit of %zu bytes" :
			"not a valid str element (a code point beyond U+10FFFF, a surrogate or an inner NUL)",
			t->lim->max_text_bytes);
	else
		r = text_field(item, key, buf, (size_t)n, t->lim, err);
	free(buf);
	return r ? where(err, r, "prompts[%zu]", i) : 0;
}

static int text_from_geneval(void *c, size_t i, json_t *item, const char *key, rwd_error *err)
{
	text_ctx *t = c;
	const rwd_pickle_value *m = t->v->items[i];
	if (m->type != RWD_PICKLE_DICT) {
		rwd_errorf(err, RWD_E_INVALID, "must be a dict, not a %s", rwd_pickle_type_name(m));
		return where(err, RWD_E_INVALID, "meta_datas[%zu]", i);
	}
	const rwd_pickle_value *p = rwd_pickle_dict_get(m, "prompt"), *tag = rwd_pickle_dict_get(m, "tag");
	if (!p) {
		rwd_errorf(err, RWD_E_INVALID, "is required (the text scored)");
		return where(err, RWD_E_INVALID, "meta_datas[%zu].prompt", i);
	}
	int r = pickle_text(item, key, p, t->lim, err);
	if (r)
		return where(err, r, "meta_datas[%zu].prompt", i);
	if (tag && tag->type != RWD_PICKLE_STR) {
		rwd_errorf(err, RWD_E_INVALID, "must be a str");
		return where(err, RWD_E_INVALID, "meta_datas[%zu].tag", i);
	}
	json_t *tj = tag ? json_stringn((const char *)tag->data, tag->len) : json_null();
	if (!tj || json_array_append_new(t->echo, tj))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

/* One edit item: output image, source image, instruction text. */
static int edit_item(const rwd_pickle_value *out, const rwd_pickle_value *src, const char *instr, size_t ilen,
	const kind_map *km, const rwd_imgrl_limits *lim, json_t *items, const char *out_key,
	const char *src_key, size_t i, img_cache *cache, rwd_error *err)
{
	if (!km->edit) {
		return rwd_errorf(err, RWD_E_INVALID, "this model scores no source image (its kind takes no "
			"source_image): serve a clip or image_metrics model for edits");
	}
	json_t *item = json_object();
	if (!item)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	int r = image_field(out, item, "image", NULL, err);
	if (r) {
		json_decref(item);
		return where(err, r, "%s[%zu]", out_key, i);
	}
	if ((r = image_field(src, item, "source_image", cache, err))) {
		json_decref(item);
		return where(err, r, "%s[%zu]", src_key, i);
	}
	if (instr && (r = text_field(item, km->instr, instr, ilen, lim, err))) {
		json_decref(item);
		return r;
	}
	return append_item(items, item, err);
}

/* verl-omni / deepgen_rl edit rewards: images {"source": [..], "edited": [..]}, prompts = instructions. */
static int deepgen_edit(const rwd_pickle_value *root, const rwd_pickle_value *imgs, const kind_map *km,
	const rwd_imgrl_limits *lim, json_t *items, rwd_error *err)
{
	const rwd_pickle_value *src = rwd_pickle_dict_get(imgs, "source"), *ed = rwd_pickle_dict_get(imgs, "edited");
	if (!src || src->type != RWD_PICKLE_LIST) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of images");
		return where(err, RWD_E_INVALID, "images.source");
	}
	if (!ed || ed->type != RWD_PICKLE_LIST) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of images");
		return where(err, RWD_E_INVALID, "images.edited");
	}
	int r = count_ok(ed->n, lim, "images.edited", err);
	if (r || (r = same_len(ed->n, src->n, "images.edited", "images.source", err)))
		return r;
	const rwd_pickle_value *pr = rwd_pickle_dict_get(root, "prompts");
	if (pr && pr->type != RWD_PICKLE_LIST) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of str");
		return where(err, RWD_E_INVALID, "prompts");
	}
	if (pr && (r = same_len(ed->n, pr->n, "images.edited", "prompts", err)))
		return r;
	img_cache cache;
	memset(&cache, 0, sizeof(cache));
	for (size_t i = 0; i < ed->n; i++) {
		const rwd_pickle_value *t = pr ? pr->items[i] : NULL;
		if (t && t->type != RWD_PICKLE_STR) {
			cache_clear(&cache);
			rwd_errorf(err, RWD_E_INVALID, "must be a str");
			return where(err, RWD_E_INVALID, "prompts[%zu]", i);
		}
		if ((r = edit_item(ed->items[i], src->items[i], t ? (const char *)t->data : NULL, t ? t->len : 0, km,
			lim, items, "images.edited", "images.source", i, &cache, err)))
			break;
	}
	cache_clear(&cache);
	return r;
}

/* EditScore: the JSON meta of item i (a str, or a dict from the proxy's worker hop) → object. */
static json_t *editscore_meta(const rwd_pickle_value *m, const rwd_imgrl_limits *lim, rwd_error *err)
{
	if (m->type == RWD_PICKLE_STR) {
		if (m->len > lim->max_text_bytes) {
			rwd_errorf(err, RWD_E_LIMIT, "%zu bytes, over the limit of %zu", m->len, lim->max_text_bytes);
			return NULL;
		}
		rwd_compat_limits cl = {lim->max_items, lim->max_depth};
		json_t *o = NULL;
		if (rwd_compat_load((const char *)m->data, m->len, &cl, &o, err))
			return NULL;
		return o;
	}
	if (m->type != RWD_PICKLE_DICT) {
		rwd_errorf(err, RWD_E_INVALID, "must be a JSON str or a dict, not a %s", rwd_pickle_type_name(m));
		return NULL;
	}
	/* a dict: its str keys with str / int / float / bool / None values (what json.loads makes of the meta) */
	json_t *o = json_object();
	for (size_t k = 0; o && k < m->n; k++) {
		const rwd_pickle_value *key = m->items[2 * k], *v = m->items[2 * k + 1];
		if (key->type != RWD_PICKLE_STR)
			continue;
		char kb[256];
		if (key->len >= sizeof(kb))
			continue;
		memcpy(kb, key->data, key->len);
		kb[key->len] = '\0';
		json_t *j = v->type == RWD_PICKLE_STR ? json_stringn((const char *)v->data, v->len) :
			v->type == RWD_PICKLE_INT ? json_integer(v->i) : v->type == RWD_PICKLE_FLOAT ? json_real(v->f) :
			v->type == RWD_PICKLE_BOOL ? json_boolean(v->i) : v->type == RWD_PICKLE_NONE ? json_null() : NULL;
		if (j)
			json_object_set_new(o, kb, j);
	}
	if (!o)
		rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return o;
}

static int editscore_items(const rwd_pickle_value *root, int worker, const kind_map *km,
	const rwd_imgrl_limits *lim, json_t *items, json_t *echo, img_cache *cache, rwd_error *err)
{
	const char *mkey = worker ? "meta_data" : "meta_datas";
	const rwd_pickle_value *in = list_arg(root, "input_images", err), *out, *meta;
	if (!in)
		return err->code;
	if (!(out = list_arg(root, "output_image", err)) || !(meta = list_arg(root, mkey, err)))
		return err->code;
	int r = count_ok(out->n, lim, "output_image", err);
	if (r || (r = same_len(out->n, in->n, "output_image", "input_images", err)) ||
	    (r = same_len(out->n, meta->n, "output_image", mkey, err)))
		return r;
	const rwd_pickle_value *st = rwd_pickle_dict_get(root, "server_type");
	if (st && st->type != RWD_PICKLE_STR) {
		rwd_errorf(err, RWD_E_INVALID, "must be a str");
		return where(err, RWD_E_INVALID, "server_type");
	}
	for (size_t i = 0; i < out->n; i++) {
		json_t *m = editscore_meta(meta->items[i], lim, err);
		if (!m)
			return where(err, err->code, "%s[%zu]", mkey, i);
		json_t *ins = json_object_get(m, "instruction");
		if (!json_is_string(ins)) {
			json_decref(m);
			rwd_errorf(err, RWD_E_INVALID, "must be a str (the edit instruction)");
			return where(err, RWD_E_INVALID, "%s[%zu].instruction", mkey, i);
		}
		if (!worker)
			json_object_set_new(m, "original_index", json_integer((json_int_t)i));
		const rwd_pickle_value *srcs = in->items[i];
		if ((srcs->type != RWD_PICKLE_LIST && srcs->type != RWD_PICKLE_TUPLE) || !srcs->n) {
			json_decref(m);
			rwd_errorf(err, RWD_E_INVALID, "must be a non-empty list of source images");
			return where(err, RWD_E_INVALID, "input_images[%zu]", i);
		}
		r = edit_item(out->items[i], srcs->items[0], json_string_value(ins), json_string_length(ins), km, lim,
			items, "output_image", "input_images", i, cache, err);
		if (r == 0 && json_array_append_new(echo, m))
			r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		else if (r)
			json_decref(m);
		if (r) {
			/* the source's index names the list inside input_images */
			if (strncmp(err->object, "input_images[", 13) == 0)
				where(err, r, "input_images[%zu][0]", i);
			return r;
		}
	}
	return 0;
}

static int editscore(const rwd_pickle_value *root, int worker, const kind_map *km, const rwd_imgrl_limits *lim,
	json_t *items, json_t *echo, rwd_error *err)
{
	img_cache cache;
	memset(&cache, 0, sizeof(cache));
	int r = editscore_items(root, worker, km, lim, items, echo, &cache, err);
	cache_clear(&cache);
	return r;
}

int rwd_imgrl_from_pickle(const rwd_pickle_value *root, const char *kind, const rwd_imgrl_limits *lim,
	json_t *items, rwd_imgrl_req *req, rwd_error *err)
{
	memset(req, 0, sizeof(*req));
	kind_map km;
	int r;
	const rwd_pickle_value *imgs = NULL;
	if (root->type != RWD_PICKLE_DICT)
		return rwd_errorf(err, RWD_E_INVALID, "the body must be a pickled dict, not a %s",
			rwd_pickle_type_name(root));
	if ((r = map_kind(kind, &km, err)))
		return r;
	req->echo = json_array();
	if (!req->echo)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	if (rwd_pickle_dict_get(root, "output_image")) {
		int worker = !rwd_pickle_dict_get(root, "meta_datas") && rwd_pickle_dict_get(root, "meta_data");
		req->proto = worker ? RWD_IMGRL_EDITSCORE_WORKER : RWD_IMGRL_EDITSCORE;
		r = editscore(root, worker, &km, lim, items, req->echo, err);
		goto done;
	}
	imgs = rwd_pickle_dict_get(root, "images");
	if (!imgs) {
		rwd_errorf(err, RWD_E_INVALID, "is required: a flow_grpo / verl-omni body has \"images\", an "
			"EditScore body \"output_image\"");
		r = where(err, RWD_E_INVALID, "images");
		goto done;
	}
	if (imgs->type == RWD_PICKLE_DICT) {
		req->proto = RWD_IMGRL_SCORES;
		r = deepgen_edit(root, imgs, &km, lim, items, err);
		goto done;
	}
	if (imgs->type != RWD_PICKLE_LIST && imgs->type != RWD_PICKLE_TUPLE) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of JPEG/PNG bytes, not a %s", rwd_pickle_type_name(imgs));
		r = where(err, RWD_E_INVALID, "images");
		goto done;
	}
	if ((r = count_ok(imgs->n, lim, "images", err)))
		goto done;
	const rwd_pickle_value *prompts = rwd_pickle_dict_get(root, "prompts");
	const rwd_pickle_value *metas = rwd_pickle_dict_get(root, "meta_datas");
	text_ctx tc = {NULL, lim, req->echo};
	if (metas) {
		req->proto = RWD_IMGRL_GENEVAL;
		const rwd_pickle_value *os = rwd_pickle_dict_get(root, "only_strict");
		if (os && os->type != RWD_PICKLE_BOOL) {
			rwd_errorf(err, RWD_E_INVALID, "must be a bool");
			r = where(err, RWD_E_INVALID, "only_strict");
			goto done;
		}
		if (metas->type != RWD_PICKLE_LIST && metas->type != RWD_PICKLE_TUPLE) {
			rwd_errorf(err, RWD_E_INVALID, "must be a list of dicts");
			r = where(err, RWD_E_INVALID, "meta_datas");
			goto done;
		}
		if ((r = same_len(imgs->n, metas->n, "images", "meta_datas", err)))
			goto done;
		tc.v = metas;
		r = t2i_items(imgs, &km, items, err, text_from_geneval, &tc);
	} else if (prompts && prompts->type == RWD_PICKLE_NDARRAY) {
		req->proto = RWD_IMGRL_UNIFIED;
		if (prompts->dtype_kind != 'U' || prompts->ndim != 1) {
			rwd_errorf(err, RWD_E_INVALID, "must be a 1-D numpy str ('<U') array or a list of str");
			r = where(err, RWD_E_INVALID, "prompts");
			goto done;
		}
		if ((r = same_len(imgs->n, prompts->shape[0], "images", "prompts", err)))
			goto done;
		tc.v = prompts;
		r = t2i_items(imgs, &km, items, err, text_from_ndarray, &tc);
	} else if (prompts) {
		req->proto = RWD_IMGRL_SCORES;
		if (prompts->type != RWD_PICKLE_LIST && prompts->type != RWD_PICKLE_TUPLE) {
			rwd_errorf(err, RWD_E_INVALID, "must be a list of str, not a %s", rwd_pickle_type_name(prompts));
			r = where(err, RWD_E_INVALID, "prompts");
			goto done;
		}
		const rwd_pickle_value *md = rwd_pickle_dict_get(root, "metadata");
		if (md && md->type != RWD_PICKLE_DICT && md->type != RWD_PICKLE_NONE) {
			rwd_errorf(err, RWD_E_INVALID, "must be a dict");
			r = where(err, RWD_E_INVALID, "metadata");
			goto done;
		}
		/* deepgen_rl sends prompts=[] for image-only rewards (payload.get("prompts", [])) */
		if (prompts->n && (r = same_len(imgs->n, prompts->n, "images", "prompts", err)))
			goto done;
		tc.v = prompts;
		r = t2i_items(imgs, &km, items, err, prompts->n ? text_from_list : NULL, &tc);
	} else {
		req->proto = RWD_IMGRL_DEQA;
		r = t2i_items(imgs, &km, items, err, NULL, NULL);
	}
done:
	req->n = json_array_size(items);
	req->edit = req->proto == RWD_IMGRL_EDITSCORE || req->proto == RWD_IMGRL_EDITSCORE_WORKER ||
		(req->proto == RWD_IMGRL_SCORES && imgs && imgs->type == RWD_PICKLE_DICT);
	return r;
}

/* ---- Flow-Factory /compute ------------------------------------------------ */

static int json_b64_image(json_t *item, const char *key, json_t *v, rwd_error *err)
{
	if (!json_is_string(v))
		return rwd_errorf(err, RWD_E_INVALID, "must be a base64 PNG/JPEG string");
	if (json_object_set(item, key, v))
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	return 0;
}

int rwd_imgrl_from_compute(const json_t *root, const char *kind, const rwd_imgrl_limits *lim,
	json_t *items, rwd_imgrl_req *req, rwd_error *err)
{
	memset(req, 0, sizeof(*req));
	req->proto = RWD_IMGRL_COMPUTE;
	kind_map km;
	int r = map_kind(kind, &km, err);
	if (r)
		return r;
	json_t *prompt = json_object_get(root, "prompt"), *image = json_object_get(root, "image");
	json_t *video = json_object_get(root, "video"), *cond = json_object_get(root, "condition_images");
	json_t *cvid = json_object_get(root, "condition_videos");
	if ((video && !json_is_null(video)) || (cvid && !json_is_null(cvid))) {
		rwd_errorf(err, RWD_E_UNSUPPORTED, "video rewards are not served");
		return where(err, RWD_E_UNSUPPORTED, video && !json_is_null(video) ? "video" : "condition_videos");
	}
	if (!json_is_array(image)) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of base64 PNG/JPEG strings");
		return where(err, RWD_E_INVALID, "image");
	}
	size_t n = json_array_size(image);
	if ((r = count_ok(n, lim, "image", err)))
		return r;
	if (prompt && !json_is_null(prompt) && (!json_is_array(prompt) || json_array_size(prompt) != n)) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of %zu strings (one per image)", n);
		return where(err, RWD_E_INVALID, "prompt");
	}
	if (cond && !json_is_null(cond) && (!json_is_array(cond) || json_array_size(cond) != n)) {
		rwd_errorf(err, RWD_E_INVALID, "must be a list of %zu lists of base64 images (one per image)", n);
		return where(err, RWD_E_INVALID, "condition_images");
	}
	int edit = cond && !json_is_null(cond);
	if (edit && !km.edit) {
		rwd_errorf(err, RWD_E_INVALID, "this model's kind takes no source image: serve a clip or image_metrics "
			"model for edits");
		return where(err, RWD_E_INVALID, "condition_images");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_object();
		if (!item)
			return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		if ((r = json_b64_image(item, "image", json_array_get(image, i), err))) {
			json_decref(item);
			return where(err, r, "image[%zu]", i);
		}
		json_t *t = prompt ? json_array_get(prompt, i) : NULL;
		if (t && !json_is_string(t)) {
			json_decref(item);
			rwd_errorf(err, RWD_E_INVALID, "must be a string");
			return where(err, RWD_E_INVALID, "prompt[%zu]", i);
		}
		if (edit) {
			json_t *c = json_array_get(cond, i);
			if (!json_is_array(c) || !json_array_size(c)) {
				json_decref(item);
				rwd_errorf(err, RWD_E_INVALID, "must be a non-empty list of base64 images");
				return where(err, RWD_E_INVALID, "condition_images[%zu]", i);
			}
			if ((r = json_b64_image(item, "source_image", json_array_get(c, 0), err))) {
				json_decref(item);
				return where(err, r, "condition_images[%zu][0]", i);
			}
		}
		const char *key = edit ? km.instr : km.text;
		if (t && (r = text_field(item, key, json_string_value(t), json_string_length(t), lim, err))) {
			json_decref(item);
			return where(err, r, "prompt[%zu]", i);
		}
		if ((r = append_item(items, item, err)))
			return r;
	}
	req->n = n;
	req->edit = edit;
	return 0;
}

void rwd_imgrl_remap_field(const rwd_imgrl_req *req, char *object, size_t size)
{
	size_t i;
	int used = 0;
	if (sscanf(object, "items[%zu]%n", &i, &used) != 1 || used <= 0)
		return;
	const char *rest = object + used;
	if (*rest == '.')
		rest++;
	char tail[RWD_ERROR_OBJECT_MAX];
	snprintf(tail, sizeof(tail), "%s", rest);
	const char *sub = tail;
	const char *dot = strchr(tail, '.');
	size_t fl = dot ? (size_t)(dot - tail) : strlen(tail);
	int is_src = fl == 12 && strncmp(tail, "source_image", 12) == 0;
	int is_text = (fl == 6 && strncmp(tail, "prompt", 6) == 0) || (fl == 11 && strncmp(tail, "instruction", 11) == 0);
	const char *name;
	char out[RWD_ERROR_OBJECT_MAX + 64];
	switch (req->proto) {
	case RWD_IMGRL_EDITSCORE:
	case RWD_IMGRL_EDITSCORE_WORKER: {
		const char *meta = req->proto == RWD_IMGRL_EDITSCORE ? "meta_datas" : "meta_data";
		if (is_src)
			snprintf(out, sizeof(out), "input_images[%zu][0]", i);
		else if (is_text)
			snprintf(out, sizeof(out), "%s[%zu].instruction", meta, i);
		else
			snprintf(out, sizeof(out), "output_image[%zu]", i);
		break;
	}
	case RWD_IMGRL_COMPUTE:
		name = is_src ? "condition_images" : is_text ? "prompt" : "image";
		snprintf(out, sizeof(out), is_src ? "%s[%zu][0]" : "%s[%zu]", name, i);
		break;
	case RWD_IMGRL_GENEVAL:
		if (is_text)
			snprintf(out, sizeof(out), "meta_datas[%zu].prompt", i);
		else
			snprintf(out, sizeof(out), "images[%zu]", i);
		break;
	default:
		if (req->edit)
			name = is_src ? "images.source" : is_text ? "prompts" : "images.edited";
		else
			name = is_text ? "prompts" : "images";
		snprintf(out, sizeof(out), "%s[%zu]", name, i);
		break;
	}
	(void)sub;
	snprintf(object, size, "%s", out);
}

/* ---- replies ------------------------------------------------------------------ */

static json_t *reals(const double *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_real(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* GenEval's group dict: every tag → [reward if the item has that tag, else -10.0]. */
static json_t *geneval_groups(const rwd_imgrl_req *req, const double *reward)
{
	json_t *g = json_object();
	size_t nt = sizeof(geneval_tags) / sizeof(geneval_tags[0]);
	for (size_t t = 0; g && t < nt + req->n; t++) {
		const char *tag = t < nt ? geneval_tags[t] : json_string_value(json_array_get(req->echo, t - nt));
		if (!tag || json_object_get(g, tag))
			continue;
		json_t *col = json_array();
		for (size_t i = 0; col && i < req->n; i++) {
			const char *it = json_string_value(json_array_get(req->echo, i));
			json_array_append_new(col, json_real(it && strcmp(it, tag) == 0 ? reward[i] : -10.0));
		}
		json_object_set_new(g, tag, col);
	}
	return g;
}

static json_t *reasoning_of(json_t *const *scores, size_t i)
{
	char *s = scores && scores[i] ? rwd_json_dumps(scores[i], JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9)) : NULL;
	json_t *j = json_string(s ? s : "");
	free(s);
	return j;
}

json_t *rwd_imgrl_reply(const rwd_imgrl_req *req, const double *reward, json_t *const *scores)
{
	size_t n = req->n;
	switch (req->proto) {
	case RWD_IMGRL_DEQA:
	case RWD_IMGRL_UNIFIED:
		return json_pack("{so}", "outputs", reals(reward, n));
	case RWD_IMGRL_SCORES:
		return json_pack("{so}", "scores", reals(reward, n));
	case RWD_IMGRL_COMPUTE:
		return json_pack("{so}", "rewards", reals(reward, n));
	case RWD_IMGRL_GENEVAL:
		return json_pack("{so so so so so}", "scores", reals(reward, n), "rewards", reals(reward, n),
			"strict_rewards", reals(reward, n), "group_rewards", geneval_groups(req, reward),
			"group_strict_rewards", geneval_groups(req, reward));
	case RWD_IMGRL_EDITSCORE: {
		json_t *why = json_array();
		for (size_t i = 0; why && i < n; i++)
			json_array_append_new(why, reasoning_of(scores, i));
		return json_pack("{so so so so sO}", "scores", reals(reward, n), "rewards", reals(reward, n),
			"strict_rewards", reals(reward, n), "reasoning", why, "meta_data", req->echo);
	}
	case RWD_IMGRL_EDITSCORE_WORKER: {
		json_t *list = json_array();
		for (size_t i = 0; list && i < n; i++)
			json_array_append_new(list, json_pack("{sf sf so sf sO sf sf}", "score", reward[i], "reward",
				reward[i], "reasoning", reasoning_of(scores, i), "strict_reward", reward[i], "meta_data",
				json_array_get(req->echo, i), "group_reward", reward[i], "group_strict_reward", reward[i]));
		return list;
	}
	default:
		return NULL;
	}
}
