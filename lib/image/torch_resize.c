/* image/torch_resize.c — PyTorch's float bicubic resize and OpenCLIP's ResizeMaxSize; see the header. */
#include "image/torch_resize.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIDE 65535

/* One axis: for each output, its first input, count and float32 weights. */
typedef struct axis {
	int ksize;
	int *first, *count;
	float *w; /* [out * ksize] */
} axis;

static void axis_free(axis *a)
{
	free(a->first);
	free(a->count);
	free(a->w);
}

/* Pillow's bicubic with a = -0.5, which PyTorch's antialiased kernel uses. */
static float aa_cubic(float x)
{
	const float a = -0.5f;
	x = fabsf(x);
	if (x < 1.0f)
		return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
	if (x < 2.0f)
		return (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
	return 0.0f;
}

/* Keys' cubic convolution with A = -0.75 (upsample_bicubic2d). */
static void cubic_coeffs(float t, float c[4])
{
	const float A = -0.75f;
	float x1 = t + 1.0f, x2 = t, x3 = 1.0f - t, x4 = 2.0f - t;
	c[0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;
	c[1] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
	c[2] = ((A + 2.0f) * x3 - (A + 3.0f)) * x3 * x3 + 1.0f;
	c[3] = ((A * x4 - 5.0f * A) * x4 + 8.0f * A) * x4 - 4.0f * A;
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The antialiased weights of one axis, in float32 as PyTorch computes them. */
static int axis_aa(int in, int out, axis *a)
{
	float scale = (float)in / (float)out;
	float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
	float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
	a->ksize = (int)ceilf(support) * 2 + 1;
	a->first = malloc((size_t)out * sizeof(int));
	a->count = malloc((size_t)out * sizeof(int));
	a->w = calloc((size_t)out * (size_t)a->ksize, sizeof(float));
	if (!a->first || !a->count || !a->w)
		return RWD_E_NOMEM;
	for (int i = 0; i < out; i++) {
		float center = scale * ((float)i + 0.5f);
		int xmin = (int)(center - support + 0.5f);
		if (xmin < 0)
			xmin = 0;
		int xmax = (int)(center + support + 0.5f);
		if (xmax > in)
			xmax = in;
		int n = xmax - xmin;
		if (n > a->ksize)
			n = a->ksize;
		float *w = a->w + (size_t)i * (size_t)a->ksize, total = 0.0f;
		for (int j = 0; j < n; j++) {
			w[j] = aa_cubic(((float)(j + xmin) - center + 0.5f) * invscale);
			total += w[j];
		}
		if (total != 0.0f)
			for (int j = 0; j < n; j++)
				w[j] /= total;
		a->first[i] = xmin;
		a->count[i] = n;
	}
	return 0;
}

static int resize_aa(const float *src, int sw, int sh, int planes, float *dst, int dw, int dh)
{
	axis ax = {0}, ay = {0};
	float *tmp = malloc((size_t)dw * (size_t)sh * sizeof(float));
	int r = tmp ? 0 : RWD_E_NOMEM;
	if (!r)
		r = axis_aa(sw, dw, &ax);
	if (!r)
		r = axis_aa(sh, dh, &ay);
	for (int p = 0; !r && p < planes; p++) {
		const float *s = src + (size_t)p * (size_t)sw * (size_t)sh;
		float *d = dst + (size_t)p * (size_t)dw * (size_t)dh;
		for (int y = 0; y < sh; y++) /* width pass: [sh, sw] -> [sh, dw] */
			for (int x = 0; x < dw; x++) {
				const float *w = ax.w + (size_t)x * (size_t)ax.ksize;
				const float *row = s + (size_t)y * (size_t)sw + ax.first[x];
				float acc = 0.0f;
				for (int j = 0; j < ax.count[x]; j++)
					acc += row[j] * w[j];
				tmp[(size_t)y * (size_t)dw + (size_t)x] = acc;
			}
		for (int y = 0; y < dh; y++) /* height pass: [sh, dw] -> [dh, dw] */
			for (int x = 0; x < dw; x++) {
				const float *w = ay.w + (size_t)y * (size_t)ay.ksize;
				float acc = 0.0f;
				for (int j = 0; j < ay.count[y]; j++)
					acc += tmp[(size_t)(ay.first[y] + j) * (size_t)dw + (size_t)x] * w[j];
				d[(size_t)y * (size_t)dw + (size_t)x] = acc;
			}
	}
	axis_free(&ax);
	axis_free(&ay);
	free(tmp);
	return r;
}

static int resize_plain(const float *src, int sw, int sh, int planes, float *dst, int dw, int dh)
{
	float sx = (float)sw / (float)dw, sy = (float)sh / (float)dh;
	for (int p = 0; p < planes; p++) {
		const float *s = src + (size_t)p * (size_t)sw * (size_t)sh;
		float *d = dst + (size_t)p * (size_t)dw * (size_t)dh;
		for (int y = 0; y < dh; y++) {
			float ry = sy * ((float)y + 0.5f) - 0.5f;
			int iy = (int)floorf(ry);
			float cy[4];
			cubic_coeffs(ry - (float)iy, cy);
			for (int x = 0; x < dw; x++) {
				float rx = sx * ((float)x + 0.5f) - 0.5f;
				int ix = (int)floorf(rx);
				float cx[4], rows[4];
				cubic_coeffs(rx - (float)ix, cx);
				for (int k = 0; k < 4; k++) {
					const float *row = s + (size_t)clampi(iy - 1 + k, 0, sh - 1) * (size_t)sw;
					rows[k] = row[clampi(ix - 1, 0, sw - 1)] * cx[0] + row[clampi(ix, 0, sw - 1)] * cx[1] +
						row[clampi(ix + 1, 0, sw - 1)] * cx[2] + row[clampi(ix + 2, 0, sw - 1)] * cx[3];
				}
				d[(size_t)y * (size_t)dw + (size_t)x] =
					rows[0] * cy[0] + rows[1] * cy[1] + rows[2] * cy[2] + rows[3] * cy[3];
			}
		}
	}
	return 0;
}

int rwd_image_torch_resize(const float *src, int sw, int sh, int planes, float *dst, int dw, int dh,
	int antialias)
{
	if (sw < 1 || sh < 1 || dw < 1 || dh < 1 || sw > MAX_SIDE || sh > MAX_SIDE || dw > MAX_SIDE ||
	    dh > MAX_SIDE || planes < 1)
		return RWD_E_INVALID;
	if (sw == dw && sh == dh) { /* interpolate to the same size is the identity */
		memcpy(dst, src, (size_t)planes * (size_t)sw * (size_t)sh * sizeof(float));
		return 0;
	}
	return antialias ? resize_aa(src, sw, sh, planes, dst, dw, dh) : resize_plain(src, sw, sh, planes, dst, dw, dh);
}

int rwd_image_openclip_max_size(const uint8_t *rgb, int w, int h, size_t stride, int max_size,
	int antialias, const float mean[3], const float std[3], float *out)
{
	if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE || max_size < 1 || max_size > 4096)
		return RWD_E_INVALID;
	for (int c = 0; c < 3; c++)
		if (!(std[c] != 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
			return RWD_E_INVALID;
	if (!stride)
		stride = (size_t)w * 3;
	double scale = (double)max_size / (double)(w > h ? w : h);
	/* Python's round(): half to even, which nearbyint does in the default mode */
	int nh = scale != 1.0 ? (int)nearbyint((double)h * scale) : h;
	int nw = scale != 1.0 ? (int)nearbyint((double)w * scale) : w;
	if (nh < 1 || nw < 1 || nh > max_size || nw > max_size)
		return RWD_E_INVALID;
	size_t sp = (size_t)w * (size_t)h, dp = (size_t)nw * (size_t)nh;
	float *planes = malloc(sp * 3 * sizeof(float));
	float *rs = scale != 1.0 ? malloc(dp * 3 * sizeof(float)) : planes;
	if (!planes || !rs) {
		free(planes);
		if (rs != planes)
			free(rs);
		return RWD_E_NOMEM;
	}
	for (int y = 0; y < h; y++) /* ToTensor: uint8 -> float32 / 255, channels first */
		for (int x = 0; x < w; x++)
			for (int c = 0; c < 3; c++)
				planes[(size_t)c * sp + (size_t)y * (size_t)w + (size_t)x] =
					(float)rgb[(size_t)y * stride + (size_t)x * 3 + (size_t)c] / 255.0f;
	int r = 0;
	if (scale != 1.0)
		r = rwd_image_torch_resize(planes, w, h, 3, rs, nw, nh, antialias);
	if (!r) {
		int top = (max_size - nh) / 2, left = (max_size - nw) / 2;
		size_t op = (size_t)max_size * (size_t)max_size;
		for (int c = 0; c < 3; c++)
			for (int y = 0; y < max_size; y++)
				for (int x = 0; x < max_size; x++) {
					int sy = y - top, sx = x - left;
					float v = sy >= 0 && sy < nh && sx >= 0 && sx < nw ?
						rs[(size_t)c * dp + (size_t)sy * (size_t)nw + (size_t)sx] : 0.0f;
					out[(size_t)c * op + (size_t)y * (size_t)max_size + (size_t)x] = (v - mean[c]) / std[c];
				}
	}
	if (rs != planes)
		free(rs);
	free(planes);
	return r;
}
