/* models/image_metrics.c — see image_metrics.h. */
#include "models/image_metrics.h"

#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the metrics -------------------------------------------------------- */

void rwd_image_luma(const rwd_image *img, uint8_t *luma)
{
	for (int y = 0; y < img->h; y++) {
		const uint8_t *s = img->pixels + (size_t)y * img->stride;
		uint8_t *d = luma + (size_t)y * (size_t)img->w;
		for (int x = 0; x < img->w; x++, s += 3)
			d[x] = (uint8_t)((s[0] * 19595u + s[1] * 38470u + s[2] * 7471u + 0x8000u) >> 16);
	}
}

/* Mirrored neighbour (reflect-101); a side of 1 pixel mirrors onto itself. */
static int mirror(int i, int n)
{
	if (i < 0)
		return n > 1 ? -i : 0;
	if (i >= n)
		return n > 1 ? 2 * n - 2 - i : n - 1;
	return i;
}

/* Population variance from exact integer sums (no cancellation in int64). */
static double variance_from_sums(int64_t sum, int64_t sumsq, int64_t n)
{
	long double m = (long double)sum / (long double)n;
	long double v = (long double)sumsq / (long double)n - m * m;
	return v > 0 ? (double)v : 0.0;
}

double rwd_image_sharpness(const uint8_t *luma, int w, int h)
{
	int64_t sum = 0, sumsq = 0;
	for (int y = 0; y < h; y++) {
		const uint8_t *row = luma + (size_t)y * (size_t)w;
		const uint8_t *up = luma + (size_t)mirror(y - 1, h) * (size_t)w;
		const uint8_t *dn = luma + (size_t)mirror(y + 1, h) * (size_t)w;
		for (int x = 0; x < w; x++) {
			int lap = up[x] + dn[x] + row[mirror(x - 1, w)] + row[mirror(x + 1, w)] - 4 * row[x];
			sum += lap;
			sumsq += (int64_t)lap * lap;
		}
	}
	return variance_from_sums(sum, sumsq, (int64_t)w * h);
}

double rwd_image_colorfulness(const rwd_image *img)
{
	/* rg and 2*yb are integers: sum them exactly, halve at the end. */
	int64_t s_rg = 0, ss_rg = 0, s_yb2 = 0, ss_yb2 = 0;
	for (int y = 0; y < img->h; y++) {
		const uint8_t *p = img->pixels + (size_t)y * img->stride;
		for (int x = 0; x < img->w; x++, p += 3) {
			int rg = p[0] - p[1];
			int yb2 = p[0] + p[1] - 2 * p[2];
			s_rg += rg;
			ss_rg += rg * rg;
			s_yb2 += yb2;
			ss_yb2 += yb2 * yb2;
		}
	}
	int64_t n = (int64_t)img->w * img->h;
	double var_rg = variance_from_sums(s_rg, ss_rg, n);
	double var_yb = variance_from_sums(s_yb2, ss_yb2, n) / 4.0;
	double m_rg = (double)s_rg / (double)n, m_yb = (double)s_yb2 / (double)n / 2.0;
	return sqrt(var_rg + var_yb) + 0.3 * sqrt(m_rg * m_rg + m_yb * m_yb);
}

double rwd_image_exposure(const uint8_t *luma, int w, int h)
{
	size_t n = (size_t)w * (size_t)h, ok = 0;
	for (size_t i = 0; i < n; i++)
		ok += luma[i] != 0 && luma[i] != 255;
	return (double)ok / (double)n;
}

double rwd_image_psnr(const rwd_image *a, const rwd_image *b)
{
	uint64_t sse = 0;
	for (int y = 0; y < a->h; y++) {
		const uint8_t *p = a->pixels + (size_t)y * a->stride;
		const uint8_t *q = b->pixels + (size_t)y * b->stride;
		for (size_t i = 0; i < (size_t)a->w * 3; i++) {
			int d = p[i] - q[i];
			sse += (uint64_t)(d * d);
		}
	}
	if (sse == 0)
		return RWD_IMAGE_PSNR_MAX;
	double mse = (double)sse / ((double)a->w * (double)a->h * 3.0);
	double v = 10.0 * log10(255.0 * 255.0 / mse);
	return v > RWD_IMAGE_PSNR_MAX ? RWD_IMAGE_PSNR_MAX : v;
}

#define SSIM_RADIUS 5 /* int(3.5 * 1.5 + 0.5), as scipy.ndimage computes it */

