/* image/resize.c — see resize.h. */
#include "image/resize.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Fixed-point weights: 8 bits of result, 2 bits of headroom for the filter's
 * negative lobes and overshoot, the rest fraction (Pillow's PRECISION_BITS).
 */
#define FRAC_BITS (32 - 8 - 2)

/*
 * The filters, written with the same operation order as Pillow so the double
 * weights — and hence the rounded fixed-point ones — come out identical.
 * (The build never contracts a*b+c into an FMA: -std=c11 turns
 * -ffp-contract off, and baseline x86-64 has no FMA instruction anyway.)
 */
static double filter_box(double x)
{
	return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double filter_bilinear(double x)
{
	if (x < 0.0)
		x = -x;
	return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_hamming(double x)
{
	if (x < 0.0)
		x = -x;
	if (x == 0.0)
		return 1.0;
	if (x >= 1.0)
		return 0.0;
	x = x * M_PI;
	return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double filter_bicubic(double x)
{
	const double a = -0.5; /* Keys' cubic with a = -0.5 (Catmull-Rom) */
	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

static double sinc(double x)
{
	if (x == 0.0)
		return 1.0;
	x = x * M_PI;
	return sin(x) / x;
}

static double filter_lanczos(double x)
{
	if (-3.0 <= x && x < 3.0)
		return sinc(x) * sinc(x / 3);
	return 0.0;
}

struct filter {
	double (*fn)(double x);
	double support;
};

static int filter_lookup(int filter, struct filter *f)
{
	switch (filter) {
	case RWD_IMAGE_BOX:
		*f = (struct filter){filter_box, 0.5};
		return 0;
	case RWD_IMAGE_BILINEAR:
		*f = (struct filter){filter_bilinear, 1.0};
		return 0;
	case RWD_IMAGE_HAMMING:
		*f = (struct filter){filter_hamming, 1.0};
		return 0;
	case RWD_IMAGE_BICUBIC:
		*f = (struct filter){filter_bicubic, 2.0};
		return 0;
	case RWD_IMAGE_LANCZOS:
		*f = (struct filter){filter_lanczos, 3.0};
		return 0;
	case 0:
		return RWD_E_UNSUPPORTED; /* NEAREST takes a different path in Pillow */
	default:
		return RWD_E_INVALID;
	}
}

/* One axis' weights for outputs [o0, o0 + on) of an in_size → out_size resize. */
struct coeffs {
	int ksize;     /* weights per output (the most any output uses) */
	int *first;    /* [on] first input index */
	int *count;    /* [on] inputs used */
	int32_t *k;    /* [on * ksize] fixed-point weights */
};

static void coeffs_free(struct coeffs *c)
{
	free(c->first);
	free(c->count);
	free(c->k);
	memset(c, 0, sizeof(*c));
}

static int coeffs_build(const struct filter *f, int in_size, int out_size, int o0, int on,
	struct coeffs *c)
{
	/* Pillow takes the box edges as floats; integers this small are exact. */
	double scale = (double)(float)in_size / out_size;
	double filterscale = scale < 1.0 ? 1.0 : scale; /* antialias when shrinking */
	double support = f->support * filterscale;
	double ss = 1.0 / filterscale;
	int ksize = (int)ceil(support) * 2 + 1;
	double *w = NULL;

	memset(c, 0, sizeof(*c));
	c->ksize = ksize;
	c->first = malloc((size_t)on * sizeof(int));
	c->count = malloc((size_t)on * sizeof(int));
	c->k = calloc((size_t)on * (size_t)ksize, sizeof(int32_t));
	w = malloc((size_t)ksize * sizeof(double));
	if (!c->first || !c->count || !c->k || !w) {
		free(w);
		coeffs_free(c);
		return RWD_E_NOMEM;
	}
	for (int i = 0; i < on; i++) {
		int xx = o0 + i;
		double center = (xx + 0.5) * scale;
		double ww = 0.0;
		int xmin = (int)(center - support + 0.5); /* truncation, as Pillow */
		if (xmin < 0)
			xmin = 0;
		int xmax = (int)(center + support + 0.5);
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		for (int x = 0; x < xmax; x++) {
			w[x] = f->fn(((double)(x + xmin) - center + 0.5) * ss);
			ww += w[x];
		}
		int32_t *k = c->k + (size_t)i * (size_t)ksize;
		for (int x = 0; x < xmax; x++) {
			double v = ww != 0.0 ? w[x] / ww : w[x];
			/* round half away from zero to FRAC_BITS */
			k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << FRAC_BITS))
				     : (int32_t)(0.5 + v * (1 << FRAC_BITS));
		}
		c->first[i] = xmin;
		c->count[i] = xmax;
	}
	free(w);
	return 0;
}

/* Round the accumulator (which started at one half) and clip to 0..255. */
static inline uint8_t clip8(int32_t acc)
{
	int32_t v = acc >> FRAC_BITS; /* arithmetic shift: floor, as Pillow */
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/*
 * Horizontal pass: for each of `rows` rows, outputs c->first..: dst row r =
 * filter of src row r. src points at the first row to read.
 */
static void pass_horizontal(const struct coeffs *c, int on, const uint8_t *src, size_t sstride,
	int rows, int ch, uint8_t *dst, size_t dstride)
{
	for (int r = 0; r < rows; r++) {
		const uint8_t *s = src + (size_t)r * sstride;
		uint8_t *d = dst + (size_t)r * dstride;
		for (int i = 0; i < on; i++) {
			const int32_t *k = c->k + (size_t)i * (size_t)c->ksize;
			const uint8_t *p = s + (size_t)c->first[i] * (size_t)ch;
			int n = c->count[i];
			int32_t acc[4] = {1 << (FRAC_BITS - 1), 1 << (FRAC_BITS - 1),
				1 << (FRAC_BITS - 1), 1 << (FRAC_BITS - 1)};
			if (ch == 3) {
				for (int x = 0; x < n; x++) {
					acc[0] += p[3 * x + 0] * k[x];
					acc[1] += p[3 * x + 1] * k[x];
					acc[2] += p[3 * x + 2] * k[x];
				}
			} else {
				for (int x = 0; x < n; x++)
					for (int b = 0; b < ch; b++)
						acc[b] += p[x * ch + b] * k[x];
			}
			for (int b = 0; b < ch; b++)
				d[i * ch + b] = clip8(acc[b]);
		}
	}
}

/*
 * Vertical pass: output row i = filter over rows c->first[i] - row0 .. of
 * src (whose row 0 is input row row0), `cols` pixels wide. acc holds
 * cols * ch int32. Each pixel's sum is the same integer as Pillow's
 * per-pixel loop; streaming whole rows is only kinder to the cache.
 */
static void pass_vertical(const struct coeffs *c, int on, const uint8_t *src, size_t sstride,
	int row0, int cols, int ch, uint8_t *dst, size_t dstride, int32_t *acc)
{
	size_t n_bytes = (size_t)cols * (size_t)ch;
	for (int i = 0; i < on; i++) {
		const int32_t *k = c->k + (size_t)i * (size_t)c->ksize;
		const uint8_t *base = src + (size_t)(c->first[i] - row0) * sstride;
		for (size_t q = 0; q < n_bytes; q++)
			acc[q] = 1 << (FRAC_BITS - 1);
		for (int y = 0; y < c->count[i]; y++) {
			const uint8_t *s = base + (size_t)y * sstride;
			int32_t ky = k[y];
			for (size_t q = 0; q < n_bytes; q++)
				acc[q] += s[q] * ky;
		}
		uint8_t *d = dst + (size_t)i * dstride;
		for (size_t q = 0; q < n_bytes; q++)
			d[q] = clip8(acc[q]);
	}
}

static int check_side(int v)
{
	return v >= 1 && v <= RWD_IMAGE_MAX_SIDE;
}

int rwd_image_resize_window(const uint8_t *src, int sw, int sh, size_t src_stride, int channels,
	int dw, int dh, int x0, int y0, int rw, int rh, uint8_t *dst, size_t dst_stride,
	int filter)
{
	struct filter f;
	struct coeffs hc = {0}, vc = {0};
	uint8_t *tmp = NULL;
	int32_t *acc = NULL;
	int r;

	if (channels < 1 || channels > 4 || !check_side(sw) || !check_side(sh) ||
		!check_side(dw) || !check_side(dh) || rw < 1 || rh < 1 || x0 < 0 || y0 < 0 ||
		x0 > dw - rw || y0 > dh - rh)
		return RWD_E_INVALID;
	r = filter_lookup(filter, &f);
	if (r)
		return r;
	size_t ch = (size_t)channels;
	if (!src_stride)
		src_stride = (size_t)sw * ch;
	if (!dst_stride)
		dst_stride = (size_t)rw * ch;
	if (src_stride < (size_t)sw * ch || dst_stride < (size_t)rw * ch)
		return RWD_E_INVALID;

	int need_h = dw != sw, need_v = dh != sh;
	if (!need_h && !need_v) {
		for (int y = 0; y < rh; y++)
			memcpy(dst + (size_t)y * dst_stride,
				src + (size_t)(y0 + y) * src_stride + (size_t)x0 * ch, (size_t)rw * ch);
		return 0;
	}

	/* Source rows the vertical pass reads (all of the window's rows when
	 * there is no vertical pass). */
	int row0 = y0, row1 = y0 + rh;
	if (need_v) {
		r = coeffs_build(&f, sh, dh, y0, rh, &vc);
		if (r)
			goto out;
		row0 = vc.first[0];
		row1 = vc.first[rh - 1] + vc.count[rh - 1];
	}

	const uint8_t *vsrc = src + (size_t)row0 * src_stride + (size_t)x0 * ch;
	size_t vstride = src_stride;
	if (need_h) {
		r = coeffs_build(&f, sw, dw, x0, rw, &hc);
		if (r)
			goto out;
		if (!need_v) {
			pass_horizontal(&hc, rw, src + (size_t)row0 * src_stride, src_stride,
				rh, channels, dst, dst_stride);
			goto out;
		}
		vstride = (size_t)rw * ch;
		tmp = malloc((size_t)(row1 - row0) * vstride);
		if (!tmp) {
			r = RWD_E_NOMEM;
			goto out;
		}
		pass_horizontal(&hc, rw, src + (size_t)row0 * src_stride, src_stride,
			row1 - row0, channels, tmp, vstride);
		vsrc = tmp;
	}
	acc = malloc((size_t)rw * ch * sizeof(int32_t));
	if (!acc) {
		r = RWD_E_NOMEM;
		goto out;
	}
	pass_vertical(&vc, rh, vsrc, vstride, row0, rw, channels, dst, dst_stride, acc);
out:
	free(acc);
	free(tmp);
	coeffs_free(&hc);
	coeffs_free(&vc);
	return r;
}

int rwd_image_resize(const uint8_t *src, int sw, int sh, size_t src_stride, int channels,
	uint8_t *dst, int dw, int dh, size_t dst_stride, int filter)
{
	return rwd_image_resize_window(src, sw, sh, src_stride, channels, dw, dh, 0, 0, dw, dh,
		dst, dst_stride, filter);
}

rwd_image_prep_params rwd_image_clip_default_params(void)
{
	rwd_image_prep_params p = {
		.do_resize = 1,
		.shortest_edge = 224,
		.resample = RWD_IMAGE_BICUBIC,
		.do_center_crop = 1,
		.crop_height = 224,
		.crop_width = 224,
		.do_rescale = 1,
		.rescale_factor = 1.0 / 255.0,
		.do_normalize = 1,
		.image_mean = {0.48145466f, 0.4578275f, 0.40821073f},
		.image_std = {0.26862954f, 0.26130258f, 0.27577711f},
	};
	return p;
}

/* The resized size, as get_resize_output_image_size(default_to_square=False). */
static int resized_size(const rwd_image_prep_params *p, int w, int h, int *rw, int *rh)
{
	if (!p->do_resize) {
		*rw = w;
		*rh = h;
		return 0;
	}
	if (p->shortest_edge > 0) {
		if (!check_side(p->shortest_edge))
			return RWD_E_INVALID;
		int64_t s = p->shortest_edge;
		int64_t shrt = w <= h ? w : h, lng = w <= h ? h : w;
		/* int(size * long / short): exact product, correctly rounded
		 * double division, truncation — as Python computes it */
		double q = (double)(s * lng) / (double)shrt;
		if (q >= RWD_IMAGE_MAX_SIDE + 1.0)
			return RWD_E_LIMIT;
		int nl = (int)q;
		if (nl < 1)
			return RWD_E_LIMIT;
		*rw = w <= h ? (int)s : nl;
		*rh = w <= h ? nl : (int)s;
		return 0;
	}
	if (!check_side(p->resize_width) || !check_side(p->resize_height))
		return RWD_E_INVALID;
	*rw = p->resize_width;
	*rh = p->resize_height;
	return 0;
}

int rwd_image_prep_output_size(const rwd_image_prep_params *p, int w, int h, int *out_w,
	int *out_h)
{
	int rw, rh;
	if (!check_side(w) || !check_side(h))
		return RWD_E_INVALID;
	int r = resized_size(p, w, h, &rw, &rh);
	if (r)
		return r;
	if (p->do_center_crop) {
		if (!check_side(p->crop_width) || !check_side(p->crop_height))
			return RWD_E_INVALID;
		rw = p->crop_width;
		rh = p->crop_height;
	}
	*out_w = rw;
	*out_h = rh;
	return 0;
}

/* Python's a // 2 for possibly negative a. */
static int floor_half(int a)
{
	return a >= 0 ? a / 2 : -((-a + 1) / 2);
}

int rwd_image_prep_run(const rwd_image_prep_params *p, const uint8_t *rgb, int w, int h,
	size_t stride, float *out)
{
	int rw, rh, ow, oh;
	int r = rwd_image_prep_output_size(p, w, h, &ow, &oh);
	if (r)
		return r;
	r = resized_size(p, w, h, &rw, &rh);
	if (r)
		return r;
	if (p->do_normalize)
		for (int c = 0; c < 3; c++)
			if (!(p->image_std[c] != 0.0f) || !isfinite(p->image_std[c]) ||
				!isfinite(p->image_mean[c]))
				return RWD_E_INVALID;
	if (!stride)
		stride = (size_t)w * 3;

	/* Crop offsets in resized coordinates: HF's (H - ch) // 2; negative
	 * when the crop is larger (that part is zero padding). */
	int top = p->do_center_crop ? floor_half(rh - oh) : 0;
	int left = p->do_center_crop ? floor_half(rw - ow) : 0;
	int wy0 = top > 0 ? top : 0, wy1 = top + oh < rh ? top + oh : rh;
	int wx0 = left > 0 ? left : 0, wx1 = left + ow < rw ? left + ow : rw;
	int ww = wx1 - wx0, wh = wy1 - wy0; /* the window of real pixels, >= 1 each */

	uint8_t *win = malloc((size_t)ww * (size_t)wh * 3);
	if (!win)
		return RWD_E_NOMEM;
	r = rwd_image_resize_window(rgb, w, h, stride, 3, rw, rh, wx0, wy0, ww, wh, win, 0,
		p->resample);
	if (r) {
		free(win);
		return r;
	}

	/* What each byte value becomes: float32(v * factor) computed in double
	 * (numpy upcasts to float64 before scaling), then (x - mean) / std in
	 * float32, as transformers' rescale() and normalize() do. */
	float lut[3][256];
	for (int c = 0; c < 3; c++) {
		for (int v = 0; v < 256; v++) {
			float x = p->do_rescale ? (float)((double)v * p->rescale_factor) : (float)v;
			if (p->do_normalize)
				x = (x - p->image_mean[c]) / p->image_std[c];
			lut[c][v] = x;
		}
	}
	size_t plane = (size_t)ow * (size_t)oh;
	for (int i = 0; i < oh; i++) {
		int y = top + i;
		for (int j = 0; j < ow; j++) {
			int x = left + j;
			size_t o = (size_t)i * (size_t)ow + (size_t)j;
			if (y < wy0 || y >= wy1 || x < wx0 || x >= wx1) {
				for (int c = 0; c < 3; c++)
					out[c * plane + o] = lut[c][0];
				continue;
			}
			const uint8_t *px = win + ((size_t)(y - wy0) * (size_t)ww + (size_t)(x - wx0)) * 3;
			for (int c = 0; c < 3; c++)
				out[c * plane + o] = lut[c][px[c]];
		}
	}
	free(win);
	return 0;
}