int rwd_image_ssim(const uint8_t *la, const uint8_t *lb, int w, int h, double *out, rwd_error *err)
{
	if (w < RWD_IMAGE_SSIM_MIN_SIDE || h < RWD_IMAGE_SSIM_MIN_SIDE)
		return rwd_errorf(err, RWD_E_INVALID, "ssim needs images of at least %dx%d pixels, got %dx%d",
			RWD_IMAGE_SSIM_MIN_SIDE, RWD_IMAGE_SSIM_MIN_SIDE, w, h);
	/* scipy's _gaussian_kernel1d: exp(-x²/2σ²), normalised to sum 1. */
	double k[2 * SSIM_RADIUS + 1], ksum = 0;
	for (int i = -SSIM_RADIUS; i <= SSIM_RADIUS; i++) {
		k[i + SSIM_RADIUS] = exp(-0.5 / (1.5 * 1.5) * (double)(i * i));
		ksum += k[i + SSIM_RADIUS];
	}
	for (int i = 0; i < 2 * SSIM_RADIUS + 1; i++)
		k[i] /= ksum;
	const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);

	/* Vertical pass of one row for the five moments: v[5][w]. Only rows and
	 * columns at least RADIUS from the border are averaged (skimage crops
	 * them), so no tap ever reaches past the image and the border mode of
	 * the filter cannot matter. */
	double *v = malloc(sizeof(double) * 5 * (size_t)w);
	if (!v)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for ssim");
	double *vx = v, *vy = v + w, *vxx = v + 2 * w, *vyy = v + 3 * w, *vxy = v + 4 * w;
	double total = 0;
	for (int y = SSIM_RADIUS; y < h - SSIM_RADIUS; y++) {
		for (int x = 0; x < w; x++) {
			double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
			for (int t = 0; t < 2 * SSIM_RADIUS + 1; t++) {
				size_t i = (size_t)(y - SSIM_RADIUS + t) * (size_t)w + (size_t)x;
				double a = la[i], b = lb[i], kt = k[t];
				sx += kt * a;
				sy += kt * b;
				sxx += kt * (a * a);
				syy += kt * (b * b);
				sxy += kt * (a * b);
			}
			vx[x] = sx;
			vy[x] = sy;
			vxx[x] = sxx;
			vyy[x] = syy;
			vxy[x] = sxy;
		}
		double row = 0;
		for (int x = SSIM_RADIUS; x < w - SSIM_RADIUS; x++) {
			double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
			for (int t = 0; t < 2 * SSIM_RADIUS + 1; t++) {
				int j = x - SSIM_RADIUS + t;
				double kt = k[t];
				ux += kt * vx[j];
				uy += kt * vy[j];
				uxx += kt * vxx[j];
				uyy += kt * vyy[j];
				uxy += kt * vxy[j];
			}
			double sig_x = uxx - ux * ux, sig_y = uyy - uy * uy, sig_xy = uxy - ux * uy;
			double A1 = 2 * ux * uy + C1, A2 = 2 * sig_xy + C2;
			double B1 = ux * ux + uy * uy + C1, B2 = sig_x + sig_y + C2;
			row += (A1 * A2) / (B1 * B2);
		}
		total += row;
	}
	free(v);
	*out = total / ((double)(w - 2 * SSIM_RADIUS) * (double)(h - 2 * SSIM_RADIUS));
	return 0;
}

int rwd_image_metrics_compute(const rwd_image *img, const rwd_image *src, rwd_image_metrics *out,
	rwd_error *err)
{
	memset(out, 0, sizeof(*out));
	if (src && (src->w != img->w || src->h != img->h)) {
		rwd_error_where(err, NULL, "source_image");
		return rwd_errorf(err, RWD_E_INVALID,
			"source_image is %dx%d but image is %dx%d: ssim and psnr need equal sizes",
			src->w, src->h, img->w, img->h);
	}
	size_t n = (size_t)img->w * (size_t)img->h;
	uint8_t *la = malloc(src ? 2 * n : n);
	if (!la)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory for %zu luma pixels", n);
	rwd_image_luma(img, la);
	out->sharpness = rwd_image_sharpness(la, img->w, img->h);
	out->colorfulness = rwd_image_colorfulness(img);
	out->exposure = rwd_image_exposure(la, img->w, img->h);
	int r = 0;
	if (src) {
		uint8_t *lb = la + n;
		rwd_image_luma(src, lb);
		out->psnr = rwd_image_psnr(src, img);
		out->has_psnr = 1;
		if (img->w >= RWD_IMAGE_SSIM_MIN_SIDE && img->h >= RWD_IMAGE_SSIM_MIN_SIDE) {
			r = rwd_image_ssim(lb, la, img->w, img->h, &out->ssim, err);
			out->has_ssim = r == 0;
		}
	}
	free(la);
	return r;
}

/* ---- the model kind ----------------------------------------------------- */

enum { DIM_SSIM, DIM_PSNR, DIM_SHARPNESS, DIM_COLORFULNESS, DIM_EXPOSURE, N_DIMS };

static const char *const dim_names[N_DIMS] = {"ssim", "psnr", "sharpness", "colorfulness", "exposure"};
static const char *const im_inputs[] = {"image", "source_image", NULL};

typedef struct im_state {
	rwd_image_decode_params decode;
	size_t max_image_bytes;
	size_t max_string; /* longest accepted JSON string (base64 + whitespace + prefix) */
} im_state;

typedef struct im_prep {
	rwd_image img, src;
	int has_src;
} im_prep;

static int kind_load(const char *path, const json_t *opts, const rwd_batch_limits *lim,
	void **state, rwd_error *err)
{
	(void)path;
	im_state *s = calloc(1, sizeof(*s));
	if (!s)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	s->decode = rwd_image_decode_default_params();
	s->decode.max_pixels = lim->max_image_pixels;
	s->max_image_bytes = (size_t)32 << 20;
	int r = 0;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)opts, key, v) {
		rwd_error_where(err, NULL, key);
		if (strcmp(key, "max_image_bytes") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 64 ||
			    json_integer_value(v) > ((json_int_t)1 << 34)) {
				r = rwd_errorf(err, RWD_E_INVALID, "max_image_bytes must be an integer in 64..2^34");
				goto fail;
			}
			s->max_image_bytes = (size_t)json_integer_value(v);
		} else if (strcmp(key, "composite_background") == 0) {
			if (!json_is_array(v) || json_array_size(v) != 3) {
				r = rwd_errorf(err, RWD_E_INVALID, "composite_background must be [r, g, b] (0..255)");
				goto fail;
			}
			for (size_t i = 0; i < 3; i++) {
				json_t *c = json_array_get(v, i);
				if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > 255) {
					r = rwd_errorf(err, RWD_E_INVALID, "composite_background must be [r, g, b] (0..255)");
					goto fail;
				}
				s->decode.background[i] = (uint8_t)json_integer_value(c);
			}
			s->decode.composite_alpha = 1;
		} else if (strcmp(key, "apply_exif_orientation") == 0) {
			if (!json_is_boolean(v)) {
				r = rwd_errorf(err, RWD_E_INVALID, "apply_exif_orientation must be true or false");
				goto fail;
			}
			s->decode.apply_exif_orientation = json_is_true(v);
		} else if (strcmp(key, "gray16_high_byte") == 0) {
			if (!json_is_boolean(v)) {
				r = rwd_errorf(err, RWD_E_INVALID, "gray16_high_byte must be true or false");
				goto fail;
			}
			s->decode.gray16_high_byte = json_is_true(v);
		} else if (strcmp(key, "max_jpeg_scans") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000) {
				r = rwd_errorf(err, RWD_E_INVALID, "max_jpeg_scans must be an integer in 1..100000");
				goto fail;
			}
			s->decode.max_jpeg_scans = (unsigned)json_integer_value(v);
		} else {
			r = rwd_errorf(err, RWD_E_INVALID,
				"unknown image_metrics option (expected max_image_bytes, composite_background, apply_exif_orientation, gray16_high_byte, max_jpeg_scans)");
			goto fail;
		}
	}
	rwd_error_where(err, NULL, "");
	/* base64 is 4/3 the bytes; allow MIME line breaks (2 per 76) and a data: prefix. */
	size_t enc = (s->max_image_bytes + 2) / 3 * 4;
	s->max_string = enc + enc / 38 + 4096;
	*state = s;
	return 0;
fail:
	free(s);
	return r;
}

static void kind_free(void *state)
{
	free(state);
}

static void kind_describe(const void *state, rwd_model_info *info)
{
	(void)state;
	info->n_dims = N_DIMS;
	for (size_t i = 0; i < N_DIMS; i++)
		info->dims[i] = dim_names[i];
	info->weight_bytes = 0;
	info->token_cost = 0;
}

static int check_image_field(const im_state *s, const json_t *item, const char *field, int required,
	rwd_error *err)
{
	json_t *v = json_object_get(item, field);
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		rwd_error_where(err, NULL, field);
		return rwd_errorf(err, RWD_E_INVALID,
			"missing \"%s\" (a base64 PNG/JPEG or a data:image/...;base64, URL)", field);
	}
	rwd_error_where(err, NULL, field);
	if (!json_is_string(v))
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" must be a string (base64 or data URL)", field);
	size_t n = json_string_length(v);
	if (n == 0)
		return rwd_errorf(err, RWD_E_INVALID, "\"%s\" is empty", field);
	if (n > s->max_string)
		return rwd_errorf(err, RWD_E_LIMIT, "\"%s\" is %zu characters, over the limit of %zu (%zu image bytes)",
			field, n, s->max_string, s->max_image_bytes);
	rwd_error_where(err, NULL, "");
	return 0;
}

static int kind_check(const void *state, const json_t *item, size_t *cost, rwd_error *err)
{
	const im_state *s = state;
	*cost = 1;
	int r = check_image_field(s, item, "image", 1, err);
	if (!r)
		r = check_image_field(s, item, "source_image", 0, err);
	return r;
}

/* base64 / data URL -> pixels (arena), through the shared image path. */
static int decode_field(const im_state *s, const json_t *item, const char *field, rwd_arena *arena,
	rwd_image *out, rwd_error *err)
{
	json_t *v = json_object_get(item, field);
	rwd_error_where(err, NULL, field);
	int r = rwd_image_decode_base64(json_string_value(v), json_string_length(v), s->max_image_bytes,
		&s->decode, arena, out, err);
	if (r)
		return r;
	rwd_error_where(err, NULL, "");
	return 0;
}

static int kind_prepare(const void *state, void *scratch, rwd_item *item, rwd_arena *arena,
	rwd_error *err)
{
	const im_state *s = state;
	(void)scratch;
	im_prep *p = rwd_arena_calloc(arena, 1, sizeof(*p));
	if (!p)
		return rwd_errorf(err, rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM,
			"out of memory for the item");
	int r = decode_field(s, item->input, "image", arena, &p->img, err);
	if (r)
		return r;
	json_t *src = json_object_get(item->input, "source_image");
	if (src && !json_is_null(src)) {
		r = decode_field(s, item->input, "source_image", arena, &p->src, err);
		if (r)
			return r;
		if (p->src.w != p->img.w || p->src.h != p->img.h) {
			rwd_error_where(err, NULL, "source_image");
			return rwd_errorf(err, RWD_E_INVALID,
				"source_image is %dx%d but image is %dx%d: ssim and psnr need equal sizes",
				p->src.w, p->src.h, p->img.w, p->img.h);
		}
		p->has_src = 1;
	}
	item->prep = p;
	return 0;
}

static int kind_forward(const void *state, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	(void)state;
	(void)scratch;
	(void)arena;
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = items[i];
		const im_prep *p = it->prep;
		rwd_image_metrics m;
		int r = rwd_image_metrics_compute(&p->img, p->has_src ? &p->src : NULL, &m, &it->err);
		if (r) {
			it->status = r;
			continue;
		}
		it->scores[DIM_SSIM] = (float)m.ssim;
		it->present[DIM_SSIM] = (uint8_t)m.has_ssim;
		it->scores[DIM_PSNR] = (float)m.psnr;
		it->present[DIM_PSNR] = (uint8_t)m.has_psnr;
		it->scores[DIM_SHARPNESS] = (float)m.sharpness;
		it->scores[DIM_COLORFULNESS] = (float)m.colorfulness;
		it->scores[DIM_EXPOSURE] = (float)m.exposure;
		it->present[DIM_SHARPNESS] = it->present[DIM_COLORFULNESS] = it->present[DIM_EXPOSURE] = 1;
	}
	return 0;
}

const rwd_model_ops rwd__image_metrics_ops = {
	.kind = "image_metrics",
	.serial_blas = 1,
	.inputs = im_inputs,
	.load = kind_load,
	.free = kind_free,
	.describe = kind_describe,
	.check = kind_check,
	.scratch_new = NULL,
	.scratch_free = NULL,
	.prepare = kind_prepare,
	.forward = kind_forward,
};
